"""Shift-based batch normalisation: power-of-two scales, integer bias, exact integer forms.

Training form (per channel o, accumulator value a):

    y = scale[o] * (a - mu[o]) + beta[o]          scale = AP2(gamma / sqrt(var + eps))

AP2 (Hubara/Courbariaux et al. 2016) rounds a scale to a signed power of two:
``AP2(x) = sign(x) * 2^round(log2|x|)`` with the exponent clamped to -16..16. Its
backward is the identity (straight-through estimate), so gamma keeps learning while the
forward already uses the deployable scale. With ``ap2=False`` the layer is an ordinary
batch-norm (the float baseline of the ablation); export then rounds its scale to a power
of two once (post-training) where a shift form is needed.

Two exact integer forms at inference:

* **threshold** (a sign follows): ``y >= 0`` is one comparison of the accumulator with
  an integer; the derivation is :func:`bnnkws.generator.integer.intmodel.fold_threshold`
  (negative scale flips the comparison).
* **shiftbn** (the scores of the last layer): ``y = sign * shift(a - mu, s) + beta``
  with integer mu and beta. Scores are compared by argmax only, so the whole layer may be
  multiplied by a common ``2^k``: ``y' = 2^k * y``. Choosing ``k = -min(s)`` makes every
  shift a left shift; then ``mu`` folds into the bias exactly,
  ``sign * 2^(s+k) * (a - mu) + 2^k beta = sign * (a << (s+k)) + (2^k beta - sign 2^(s+k) mu)``,
  and the only rounding left is that of one integer bias per class (at most 1/2 on a
  scale 2^k times finer than the trained logits). Channels whose shift must stay
  negative (a spread of exponents above 16) keep ``mu`` and ``beta`` rounded separately.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from bnnkws.generator.integer.intmodel import fold_scale_threshold, fold_threshold

SHIFT_MIN = -16
SHIFT_MAX = 16
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


class _AP2(torch.autograd.Function):
    """sign(x) * 2^clamp(round(log2|x|)) forward, identity backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        s = torch.round(torch.log2(x.abs().clamp_min(2.0**SHIFT_MIN)))
        s = s.clamp(SHIFT_MIN, SHIFT_MAX)
        sign = torch.where(x >= 0, 1.0, -1.0).to(x.dtype)
        return sign * torch.exp2(s)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return g


def ap2(x: torch.Tensor) -> torch.Tensor:
    """Approximate power of two with a straight-through gradient."""
    return _AP2.apply(x)


def ap2_exponent(x: float) -> tuple[int, int]:
    """(sign, s) with AP2(x) = sign * 2^s, s in -16..16; the same rounding as :func:`ap2`."""
    sign = 1 if x >= 0 else -1
    mag = max(abs(float(x)), 2.0**SHIFT_MIN)
    s = int(np.clip(round(math.log2(mag)), SHIFT_MIN, SHIFT_MAX))
    # torch.round and Python round both round half to even
    return sign, s


