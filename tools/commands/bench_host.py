"""`bnnkws bench host [MODEL]`: C library vs PyTorch on the CPU (tools/bench/host.py).

`bench` has several actions written in different modules; each adds its own through
:func:`bench_actions`, which creates the `bench` parser on first use and returns its
sub-parsers otherwise, so the modules can be listed in any order in cli.COMMAND_MODULES.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.export.loading import load_any


def bench_actions(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-parsers of `bench` (created here when no module has made it yet)."""
    parser = subparsers.choices.get("bench")
    if parser is None:
        parser = subparsers.add_parser(
            "bench",
            help="benchmarks",
            description="Benchmarks (not tests): numbers depend on the machine.",
        )
        sub = parser.add_subparsers(dest="bench_command", metavar="ACTION")
        sub.required = True
        return sub
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the bench parser has no sub-commands")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = bench_actions(subparsers).add_parser(
        "host",
        help="host inference time of the C library vs PyTorch (CPU), instructions, op counts",
        description="Time the generated C + kernels (host library) per 1 s window against the "
        "same network in PyTorch on the CPU, count instructions with valgrind, count binary ops.",
    )
    p.add_argument(
        "model",
        type=Path,
        nargs="?",
        default=None,
        help="checkpoint or blob; default: an untrained --preset network (same cost)",
    )
    p.add_argument(
        "--preset", default="structured", help="trainer preset without MODEL (default structured)"
    )
    p.add_argument(
        "--acc-bits", type=int, default=8, help="accumulator bits without MODEL (default 8)"
    )
    p.add_argument("--mode", default="wrap", choices=("wrap", "saturate"), help="without MODEL")
    p.add_argument(
        "--doc",
        type=Path,
        default=None,
        help="also write the report as markdown (e.g. docs/BENCH_HOST.md)",
    )
    p.set_defaults(func=_bench_host)


def _preset_model(preset: str, bits: int, mode: str):
    # torch: heavy, only for an untrained preset network
    import torch

    from bnnkws.generator.export.to_integer import to_integer_model
    from bnnkws.generator.training.model import BnnKws, bnn_config

    torch.manual_seed(0)
    tm = BnnKws(bnn_config(preset, n_classes=12, acc_bits=bits, acc_mode=mode))
    tm.eval()
    return tm, to_integer_model(tm)


def describe_model(name: str, meta: dict) -> str:
    """One line from the blob's META: preset, accumulators, numeric metrics."""
    parts = [name]
    if meta.get("preset"):
        parts.append(f"preset {meta['preset']}")
    if meta.get("acc_bits"):
        first = meta.get("first_acc_bits")
        parts.append(
            f"{meta['acc_bits']}-bit {meta.get('acc_mode', '')} accumulators"
            + (f" (first layer {first}-bit)" if first else "")
        )
    metrics = meta.get("metrics") or {}
    nums = [f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, int | float)]
    if nums:
        parts.append("metrics: " + ", ".join(nums))
    return "; ".join(parts)


def _bench_host(args: argparse.Namespace) -> int:
    # cffi bindings of the host library: loaded when the benchmark runs, not with the CLI
    from bnnkws.tools.bench.host import format_doc, format_report, run_bench

    if args.model is not None:
        loaded = load_any(args.model)
        model, tm = loaded.model, loaded.torch_model
        desc = describe_model(args.model.name, model.meta)
    else:
        tm, model = _preset_model(args.preset, args.acc_bits, args.mode)
        desc = f"untrained '{args.preset}' preset, {args.acc_bits}-bit {args.mode} accumulators"
    result = run_bench(model, tm, desc)
    print(format_report(result))
    if args.doc is not None:
        cmd = "bnnkws bench host" + (f" {args.model}" if args.model else f" --preset {args.preset}")
        write_atomic(args.doc, format_doc(result, cmd + f" --doc {args.doc}"))
        print(f"wrote {args.doc}")
    return 0
