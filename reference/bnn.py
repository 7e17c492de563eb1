# Integer BNN inference, MicroPython reference.
#
# Plain Python that runs under CPython (as bnnkws.reference.bnn) and under the
# `micropython` binary (reference/ on MICROPYPATH). It reads the integer model blob
# (docs/FORMAT.md) and computes the layer semantics of docs/INTEGER_MODEL.md with
# Python integers, front-end included (reference/frontend.py). It shares no code with
# the numpy reference (generator/integer/intmodel.py) or the C kernels: a fan-in vector here is
# one arbitrary-precision int, a binary activation row is one int (bit c = channel c).
# No numpy, no dataclasses, no f-strings, no int.bit_length / bit_count.

import struct

try:
    from binascii import crc32
except ImportError:  # pragma: no cover
    from zlib import crc32

try:
    from bnnkws.reference import frontend
except ImportError:  # under micropython: reference/ itself is on the path
    import frontend

MAGIC = b"BKIM"
VERSION = 1
HEADER = "<4sHHII"
HEADER_SIZE = 16
LAYER = "<BBBBBBHHHHHHH"
LAYER_SIZE = 20

# the LAYR codes (generator/export/layer_codes.py; tests/host/test_c_headers.py checks these)
KIND_CONV = 0
KIND_POOL_OR = 1
INPUTS = ("int8", "pm1", "01")
OUTPUTS = ("threshold", "shiftbn")
MODES = ("wrap", "saturate")
ACTS = {0: "pm1", 1: "01", 255: None}

INT32_MIN = -2147483648
INT32_MAX = 2147483647

# bits set in each byte value
_POP8 = bytes([bin(i).count("1") for i in range(256)])


class BlobError(ValueError):
    pass


def popcount(x):
    """Set bits of a non-negative int of any size."""
    n = 0
    while x:
        n += _POP8[x & 0xFF]
        x >>= 8
    return n


def wrap(v, bits):
    """((v + 2^(N-1)) mod 2^N) - 2^(N-1)."""
    half = 1 << (bits - 1)
    return ((v + half) & ((half << 1) - 1)) - half


def saturate(v, bits):
    half = 1 << (bits - 1)
    if v > half - 1:
        return half - 1
    if v < -half:
        return -half
    return v


def _pad4(n):
    return (-n) % 4


