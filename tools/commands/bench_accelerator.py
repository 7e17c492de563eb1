"""`bnnkws bench accelerator`: our BNN against the baselines on the modelled accelerator
(tools/bench/accelerator.py), with the ablation's accuracies and Cortex-M4 instructions;
writes ACCELERATOR.md and accelerator.png."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.tools.commands.bench_host import bench_actions

DEFAULT_RESULTS = Path("runs/ablation")  # where `bench accuracy` writes its results


def register(subparsers: argparse._SubParsersAction) -> None:
    p = bench_actions(subparsers).add_parser(
        "accelerator",
        help="on-chip computation, cycles, memory vs baselines on the modelled BNN accelerator",
        description="Cost our BNN (structured, collaborative training, N-bit accumulators), the "
        "BNN baselines (32-bit with standard BN or thresholds, per-layer minimal safe widths) and "
        "ten KWS methods from the literature (int8) on the accelerator model (area, clock, "
        "latency, bit-operations), with test accuracy from saved training results and Cortex-M4 "
        "instructions from the firmware; write ACCELERATOR.md and accelerator.png.",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help=f"ablation results folder (<job>.json, checkpoints/); default {DEFAULT_RESULTS}, "
        f"quick: {DEFAULT_RESULTS}-quick",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="Speech Commands folder: train the missing jobs (without it: report what is there)",
    )
    p.add_argument(
        "--keywords",
        nargs="+",
        default=["yes", "no", "up", "down", "left", "right", "stop", "go"],
        metavar="WORD",
    )
    p.add_argument("--cache", type=Path, default=None, help="feature cache folder")
    p.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="folder for ACCELERATOR.md and accelerator.png (default docs/; quick: the results folder)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: missing jobs trained 2 epochs on 600 clips, N in {8}, wrap only",
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs of missing trainings (default 40; quick 2)"
    )
    p.add_argument(
        "--bits", type=int, nargs="+", default=None, help="N of our rows (default 6 8 10 12 16)"
    )
    p.add_argument(
        "--modes",
        nargs="+",
        choices=("wrap", "saturate"),
        default=None,
        help="accumulator modes of our rows (default wrap saturate; quick wrap)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--jobs", type=int, default=1, help="trainings in parallel (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training (default 1)")
    p.add_argument("--no-mcu", action="store_true", help="skip the Cortex-M4 measurements (QEMU)")
    g = p.add_argument_group("accelerator (tools/bench/accelerator_model.py AcceleratorConfig)")
    g.add_argument("--pe-rows", type=int, default=None, help="PEs / MAC units (default 16)")
    g.add_argument(
        "--lane", type=int, default=None, help="fan-in elements per PE per cycle (default 32)"
    )
    g.add_argument(
        "--mem-width", type=int, default=None, help="bits per memory access (default 64)"
    )
    g.add_argument(
        "--mult-cycles", type=int, default=None, help="cycles of the BN multiplier (default 4)"
    )
    g.add_argument(
        "--clock-mhz", type=float, default=None, help="clock for latencies (default 100)"
    )
    p.set_defaults(func=run_accelerator)


def run_accelerator(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from bnnkws.generator.base.paths import shipped_model
    from bnnkws.generator.training import ablation
    from bnnkws.tools.bench import accelerator as ba
    from bnnkws.tools.bench import accelerator_report as rep
    from bnnkws.tools.bench.accelerator_model import AcceleratorConfig
    from bnnkws.tools.cli import command_line

    quick = args.quick
    bits = tuple(args.bits or ((ba.HEADLINE_BITS,) if quick else ba.BITS))
    for b in bits:
        if not 4 <= b <= 32:
            raise BnnkwsError(f"--bits {b}: accumulator widths lie in 4..32")
    modes = tuple(args.modes or (("wrap",) if quick else ("wrap", "saturate")))
    results = args.results or (Path(f"{DEFAULT_RESULTS}-quick") if quick else DEFAULT_RESULTS)
    docs = args.docs or (results if quick else Path("docs"))
    over = {
        k: getattr(args, k)
        for k in ("pe_rows", "lane", "mem_width", "mult_cycles", "clock_mhz")
        if getattr(args, k) is not None
    }
    try:
        cfg = replace(AcceleratorConfig(), **over)
    except ValueError as exc:
        raise BnnkwsError(f"accelerator parameters: {exc}") from None
    jobs, cells = ba.needed_jobs(bits, modes)
    missing = [j for j in jobs if not (results / f"{j.name}.json").is_file()]
    if missing and args.data is not None:
        _train(args, jobs, results, quick)
    res = ablation.load_results(results) if results.is_dir() else {}
    missing_names = [j.name for j in jobs if j.name not in res]
    if missing_names:
        print(
            f"bench accelerator: no results for {len(missing_names)} job(s) in {results}"
            + ("" if args.data else " (give --data to train them)")
        )
    # silence, unknown and the keywords (of the results when there are any)
    keywords = next(
        (r["settings"]["data"]["keywords"] for r in res.values() if "settings" in r), args.keywords
    )
    entries = ba.build_entries(res, cells, cfg, bits, modes, results, n_classes=len(keywords) + 2)
    shipped = shipped_model()
    if shipped is not None:
        entries.insert(4, ba.file_entry(shipped, cfg))
    mcu_note = "Not measured (`--no-mcu`)."
    if not args.no_mcu:
        keys = ["base", "struct32", "default"] + [
            f"ours-N{ba.headline_bits(entries, m, entries[0].accuracy)}{m[0]}" for m in modes
        ]
        from bnnkws.tools.device.firmware import default_build_root

        mcu_note = ba.measure_mcu(entries, keys, default_build_root() / "bench-accelerator")
        if mcu_note:
            print(f"bench accelerator: {mcu_note}")
    cmd = command_line() if "accelerator" in sys.argv else "bnnkws bench accelerator"
    report = ba.Report(
        entries,
        cfg,
        modes,
        cmd,
        quick,
        str(results),
        ba.training_note(res, [j.name for j in jobs]),
        missing_names,
        mcu_note,
        n_test=ba.count_test_clips(res),
    )
    ours = report.headline(modes[0])
    others = [e for e in entries if e.key in ("base", "base-thr", "safe") or e.family == "int8"]
    report.sensitivity = ba.sensitivity(ours, others, cfg, n_classes=len(keywords) + 2)
    docs.mkdir(parents=True, exist_ok=True)
    md, png = docs / "ACCELERATOR.md", docs / "accelerator.png"
    write_atomic(md, rep.format_doc(report))
    rep.plot(report, png)
    for m in modes:
        e = report.headline(m)
        vs = [report.versus(e, x.key) for x in report.methods]
        held = sum(1 for v in vs if v.meets["area"] and v.meets["bitops"] and v.meets["speed"])
        base = report.versus(e, "base")
        print(
            f"ours N={e.bits} {m}: against the 32-bit standard-BN BNN {100 * base.area:.1f}% less area, "
            f"{100 * base.bitops:.1f}% fewer bit-ops, {100 * base.speed:+.1f}% speed; computation and "
            f"speed claims hold against {held} of {len(vs)} methods; accuracy {rep._pct(e.accuracy)}"
        )
    print(f"wrote {md} and {png}")
    return 0


def _train(args: argparse.Namespace, jobs: list, results: Path, quick: bool) -> None:
    """Train the missing jobs with the settings `bench accuracy` uses (same names, same files)."""
    from bnnkws.generator.training import ablation
    from bnnkws.generator.training.train import DataSpec, load_noise, load_split

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BnnkwsError("--device cuda: CUDA is not available here")
    spec = DataSpec(str(args.data), list(args.keywords))
    counts = {}
    for split in ("train", "validation", "test"):  # features once, before any worker starts
        _, y = load_split(spec, split, cache_dir=args.cache)
        counts[split] = len(y)
    if min(counts.values()) == 0:
        raise BnnkwsError(f"{args.data}: a split is empty (train/validation/test: {counts})")
    load_noise(spec, cache_dir=args.cache)
    settings = ablation.Settings(
        data={
            "root": spec.root,
            "keywords": spec.keywords,
            "silence_fraction": spec.silence_fraction,
            "unknown_fraction": spec.unknown_fraction,
            "seed": spec.seed,
        },
        cache=str(args.cache) if args.cache else None,
        epochs=args.epochs or (2 if quick else 40),
        device=args.device,
        threads=args.threads,
        subset=600 if quick else None,
    )
    print(f"bench accelerator: training the missing jobs into {results}")
    ablation.run_all(jobs, settings, results, args.jobs)
