"""The integer audio front-end: parameter tables and the numpy implementation.

The specification (steps 1-7, Q formats, rounding, ranges, the BKFE section) is
docs/FRONTEND.md; the step numbers in the comments below refer to it. This numpy code
is the reference that ``firmware/frontend.c`` and ``reference/frontend.py`` must equal
bit for bit. Floats enter only in :func:`make_params`, which rounds the design (Hann
window, twiddles, mel triangles) to the integer tables every implementation consumes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from bnnkws.generator.base.errors import FormatError

FE_MAGIC = b"BKFE"
FE_VERSION = 1
FE_HEADER = struct.Struct("<4sHIHHHBBi")  # magic, version, rate, frame_len, hop, n_mels, F, S, offset


@dataclass(frozen=True)
class FrontendConfig:
    """Front-end shape and the float design choices that the integer tables are made from."""

    sample_rate: int = 16000  # Hz
    frame_len: int = 512  # samples, also the FFT size (power of two, 16..1024)
    hop: int = 320  # samples
    n_mels: int = 40
    fmin: float = 60.0  # Hz, lower edge of the first mel triangle
    fmax: float = 7600.0  # Hz, upper edge of the last mel triangle
    log_frac_bits: int = 6  # F: fractional bits of the integer log2
    out_shift: int = 3  # S: log2 Q.F >> S gives the int8 feature
    out_offset: int = 1512  # Q.F log2 value that maps to feature 0

    def n_frames(self, n_samples: int) -> int:
        """Frames produced by `n_samples` samples in the batch form."""
        if n_samples < self.frame_len:
            return 0
        return 1 + (n_samples - self.frame_len) // self.hop


@dataclass(frozen=True)
class FrontendParams:
    """Everything the integer front-end needs: shape and integer tables (the deployable form)."""

    sample_rate: int
    frame_len: int
    hop: int
    n_mels: int
    log_frac_bits: int
    out_shift: int
    out_offset: int
    window: np.ndarray  # uint16[frame_len], Q15
    cos_q15: np.ndarray  # int16[frame_len // 2]
    sin_q15: np.ndarray  # int16[frame_len // 2]
    mel_start: np.ndarray  # uint16[n_mels], first FFT bin of each band
    mel_len: np.ndarray  # uint16[n_mels], bins in each band
    mel_weights: np.ndarray  # uint16[sum(mel_len)], Q12
    _mel_matrix: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def n_frames(self, n_samples: int) -> int:
        if n_samples < self.frame_len:
            return 0
        return 1 + (n_samples - self.frame_len) // self.hop

    @property
    def mel_matrix(self) -> np.ndarray:
        """Dense int64 [frame_len // 2 + 1, n_mels] form of the sparse Q12 filterbank."""
        if self._mel_matrix is None:
            m = np.zeros((self.frame_len // 2 + 1, self.n_mels), dtype=np.int64)
            pos = 0
            for b in range(self.n_mels):
                s, n = int(self.mel_start[b]), int(self.mel_len[b])
                m[s : s + n, b] = self.mel_weights[pos : pos + n]
                pos += n
            object.__setattr__(self, "_mel_matrix", m)
        return self._mel_matrix

    # -- serialisation: the front-end section of the integer model ---------------------
    def to_bytes(self) -> bytes:
        """Little-endian section: header, tables, CRC32 of everything before it."""
        head = FE_HEADER.pack(
            FE_MAGIC,
            FE_VERSION,
            self.sample_rate,
            self.frame_len,
            self.hop,
            self.n_mels,
            self.log_frac_bits,
            self.out_shift,
            self.out_offset,
        )
        body = b"".join(
            a.astype(dt).tobytes()
            for a, dt in (
                (self.window, "<u2"),
                (self.cos_q15, "<i2"),
                (self.sin_q15, "<i2"),
                (self.mel_start, "<u2"),
                (self.mel_len, "<u2"),
                (self.mel_weights, "<u2"),
            )
        )
        data = head + body
        return data + struct.pack("<I", zlib.crc32(data))

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "front-end section") -> FrontendParams:
        """Parse and validate a section written by :meth:`to_bytes`."""
        if len(data) < FE_HEADER.size + 4:
            raise FormatError(f"{where}: {len(data)} bytes, too short for a front-end header")
        magic, version, rate, flen, hop, nmel, fbits, oshift, ooff = FE_HEADER.unpack_from(data)
        if magic != FE_MAGIC:
            raise FormatError(f"{where}: magic {magic!r}, expected {FE_MAGIC!r}")
        if version != FE_VERSION:
            raise FormatError(f"{where}: version {version}, expected {FE_VERSION}")
        if flen < 16 or flen > 1024 or flen & (flen - 1):
            raise FormatError(f"{where}: frame_len {flen} is not a power of two in 16..1024")
        half = flen // 2
        fixed = FE_HEADER.size + 2 * (flen + 2 * half + 2 * nmel)
        if len(data) < fixed + 4:
            raise FormatError(f"{where}: truncated ({len(data)} bytes, expected at least {fixed + 4})")
        off = FE_HEADER.size

        def take(n: int, dt: str) -> np.ndarray:
            nonlocal off
            a = np.frombuffer(data, dtype=dt, count=n, offset=off).copy()
            off += n * 2
            return a

        window = take(flen, "<u2")
        cos_q15 = take(half, "<i2")
        sin_q15 = take(half, "<i2")
        mel_start = take(nmel, "<u2")
        mel_len = take(nmel, "<u2")
        nw = int(mel_len.sum())
        if len(data) != off + 2 * nw + 4:
            raise FormatError(f"{where}: {len(data)} bytes, expected {off + 2 * nw + 4}")
        mel_weights = take(nw, "<u2")
        (crc,) = struct.unpack_from("<I", data, off)
        if crc != zlib.crc32(data[:off]):
            raise FormatError(f"{where}: CRC32 mismatch (stored {crc:#010x})")
        if np.any(mel_start.astype(np.int64) + mel_len > half + 1):
            raise FormatError(f"{where}: a mel band reaches past FFT bin {half}")
        return cls(rate, flen, hop, nmel, fbits, oshift, ooff, window, cos_q15, sin_q15,
                   mel_start, mel_len, mel_weights)


def _q15(x: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(x, dtype=np.float64) * 32767.0).astype(np.int64)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def make_params(cfg: FrontendConfig | None = None) -> FrontendParams:
    """Round the float design (Hann window, twiddles, HTK mel triangles) to integer tables.

    This is the only place floats enter the front-end; every implementation consumes
    the resulting integer tables, never re-derives them.
    """
    cfg = cfg or FrontendConfig()
    n = cfg.frame_len
    if n < 16 or n > 1024 or n & (n - 1):
        raise ValueError(f"frame_len {n} must be a power of two in 16..1024")
    k = np.arange(n)
    window = _q15(0.5 - 0.5 * np.cos(2.0 * np.pi * k / n))  # periodic Hann
    half = np.arange(n // 2)
    cos_q15 = _q15(np.cos(2.0 * np.pi * half / n))
    sin_q15 = _q15(np.sin(2.0 * np.pi * half / n))

    n_bins = n // 2 + 1
    bin_hz = np.arange(n_bins) * cfg.sample_rate / n
    edges = _mel_to_hz(np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.n_mels + 2))
    starts, lens, weights = [], [], []
    for b in range(cfg.n_mels):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        tri = np.minimum((bin_hz - lo) / (mid - lo), (hi - bin_hz) / (hi - mid))
        w = np.round(np.clip(tri, 0.0, 1.0) * 4096.0).astype(np.int64)
        nz = np.nonzero(w)[0]
        if nz.size == 0:  # band narrower than one bin: take the bin nearest its centre
            nz = np.array([int(np.argmin(np.abs(bin_hz - mid)))])
            w[nz] = 4096
        s, e = int(nz[0]), int(nz[-1]) + 1
        starts.append(s)
        lens.append(e - s)
        weights.extend(w[s:e].tolist())
    return FrontendParams(
        sample_rate=cfg.sample_rate,
        frame_len=n,
        hop=cfg.hop,
        n_mels=cfg.n_mels,
        log_frac_bits=cfg.log_frac_bits,
        out_shift=cfg.out_shift,
        out_offset=cfg.out_offset,
        window=window.astype(np.uint16),
        cos_q15=cos_q15.astype(np.int16),
        sin_q15=sin_q15.astype(np.int16),
        mel_start=np.asarray(starts, dtype=np.uint16),
        mel_len=np.asarray(lens, dtype=np.uint16),
        mel_weights=np.asarray(weights, dtype=np.uint16),
    )


_DEFAULT: FrontendParams | None = None


def default_params() -> FrontendParams:
    """The default front-end (16 kHz, 512/320, 40 bands, Q6 log, Q3 output)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = make_params()
    return _DEFAULT


def _bit_length(x: np.ndarray) -> np.ndarray:
    """bitlen of non-negative int64 values (0 for 0), exact (no float log)."""
    x = x.astype(np.int64)
    out = np.zeros(x.shape, dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        big = x >= (np.int64(1) << shift)
        out += np.where(big, shift, 0)
        x = np.where(big, x >> shift, x)
    return out + (x > 0)


def ilog2_q(x: np.ndarray, frac_bits: int) -> np.ndarray:
    """Integer log2 of x >= 1 in Q.frac_bits by repeated squaring (step 6 of the spec).

    x may be as large as 2^62; the result is int64.
    """
    x = np.asarray(x, dtype=np.uint64)
    n = _bit_length(x.astype(np.int64)) - 1
    y = np.where(
        n >= 30,
        x >> np.maximum(n - 30, 0).astype(np.uint64),
        x << np.maximum(30 - n, 0).astype(np.uint64),
    ).astype(np.uint64)
    result = n.astype(np.int64)
    for _ in range(frac_bits):
        y = (y * y) >> np.uint64(30)
        bit = y >= np.uint64(1 << 31)
        y = np.where(bit, y >> np.uint64(1), y)
        result = (result << 1) | bit.astype(np.int64)
    return result


def _bitrev_indices(n: int) -> np.ndarray:
    bits = n.bit_length() - 1
    idx = np.arange(n)
    rev = np.zeros(n, dtype=np.int64)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    return rev


def frame_features(frames: np.ndarray, p: FrontendParams | None = None) -> np.ndarray:
    """Steps 1-7 on int16 frames [n, frame_len]; returns int8 [n, n_mels]."""
    p = p or default_params()
    x = np.asarray(frames, dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != p.frame_len:
        raise ValueError(f"frames must be [n, {p.frame_len}], got {x.shape}")
    n = p.frame_len
    v = (x * p.window.astype(np.int64) + (1 << 14)) >> 15  # 1. window
    peak = np.max(np.abs(v), axis=1)
    e = np.where(peak > 0, 15 - _bit_length(peak), 0)  # 2. normalise
    u = v << e[:, None]

    re = u[:, _bitrev_indices(n)]  # 3. FFT
    im = np.zeros_like(re)
    c_all = p.cos_q15.astype(np.int64)
    s_all = p.sin_q15.astype(np.int64)
    half = 1
    while half < n:
        groups = n // (2 * half)
        c = c_all[:: n // (2 * half)][:half]
        s = s_all[:: n // (2 * half)][:half]
        r4 = re.reshape(-1, groups, 2, half)
        i4 = im.reshape(-1, groups, 2, half)
        ar, br = r4[:, :, 0, :], r4[:, :, 1, :]
        ai, bi = i4[:, :, 0, :], i4[:, :, 1, :]
        tr = (br * c + bi * s + (1 << 14)) >> 15
        ti = (bi * c - br * s + (1 << 14)) >> 15
        re = np.stack(((ar + tr + 1) >> 1, (ar - tr + 1) >> 1), axis=2).reshape(-1, n)
        im = np.stack(((ai + ti + 1) >> 1, (ai - ti + 1) >> 1), axis=2).reshape(-1, n)
        half *= 2

    nb = n // 2 + 1
    power = re[:, :nb] ** 2 + im[:, :nb] ** 2  # 4. power, < 2^31
    energy = power @ p.mel_matrix  # 5. mel, < 2^62 in int64
    fbits = p.log_frac_bits
    log2 = ilog2_q(energy + 1, fbits) - ((2 * e) << fbits)[:, None]  # 6. log
    q = (log2 - p.out_offset + (1 << (p.out_shift - 1))) >> p.out_shift  # 7. output
    return np.clip(q, -128, 127).astype(np.int8)


def frames_of(audio: np.ndarray, p: FrontendParams | None = None) -> np.ndarray:
    """Slice int16 audio into [n_frames, frame_len] frames at hop intervals (batch form)."""
    p = p or default_params()
    a = np.asarray(audio)
    if a.ndim != 1:
        raise ValueError(f"audio must be 1-D int16, got shape {a.shape}")
    nf = p.n_frames(a.size)
    if nf == 0:
        return np.zeros((0, p.frame_len), dtype=np.int16)
    idx = np.arange(nf)[:, None] * p.hop + np.arange(p.frame_len)[None, :]
    return a[idx].astype(np.int16)


def features(audio: np.ndarray, p: FrontendParams | None = None) -> np.ndarray:
    """int8 features [n_frames, n_mels] of one int16 clip (batch form)."""
    p = p or default_params()
    return frame_features(frames_of(audio, p), p)


def features_batch(clips: np.ndarray, p: FrontendParams | None = None, chunk: int = 256) -> np.ndarray:
    """int8 features [n_clips, n_frames, n_mels] for equal-length int16 clips [n_clips, samples]."""
    p = p or default_params()
    clips = np.asarray(clips)
    nf = p.n_frames(clips.shape[1])
    out = np.empty((clips.shape[0], nf, p.n_mels), dtype=np.int8)
    idx = np.arange(nf)[:, None] * p.hop + np.arange(p.frame_len)[None, :]
    for start in range(0, clips.shape[0], chunk):
        block = clips[start : start + chunk][:, idx].reshape(-1, p.frame_len)
        out[start : start + chunk] = frame_features(block, p).reshape(-1, nf, p.n_mels)
    return out


class FeatureStream:
    """Streaming form: push any number of samples, get one feature row per hop.

    Equal to :func:`features` on the concatenated input: frame i covers samples
    [i*hop, i*hop + frame_len).
    """

    def __init__(self, p: FrontendParams | None = None) -> None:
        self.p = p or default_params()
        self._buf = np.zeros(0, dtype=np.int16)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Append int16 samples; return int8 [k, n_mels] for the k frames now complete."""
        self._buf = np.concatenate((self._buf, np.asarray(samples, dtype=np.int16)))
        nf = self.p.n_frames(self._buf.size)
        if nf == 0:
            return np.zeros((0, self.p.n_mels), dtype=np.int8)
        out = frame_features(frames_of(self._buf, self.p)[:nf], self.p)
        self._buf = self._buf[nf * self.p.hop :]
        return out
