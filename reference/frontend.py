# Integer audio front-end, MicroPython reference.
#
# Plain Python that runs under CPython and under the `micropython` binary. It reads the
# front-end section of the integer model (generator/frontend.py: FrontendParams.to_bytes)
# and computes the spec steps 1-7 written in generator/frontend.py, bit for bit.
# MicroPython has no int.bit_length, no numpy, no dataclasses: keep it that way.

import struct

try:
    from binascii import crc32
except ImportError:  # pragma: no cover - every supported Python has binascii.crc32
    from zlib import crc32

FE_MAGIC = b"BKFE"
FE_VERSION = 1
_HEADER = "<4sHIHHHBBi"
_HEADER_SIZE = struct.calcsize(_HEADER)


class FrontendError(ValueError):
    pass


def bit_length(x):
    """Number of bits of a non-negative int (0 for 0)."""
    n = 0
    while x >= 65536:
        x >>= 16
        n += 16
    while x:
        x >>= 1
        n += 1
    return n


def _u16(data, off, count):
    return list(struct.unpack_from("<%dH" % count, data, off))


def _i16(data, off, count):
    return list(struct.unpack_from("<%dh" % count, data, off))


class Params:
    """Front-end parameters parsed from the BKFE section."""

    def __init__(self, data):
        data = bytes(data)
        if len(data) < _HEADER_SIZE + 4:
            raise FrontendError("front-end section: too short")
        hdr = struct.unpack_from(_HEADER, data, 0)
        if hdr[0] != FE_MAGIC:
            raise FrontendError("front-end section: bad magic")
        if hdr[1] != FE_VERSION:
            raise FrontendError("front-end section: version %d, expected %d" % (hdr[1], FE_VERSION))
        self.sample_rate = hdr[2]
        self.frame_len = n = hdr[3]
        self.hop = hdr[4]
        self.n_mels = hdr[5]
        self.log_frac_bits = hdr[6]
        self.out_shift = hdr[7]
        self.out_offset = hdr[8]
        half = n // 2
        off = _HEADER_SIZE
        self.window = _u16(data, off, n)
        off += 2 * n
        self.cos_q15 = _i16(data, off, half)
        off += 2 * half
        self.sin_q15 = _i16(data, off, half)
        off += 2 * half
        self.mel_start = _u16(data, off, self.n_mels)
        off += 2 * self.n_mels
        self.mel_len = _u16(data, off, self.n_mels)
        off += 2 * self.n_mels
        nw = sum(self.mel_len)
        if len(data) != off + 2 * nw + 4:
            raise FrontendError("front-end section: wrong length")
        self.mel_weights = _u16(data, off, nw)
        off += 2 * nw
        if struct.unpack_from("<I", data, off)[0] != crc32(data[:off]) & 0xFFFFFFFF:
            raise FrontendError("front-end section: CRC32 mismatch")
        bits = bit_length(n) - 1
        rev = []
        for i in range(n):
            r = 0
            for b in range(bits):
                r |= ((i >> b) & 1) << (bits - 1 - b)
            rev.append(r)
        self.bitrev = rev

    def n_frames(self, n_samples):
        if n_samples < self.frame_len:
            return 0
        return 1 + (n_samples - self.frame_len) // self.hop


def ilog2_q(x, frac_bits):
    """Integer log2 of x >= 1 in Q.frac_bits by repeated squaring (spec step 6)."""
    n = bit_length(x) - 1
    if n >= 30:
        y = x >> (n - 30)
    else:
        y = x << (30 - n)
    r = n
    for _ in range(frac_bits):
        y = (y * y) >> 30
        r <<= 1
        if y >= 0x80000000:
            r |= 1
            y >>= 1
    return r


def frame_features(p, x, start=0):
    """Spec steps 1-7 on p.frame_len samples of sequence x from index start -> list of ints."""
    n = p.frame_len
    win = p.window
    rev = p.bitrev
    re = [0] * n
    im = [0] * n
    peak = 0
    for i in range(n):
        v = (x[start + i] * win[i] + 16384) >> 15
        re[rev[i]] = v
        a = -v if v < 0 else v
        if a > peak:
            peak = a
    e = 15 - bit_length(peak) if peak else 0
    if e:
        for i in range(n):
            re[i] <<= e
    cs = p.cos_q15
    sn = p.sin_q15
    half = 1
    while half < n:
        stride = n // (2 * half)
        for g in range(0, n, 2 * half):
            for k in range(half):
                c = cs[k * stride]
                s = sn[k * stride]
                ia = g + k
                ib = ia + half
                br = re[ib]
                bi = im[ib]
                tr = (br * c + bi * s + 16384) >> 15
                ti = (bi * c - br * s + 16384) >> 15
                ar = re[ia]
                ai = im[ia]
                re[ia] = (ar + tr + 1) >> 1
                im[ia] = (ai + ti + 1) >> 1
                re[ib] = (ar - tr + 1) >> 1
                im[ib] = (ai - ti + 1) >> 1
        half *= 2
    fb = p.log_frac_bits
    shift = p.out_shift
    rnd = 1 << (shift - 1)
    out = []
    pos = 0
    wts = p.mel_weights
    for m in range(p.n_mels):
        s0 = p.mel_start[m]
        ln = p.mel_len[m]
        energy = 0
        for j in range(ln):
            r = re[s0 + j]
            i = im[s0 + j]
            energy += (r * r + i * i) * wts[pos + j]
        pos += ln
        lg = ilog2_q(energy + 1, fb) - ((2 * e) << fb)
        q = (lg - p.out_offset + rnd) >> shift
        if q > 127:
            q = 127
        elif q < -128:
            q = -128
        out.append(q)
    return out


def features(p, samples):
    """Batch form: list of n_frames rows of n_mels ints for a sequence of int16 samples."""
    rows = []
    for f in range(p.n_frames(len(samples))):
        rows.append(frame_features(p, samples, f * p.hop))
    return rows


class FeatureStream:
    """Streaming form: push samples, get the rows of the frames they complete."""

    def __init__(self, p):
        self.p = p
        self.buf = []

    def push(self, samples):
        self.buf.extend(samples)
        rows = []
        p = self.p
        while len(self.buf) >= p.frame_len:
            rows.append(frame_features(p, self.buf, 0))
            self.buf = self.buf[p.hop :]
        return rows
