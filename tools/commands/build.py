"""`bnnkws build --target TARGET [--model PATH]`: generated C + hand-written kernels, built
by tools/host/build.py (SCons).

The model (a blob or a checkpoint) is turned into C by generator/codegen/emit_c.py in
``build/models/<hash16>/``; SCons then builds the target:

* ``host``: a shared library of every firmware/*.c kernel plus the model,
  ``build/host-models/<hash16>/libbnnkws.so`` (``build/host/libbnnkws.so`` without a
  model), loaded from Python by :class:`bnnkws.tools.host.hostlib.CNet`.
* board targets (every entry of bnnkws.tools.device.firmware.BOARDS: ``mps2-an386``,
  ``mps2-an385``, ``mps2-an500``, ``mps2-an505``, ``mps3-an547``, ``netduinoplus2``,
  ``microbit``): ``scons target=<name> model=DIR``, which SConstruct hands to
  firmware/SConscript.board; its outputs land in ``build/<name>/``. A model too large for
  the part's flash or RAM is refused in one line.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bnnkws.generator.base.errors import BuildError
from bnnkws.generator.codegen.emit_c import emit_c
from bnnkws.generator.export.loading import load_any
from bnnkws.tools.device.firmware import BOARDS, build_firmware
from bnnkws.tools.host import build


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    build: Callable[..., list[Path]]  # (model folder, opt, streaming) -> artifacts


def build_host(model_dir: Path | None, opt: str = "speed", streaming: bool = True) -> list[Path]:
    if not streaming:
        raise BuildError("--no-streaming is for board targets (the host library has both paths)")
    if opt != "speed":
        raise BuildError("--opt size is for board targets (the host library is built for speed)")
    return [build.host_library(model_dir)]


def board_builder(name: str) -> Callable[..., list[Path]]:
    def build_board(model_dir: Path | None, opt: str = "speed", streaming: bool = True) -> list[Path]:
        if model_dir is None:
            raise BuildError(f"--target {name} needs --model (firmware embeds a model)")
        defines = None if streaming else {"BK_APP_STREAMING": "0"}
        # one line for a model too large for the part
        fw = build_firmware(model_dir, name, defines=defines, opt=opt)
        out = fw.elf.parent
        found = sorted(
            p for p in out.glob("firmware*") if p.suffix in (".elf", ".bin", ".hex", ".map")
        )
        if not found:
            raise BuildError(f"scons target={name} produced nothing in {out}")
        print(fw.size_line())
        return found

    return build_board


def _targets() -> dict[str, Target]:
    targets = {"host": Target("host", "host shared library (cffi)", build_host)}
    for name, core in BOARDS.items():
        targets[name] = Target(name, f"{core} firmware for QEMU {name}", board_builder(name))
    return targets


TARGETS: dict[str, Target] = _targets()


def generate_model_c(model_path: Path) -> tuple[Path, object]:
    """Blob or checkpoint -> generated C folder; returns (folder, LoadedModel)."""
    loaded = load_any(model_path)
    return emit_c(loaded.model), loaded


def _object_sizes(obj: Path) -> str:
    """text/data/bss of an object file via binutils `size`, or '' when unavailable."""
    try:
        out = subprocess.run(["size", str(obj)], capture_output=True, text=True, check=True).stdout
        text, data, bss = out.splitlines()[1].split()[:3]
        return f"text {text} B, data {data} B, bss {bss} B"
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        return ""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "build",
        help="generate C for a model and build it with SCons (host library or firmware)",
        description="Generate C from an integer model (blob or checkpoint) into "
        "build/models/<hash>/ and build TARGET with SCons.",
    )
    p.add_argument(
        "--target",
        default="host",
        metavar="TARGET",
        help=f"what to build (default host): {', '.join(TARGETS)}",
    )
    p.add_argument("--model", type=Path, default=None, help="blob (.bkim) or checkpoint")
    p.add_argument(
        "--opt",
        choices=("speed", "size"),
        default="speed",
        help="board targets: kernels and front-end at -O2 (speed, default) or -Os (size: less "
        "flash, more instructions; docs/BENCH_MCU.md measures the trade)",
    )
    p.add_argument(
        "--no-streaming",
        action="store_true",
        help="board targets: recompute the whole window every inference instead of keeping each "
        "layer's past outputs (BK_APP_STREAMING=0: less RAM, about 3x the instructions; the same "
        "scores)",
    )
    p.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    if args.target not in TARGETS:
        raise BuildError(
            f"unknown target {args.target!r}: expected one of {', '.join(TARGETS)} (a new "
            "board needs an entry in firmware/board/board_cfg.h and firmware/SConscript.board)"
        )
    target = TARGETS[args.target]
    model_dir = None
    if args.model is not None:
        model_dir, loaded = generate_model_c(args.model)
        print(
            f"{args.model}: model {loaded.hash[:16]} ({len(loaded.blob)} byte blob) -> C in {model_dir}"
        )
    artifacts = target.build(model_dir, args.opt, not args.no_streaming)
    for a in artifacts:
        extra = ""
        if model_dir is not None and args.target == "host":
            objs = list(a.parent.glob("model/*.os"))
            sizes = _object_sizes(objs[0]) if objs else ""
            extra = f"; model object: {sizes}" if sizes else ""
        print(f"built {target.description}: {a} ({a.stat().st_size} bytes{extra})")
    return 0
