"""Reading any audio soundfile reads as 16 kHz mono int16; writing 16 kHz mono int16 WAV.

The integer front-end takes 16 kHz mono int16 PCM (docs/FRONTEND.md, "Input
contract"). ``read_audio`` returns exactly that for any file soundfile (libsndfile)
reads, by one rule, ``convert``:

1. samples as float64 in [-1, 1) the way libsndfile scales them (integer PCM of b
   bits divided by 2^(b-1), exact; float files as stored);
2. mono = the mean of the channels;
3. a sample rate other than 16 kHz is resampled by ``scipy.signal.resample_poly``
   with up/down = 16000/rate reduced by their gcd (its default Kaiser-windowed
   low-pass, beta 5);
4. int16 = clip(round_half_even(x * 32768), -32768, 32767).

A 16 kHz mono 16-bit file is read as it is stored (the rule is the identity
there). Any other file is converted, and ``report`` receives one ``AudioNote``
saying what was converted; a file shorter than its header declares (a WAV data
chunk that claims more bytes than the file holds, or that ends mid-frame) is read
as far as it goes, with a note saying so. The default ``report`` prints each note
as one line on stderr; dataset loading passes its own and prints one summary.
"""

from __future__ import annotations

import io
import math
import os
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from bnnkws.generator.base.errors import AudioError
from bnnkws.generator.base.fileio import write_atomic

SAMPLE_RATE = 16000
NATIVE_SUBTYPE = "PCM_16"  # what the front-end takes as it is

# A WAV data-chunk size that streaming writers leave when the length is unknown.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class AudioNote:
    """Something ``read_audio`` did that the user should know about.

    ``kind`` is ``"converted"`` (``source`` says from what, e.g. ``48000 Hz stereo
    PCM_24``) or ``"truncated"`` (the file is shorter than its header declares).
    ``text`` is the whole one-line message, starting with the file name.
    """

    path: Path
    kind: str
    text: str
    source: str = ""


Report = Callable[[AudioNote], None]


def print_note(note: AudioNote) -> None:
    """The default report: ``notice: ...`` for a conversion, ``warning: ...`` for a truncated file."""
    level = "notice" if note.kind == "converted" else "warning"
    print(f"{level}: {note.text}", file=sys.stderr)


def describe(rate: int, channels: int, subtype: str) -> str:
    """``48000 Hz stereo PCM_24``: how a file's format is named in notices."""
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}-channel")
    return f"{rate} Hz {layout} {subtype}"


def convert(samples: np.ndarray, rate: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The conversion rule (module docstring, steps 2-4): float samples [n] or [n, channels]
    at ``rate`` Hz -> int16 mono at ``sample_rate`` Hz."""
    from scipy.signal import resample_poly

    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if rate != sample_rate:
        g = math.gcd(rate, sample_rate)
        x = resample_poly(x, sample_rate // g, rate // g)
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)


def read_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    report: Report | None = print_note,
) -> np.ndarray:
    """Read any audio file soundfile reads and return int16 mono samples at ``sample_rate``.

    Conversions and truncation go to ``report`` (None: silent); see the module
    docstring for the rule. Raises AudioError naming the file when it is missing,
    empty, not audio, corrupt (e.g. a cut-off FLAC) or holds no samples.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a folder, expected an audio file (WAV, FLAC, ...)")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: empty file, expected an audio file (WAV, FLAC, ...)")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{p}: not a readable audio file ({_one_line(exc)})") from None
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(f"{p}: header gives {info.samplerate} Hz, {info.channels} channels")
    native = (
        info.samplerate == sample_rate and info.channels == 1 and info.subtype == NATIVE_SUBTYPE
    )
    try:
        data, _ = sf.read(str(p), dtype="int16" if native else "float64", always_2d=not native)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(
            f"{p}: truncated or corrupt {info.format} file ({_one_line(exc)})"
        ) from None
    if data.shape[0] == 0:
        raise AudioError(f"{p}: contains no samples")
    note = _truncation(p, info, data.shape[0])
    if note is not None and report is not None:
        report(note)
    if native:
        return np.ascontiguousarray(data, dtype=np.int16)
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{p}: holds NaN or infinite samples")
    out = convert(data, info.samplerate, sample_rate)
    if report is not None:
        source = describe(info.samplerate, info.channels, info.subtype)
        report(
            AudioNote(
                p, "converted", f"{p}: {source} -> {sample_rate} Hz mono int16", source=source
            )
        )
    return out


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write int16 mono PCM as WAV atomically (temporary name in the same folder, then rename)."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples, dtype=np.int16), sample_rate, subtype="PCM_16", format="WAV")
    write_atomic(path, buf.getvalue())


# --- truncated files -------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def wav_data_chunk(path: Path) -> tuple[int, int, int] | None:
    """``(block_align, declared_bytes, bytes_after_header)`` of a RIFF/RIFX WAVE file's data chunk.

    Read from the chunks themselves (libsndfile silently shortens a data chunk that
    claims more than the file holds). None when the file is not RIFF WAVE or has no
    ``fmt `` chunk before its ``data`` chunk.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos, block_align = 12, 0
        while pos + 8 <= size:
            f.seek(pos)
            header = f.read(8)
            (n,) = struct.unpack(endian + "I", header[4:8])
            if header[:4] == b"fmt ":
                fmt = f.read(min(n, 16))
                if len(fmt) >= 14:
                    (block_align,) = struct.unpack(endian + "H", fmt[12:14])
            elif header[:4] == b"data":
                return (block_align, n, size - pos - 8) if block_align > 0 else None
            pos += 8 + n + (n & 1)
    return None


def _truncation(p: Path, info, frames_read: int) -> AudioNote | None:  # noqa: ANN001
    """A note when the file holds less than its header declares, else None."""
    chunk = wav_data_chunk(p)
    if chunk is None:
        if info.frames > frames_read:  # other containers: soundfile's count is the header's
            return AudioNote(
                p,
                "truncated",
                f"{p}: truncated {info.format} file: header declares {info.frames} frames, "
                f"file holds {frames_read}; reading the {frames_read} frames present",
            )
        return None
    block, declared, available = chunk
    if declared in _UNKNOWN_SIZES:
        return None
    present = min(declared, available)
    whole, partial = divmod(present, block)
    if available < declared:
        cut = f" and {partial} byte(s) of a cut-off frame" if partial else ""
        text = (
            f"{p}: truncated WAV: data chunk declares {declared // block} frames, "
            f"file holds {whole}{cut}; reading the {frames_read} frames present"
        )
    elif declared % block:
        text = (
            f"{p}: WAV data chunk of {declared} bytes ends mid-frame ({block}-byte frames); "
            f"reading the {frames_read} whole frames"
        )
    else:
        return None
    return AudioNote(p, "truncated", text)
