"""Reading and writing 16 kHz mono int16 audio (WAV or FLAC) through soundfile."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from bnnkws.generator.base.errors import AudioError
from bnnkws.generator.base.fileio import write_atomic

SAMPLE_RATE = 16000


def read_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a mono PCM file and return int16 samples.

    Raises AudioError naming the file when it is missing, empty, truncated, not
    audio, not `sample_rate` Hz or not mono. Float files are converted by
    soundfile's int16 conversion (round to nearest, clipped).
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a folder, expected a 16 kHz mono WAV or FLAC file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: empty file, expected a 16 kHz mono WAV or FLAC file")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{p}: not a readable audio file ({exc})") from None
    if info.samplerate != sample_rate:
        raise AudioError(f"{p}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz")
    if info.channels != 1:
        raise AudioError(f"{p}: {info.channels} channels, expected mono")
    try:
        data, _ = sf.read(str(p), dtype="int16", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{p}: truncated or corrupt audio ({exc})") from None
    if data.size == 0:
        raise AudioError(f"{p}: contains no samples")
    return np.ascontiguousarray(data, dtype=np.int16)


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write int16 mono PCM as WAV atomically (temporary name in the same folder, then rename)."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples, dtype=np.int16), sample_rate, subtype="PCM_16", format="WAV")
    write_atomic(path, buf.getvalue())
