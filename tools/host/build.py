"""One build runner for the C in firmware/: every build goes through SConstruct here.

* :func:`host_library`: the host shared library (``build/host/libbnnkws.so``), optionally
  with a generated model (its own variant folder, :func:`model_variant_dir`), with
  operation counters (``count_ops``, ``build/host-count/``) or with the popcount
  instruction (``popcount="builtin"``, ``build/host-builtin/``);
* :func:`host_program`: an executable of the kernels, optionally a generated model, and a
  ``main`` (the host benchmark's driver, the header layout test), with the library's flags;
* :func:`board_firmware`: a firmware image for a board target (firmware/SConscript.board).

Compiler flags live in SConstruct (host) and firmware/SConscript.board (boards) only.
Builds are incremental (SCons signatures), so callers may ask for a build every time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bnnkws.generator.base.errors import BuildError
from bnnkws.generator.base.paths import build_dir, project_root

POPCOUNT = ("swar", "builtin")  # firmware/popcount.h: portable SWAR or the instruction


def run_scons(
    args: list[str],
    build_root: Path | None = None,
    env: dict[str, str] | None = None,
    quiet: bool = True,
) -> None:
    """SCons (from the venv) in the checkout root; BuildError with its output's tail on failure."""
    root = Path(build_root) if build_root is not None else build_dir()
    cmd = [sys.executable, "-m", "SCons", "-Q", f"build_dir={root}", *args]
    proc = subprocess.run(
        cmd,
        cwd=project_root(),
        capture_output=quiet,
        text=True,
        env={**os.environ, **env} if env else None,
    )
    if proc.returncode != 0:
        tail = ((proc.stdout or "")[-1500:] + (proc.stderr or "")[-2500:]).strip()
        raise BuildError(f"scons {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")


def _flavour_args(count_ops: bool, popcount: str) -> tuple[list[str], str]:
    """SCons arguments and object-folder name of a host flavour (SConstruct's `host`)."""
    if popcount not in POPCOUNT:
        raise BuildError(f"popcount {popcount!r}: expected one of {', '.join(POPCOUNT)}")
    args = ["target=host"]
    name = "host"
    if count_ops:
        args.append("count_ops=1")
        name += "-count"
    if popcount == "builtin":
        args.append("popcount=builtin")
        name += "-builtin"
    return args, name


def model_variant_dir(model_dir: str | os.PathLike) -> Path:
    """Build folder of the host library of one generated model."""
    return build_dir() / "host-models" / Path(model_dir).resolve().name


def _model_arg(model_dir: str | os.PathLike) -> str:
    path = Path(model_dir).resolve()
    if not (path / "model.c").exists():
        raise BuildError(f"{model_dir}: no model.c (generate it with bnnkws build or emit_c)")
    return f"model={path}"


def host_library(
    model_dir: str | os.PathLike | None = None, count_ops: bool = False, popcount: str = "swar"
) -> Path:
    """Build the host shared library; returns its path.

    Without a model: the kernels only, in ``build/<flavour>/``; with one: kernels + the
    generated model in :func:`model_variant_dir` (default flavour only).
    """
    args, flavour = _flavour_args(count_ops, popcount)
    variant = build_dir() / flavour
    if model_dir is not None:
        if count_ops or popcount != "swar":
            raise BuildError("a model's host library is built with the default kernels only")
        variant = model_variant_dir(model_dir)
        args += [_model_arg(model_dir), f"variant={variant}"]
    run_scons(args)
    lib = variant / "libbnnkws.so"
    if not lib.exists():
        raise BuildError(f"{lib}: SCons finished but the library is missing")
    return lib


def host_program(
    main_c: Path, model_dir: Path | None, out_dir: Path, name: str, popcount: str = "swar"
) -> Path:
    """Build the executable ``out_dir/name`` from the kernels, the generated model in
    `model_dir` (when given; `main_c` may then include model.h) and `main_c`; returns its
    path. The flags are the host library's."""
    args, _ = _flavour_args(False, popcount)
    if model_dir is not None:
        args.append(_model_arg(model_dir))
    args += [f"program={Path(main_c).resolve()}", f"name={name}"]
    args.append(f"variant={Path(out_dir).resolve()}")
    run_scons(args)
    exe = Path(out_dir) / name
    if not exe.exists():
        raise BuildError(f"{exe}: SCons finished but the program is missing")
    return exe


def board_firmware(
    model_dir: str | os.PathLike,
    target: str,
    build_root: Path | None = None,
    defines: dict[str, str] | None = None,
    opt: str = "speed",
) -> Path:
    """Build the firmware of board `target` with the generated model in `model_dir`
    (extra preprocessor `defines` NAME=VALUE; opt "speed": kernels at -O2, "size": at -Os);
    returns its folder ``<build root>/<target>`` (firmware.elf, .bin, .map and .size.json,
    firmware/SConscript.board)."""
    if opt not in ("speed", "size"):
        raise BuildError(f"opt {opt!r}: expected speed or size")
    root = Path(build_root) if build_root is not None else build_dir()
    env = None
    if defines:
        env = {"BK_FIRMWARE_DEFINES": " ".join(f"{k}={v}" for k, v in defines.items())}
    run_scons([f"target={target}", _model_arg(model_dir), f"opt={opt}"], build_root=root, env=env)
    return root / target