class Layer:
    """One layer as read from the blob; weights[o] is the fan-in bit vector of output o."""

    def __init__(self, data, off, size, where):
        if size < LAYER_SIZE:
            raise BlobError(where + ": too short for a layer record")
        f = struct.unpack_from(LAYER, data, off)
        self.kind = f[0]
        self.c_in = f[7]
        self.c_out = f[8]
        self.kernel = f[9]
        self.stride = f[10]
        self.groups = f[11]
        name_len = f[12]
        self.name = str(data[off + LAYER_SIZE : off + LAYER_SIZE + name_len], "utf-8")
        if self.kind == KIND_POOL_OR:
            if size != LAYER_SIZE + name_len or self.kernel < 1:
                raise BlobError(where + ": bad pool record")
            return
        if self.kind != KIND_CONV:
            raise BlobError(
                where + ": kind code %d, expected %d or %d" % (self.kind, KIND_CONV, KIND_POOL_OR)
            )
        if f[1] >= len(INPUTS) or f[2] >= len(OUTPUTS) or f[5] >= len(MODES) or f[3] not in ACTS:
            raise BlobError(where + ": bad input/output/mode/out_act code")
        self.input = INPUTS[f[1]]
        self.output = OUTPUTS[f[2]]
        self.out_act = ACTS[f[3]]
        self.acc_bits = f[4]
        self.acc_mode = MODES[f[5]]
        self.tile = f[6]
        if not 4 <= self.acc_bits <= 32 or self.tile < 1:
            raise BlobError(where + ": acc_bits or tile out of range")
        if self.groups < 1 or self.c_in % self.groups or self.c_out % self.groups:
            raise BlobError(where + ": groups must divide c_in and c_out")
        if self.kernel < 1 or self.stride < 1 or self.c_out < 1:
            raise BlobError(where + ": kernel, stride and c_out must be >= 1")
        self.cg = self.c_in // self.groups
        self.fan_in = self.kernel * self.cg
        nw = (self.fan_in + 31) // 32
        p = off + LAYER_SIZE + name_len + _pad4(LAYER_SIZE + name_len)
        per_channel = 5 if self.output == "threshold" else 10
        if size != p - off + self.c_out * (4 * nw + per_channel):
            raise BlobError(where + ": record length does not match its fields")
        self.weights = []
        for _ in range(self.c_out):
            words = struct.unpack_from("<%dI" % nw, data, p)
            p += 4 * nw
            v = 0
            for i in range(nw - 1, -1, -1):
                v = (v << 32) | words[i]
            self.weights.append(v)
        c = self.c_out
        if self.output == "threshold":
            self.thr = list(struct.unpack_from("<%di" % c, data, p))
            self.flip = list(struct.unpack_from("<%dB" % c, data, p + 4 * c))
        else:
            self.mu = list(struct.unpack_from("<%di" % c, data, p))
            self.beta = list(struct.unpack_from("<%di" % c, data, p + 4 * c))
            self.shift = list(struct.unpack_from("<%db" % c, data, p + 8 * c))
            self.sign = list(struct.unpack_from("<%db" % c, data, p + 9 * c))
        if self.input == "int8":  # +1/-1 per fan-in element, for the int8 path
            self.signs = []
            for o in range(c):
                w = self.weights[o]
                self.signs.append([1 if (w >> i) & 1 else -1 for i in range(self.fan_in)])

    def out_len(self, t_in):
        if self.kind == KIND_POOL_OR:
            return t_in // self.kernel
        return (t_in - self.kernel) // self.stride + 1

    # -- the N-bit accumulator over tile partials (docs/INTEGER_MODEL.md) ---------------
    def _tiles(self):
        if self.acc_mode == "wrap":
            return [(0, self.fan_in)]
        out = []
        a = 0
        while a < self.fan_in:
            n = self.tile if self.fan_in - a > self.tile else self.fan_in - a
            out.append((a, n))
            a += n
        return out

    def _accumulate(self, partials):
        if self.acc_mode == "wrap":
            s = 0
            for p in partials:
                s += p
            return wrap(s, self.acc_bits)
        acc = 0
        for p in partials:
            acc = saturate(acc + p, self.acc_bits)
        return acc

    def accumulators(self, x):
        """N-bit accumulators [T_out][c_out] for input rows x (int8 lists or bit ints)."""
        t_out = self.out_len(len(x))
        tiles = self._tiles()
        og = self.c_out // self.groups
        cg = self.cg
        out = []
        for t in range(t_out):
            row = [0] * self.c_out
            for g in range(self.groups):
                if self.input == "int8":
                    xs = []
                    for k in range(self.kernel):
                        xs.extend(x[t * self.stride + k][g * cg : g * cg + cg])
                    for o in range(g * og, g * og + og):
                        ws = self.signs[o]
                        parts = []
                        for a, n in tiles:
                            s = 0
                            for i in range(a, a + n):
                                s += xs[i] * ws[i]
                            parts.append(s)
                        row[o] = self._accumulate(parts)
                    continue
                mask = (1 << cg) - 1
                f = 0
                for k in range(self.kernel):
                    f |= ((x[t * self.stride + k] >> (g * cg)) & mask) << (k * cg)
                for o in range(g * og, g * og + og):
                    w = self.weights[o]
                    parts = []
                    for a, n in tiles:
                        m = (1 << n) - 1
                        if self.input == "pm1":  # agree: +1, differ: -1
                            parts.append(n - 2 * popcount(((f ^ w) >> a) & m))
                        else:  # x in {0,1}: +w where x = 1
                            parts.append(2 * popcount(((f & w) >> a) & m) - popcount((f >> a) & m))
                    row[o] = self._accumulate(parts)
            out.append(row)
        return out

    def transform(self, acc_rows):
        """Output transform: rows of bit ints (threshold) or int32 lists (shiftbn)."""
        out = []
        for acc in acc_rows:
            if self.output == "threshold":
                bits = 0
                for o in range(self.c_out):
                    a = acc[o]
                    on = a <= self.thr[o] if self.flip[o] else a >= self.thr[o]
                    if on:
                        bits |= 1 << o
                out.append(bits)
            else:
                row = []
                for o in range(self.c_out):
                    v = acc[o] - self.mu[o]
                    s = self.shift[o]
                    v = v << s if s >= 0 else v >> -s  # Python >> is floor
                    y = self.sign[o] * v + self.beta[o]
                    row.append(INT32_MAX if y > INT32_MAX else INT32_MIN if y < INT32_MIN else y)
                out.append(row)
        return out

    def forward(self, x):
        if self.kind == KIND_POOL_OR:
            out = []
            for t in range(len(x) // self.kernel):
                v = 0
                for k in range(self.kernel):
                    v |= x[t * self.kernel + k]
                out.append(v)
            return out
        return self.transform(self.accumulators(x))

    def is_bits(self):
        return self.kind == KIND_POOL_OR or self.output == "threshold"


def _detector(data, where):
    """The DETC payload as {"thr", "smooth", "temp_shift", "refractory"}."""
    o, s = where
    if s < 6:
        raise BlobError("model blob: DETC too short")
    n, smooth, temp_shift, reserved, refractory = struct.unpack_from("<BBBBH", data, o)
    if reserved != 0 or s != 6 + 2 * n or not 1 <= smooth <= 8 or temp_shift > 16:
        raise BlobError("model blob: DETC is not a detector configuration")
    thr = list(struct.unpack_from("<%dH" % n, data, o + 6))
    return {"thr": thr, "smooth": smooth, "temp_shift": temp_shift, "refractory": refractory}


class Model:
    """An integer model parsed from blob bytes."""

    def __init__(self, data):
        data = bytes(data)
        if len(data) < HEADER_SIZE:
            raise BlobError("model blob: too short for the header")
        magic, version, hsize, length, crc = struct.unpack_from(HEADER, data, 0)
        if magic != MAGIC:
            raise BlobError("model blob: magic %r, expected %r" % (magic, MAGIC))
        if version != VERSION:
            raise BlobError("model blob: version %d, expected %d" % (version, VERSION))
        if hsize != HEADER_SIZE or length != len(data):
            raise BlobError(
                "model blob: length field %d, the data has %d bytes" % (length, len(data))
            )
        if crc32(data[HEADER_SIZE:]) & 0xFFFFFFFF != crc:
            raise BlobError("model blob: CRC32 mismatch")
        sections = []
        off = HEADER_SIZE
        while off < len(data):
            if off + 8 > len(data):
                raise BlobError("model blob: section header past the end")
            tag, size = struct.unpack_from("<4sI", data, off)
            if off + 8 + size > len(data):
                raise BlobError("model blob: section %r past the end" % tag)
            sections.append((tag, off + 8, size))
            off += 8 + size + _pad4(size)
        # an optional last DETC section: the default detector configuration
        # (docs/FORMAT.md; generator/export/detector_config.py)
        self.detector = None
        if sections and sections[-1][0] == b"DETC":
            self.detector = _detector(data, sections.pop()[1:])
        tags = [s[0] for s in sections]
        if len(tags) < 4 or tags[:3] != [b"MODL", b"FRNT", b"LABL"] or tags[-1] != b"META":
            raise BlobError("model blob: unexpected section order")
        n_layers, self.n_frames, n_classes, _ = struct.unpack_from("<HHHH", data, sections[0][1])
        _, fo, fs = sections[1]
        try:
            self.frontend = frontend.Params(data[fo : fo + fs])
        except ValueError as exc:
            raise BlobError("model blob: FRNT: " + str(exc)) from None
        _, lo, _ = sections[2]
        count = struct.unpack_from("<H", data, lo)[0]
        p = lo + 2
        self.labels = []
        for _ in range(count):
            n = data[p]
            self.labels.append(str(data[p + 1 : p + 1 + n], "utf-8"))
            p += 1 + n
        if self.detector is not None and len(self.detector["thr"]) != n_classes:
            raise BlobError("model blob: DETC thresholds do not match the classes")
        if count != n_classes or n_layers != len(sections) - 4:
            raise BlobError("model blob: MODL counts do not match the sections")
        self.layers = []
        for i in range(n_layers):
            tag, o, s = sections[3 + i]
            if tag != b"LAYR":
                raise BlobError("model blob: section %d is %r, expected LAYR" % (3 + i, tag))
            self.layers.append(Layer(data, o, s, "model blob: layer %d" % i))
        _, mo, ms = sections[-1]
        self.meta_json = str(data[mo : mo + ms], "utf-8")

    def forward_all(self, feats):
        """Every layer's output for int8 feature rows [T][F] (lists of ints).

        Binary outputs are rows of bit ints; scores are rows of int lists.
        """
        outs = []
        x = feats
        for layer in self.layers:
            x = layer.forward(x)
            outs.append(x)
        return outs

    def scores(self, feats):
        return self.forward_all(feats)[-1][0]

    def predict(self, feats):
        """(scores, class): class = first index of the maximum score."""
        s = self.scores(feats)
        best = 0
        for i in range(1, len(s)):
            if s[i] > s[best]:
                best = i
        return s, best

    def features(self, samples):
        """Front-end: int16 samples -> feature rows [n_frames][n_mels]."""
        return frontend.features(self.frontend, samples)

    def output_values(self, i, out):
        """Layer i's output as flat ints in [T][C] order (bits as 0/1)."""
        layer = self.layers[i]
        c = layer.c_out
        vals = []
        for row in out:
            if layer.is_bits():
                for ch in range(c):
                    vals.append((row >> ch) & 1)
            else:
                vals.extend(row)
        return vals


class Stream:
    """Streaming inference: Model.scores of each window of a stream, computing only the
    time steps earlier windows did not (the definition of firmware/bnn_stream.c).

    Output step t of layer i on the window starting at stream frame `start` is at the
    absolute position p = start + S_i * t (S_i: product of the strides and pooling
    factors of layers 0..i); it reads the layer below at p + S_(i-1) * j, j < kernel (the
    feature rows p .. p + kernel - 1 for layer 0), so it is the same for every window that
    holds it. Hidden layers keep their rows by position; `steps` counts computed steps.
    """

    def __init__(self, model):
        self.model = model
        self.reset()

    def reset(self):
        self.held = [{} for _ in self.model.layers[:-1]]
        self.steps = 0

    def scores(self, window, start):
        """Scores of feature rows window[0..n_frames-1] = stream frames start.."""
        layers = self.model.layers
        t = self.model.n_frames
        s_in = 1
        below = None
        for i in range(len(layers)):
            layer = layers[i]
            t_out = layer.out_len(t)
            step = layer.kernel if layer.kind == KIND_POOL_OR else layer.stride
            s_out = s_in * step
            last = i == len(layers) - 1
            held = None if last else self.held[i]
            for k in range(t_out):
                p = start + s_out * k
                if held is not None and p in held:
                    continue
                if i == 0:
                    rows = window[p - start : p - start + layer.kernel]
                else:
                    rows = [below[p + s_in * j] for j in range(layer.kernel)]
                y = layer.forward(rows)[0]
                self.steps += 1
                if held is None:
                    return y
                held[p] = y
            for p in [p for p in held if p < start]:
                del held[p]
            below = held
            s_in = s_out
            t = t_out
        raise BlobError("model blob: the last layer gives more than one step")
