"""`bnnkws features`: compute int8 log-mel features with one of the three implementations."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.data.audio_io import read_audio

IMPLEMENTATIONS = ("numpy", "c", "micropython")


def compute(audio: np.ndarray, impl: str, params=None) -> np.ndarray:
    """Features [n_frames, n_mels] of int16 audio with the named implementation."""
    from bnnkws.generator import frontend

    p = params or frontend.default_params()
    if impl == "numpy":
        return frontend.features(audio, p)
    if impl == "c":
        from bnnkws.tools.host.hostlib import CFrontend

        return CFrontend(p).features(audio)
    if impl == "micropython":
        from bnnkws.tools.host import micropython_runner

        return micropython_runner.features(p, audio)
    raise BnnkwsError(f"--impl {impl!r}: expected one of {', '.join(IMPLEMENTATIONS)}")


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """np.save to a temporary name in the target folder, then rename."""
    buf = io.BytesIO()
    np.save(buf, array)
    write_atomic(path, buf.getvalue())


def run(args: argparse.Namespace) -> int:
    audio = read_audio(args.audio)
    feats = compute(audio, args.impl)
    if args.out:
        save_npy_atomic(Path(args.out), feats)
    print(
        f"{args.audio}: {audio.size} samples ({audio.size / 16000:.2f} s) -> "
        f"{feats.shape[0]} frames x {feats.shape[1]} bands int8 [{args.impl}], "
        f"min {int(feats.min()) if feats.size else 0}, max {int(feats.max()) if feats.size else 0}, "
        f"mean {float(feats.mean()) if feats.size else 0.0:.1f}"
        + (f" -> {args.out}" if args.out else "")
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "features",
        help="int8 log-mel features of an audio clip (numpy, C or MicroPython)",
        description="Compute the integer front-end's features (docs/FRONTEND.md) of AUDIO.",
    )
    p.add_argument(
        "audio",
        help="audio file (WAV, FLAC, ...; other rates and channel counts are converted to "
        "16 kHz mono int16, docs/FRONTEND.md)",
    )
    p.add_argument(
        "--impl",
        choices=IMPLEMENTATIONS,
        default="numpy",
        help="implementation: numpy (vectorized), c (host library via cffi), "
        "micropython (reference/ under the micropython binary)",
    )
    p.add_argument("--out", help="write the features as int8 .npy [frames, bands]")
    p.set_defaults(func=run)
