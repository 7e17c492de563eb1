"""`bnnkws bench card`: the model card (models/MODEL_CARD.md) from the shipped models, the
float baselines and the recipe ablation, all measured on the same test sets
(tools/bench/card.py)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.base.paths import MODELS_DIR, ROOT, build_dir
from bnnkws.tools.cli import command_line
from bnnkws.tools.commands.bench_host import bench_actions

DEFAULT_RESULTS = ROOT / "docs" / "results" / "card.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = bench_actions(subparsers).add_parser(
        "card",
        help="measure the shipped models, float baselines and recipe ablation; write the model card",
        description="Build the test sets (official layout, unknown = words held out of training) "
        "from --data, evaluate every model in the deployed arithmetic, save the results "
        "(docs/results/card.json) and write models/MODEL_CARD.md. With --report-only the card "
        "is rewritten from the saved results.",
    )
    p.add_argument("--data", type=Path, default=None, help="real Speech Commands folder (training layout)")
    p.add_argument("--extra-unknown", type=Path, default=None, metavar="DIR",
                   help="the broad other-word set (`bnnkws data synth --broad`): a second test set "
                   "whose _unknown_ is its held-out words")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME=CKPT",
                   help="models to measure (default: default, dscnn and tcresnet8 from models/)")
    p.add_argument("--ablation", nargs="*", default=None, metavar="NAME=CKPT",
                   help="recipe-ablation checkpoints (default: keep the saved ablation rows)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="saved results (JSON)")
    p.add_argument("--out", type=Path, default=MODELS_DIR / "MODEL_CARD.md")
    p.add_argument("--report-only", action="store_true", help="rewrite the card from saved results")
    p.add_argument("--streaming", type=Path, default=DEFAULT_RESULTS.parent, metavar="DIR",
                   help="folder of `bnnkws bench streaming --results` files, streaming-NAME.json per "
                   "model of the card (default docs/results)")
    p.add_argument("--cache", type=Path, default=None, help="feature cache folder")
    p.set_defaults(func=_card)


def _pairs(items: list[str], what: str) -> dict[str, Path]:
    out = {}
    for it in items:
        name, sep, path = it.partition("=")
        if not sep or not name or not path:
            raise BnnkwsError(f"{what} {it!r}: expected NAME=CHECKPOINT")
        out[name] = Path(path)
    return out


def _test_sets(args: argparse.Namespace):
    from bnnkws.generator.data.keywords import DEFAULT_KEYWORDS
    from bnnkws.generator.data.mixing import MixOptions, write_test_layout
    from bnnkws.tools.bench.card import TestSet

    root = build_dir() / "testsets"
    sets = [("real", None, 3.0, "keywords of the test split; `_unknown_` = every test-split clip of "
             "*happy*, a word held out of all training; `_silence_` = 1-s slices of the held-out "
             "last 20 % of each background recording at random levels (-60..0 dB)")]
    if args.extra_unknown is not None:
        sets.append(("tts", args.extra_unknown, 40.0, "as `real`, plus `_unknown_` clips of the broad "
                     "synthesized vocabulary's held-out words (never trained on) spoken by its test talkers"))
    out = []
    for name, extra, ratio, about in sets:
        folder = root / name
        stamp = folder / ".source"
        key = f"{Path(args.data).resolve()}|{Path(extra).resolve() if extra else ''}|{ratio}|extra-keywords"
        if not (stamp.is_file() and stamp.read_text() == key):
            shutil.rmtree(folder, ignore_errors=True)
            write_test_layout(args.data, DEFAULT_KEYWORDS, folder, "test", [extra] if extra else [],
                              MixOptions(unknown_ratio=ratio), 0)
            stamp.write_text(key)
        out.append(TestSet(name, folder, about))
    return out


def _card(args: argparse.Namespace) -> int:
    from bnnkws.tools.bench import card

    saved = card.load_results(args.results) if args.results.is_file() else None
    if args.report_only:
        if saved is None:
            raise BnnkwsError(f"{args.results}: no saved results; run without --report-only first")
        res = saved
    else:
        if args.data is None:
            raise BnnkwsError("--data is needed to measure (or use --report-only)")
        if args.models is not None:
            models = _pairs(args.models, "--models")
        else:
            models = {n: MODELS_DIR / f"{n}.pt" for n in ("default", "dscnn", "tcresnet8")
                      if (MODELS_DIR / f"{n}.pt").is_file()}
        ablation = _pairs(args.ablation, "--ablation") if args.ablation else {}
        res = card.measure(models, ablation, _test_sets(args), args.cache)
        if not ablation and saved is not None:
            res["ablation"] = saved.get("ablation", [])
        card.save_results(args.results, res)
    streams = card.load_streaming(args.streaming, [m["name"] for m in res["models"]])
    cands = card.load_streaming(args.streaming, [m["name"] for m in res["ablation"]])
    text = card.format_card(res, command_line(), streams, cands)
    write_atomic(args.out, text)
    print(f"wrote {args.out} ({len(res['models'])} models, {len(res['ablation'])} ablation rows)")
    return 0
