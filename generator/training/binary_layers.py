"""Binary 1-D convolutions whose forward is the deployed N-bit integer arithmetic.

Tensors here are torch's conv layout ``[B, C, T]`` (the integer model's is ``[B, T, C]``).
A layer's input values are int8 features, {-1,+1} (``pm1``) or {0,1} (``01``); its
weights are {-1,+1}. The element products and tile partial sums are those of
docs/INTEGER_MODEL.md:

* fan-in order for output (t, o) of group g: ``x[t*stride + k][g*cg + c] * w[o][k][c]``
  with k outer and c inner; the accumulator sees it cut into tiles of ``tile`` elements.
* ``wrap``: two's complement, order-independent, so the exact sum is wrapped once.
* ``saturate``: ``acc = sat_N(acc + partial)`` tile by tile from 0, in fan-in order.

Exactness. Products are integers with |x| <= 128, so every partial and prefix sum is an
integer of magnitude <= fan_in * 128. float32 holds integers below 2^24 exactly, so the
training forward computes in float32 when ``fan_in * max|x| < 2^24`` (checked when the
layer is built) and in float64 otherwise; the integer forward always uses float64
(exact below 2^53) and returns int64. The accumulator values of the training forward are
therefore *equal* to the deployed ones, not an approximation of them.

Backward. Weights and activations are binarised with the straight-through estimate
(gradient passed where |v| <= 1), and the N-bit accumulator is the identity in the
backward pass (its gradient is that of the exact sum).

Overflow. An output overflows when its N-bit accumulator differs from the exact sum;
:class:`OverflowStats` counts how often and by how much, and :meth:`BinaryConv1d.excess`
measures how far sums (for saturate: every tile prefix) leave the N-bit range, the
quantity the overflow penalty of collaborative training pushes down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

INPUT_KINDS = ("int8", "pm1", "01")
ACC_MODES = ("wrap", "saturate")
FLOAT32_EXACT = 2**24


@dataclass
class Accumulator:
    """An accumulator: ``bits`` (4..32) two's complement, ``mode`` wrap or saturate, and the
    ``tile`` width (elements per exact partial sum) that saturate accumulates in."""

    bits: int = 32
    mode: str = "wrap"
    tile: int = 32

    def __post_init__(self) -> None:
        if not 4 <= int(self.bits) <= 32:
            raise ValueError(f"accumulator bits {self.bits} outside 4..32")
        if self.mode not in ACC_MODES:
            raise ValueError(f"accumulator mode {self.mode!r}, expected one of {ACC_MODES}")
        if int(self.tile) < 1:
            raise ValueError(f"accumulator tile {self.tile} must be >= 1")
        self.bits, self.tile = int(self.bits), int(self.tile)

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------
# Straight-through binarisation
# --------------------------------------------------------------------------------------
class _SignSTE(torch.autograd.Function):
    """+1 where v >= 0 else -1; gradient passed where |v| <= 1 (hardtanh)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        return torch.where(v >= 0, 1.0, -1.0).to(v.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return g * (v.abs() <= 1).to(g.dtype)


class _StepSTE(torch.autograd.Function):
    """1 where v >= 0 else 0; gradient passed where |v| <= 1."""

    @staticmethod
    def forward(ctx, v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return g * (v.abs() <= 1).to(g.dtype)


class _StraightThrough(torch.autograd.Function):
    """Forward the simulated accumulator, backward the gradient of the exact sum unchanged."""

    @staticmethod
    def forward(ctx, exact: torch.Tensor, acc: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return acc

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        return g, None


class _MaskedStraightThrough(torch.autograd.Function):
    """Like _StraightThrough, but no gradient through outputs whose accumulator overflowed.

    A wrapped sum sits at the far end of the range from the exact one, so the identity
    gradient there points the wrong way (pushing a too-large sum further up); the overflow
    penalty, not the task loss, is what should move such sums.
    """

    @staticmethod
    def forward(ctx, exact: torch.Tensor, acc: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(acc == exact)
        return acc

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        (ok,) = ctx.saved_tensors
        return g * ok.to(g.dtype), None


def sign_ste(v: torch.Tensor) -> torch.Tensor:
    return _SignSTE.apply(v)


def step_ste(v: torch.Tensor) -> torch.Tensor:
    return _StepSTE.apply(v)


def binarize(v: torch.Tensor, act: str) -> torch.Tensor:
    """Activation values of kind ``act``: pm1 -> {-1,+1}, 01 -> {0,1} (straight-through)."""
    return sign_ste(v) if act == "pm1" else step_ste(v)


def bits_to_values(bits: torch.Tensor, act: str, dtype: torch.dtype) -> torch.Tensor:
    """Stored bits (1 = positive value) to activation values of kind ``act``."""
    b = bits.to(dtype)
    return 2 * b - 1 if act == "pm1" else b


# --------------------------------------------------------------------------------------
# N-bit accumulator arithmetic on tensors (integer-valued floats or int64)
# --------------------------------------------------------------------------------------
def wrap_tensor(v: torch.Tensor, bits: int) -> torch.Tensor:
    """((v + 2^(N-1)) mod 2^N) - 2^(N-1), computed in int64, returned in v's dtype."""
    half = 1 << (bits - 1)
    iv = v.to(torch.int64)
    return (((iv + half) & ((half << 1) - 1)) - half).to(v.dtype)


def saturate_tiles(partials: torch.Tensor, bits: int) -> torch.Tensor:
    """acc = sat_N(acc + p_i) over the last axis, from 0. Exact in float32 below 2^24."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    acc = torch.zeros(partials.shape[:-1], dtype=partials.dtype, device=partials.device)
    for i in range(partials.shape[-1]):
        acc = (acc + partials[..., i]).clamp(lo, hi)
    return acc


@dataclass
class OverflowStats:
    """Counts over every output of a layer seen while ``track`` is on.

    outputs: outputs seen; overflowed: outputs whose N-bit accumulator differs from the
    exact sum; error_sum: sum of |acc - exact| over them (LSB of the accumulator);
    excess_sum: sum over all outputs of how far the exact sum lies outside the N-bit range.
    """

    outputs: int = 0
    overflowed: int = 0
    error_sum: float = 0.0
    excess_sum: float = 0.0

    def add(self, exact: torch.Tensor, acc: torch.Tensor, acc_spec: Accumulator) -> None:
        diff = (acc - exact).abs()
        over = diff > 0
        self.outputs += exact.numel()
        self.overflowed += int(over.sum())
        self.error_sum += float(diff.double().sum())
        excess = (exact.double() - acc_spec.hi).clamp_min(0) + (acc_spec.lo - exact.double()).clamp_min(0)
        self.excess_sum += float(excess.sum())

    def summary(self) -> dict:
        n = max(self.outputs, 1)
        return {
            "outputs": self.outputs,
            "overflow_fraction": self.overflowed / n,
            "mean_overflow_error": self.error_sum / max(self.overflowed, 1),
            "mean_excess": self.excess_sum / n,
        }


# --------------------------------------------------------------------------------------
# The binary convolution
# --------------------------------------------------------------------------------------
class BinaryConv1d(nn.Module):
    """1-D convolution, binary weights, "valid" padding, N-bit accumulator.

    weight: latent float [c_out, c_in // groups, kernel]; the forward uses its sign
    (bit 1 = +1, 0 counts as +1). input_kind: int8, pm1 or 01 (the values fed in).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        input_kind: str = "pm1",
        acc: Accumulator | None = None,
    ) -> None:
        super().__init__()
        if input_kind not in INPUT_KINDS:
            raise ValueError(f"input kind {input_kind!r}, expected one of {INPUT_KINDS}")
        if c_in % groups or c_out % groups:
            raise ValueError(f"groups {groups} must divide c_in {c_in} and c_out {c_out}")
        self.c_in, self.c_out, self.kernel = c_in, c_out, kernel
        self.stride, self.groups, self.input_kind = stride, groups, input_kind
        self.acc = acc or Accumulator()
        self.weight = nn.Parameter(torch.empty(c_out, c_in // groups, kernel).uniform_(-0.05, 0.05))
        self.stats: OverflowStats | None = None  # set to OverflowStats() to count
        self.want_excess = False
        self.mask_overflow_grad = False  # collaborative training: see _MaskedStraightThrough
        self.excess_bits: int | None = None  # range the excess is measured against (default: acc)
        self.last_excess: torch.Tensor | None = None
        self.last_acc: torch.Tensor | None = None  # accumulators of the last forward (detached)
        self.keep_acc = False

    @property
    def fan_in(self) -> int:
        return self.kernel * (self.c_in // self.groups)

    @property
    def max_abs_input(self) -> int:
        return 128 if self.input_kind == "int8" else 1

    @property
    def float32_exact(self) -> bool:
        """Whether every partial and prefix sum is an integer below 2^24 in magnitude."""
        return self.fan_in * self.max_abs_input < FLOAT32_EXACT

    def out_len(self, t_in: int) -> int:
        return (t_in - self.kernel) // self.stride + 1

    def binary_weight(self) -> torch.Tensor:
        return sign_ste(self.weight)

    def weight_bits(self) -> torch.Tensor:
        """uint8 [c_out, kernel, c_in // groups] in the integer model's layout, 1 = +1."""
        return (self.weight.detach() >= 0).to(torch.uint8).permute(0, 2, 1).contiguous()

    def partials(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Exact tile partial sums [B, c_out, T_out, n_tiles] in fan-in order."""
        b, _, _ = x.shape
        g, cg, k = self.groups, self.c_in // self.groups, self.kernel
        og, fan, tile = self.c_out // g, self.fan_in, self.acc.tile
        n_tiles = -(-fan // tile)
        pad = n_tiles * tile - fan
        xu = x.unfold(2, k, self.stride)  # [B, c_in, T_out, k]
        t_out = xu.shape[2]
        xu = xu.reshape(b, g, cg, t_out, k).permute(0, 3, 1, 4, 2).reshape(b, t_out, g, fan)
        wg = w.reshape(g, og, cg, k).permute(0, 1, 3, 2).reshape(g, og, fan)
        if pad:
            xu = F.pad(xu, (0, pad))
            wg = F.pad(wg, (0, pad))
        xu = xu.reshape(b, t_out, g, n_tiles, tile)
        wg = wg.reshape(g, og, n_tiles, tile)
        part = torch.einsum("btgnl,gonl->bgotn", xu, wg)
        return part.reshape(b, self.c_out, t_out, n_tiles)

    def accumulate(self, x: torch.Tensor, exact_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(exact sums, N-bit accumulators) [B, c_out, T_out], both integer-valued floats.

        The accumulator carries the straight-through gradient of the exact sum.
        """
        dtype = exact_dtype or (torch.float32 if self.float32_exact else torch.float64)
        if dtype == torch.float32 and not self.float32_exact:
            raise ValueError(
                f"fan-in {self.fan_in} x |input| {self.max_abs_input} reaches 2^24: float32 sums "
                "would not be exact"
            )
        x = x.to(dtype)
        w = self.binary_weight().to(dtype)
        spec = self.acc
        need_tiles = spec.mode == "saturate" and self.fan_in > spec.tile
        if need_tiles or (self.want_excess and spec.mode == "saturate"):
            part = self.partials(x, w)
            exact = part.sum(-1)
        else:
            part = None
            exact = F.conv1d(x, w, stride=self.stride, groups=self.groups)
        if exact.is_cuda:
            # cuDNN may pick FFT/Winograd kernels whose float error is far below 0.5:
            # rounding restores the exact integer sums (gradient unchanged)
            exact = exact + (torch.round(exact) - exact).detach()
            if part is not None:
                part = torch.round(part)
        with torch.no_grad():
            if spec.mode == "wrap":
                acc = exact if spec.bits >= 32 else wrap_tensor(exact, spec.bits)
            elif need_tiles:
                acc = saturate_tiles(part.detach(), spec.bits)
            else:
                acc = exact.clamp(spec.lo, spec.hi)
        if self.stats is not None:
            self.stats.add(exact.detach(), acc, spec)
        if self.want_excess:
            limit = float((1 << ((self.excess_bits or spec.bits) - 1)) - 1)
            if part is not None:
                prefix = part.cumsum(-1)
                over = (prefix.abs() - limit).clamp_min(0).amax(-1)
            else:
                over = (exact.abs() - limit).clamp_min(0)
            self.last_excess = over.float().mean()
        if self.keep_acc:
            self.last_acc = acc.detach()
        if acc is exact:
            return exact, exact
        ste = _MaskedStraightThrough if self.mask_overflow_grad else _StraightThrough
        return exact, ste.apply(exact, acc)


class OrPool(nn.Module):
    """OR pooling over ``kernel`` time steps (stride = kernel, floor) on binary activations.

    On values in {-1,+1} or {0,1} with bit 1 the larger value, OR is the max.
    """

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel

    def out_len(self, t_in: int) -> int:
        return t_in // self.kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool1d(x, self.kernel, self.kernel)
