"""`bnnkws verify CKPT [--inputs N]`: torch, C and MicroPython against the integer model
(bnnkws.tools.host.verify does the work)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.generator.export.loading import load_any
from bnnkws.tools.host.verify import (
    VerifyResult,
    find_clips,
    load_clips,
    parse_bits,
    verify_model,
    with_accumulator,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="check torch, C and MicroPython against the integer model, bit for bit, per layer",
        description="Run the torch integer forward, the generated C library and the "
        "MicroPython reference on the same inputs and compare every layer bit for bit. "
        "Exit code 1 on the first difference.",
    )
    p.add_argument("model", type=Path, help="checkpoint (or an exported .bkim blob: no torch)")
    p.add_argument("--inputs", type=int, default=8, help="random feature windows (default 8)")
    p.add_argument("--data", type=Path, default=None, help="Speech Commands folder for real clips")
    p.add_argument("--clips", type=int, default=2, help="clips taken from --data (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--acc-bits",
        default=None,
        metavar="LIST",
        help="re-verify with each accumulator width, e.g. 4-32 or 6,8,16",
    )
    p.add_argument(
        "--modes",
        default=None,
        metavar="LIST",
        help="with --acc-bits: modes to try (default wrap,saturate)",
    )
    p.add_argument("--no-micropython", action="store_true", help="skip the MicroPython reference")
    p.set_defaults(func=_verify)


def _report(res: VerifyResult, title: str) -> int:
    if res.ok:
        print(f"{title}: PASS: all implementations agree bit for bit on every layer")
        return 0
    print(f"{title}: FAIL: {res.first.message()}")
    return 1


def _verify(args: argparse.Namespace) -> int:
    loaded = load_any(args.model)
    clips: list[np.ndarray] = []
    if args.data is not None and args.clips > 0:
        clips = load_clips(find_clips(args.data, args.clips), loaded.model)
    src = "checkpoint" if loaded.torch_model is not None else "blob (no torch model)"
    print(
        f"{args.model}: {src}, model {loaded.hash[:16]}, {len(loaded.blob)} byte blob; "
        f"{args.inputs} random inputs + {len(clips)} clips"
    )
    if args.acc_bits is None:
        res = verify_model(
            loaded, args.inputs, clips, args.seed, not args.no_micropython, log=print
        )
        print(res.table())
        return _report(res, "verify")
    modes = (args.modes or "wrap,saturate").split(",")
    for m in modes:
        if m not in ("wrap", "saturate"):
            raise BnnkwsError(f"--modes: {m!r}, expected wrap or saturate")
    for bits in parse_bits(args.acc_bits):
        for mode in modes:
            variant = with_accumulator(loaded, bits, mode)
            res = verify_model(variant, args.inputs, clips, args.seed, not args.no_micropython)
            if _report(res, f"N={bits:2d} {mode:8s} (model {variant.hash[:12]})"):
                print(res.table())
                return 1
    return 0
