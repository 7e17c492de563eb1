"""`bnnkws data`: make a synthetic dataset (`synth`), summarise a dataset folder (`info`), or
write a split in the official test-set layout (`testset`)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from bnnkws.generator.data.dataset import SPEECH_COMMANDS_KEYWORDS, SPLITS, load_dataset
from bnnkws.generator.data.keywords import BROAD_OTHER_WORDS, DEFAULT_KEYWORDS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `data` with its `synth` and `info` subcommands."""
    parser = subparsers.add_parser(
        "data",
        help="make or inspect Speech Commands datasets",
        description="Make a synthetic Speech Commands dataset or summarise a dataset folder.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    _register_synth(sub)
    _register_info(sub)
    _register_testset(sub)


def _register_synth(sub: argparse._SubParsersAction) -> None:
    from bnnkws.generator.data.synth import DEFAULT_UNKNOWN_WORDS, ENGINES

    p = sub.add_parser(
        "synth",
        help="synthesize a Speech Commands-style dataset with espeak-ng, flite and festival",
        description=(
            "Write <word>/<talker>_nohash_<j>.wav (16 kHz mono int16, 1 s), "
            "validation_list.txt, testing_list.txt (split by talker), _background_noise_/, "
            "manifest.csv and SYNTH_INFO.json into OUT. Deterministic for a given seed."
        ),
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    p.add_argument("--per-word", type=int, default=2000, help="clips per keyword (default 2000)")
    p.add_argument(
        "--unknown-per-word",
        type=int,
        default=None,
        help="clips per unknown word (default: per-word / 4, at least 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--keywords", nargs="+", default=list(SPEECH_COMMANDS_KEYWORDS), metavar="WORD")
    p.add_argument(
        "--unknown-words", nargs="*", default=list(DEFAULT_UNKNOWN_WORDS), metavar="WORD"
    )
    p.add_argument(
        "--engines",
        nargs="+",
        default=list(ENGINES),
        choices=ENGINES,
        help="TTS engines to use (default: all three)",
    )
    p.add_argument(
        "--talkers",
        nargs="+",
        default=None,
        metavar="NAME",
        help="use only these talkers (e.g. kal slt espk-m1; default: all)",
    )
    p.add_argument(
        "--broad",
        action="store_true",
        help="unknown words: the broad other-word vocabulary (generator/data/keywords.py "
        "BROAD_OTHER_WORDS, less the keywords) instead of --unknown-words",
    )
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: CPU count)")
    p.add_argument("--force", action="store_true", help="replace a previous synth output in OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_synth)


def _synth(args: argparse.Namespace) -> int:
    from bnnkws.generator.data.synth import SynthConfig, synthesize_dataset

    unknown = args.unknown_words
    if args.broad:
        unknown = [w for w in BROAD_OTHER_WORDS if w not in args.keywords]
    config = SynthConfig(
        out=args.out,
        keywords=tuple(args.keywords),
        unknown_words=tuple(unknown),
        per_word=args.per_word,
        unknown_per_word=args.unknown_per_word,
        seed=args.seed,
        jobs=args.jobs,
        engines=tuple(args.engines),
        talkers=tuple(args.talkers) if args.talkers else None,
        force=args.force,
        progress=not args.quiet,
    )
    info = synthesize_dataset(config)
    talkers = info["talkers"]
    print(
        f"{args.out}: {info['clips']} clips in {info['wall_time_s']} s; talkers "
        f"train {len(talkers['train'])}, validation {len(talkers['validation'])}, "
        f"test {len(talkers['test'])} ({', '.join(talkers['test'])})"
    )
    return 0


def _register_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="count the clips per label and split of a dataset folder",
        description="Load a dataset folder as training would and print clips per label.",
    )
    p.add_argument("root", type=Path, help="dataset folder (training or official test layout)")
    p.add_argument("--keywords", nargs="+", default=list(SPEECH_COMMANDS_KEYWORDS), metavar="WORD")
    p.add_argument("--split", choices=SPLITS, default=None, help="one split (default: each)")
    p.add_argument("--silence-fraction", type=float, default=0.1)
    p.add_argument("--unknown-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="warn instead of failing when a keyword has no folder",
    )
    p.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _print_warning
        first = load_dataset(
            args.root, args.keywords, "all", 0.0, None, args.seed, args.allow_missing
        )
    splits = [args.split] if args.split else (["test"] if first.layout == "test" else SPLITS[:3])
    print(f"{args.root}: {first.layout} layout; labels {', '.join(first.labels)}")
    for split in splits:
        ds = load_dataset(
            args.root,
            args.keywords,
            split,
            args.silence_fraction,
            args.unknown_fraction,
            args.seed,
            allow_missing=True,
        )
        counts = " ".join(f"{k}={v}" for k, v in ds.label_counts().items())
        print(f"  {split:<10} {len(ds):>6}  {counts}")
    return 0


def _register_testset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "testset",
        help="write a split in the official test-set layout, unknown = words never trained on",
        description="Write one split of a training-layout dataset as the official Speech Commands "
        "test set is laid out (a folder per keyword, _unknown_, _silence_), built as the mix "
        "recipe builds it (generator/data/mixing.py): _unknown_ holds only words held out of "
        "training (default happy, and the hash-held-out words of --extra-unknown data), "
        "_silence_ 1-s slices of the held-out part of the background recordings at random levels.",
    )
    p.add_argument("--data", type=Path, required=True, help="dataset folder (training layout)")
    p.add_argument("--out", type=Path, required=True, help="new folder to write")
    p.add_argument("--split", choices=("validation", "test"), default="test")
    p.add_argument("--keywords", nargs="+", default=list(DEFAULT_KEYWORDS), metavar="WORD")
    p.add_argument("--extra-unknown", type=Path, nargs="+", default=[], metavar="DIR")
    p.add_argument("--holdout", nargs="+", default=["happy"], metavar="WORD")
    p.add_argument("--unknown-ratio", type=float, default=1.0,
                   help="unknown clips per keyword class, at most (default 1)")
    p.add_argument("--silence-ratio", type=float, default=1.0,
                   help="silence clips per keyword class (default 1)")
    p.add_argument("--all-unknown", action="store_true",
                   help="_unknown_ also holds the split's trained-on other words")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_testset)


def _testset(args: argparse.Namespace) -> int:
    from bnnkws.generator.data.mixing import MixOptions, write_test_layout

    opt = MixOptions(holdout=tuple(args.holdout), unknown_ratio=args.unknown_ratio,
                     silence_ratio=args.silence_ratio)
    counts = write_test_layout(args.data, args.keywords, args.out, args.split, args.extra_unknown, opt,
                               args.seed, heldout_only=not args.all_unknown)
    print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"warning: {message}", file=sys.stderr)
