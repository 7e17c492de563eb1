"""`bnnkws bench accuracy`: the training ablation (generator/training/ablation.py) as a command.

`bench` has several actions, each in its own module (`host`, `mcu`, `accelerator`,
`accuracy`); each adds itself through ``bench_host.bench_actions``, which creates the
`bench` parser on first use, so the modules may be listed in any order in
cli.COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.tools.cli import command_line
from bnnkws.tools.commands.bench_host import bench_actions

DEFAULT_RESULTS = Path("runs/ablation")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = bench_actions(subparsers).add_parser(
        "accuracy",
        help="train and evaluate the ablation matrix (method x N x wrap/saturate), write table + plot",
        description="Train the ablation matrix {naive, + overflow simulation, + SBN, + structure, "
        "+ collaborative} x N x {wrap, saturate}, the collaborative-training components and the "
        "float baselines on one dataset; write docs/ABLATION.md and docs/ablation.png. Each "
        "training's result is saved as it finishes and skipped when present (resumable).",
    )
    p.add_argument("--data", type=Path, required=True, help="Speech Commands folder (training layout)")
    p.add_argument("--keywords", nargs="+", default=["yes", "no", "up", "down", "left", "right", "stop", "go"],
                   metavar="WORD")
    p.add_argument("--cache", type=Path, default=None, help="feature cache folder")
    p.add_argument("--results", type=Path, default=None,
                   help=f"per-training results (default {DEFAULT_RESULTS}, quick: {DEFAULT_RESULTS}-quick)")
    p.add_argument("--docs", type=Path, default=None,
                   help="folder for ABLATION.md and ablation.png (default docs/; quick: the results folder)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 epochs on 600 training clips, N in {8, 32} (minutes on a CPU)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per training (default 40; quick 2)")
    p.add_argument("--bits", type=int, nargs="+", default=None, help="accumulator widths (default 6 8 10 12 16 32)")
    p.add_argument("--modes", nargs="+", choices=("wrap", "saturate"), default=["wrap", "saturate"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="trainings run in parallel processes (default 1)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--no-baselines", action="store_true", help="skip the float DS-CNN and TC-ResNet8")
    p.add_argument("--no-components", action="store_true", help="skip the collaborative-training components")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from saved results")
    p.add_argument("--prepare-only", action="store_true",
                   help="only fill the feature cache (then --cache can travel to a machine without the audio)")
    p.set_defaults(func=run_accuracy)


def run_accuracy(args: argparse.Namespace) -> int:
    from bnnkws.generator.training import ablation
    from bnnkws.generator.training.train import DataSpec, load_noise, load_split

    quick = args.quick
    epochs = args.epochs or (2 if quick else 40)
    bits = tuple(args.bits or ((8, 32) if quick else ablation.BITS))
    for b in bits:
        if not 4 <= b <= 32:
            raise BnnkwsError(f"--bits {b}: accumulator widths lie in 4..32")
    modes = tuple(args.modes)
    seeds = tuple(args.seeds)
    results = args.results or (Path(f"{DEFAULT_RESULTS}-quick") if quick else DEFAULT_RESULTS)
    docs = args.docs or (results if quick else Path("docs"))
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BnnkwsError("--device cuda: CUDA is not available here")
    spec = DataSpec(str(args.data), list(args.keywords))
    # features once, in this process, before the workers start
    t0 = time.time()
    counts = {}
    for split in ("train", "validation", "test"):
        _, y = load_split(spec, split, cache_dir=args.cache, progress=not args.report_only)
        counts[split] = int(len(y))
    load_noise(spec, cache_dir=args.cache)
    print(f"features: {counts['train']} train, {counts['validation']} validation, {counts['test']} test "
          f"({time.time() - t0:.1f} s)")
    if min(counts.values()) == 0:
        raise BnnkwsError(f"{args.data}: a split is empty (train/validation/test: {counts})")
    if args.prepare_only:
        return 0
    settings = ablation.Settings(
        data={"root": spec.root, "keywords": spec.keywords, "silence_fraction": spec.silence_fraction,
              "unknown_fraction": spec.unknown_fraction, "seed": spec.seed},
        cache=str(args.cache) if args.cache else None, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
        device=args.device, threads=args.threads, subset=600 if quick else None)
    jobs, _ = ablation.plan(bits, modes, seeds, baselines=not args.no_baselines,
                            components=not args.no_components and 8 in bits and "wrap" in modes)
    run_file = results / "run.json"
    prev = json.loads(run_file.read_text()) if run_file.is_file() else {}
    if args.report_only:
        summary = {"elapsed_s": prev.get("elapsed_s", 0.0)}
    else:
        print(f"{len(jobs)} trainings, {epochs} epochs each, {args.jobs} at a time on {args.device}")
        summary = ablation.run_all(jobs, settings, results, args.jobs)
        if prev and not summary["ran"]:
            summary["elapsed_s"] = prev.get("elapsed_s", 0.0)
    import torch

    meta = {
        "command": command_line() if "bench" in sys.argv else "bnnkws bench accuracy",
        "quick": quick, "data": spec.describe(), "labels": spec.labels(),
        "n_train": settings.subset or counts["train"], "n_validation": counts["validation"],
        "n_test": counts["test"], "epochs": epochs, "batch_size": args.batch_size, "lr": args.lr,
        "tile": settings.tile, "jobs": args.jobs, "device": args.device,
        "device_desc": _device_desc(args.device), "torch": torch.__version__,
        "elapsed_s": summary["elapsed_s"], "data_note": "Speech Commands layout, CC-BY-4.0 clips",
        "python": platform.python_version(),
    }
    if args.report_only and prev:
        # the numbers of the run that produced the results, not of this machine
        meta.update({k: prev[k] for k in ("command", "device", "device_desc", "torch", "jobs", "elapsed_s",
                                          "epochs", "batch_size", "lr", "python") if k in prev})
        meta["report_command"] = command_line()
    if not args.report_only:
        results.mkdir(parents=True, exist_ok=True)
        write_atomic(run_file, json.dumps({**meta, "ran": summary.get("ran", [])}, indent=1) + "\n")
    md, png = docs / "ABLATION.md", docs / "ablation.png"
    ablation.write_report(results, md, png, meta, bits, modes, seeds)
    print(f"wrote {md} and {png} ({summary['elapsed_s'] / 60:.1f} min)")
    return 0


def _device_desc(device: str) -> str:
    if device == "cuda":
        import torch

        return f"{torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} GPU)"
    return f"{platform.processor() or platform.machine()} CPU"


def main(argv: list[str] | None = None) -> int:
    """``python -m bnnkws.tools.commands.bench accuracy ...``: this action alone, for machines where
    the full CLI cannot start (it imports soundfile through other commands)."""
    from bnnkws.tools.cli import main as cli_main

    return cli_main(["bench", *(argv if argv is not None else sys.argv[1:])], ["bnnkws.tools.commands.bench"])


if __name__ == "__main__":
    sys.exit(main())
