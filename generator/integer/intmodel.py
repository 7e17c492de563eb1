"""The integer model: the single definition of deployed inference (docs/INTEGER_MODEL.md).

Everything here is integer numpy and is the reference that the PyTorch
``integer_forward``, the C kernels, the MicroPython reference and the firmware are
tested against. Floats appear only in :func:`fold_scale_threshold` (and its power-of-two
case :func:`fold_threshold`), which turns trained (float) batch-norm statistics into the
integer thresholds stored here; the integer parameters of a shiftbn output are made by
``ShiftBN.shiftbn`` (generator/training/shift_bn.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np

from bnnkws.generator.frontend import FrontendParams

InputKind = Literal["int8", "pm1", "01"]
AccMode = Literal["wrap", "saturate"]
OutputKind = Literal["threshold", "shiftbn"]
ActKind = Literal["pm1", "01"]

INPUT_KINDS = ("int8", "pm1", "01")
ACC_MODES = ("wrap", "saturate")


# --------------------------------------------------------------------------------------
# Accumulator arithmetic
# --------------------------------------------------------------------------------------
def wrap(v: np.ndarray | int, bits: int) -> np.ndarray:
    """Two's-complement wrap to `bits` bits: ((v + 2^(N-1)) mod 2^N) - 2^(N-1)."""
    half = np.int64(1) << np.int64(bits - 1)
    v = np.asarray(v, dtype=np.int64)
    if bits >= 64:
        return v
    return ((v + half) & ((half << 1) - 1)) - half


def saturate(v: np.ndarray | int, bits: int) -> np.ndarray:
    """Clamp to the signed `bits`-bit range [-2^(N-1), 2^(N-1) - 1]."""
    half = 1 << (bits - 1)
    return np.clip(np.asarray(v, dtype=np.int64), -half, half - 1)


def accumulate(partials: np.ndarray, bits: int, mode: str) -> np.ndarray:
    """N-bit accumulation of exact tile partial sums along the last axis (fan-in order).

    wrap: wrapping the exact total once equals wrapping after every add.
    saturate: acc = sat(acc + partial) tile by tile, starting from 0.
    """
    p = np.asarray(partials, dtype=np.int64)
    if mode == "wrap":
        return wrap(p.sum(axis=-1), bits)
    if mode == "saturate":
        acc = np.zeros(p.shape[:-1], dtype=np.int64)
        for i in range(p.shape[-1]):
            acc = saturate(acc + p[..., i], bits)
        return acc
    raise ValueError(f"accumulator mode {mode!r}, expected one of {ACC_MODES}")


