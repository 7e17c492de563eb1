"""`bnnkws bench mcu [MODEL]`: instructions, flash, RAM and real-time margin on the
emulated cores (tools/bench/mcu.py): the model on every core (--cores), and the N sweep
(N in {8, 16, 32}) on the Cortex-M4."""

from __future__ import annotations

import argparse
from pathlib import Path

from bnnkws.generator.base.errors import BuildError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.base.paths import shipped_model
from bnnkws.generator.export.loading import load_any
from bnnkws.tools.bench.mcu import McuCase, format_doc, format_report, measure, preset_model
from bnnkws.tools.commands.bench_host import bench_actions
from bnnkws.tools.device.firmware import BOARDS, DEFAULT_BOARD, default_build_root


def register(subparsers: argparse._SubParsersAction) -> None:
    p = bench_actions(subparsers).add_parser(
        "mcu",
        help="instructions per inference/layer/hop, always-on load, flash, RAM per emulated core",
        description="Build the firmware, run it on QEMU (mps2-an386 and every other core of "
        "--cores) with -icount shift=0 and read the timer figures it reports: instructions per "
        "inference and per layer, per front-end hop, the always-on load and the serial ingest "
        "per second of audio, flash and RAM from the linker map; one column per core.",
    )
    p.add_argument(
        "model",
        type=Path,
        nargs="?",
        default=None,
        help="blob or checkpoint (default: the shipped default model, when there is one)",
    )
    p.add_argument(
        "--preset", default="structured", help="trainer preset of the N sweep (default structured)"
    )
    p.add_argument(
        "--bits",
        type=int,
        nargs="*",
        default=[8, 16, 32],
        metavar="N",
        help="accumulator widths of the sweep (default 8 16 32; none to skip)",
    )
    p.add_argument(
        "--mode",
        default="both",
        choices=("wrap", "saturate", "both"),
        help="accumulator mode(s) of the sweep (default both)",
    )
    p.add_argument(
        "--cores",
        nargs="*",
        default=None,
        metavar="TARGET",
        help="cores to run the first model on, one column each (default: every board target: "
        "mps2-an386 first; none: the Cortex-M4 only)",
    )
    p.add_argument(
        "--m3",
        action="store_true",
        help="add mps2-an385 (Cortex-M3) to --cores (which has it by default)",
    )
    p.add_argument(
        "--strides",
        type=int,
        nargs="*",
        default=[4],
        metavar="K",
        help="more inference strides (hops) to run the first model at on the Cortex-M4, besides "
        "the firmware's 5 (default 4: the network's own time step, where streaming computes "
        "each layer step once; none to skip)",
    )
    p.add_argument(
        "--size",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the first model with the kernels built for size (-Os, `bnnkws build "
        "--opt size`) on the Cortex-M4: the flash-for-instructions trade (default on)",
    )
    p.add_argument(
        "--doc", type=Path, default=None, help="write the report as markdown (docs/BENCH_MCU.md)"
    )
    p.set_defaults(func=_bench_mcu)


def default_model() -> Path | None:
    return shipped_model()


def _bench_mcu(args: argparse.Namespace) -> int:
    cases = []
    path = args.model or default_model()
    if path is not None:
        loaded = load_any(path)
        cases.append(
            McuCase("model" if args.model else "default", f"{Path(path).name}", loaded.model)
        )
    modes = ("wrap", "saturate") if args.mode == "both" else (args.mode,)
    for mode in modes:
        for n in args.bits:
            cases.append(
                McuCase(
                    f"{args.preset}-N{n}-{mode}",
                    f"untrained '{args.preset}' preset, {n}-bit {mode} hidden accumulators",
                    preset_model(args.preset, n, mode),
                )
            )
    if not cases:
        print("bench mcu: nothing to measure (no model, no --bits)")
        return 0
    cores = list(BOARDS) if args.cores is None else list(args.cores)
    if args.m3 and "mps2-an385" not in cores:
        cores.append("mps2-an385")
    for t in cores:
        if t not in BOARDS:
            raise BuildError(f"--cores: unknown target {t!r}: expected some of {', '.join(BOARDS)}")
    first = cases[0]
    extra = [t for t in dict.fromkeys(cores) if t != DEFAULT_BOARD]
    for i, t in enumerate(extra):
        cases.insert(1 + i, McuCase(f"{first.name}-{t}", first.description, first.model, t))
    for j, k in enumerate(k for k in dict.fromkeys(args.strides) if k != first.stride):
        if not 1 <= k <= 0xFFFF:
            raise BuildError(f"--strides: {k} hops, expected 1..65535")
        cases.insert(
            1 + len(extra) + j,
            McuCase(f"{first.name}-stride{k}", first.description, first.model, DEFAULT_BOARD, k),
        )
    if args.size:
        at = 1 + len(extra) + len([k for k in dict.fromkeys(args.strides) if k != first.stride])
        cases.insert(
            at,
            McuCase(f"{first.name}-Os", first.description, first.model, DEFAULT_BOARD, opt="size"),
        )
    root = default_build_root() / "bench-mcu"
    results = []
    for case in cases:
        print(f"bench mcu: {case.name} on {case.target} ...", flush=True)
        results.append(measure(case, root))
    print(format_report(results))
    if args.doc is not None:
        cmd = "bnnkws bench mcu" + (f" {args.model}" if args.model else "")
        cmd += (
            " ".join([" --bits", *map(str, args.bits)])
            + f" --mode {args.mode}"
            + (f" --cores {' '.join(args.cores)}" if args.cores is not None else "")
            + (" --m3" if args.m3 else "")
            + " ".join([" --strides", *map(str, args.strides)])
            + ("" if args.size else " --no-size")
            + f" --doc {args.doc}"
        )
        write_atomic(args.doc, format_doc(results, cmd))
        print(f"wrote {args.doc}")
    return 0
