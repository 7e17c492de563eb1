"""Accumulator-width certificate: the exact worst-case accumulator range of every layer.

For each conv layer and output channel o, over EVERY input the layer can receive (all
int8 feature values for the first layer, every bit pattern for binary inputs) and the
layer's actual weights, the exact (infinite-width) fan-in sum S_o lies in [lo_o, hi_o]:

    input   element term x*w          hi_o                         lo_o
    int8    x in [xmin, xmax], w=+-1  P*xmax - M*xmin               P*xmin - M*xmax
    pm1     x in {-1,+1}              fan_in                         -fan_in
    01      x in {0,1}                P                              -M

with P_o / M_o the number of +1 / -1 weights of channel o (P + M = fan_in). Each bound
is reached: choose every element independently at its extreme (x = xmax where w = +1
and xmin where w = -1 for hi; for pm1 x = w, for 01 x = 1 where w = +1 ...).

Why the final sum decides for both accumulator modes: every term can be >= 0 and <= 0
(its maximum is >= 0 and its minimum <= 0: 127/128, 1, max(w, 0)), so the largest
prefix sum over all inputs is the largest full sum, and the same for the smallest. Hence
  * wrap: the result differs from S_o for some input  <=>  [lo_o, hi_o] leaves N bits;
  * saturate: some running sum (at a tile boundary) leaves N bits for some input
    <=>  [lo_o, hi_o] leaves N bits.
The smallest safe width is min_bits = the least N with -2^(N-1) <= lo and hi <= 2^(N-1)-1.
"can overflow" is then exactly acc_bits < min_bits: a width below it overflows on the
extreme input, a width at or above it never does.

For a ``shiftbn`` (scores) layer the certificate also bounds the scores over the
accumulator values the layer can produce (the whole N-bit range for a channel that can
overflow), and says whether the int32 clamp can act.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnnkws.generator.integer.intmodel import ConvLayer, IntegerModel, shift

INT8_RANGE = (-128, 127)


def min_signed_bits(lo: int, hi: int) -> int:
    """Least N >= 1 such that [lo, hi] lies inside [-2^(N-1), 2^(N-1) - 1]."""
    n = 1
    while lo < -(1 << (n - 1)) or hi > (1 << (n - 1)) - 1:
        n += 1
    return n


@dataclass
class LayerCertificate:
    """The certificate of one conv layer (index = position in the model's layer list)."""

    index: int
    name: str
    input: str
    input_range: tuple[int, int]
    fan_in: int
    acc_bits: int
    acc_mode: str
    tile: int
    lo: np.ndarray  # int64 [c_out], least exact sum per channel
    hi: np.ndarray  # int64 [c_out], greatest exact sum per channel
    score_range: tuple[int, int] | None = None  # shiftbn layers: scores over reachable acc
    score_clamped: bool = False  # shiftbn: the int32 clamp can act

    @property
    def range(self) -> tuple[int, int]:
        return int(self.lo.min()), int(self.hi.max())

    @property
    def min_bits(self) -> int:
        return min_signed_bits(*self.range)

    @property
    def can_overflow(self) -> bool:
        return self.acc_bits < self.min_bits

    @property
    def channels_at_risk(self) -> int:
        """Channels whose own range leaves the N-bit accumulator."""
        half = 1 << (self.acc_bits - 1)
        return int(np.count_nonzero((self.lo < -half) | (self.hi > half - 1)))

    def summary(self) -> str:
        lo, hi = self.range
        verdict = (
            f"{self.acc_bits} bits CAN overflow ({self.channels_at_risk} of {self.lo.size} channels)"
            if self.can_overflow
            else f"{self.acc_bits} bits never overflow"
        )
        return (
            f"layer {self.index} {self.name}: {self.input} in [{self.input_range[0]}, "
            f"{self.input_range[1]}], fan-in {self.fan_in}, {self.acc_mode}"
            + (f" tile {self.tile}" if self.acc_mode == "saturate" else "")
            + f": exact sum in [{lo}, {hi}], needs {self.min_bits} bits; {verdict}"
            + (
                f"; scores in [{self.score_range[0]}, {self.score_range[1]}]"
                + (" (int32 clamp can act)" if self.score_clamped else "")
                if self.score_range
                else ""
            )
        )


def _input_range(kind: str, int8_range: tuple[int, int]) -> tuple[int, int]:
    return {"int8": int8_range, "pm1": (-1, 1), "01": (0, 1)}[kind]


def layer_certificate(
    layer: ConvLayer, index: int = 0, int8_range: tuple[int, int] = INT8_RANGE
) -> LayerCertificate:
    """Exact per-channel range of the fan-in sum of `layer` (module docstring)."""
    w = np.asarray(layer.weights, dtype=np.int64).reshape(layer.c_out, -1)
    p = w.sum(axis=1)  # +1 weights
    m = layer.fan_in - p  # -1 weights
    xmin, xmax = _input_range(layer.input, int8_range)
    if layer.input == "int8":
        hi, lo = p * xmax - m * xmin, p * xmin - m * xmax
    elif layer.input == "pm1":
        hi = np.full(layer.c_out, layer.fan_in, dtype=np.int64)
        lo = -hi
    else:
        hi, lo = p, -m
    cert = LayerCertificate(
        index,
        layer.name,
        layer.input,
        (xmin, xmax),
        layer.fan_in,
        layer.acc_bits,
        layer.acc_mode,
        layer.tile,
        lo,
        hi,
    )
    if layer.output == "shiftbn":
        # accumulator values the layer can produce: the exact range where it fits in N
        # bits, the whole N-bit range for channels that can overflow (wrapped or
        # saturated values); y is monotone in acc, so the ends bound the scores
        half = 1 << (layer.acc_bits - 1)
        risky = (lo < -half) | (hi > half - 1)
        a_lo = np.where(risky, -half, lo)
        a_hi = np.where(risky, half - 1, hi)
        ends = [
            layer.sign.astype(np.int64) * shift(a - layer.mu.astype(np.int64), layer.shift)
            + layer.beta.astype(np.int64)
            for a in (a_lo, a_hi)
        ]
        y_lo = int(np.minimum(*ends).min())
        y_hi = int(np.maximum(*ends).max())
        cert.score_range = (max(y_lo, -(2**31)), min(y_hi, 2**31 - 1))
        cert.score_clamped = y_lo < -(2**31) or y_hi > 2**31 - 1
    return cert


def model_certificate(
    model: IntegerModel, int8_range: tuple[int, int] = INT8_RANGE
) -> list[LayerCertificate]:
    """Certificates of every conv layer of `model`, in layer order."""
    return [
        layer_certificate(layer, i, int8_range)
        for i, layer in enumerate(model.layers)
        if isinstance(layer, ConvLayer)
    ]


def format_certificate(certs: list[LayerCertificate]) -> str:
    """Human-readable certificate, one line per conv layer."""
    return "\n".join(c.summary() for c in certs)