def shift(v: np.ndarray, s: np.ndarray) -> np.ndarray:
    """v << s for s >= 0, v >> -s (arithmetic, floor) for s < 0; elementwise."""
    v = np.asarray(v, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    return np.where(s >= 0, v << np.maximum(s, 0), v >> np.maximum(-s, 0))


# --------------------------------------------------------------------------------------
# Bit packing (LSB first, 32-bit little-endian words)
# --------------------------------------------------------------------------------------
def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack {0,1} along the last axis into uint32 words: element i -> word i//32, bit i%32."""
    b = np.asarray(bits).astype(np.uint64)
    n = b.shape[-1]
    words = (n + 31) // 32
    padded = np.zeros(b.shape[:-1] + (words * 32,), dtype=np.uint64)
    padded[..., :n] = b & 1
    grouped = padded.reshape(b.shape[:-1] + (words, 32))
    weights = np.uint64(1) << np.arange(32, dtype=np.uint64)
    return (grouped * weights).sum(axis=-1).astype(np.uint32)


def unpack_bits(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: uint32 words [..., W] -> uint8 bits [..., n]."""
    w = np.asarray(words, dtype=np.uint32)
    shifts = np.arange(32, dtype=np.uint32)
    bits = (w[..., :, None] >> shifts) & 1
    return bits.reshape(w.shape[:-1] + (w.shape[-1] * 32,))[..., :n].astype(np.uint8)


# --------------------------------------------------------------------------------------
# Batch-norm folding (where floats become integers, once)
# --------------------------------------------------------------------------------------
def fold_scale_threshold(mu: float, scale: float, beta: float) -> tuple[int, int]:
    """Fold batch-norm with any scale, then sign, into one integer comparison.

    The trained layer outputs +1 where  y = scale * (acc - mu) + beta >= 0.
      scale > 0:  acc >= mu - beta / scale  ->  thr = ceil(mu - beta / scale),  flip = 0
      scale < 0:  acc <= mu - beta / scale  ->  thr = floor(mu - beta / scale), flip = 1
      scale = 0:  the output is constant: 1 where beta >= 0 (acc >= INT32_MIN always holds),
                  else 0 (flip 1: acc <= INT32_MIN never holds for a real accumulator).
    acc is an integer, so ceil/floor make the comparison exact (ties included); t is
    computed in rational arithmetic from the float parameters, so no rounding of
    mu - beta / scale can move the threshold by one.
    Returns (thr, flip), thr clamped to int32.
    """
    lo, hi = -(2**31), 2**31 - 1
    if scale == 0.0:
        return lo, (0 if beta >= 0 else 1)
    t = Fraction(mu) - Fraction(beta) / Fraction(scale)
    thr = math.ceil(t) if scale > 0 else math.floor(t)
    return int(np.clip(thr, lo, hi)), (0 if scale > 0 else 1)


def fold_threshold(mu: float, sign: int, s: int, beta: float) -> tuple[int, int]:
    """Shift-BN (scale sign * 2^s, AP2) then sign as one comparison: :func:`fold_scale_threshold`
    with an exactly representable scale (dividing by 2^s is exact in floating point)."""
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign}")
    return fold_scale_threshold(mu, sign * 2.0**s, beta)


# --------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------
@dataclass
class ConvLayer:
    """1-D convolution over time with binary weights, N-bit accumulator and output transform.

    weights: uint8 bits [c_out, kernel, c_in // groups], bit 1 = +1, bit 0 = -1.
    threshold output: thr int32 [c_out], flip uint8 [c_out]; bits of kind out_act.
    shiftbn output: mu int32, shift int8, sign int8 (+1/-1), beta int32, all [c_out].
    """

    name: str
    input: InputKind
    c_in: int
    c_out: int
    kernel: int
    stride: int
    groups: int
    weights: np.ndarray
    acc_bits: int
    acc_mode: AccMode
    tile: int
    output: OutputKind
    out_act: ActKind | None = None
    thr: np.ndarray | None = None
    flip: np.ndarray | None = None
    mu: np.ndarray | None = None
    shift: np.ndarray | None = None
    sign: np.ndarray | None = None
    beta: np.ndarray | None = None

    kind: str = field(default="conv", init=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.input not in INPUT_KINDS:
            raise ValueError(f"{self.name}: input {self.input!r}, expected one of {INPUT_KINDS}")
        if self.acc_mode not in ACC_MODES:
            raise ValueError(f"{self.name}: acc_mode {self.acc_mode!r}, expected {ACC_MODES}")
        if not 4 <= self.acc_bits <= 32:
            raise ValueError(f"{self.name}: acc_bits {self.acc_bits} outside 4..32")
        if self.c_in % self.groups or self.c_out % self.groups:
            raise ValueError(f"{self.name}: groups {self.groups} must divide c_in and c_out")
        if self.tile < 1:
            raise ValueError(f"{self.name}: tile {self.tile} must be >= 1")
        shape = (self.c_out, self.kernel, self.c_in // self.groups)
        if self.weights.shape != shape:
            raise ValueError(f"{self.name}: weights {self.weights.shape}, expected {shape}")
        if self.output == "threshold":
            if self.out_act not in ("pm1", "01") or self.thr is None or self.flip is None:
                raise ValueError(f"{self.name}: threshold output needs out_act, thr, flip")
        elif self.output == "shiftbn":
            if any(a is None for a in (self.mu, self.shift, self.sign, self.beta)):
                raise ValueError(f"{self.name}: shiftbn output needs mu, shift, sign, beta")
        else:
            raise ValueError(f"{self.name}: output {self.output!r}, expected threshold or shiftbn")

    @property
    def fan_in(self) -> int:
        return self.kernel * (self.c_in // self.groups)

    def out_len(self, t_in: int) -> int:
        return (t_in - self.kernel) // self.stride + 1

    def input_values(self, x: np.ndarray) -> np.ndarray:
        """Layer input as integer values: int8 as is, pm1 bits -> +1/-1, 01 bits -> 1/0."""
        x = np.asarray(x, dtype=np.int64)
        return 2 * x - 1 if self.input == "pm1" else x

    def partials(self, x: np.ndarray) -> np.ndarray:
        """Exact tile partial sums [B, T_out, c_out, n_tiles] in fan-in order.

        x: [B, T_in, c_in] int8 values or {0,1} bits (per `input`).
        """
        v = self.input_values(x)
        b, t_in, _ = v.shape
        t_out = self.out_len(t_in)
        if t_out < 1:
            raise ValueError(f"{self.name}: input has {t_in} steps, kernel needs {self.kernel}")
        cg, og = self.c_in // self.groups, self.c_out // self.groups
        n_tiles = -(-self.fan_in // self.tile)
        pad = n_tiles * self.tile - self.fan_in
        w = 2 * self.weights.astype(np.int64) - 1  # [c_out, kernel, cg]
        t_idx = np.arange(t_out)[:, None] * self.stride + np.arange(self.kernel)[None, :]
        out = np.empty((b, t_out, self.c_out, n_tiles), dtype=np.int64)
        for g in range(self.groups):
            xg = v[:, :, g * cg : (g + 1) * cg][:, t_idx, :]  # [B, T_out, kernel, cg]
            xg = xg.reshape(b * t_out, self.fan_in)
            wg = w[g * og : (g + 1) * og].reshape(og, self.fan_in)
            if pad:
                xg = np.pad(xg, ((0, 0), (0, pad)))
                wg = np.pad(wg, ((0, 0), (0, pad)))
            xt = xg.reshape(-1, n_tiles, self.tile).astype(np.float64)
            wt = wg.reshape(og, n_tiles, self.tile).astype(np.float64)
            # float64 matmul is exact here: |partial| <= 128 * tile << 2^53
            part = np.einsum("ntl,otl->not", xt, wt, optimize=True)
            out[:, :, g * og : (g + 1) * og, :] = (
                np.rint(part).astype(np.int64).reshape(b, t_out, og, n_tiles)
            )
        return out

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """N-bit accumulator values [B, T_out, c_out]."""
        return accumulate(self.partials(x), self.acc_bits, self.acc_mode)

    def exact_sum(self, x: np.ndarray) -> np.ndarray:
        """The mathematically exact (infinite-width) sums [B, T_out, c_out]."""
        return self.partials(x).sum(axis=-1)

    def transform(self, acc: np.ndarray) -> np.ndarray:
        """Output transform on accumulators: bits (uint8) or int32 scores."""
        if self.output == "threshold":
            thr = self.thr.astype(np.int64)
            cond = np.where(self.flip.astype(bool), acc <= thr, acc >= thr)
            return cond.astype(np.uint8)
        y = (
            self.sign.astype(np.int64) * shift(acc - self.mu.astype(np.int64), self.shift)
            + self.beta
        )
        return np.clip(y, -(2**31), 2**31 - 1).astype(np.int32)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.transform(self.accumulate(x))

    @property
    def out_kind(self) -> str:
        return self.out_act if self.output == "threshold" else "int32"


@dataclass
class PoolLayer:
    """OR pooling over `kernel` time steps (stride = kernel) on bits."""

    name: str
    kernel: int
    kind: str = field(default="pool_or", init=False)

    def out_len(self, t_in: int) -> int:
        return t_in // self.kernel

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.uint8)
        b, t_in, c = x.shape
        t_out = self.out_len(t_in)
        return x[:, : t_out * self.kernel].reshape(b, t_out, self.kernel, c).max(axis=2)


Layer = ConvLayer | PoolLayer


@dataclass
class IntegerModel:
    """A deployable network: front-end, layers, labels, and free-form metadata."""

    frontend: FrontendParams
    labels: list[str]
    n_frames: int
    layers: list[Layer]
    meta: dict = field(default_factory=dict)

    def shapes(self) -> list[tuple[int, int]]:
        """(T, C) after each layer, starting from the features."""
        t, c = self.n_frames, self.frontend.n_mels
        out = []
        for layer in self.layers:
            t = layer.out_len(t)
            c = layer.c_out if isinstance(layer, ConvLayer) else c
            out.append((t, c))
        return out

    def validate(self) -> None:
        t, c, kind = self.n_frames, self.frontend.n_mels, "int8"
        for i, layer in enumerate(self.layers):
            if isinstance(layer, ConvLayer):
                layer.validate()
                if layer.c_in != c:
                    raise ValueError(
                        f"layer {i} ({layer.name}): c_in {layer.c_in}, previous gives {c}"
                    )
                if layer.input != kind:
                    raise ValueError(
                        f"layer {i} ({layer.name}): input {layer.input}, previous gives {kind}"
                    )
                kind, c = layer.out_kind, layer.c_out
            elif kind == "int8" or kind == "int32":
                raise ValueError(
                    f"layer {i} ({layer.name}): OR pooling needs bits, previous gives {kind}"
                )
            t = layer.out_len(t)
            if t < 1:
                raise ValueError(f"layer {i} ({layer.name}): no time steps left")
        if kind != "int32" or t != 1 or c != len(self.labels):
            raise ValueError(
                f"last layer must give int32 scores [1][{len(self.labels)}], gives {kind} [{t}][{c}]"
            )

    def forward(self, feats: np.ndarray, all_layers: bool = False):
        """Scores int32 [B, n_classes] for int8 features [B, T, F] (or [T, F]).

        With all_layers=True, returns the list of every layer's output ([B, T, C]).
        """
        x = np.asarray(feats)
        if x.ndim == 2:
            x = x[None]
        outs = []
        for layer in self.layers:
            x = layer.forward(x)
            outs.append(x)
        return outs if all_layers else x[:, 0, :]

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """Argmax class index (first maximum) per input."""
        return np.argmax(self.forward(feats), axis=-1)


# --------------------------------------------------------------------------------------
# Streaming inference (the Python twin of firmware/bnn_stream.c)
# --------------------------------------------------------------------------------------
def layer_step(layer: Layer) -> int:
    """Output steps per input step: the conv stride or the pooling factor."""
    return layer.stride if isinstance(layer, ConvLayer) else layer.kernel


class StreamingForward:
    """Scores of :meth:`IntegerModel.forward` on windows of a stream, computing only the
    time steps earlier windows did not.

    Output step t of layer i on the window that starts at stream frame ``start`` sits at
    the absolute position p = start + S_i t (S_i: product of the steps of layers 0..i)
    and depends only on the layer below at p, p + S_(i-1), ..., p + (kernel - 1) S_(i-1)
    (the features for layer 0), whatever the window. So each hidden layer keeps its outputs
    by position; a window computes the positions not held yet, layer by layer, and drops
    those before its start. The result equals ``forward`` on the window bit for bit for any
    sequence of windows (tests/codegen/test_stream.py); ``steps`` counts the output steps
    computed, as bk_stream_t.steps does.
    """

    def __init__(self, model: IntegerModel) -> None:
        self.model = model
        self.shapes = model.shapes()
        self.reset()

    def reset(self) -> None:
        self.rows: list[dict[int, np.ndarray]] = [{} for _ in self.model.layers[:-1]]
        self.steps = 0

    def run(self, window: np.ndarray, start: int) -> np.ndarray:
        """int32 scores [n_classes] of features [n_frames, n_mels] = frames start.. of the stream."""
        x = np.asarray(window)
        m = self.model
        if x.shape != (m.n_frames, m.frontend.n_mels):
            raise ValueError(f"window {x.shape}, the model expects ({m.n_frames}, {m.frontend.n_mels})")
        s_in = 1
        below: dict[int, np.ndarray] | None = None
        for i, (layer, (t_out, _)) in enumerate(zip(m.layers, self.shapes, strict=True)):
            s_out = s_in * layer_step(layer)
            last = i == len(m.layers) - 1
            held = None if last else self.rows[i]
            for t in range(t_out):
                p = start + s_out * t
                if held is not None and p in held:
                    continue
                taps = [p + s_in * j for j in range(layer.kernel)]
                if i == 0:
                    inp = x[p - start : p - start + layer.kernel]
                else:
                    inp = np.stack([below[q] for q in taps])
                y = layer.forward(inp[None])[0, 0]
                self.steps += 1
                if held is None:
                    return y.astype(np.int32)
                held[p] = y
            for p in [p for p in held if p < start]:
                del held[p]
            below, s_in = held, s_out
        raise AssertionError("the last layer gives one step")  # validate() guarantees it