class ShiftBatchNorm(nn.Module):
    """Batch-norm over [B, C, T] accumulators with optional power-of-two (AP2) scales.

    Running statistics follow torch's BatchNorm (momentum 0.1, unbiased running var).
    The integer forms come from the running statistics: :meth:`threshold` and
    :meth:`shiftbn`. With AP2 scales the training forward takes its power-of-two scale
    from the running variance as well (the batch variance only normalises), so the
    exponent a model was trained with is the one :meth:`exponents` exports.
    """

    def __init__(self, channels: int, ap2_scale: bool = True, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.ap2_scale = ap2_scale
        self.momentum = momentum
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.update_stats = True  # switched off for a partner (second) forward pass

    def scale(self, var: torch.Tensor) -> torch.Tensor:
        raw = self.gamma / torch.sqrt(var.to(self.gamma.dtype) + self.eps)
        return ap2(raw) if self.ap2_scale else raw

    def forward(self, acc: torch.Tensor) -> torch.Tensor:
        """Float training form y = scale * (acc - mean) + beta on [B, C, T].

        Written as y = x_hat * (scale * sigma) + beta with x_hat from torch's fused
        batch-norm (gradients through the batch statistics included); sigma enters the
        effective gain detached, so the gain's gradient reaches gamma as in a plain BN.
        """
        if self.training:
            rm, rv = (self.running_mean, self.running_var) if self.update_stats else (None, None)
            x_hat, _, invstd = torch.native_batch_norm(acc, None, None, rm, rv, True, self.momentum, self.eps)
            var = (invstd.detach().double() ** -2 - self.eps).clamp_min(0).to(acc.dtype)
        else:
            var = self.running_var.to(acc.dtype)
            x_hat = (acc - self.running_mean.to(acc.dtype)[None, :, None]) / torch.sqrt(var + self.eps)[None, :, None]
        # AP2 exponents from the running variance in training too (after this batch's
        # update), the variance that export uses: the trained power of two is the deployed one
        scaled = self.running_var.to(acc.dtype) if self.ap2_scale else var
        gain = self.scale(scaled) * torch.sqrt(var.to(self.gamma.dtype) + self.eps)
        return torch.addcmul(self.beta[None, :, None], x_hat, gain[None, :, None])

    # -- integer forms -------------------------------------------------------------------
    def _float_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mu, raw scale, beta) as float64 numpy from the running statistics."""
        mu = self.running_mean.detach().double().cpu().numpy()
        var = self.running_var.detach().double().cpu().numpy()
        gamma = self.gamma.detach().double().cpu().numpy()
        beta = self.beta.detach().double().cpu().numpy()
        return mu, gamma / np.sqrt(var + self.eps), beta

    def exponents(self) -> tuple[np.ndarray, np.ndarray]:
        """(sign int8, s int8) of each channel's power-of-two scale.

        With ap2_scale the forward already used exactly these; otherwise they round the
        float scale once (post-training).
        """
        _, raw, _ = self._float_params()
        pairs = [ap2_exponent(v) for v in raw]
        return (np.array([p[0] for p in pairs], dtype=np.int8),
                np.array([p[1] for p in pairs], dtype=np.int8))

    def threshold(self) -> tuple[np.ndarray, np.ndarray]:
        """(thr int32, flip uint8): output bit = acc >= thr (flip 0) or acc <= thr (flip 1).

        AP2 scales fold through intmodel.fold_threshold, a float scale through
        intmodel.fold_scale_threshold (the same rule; the derivation is there).
        """
        mu, raw, beta = self._float_params()
        thr = np.zeros(self.channels, dtype=np.int64)
        flip = np.zeros(self.channels, dtype=np.uint8)
        if self.ap2_scale:
            sign, s = self.exponents()
            for o in range(self.channels):
                thr[o], flip[o] = fold_threshold(float(mu[o]), int(sign[o]), int(s[o]), float(beta[o]))
        else:
            for o in range(self.channels):
                thr[o], flip[o] = fold_scale_threshold(float(mu[o]), float(raw[o]), float(beta[o]))
        return thr.astype(np.int32), flip

    def shiftbn(self) -> dict[str, np.ndarray]:
        """Integer shiftbn parameters (mu int32, shift int8, sign int8, beta int32).

        The result equals 2^k times the float form for one common k >= 0 (see the module
        docstring), up to the rounding of beta.
        """
        mu, _, beta = self._float_params()
        sign, s = self.exponents()
        s = s.astype(np.int64)
        k = int(max(0, min(-int(s.min()), SHIFT_MAX - int(s.max()))))
        s2 = s + k
        mu_i = np.zeros(self.channels, dtype=np.int64)
        beta_i = np.zeros(self.channels, dtype=np.int64)
        for o in range(self.channels):
            if s2[o] >= 0:
                b = (2.0**k) * beta[o] - int(sign[o]) * (2.0 ** int(s2[o])) * mu[o]
                beta_i[o] = round(b)
            else:
                mu_i[o] = round(mu[o])
                beta_i[o] = round((2.0**k) * beta[o])
        return {
            "mu": np.clip(mu_i, INT32_MIN, INT32_MAX).astype(np.int32),
            "shift": s2.astype(np.int8),
            "sign": sign.astype(np.int8),
            "beta": np.clip(beta_i, INT32_MIN, INT32_MAX).astype(np.int32),
        }


def shift_tensor(v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """int64 v << s for s >= 0, v >> -s (arithmetic, floor) for s < 0; elementwise."""
    s = s.to(torch.int64)
    left = v * torch.pow(2, s.clamp_min(0))
    right = torch.div(v, torch.pow(2, (-s).clamp_min(0)), rounding_mode="floor")
    return torch.where(s >= 0, left, right)


def apply_threshold(acc: torch.Tensor, thr: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Bits (uint8) of the threshold transform on integer accumulators [B, C, T]."""
    thr = thr.to(acc.dtype)[None, :, None]
    cond = torch.where(flip.bool()[None, :, None], acc <= thr, acc >= thr)
    return cond.to(torch.uint8)


def apply_shiftbn(acc: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """int32 scores of the shiftbn transform on int64 accumulators [B, C, T]."""
    acc = acc.to(torch.int64)
    mu = p["mu"].to(torch.int64)[None, :, None]
    s = p["shift"].to(torch.int64)[None, :, None].expand_as(acc)
    sign = p["sign"].to(torch.int64)[None, :, None]
    beta = p["beta"].to(torch.int64)[None, :, None]
    y = sign * shift_tensor(acc - mu, s) + beta
    return y.clamp(INT32_MIN, INT32_MAX).to(torch.int32)
