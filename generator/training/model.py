"""Keyword-spotting models: the BNN (with its integer forward) and two float baselines.

BNN (:class:`BnnKws`). Input: int8 log-mel features [B, 49, 40]; the 40 mel bands are
the channels of 1-D convolutions over the 49 frames (TC-ResNet style: small fan-in,
no 2-D kernels). Layers, each a :class:`BnnLayer` (binary conv + batch-norm + output)
or an :class:`~bnnkws.generator.training.binary_layers.OrPool`:

* first: int8 features x binary weights (adds and subtracts), its own accumulator
  width (default 16 bits: fan-in 40 * kernel * 128 never leaves it), threshold to bits;
* hidden: binary conv at N bits, threshold to bits ({0,1} or {-1,+1});
* OR pooling over time where configured;
* last: a ``shiftbn`` conv whose kernel covers the remaining time steps, int32 scores.

The configuration is a plain dict (JSON-able, stored in checkpoints); :func:`bnn_preset`
gives the two architectures of the ablation. Float baselines: :class:`DSCNN` (the MLPerf
Tiny KWS DS-CNN shape, about 24K parameters) and :class:`TCResNet8` (Choi et al. 2019).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bnnkws.generator.integer import intmodel
from bnnkws.generator.training.binary_layers import (
    Accumulator,
    BinaryConv1d,
    OrPool,
    OverflowStats,
    binarize,
    bits_to_values,
)
from bnnkws.generator.training.shift_bn import ShiftBatchNorm, apply_shiftbn, apply_threshold

N_FRAMES = 49
N_MELS = 40


# --------------------------------------------------------------------------------------
# One BNN layer
# --------------------------------------------------------------------------------------
class BnnLayer(nn.Module):
    """Binary conv + (shift) batch-norm + output transform.

    output "threshold": bits of kind ``out_act`` (values pm1 {-1,+1} or 01 {0,1});
    output "shiftbn": scores. In training mode the output is the float batch-norm form
    (binarised with a straight-through estimate); in eval mode it is the integer form,
    computed from the integer parameters that export writes (so eval equals deployment).
    """

    def __init__(
        self,
        name: str,
        input_kind: str,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        groups: int,
        acc: Accumulator,
        output: str,
        out_act: str | None,
        ap2: bool,
    ) -> None:
        super().__init__()
        self.name = name
        self.conv = BinaryConv1d(c_in, c_out, kernel, stride, groups, input_kind, acc)
        self.bn = ShiftBatchNorm(c_out, ap2_scale=ap2)
        self.output = output
        self.out_act = out_act

    def out_len(self, t_in: int) -> int:
        return self.conv.out_len(t_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, acc = self.conv.accumulate(x)
        if self.training:
            y = self.bn(acc)
            if self.output == "threshold":
                y = binarize(y, self.out_act)
            return y
        return self.integer_transform(acc).to(x.dtype)

    def integer_transform(self, acc: torch.Tensor) -> torch.Tensor:
        """Integer output transform on accumulators [B, C, T].

        threshold -> activation values (bits mapped by out_act) as int64; shiftbn -> int32.
        """
        dev = acc.device
        if self.output == "threshold":
            thr, flip = self.bn.threshold()
            bits = apply_threshold(acc.double(), torch.from_numpy(thr).to(dev), torch.from_numpy(flip).to(dev))
            return bits_to_values(bits, self.out_act, torch.int64)
        p = {k: torch.from_numpy(v).to(dev) for k, v in self.bn.shiftbn().items()}
        return apply_shiftbn(acc.to(torch.int64), p)

    def integer_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Exact integer output: bits uint8 or int32 scores, [B, C, T]."""
        _, acc = self.conv.accumulate(x, exact_dtype=torch.float64)
        if self.output == "threshold":
            thr, flip = self.bn.threshold()
            out = apply_threshold(acc, torch.from_numpy(thr).to(acc.device), torch.from_numpy(flip).to(acc.device))
        else:
            out = self.integer_transform(acc)
        return out

    def to_int_layer(self) -> intmodel.ConvLayer:
        conv = self.conv
        w = conv.weight_bits().cpu().numpy()
        kw: dict[str, Any] = {}
        if self.output == "threshold":
            thr, flip = self.bn.threshold()
            kw = {"out_act": self.out_act, "thr": thr, "flip": flip}
        else:
            kw = dict(self.bn.shiftbn())
        return intmodel.ConvLayer(
            name=self.name,
            input=conv.input_kind,
            c_in=conv.c_in,
            c_out=conv.c_out,
            kernel=conv.kernel,
            stride=conv.stride,
            groups=conv.groups,
            weights=np.ascontiguousarray(w),
            acc_bits=conv.acc.bits,
            acc_mode=conv.acc.mode,
            tile=conv.acc.tile,
            output=self.output,
            **kw,
        )


# --------------------------------------------------------------------------------------
# Architecture configuration
# --------------------------------------------------------------------------------------
BNN_PRESETS = ("structured", "dense", "compact", "wide")

# channels of the first and hidden layers, channels per class before the last layer
_WIDTHS = {"structured": (128, 12), "dense": (128, 12), "compact": (64, 6), "wide": (256, 18)}


def bnn_preset(name: str, n_classes: int = 10) -> dict:
    """The BNN architectures; ``dense`` and ``structured`` differ only where overflow is decided.

    Both: int8 first layer 40 -> 128 channels (kernel 3, stride 2, 16-bit accumulator),
    three binary temporal convolutions (128, 128, 12 per class; kernel 3; OR pooling by 2
    after the first), and a last layer whose kernel covers the 7 remaining steps.

    ``dense``: {-1,+1} activations and an ungrouped last layer: hidden fan-in 384, last
    fan-in 7 * 12 * n_classes (840 for 10 classes), far beyond 2^(N-1) for N <= 10.
    ``structured``: {0,1} activations (a sum only counts the active inputs, so typical
    magnitudes halve) and a last layer grouped per class: class k sees only its own 12
    channels, fan-in 84 < 128, so at N >= 8 the scores can never overflow.
    ``compact``: ``structured`` at half the width (64 channels, 6 per class: hidden
    fan-in 192, last fan-in 42), about a quarter of the binary work and half the int8
    work — the shape sized for the Cortex-M4 budget of docs/BENCH_MCU.md.
    ``wide``: ``structured`` at twice the width (256 channels, 18 per class: hidden
    fan-in 768, last fan-in 7 * 18 = 126 < 128, so the scores still never overflow at
    N >= 8), about twice the int8 work and three to four times the binary work of
    ``structured`` — the more accurate shape once the firmware computes only the new
    time steps of each layer.
    The first layer's 16-bit accumulator holds for every width: its fan-in is
    40 * 3 = 120 int8 inputs whatever the output channels, |sum| <= 120 * 128 < 2^15.
    Accumulator and batch-norm kind are set by the caller (see :func:`bnn_config`).
    """
    if name not in BNN_PRESETS:
        raise ValueError(f"unknown BNN preset {name!r}, expected one of {', '.join(BNN_PRESETS)}")
    width, per_class = _WIDTHS[name]
    structured = name != "dense"
    return {
        "kind": "bnn",
        "preset": name,
        "n_frames": N_FRAMES,
        "n_mels": N_MELS,
        "n_classes": n_classes,
        "act": "01" if structured else "pm1",
        "first": {"c_out": width, "kernel": 3, "stride": 2, "acc_bits": 16},
        "blocks": [
            {"c_out": width, "kernel": 3, "stride": 1, "groups": 1, "pool": 2},
            {"c_out": width, "kernel": 3, "stride": 1, "groups": 1, "pool": 1},
            {"c_out": per_class * n_classes, "kernel": 3, "stride": 1, "groups": 1, "pool": 1},
        ],
        "last": {"groups": n_classes if structured else 1, "pool": 1},
    }


def bnn_config(
    preset: str = "structured",
    n_classes: int = 10,
    acc_bits: int = 8,
    acc_mode: str = "wrap",
    tile: int = 32,
    ap2: bool = True,
    first_acc_bits: int | None = None,
) -> dict:
    """A full BNN config: a preset plus accumulator and batch-norm settings."""
    cfg = bnn_preset(preset, n_classes)
    cfg["acc"] = Accumulator(acc_bits, acc_mode, tile).to_dict()
    if first_acc_bits is not None:
        cfg["first"]["acc_bits"] = int(first_acc_bits)
    cfg["ap2"] = bool(ap2)
    return cfg


# --------------------------------------------------------------------------------------
# The BNN
# --------------------------------------------------------------------------------------
class BnnKws(nn.Module):
    """Binary keyword spotter over int8 features [B, T, F] -> scores [B, n_classes]."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        cfg = self.config
        acc = Accumulator(**cfg["acc"])
        act, ap2 = cfg["act"], cfg.get("ap2", True)
        layers: list[nn.Module] = []
        t, c = cfg["n_frames"], cfg["n_mels"]
        f = cfg["first"]
        first_acc = Accumulator(f.get("acc_bits", 16), acc.mode, acc.tile)
        layers.append(BnnLayer("conv0", "int8", c, f["c_out"], f["kernel"], f["stride"], 1, first_acc,
                               "threshold", act, ap2))
        t, c = layers[-1].out_len(t), f["c_out"]
        blocks = cfg["blocks"]
        for i, blk in enumerate(blocks):
            layers.append(BnnLayer(f"conv{i + 1}", act, c, blk["c_out"], blk["kernel"], blk.get("stride", 1),
                                   blk.get("groups", 1), Accumulator(**acc.to_dict()), "threshold", act, ap2))
            t, c = layers[-1].out_len(t), blk["c_out"]
            if blk.get("pool", 1) > 1:
                layers.append(OrPool(blk["pool"]))
                t = t // blk["pool"]
        last = cfg["last"]
        if last.get("pool", 1) == 0:  # pool all remaining time into one step
            layers.append(OrPool(t))
            t = 1
        elif last.get("pool", 1) > 1:
            layers.append(OrPool(last["pool"]))
            t = t // last["pool"]
        if t < 1:
            raise ValueError(f"BNN config leaves no time steps before the last layer (T={t})")
        layers.append(BnnLayer(f"conv{len(blocks) + 1}", act, c, cfg["n_classes"], t, 1, last.get("groups", 1),
                               Accumulator(**acc.to_dict()), "shiftbn", None, ap2))
        self.layers = nn.ModuleList(layers)
        self.labels: list[str] | None = None
        self.frontend_bytes: bytes | None = None

    # -- accumulators --------------------------------------------------------------------
    def binary_convs(self) -> list[BinaryConv1d]:
        """Convolutions with binary inputs (every layer but the first)."""
        return [m.conv for m in self.conv_layers()[1:]]

    def conv_layers(self) -> list[BnnLayer]:
        return [m for m in self.layers if isinstance(m, BnnLayer)]

    def set_accumulator(self, bits: int | None = None, mode: str | None = None, tile: int | None = None,
                        first_bits: int | None = None) -> None:
        """Change the accumulators (binary-input layers; the first layer with first_bits)."""
        for conv in self.binary_convs():
            a = conv.acc
            conv.acc = Accumulator(bits or a.bits, mode or a.mode, tile or a.tile)
        first = self.conv_layers()[0].conv
        a = first.acc
        first.acc = Accumulator(first_bits or a.bits, mode or a.mode, tile or a.tile)
        self.config["acc"] = self.binary_convs()[0].acc.to_dict()
        self.config["first"]["acc_bits"] = first.acc.bits

    @property
    def accumulator(self) -> Accumulator:
        return self.binary_convs()[0].acc

    def track_overflow(self, on: bool = True) -> None:
        for m in self.conv_layers():
            m.conv.stats = OverflowStats() if on else None

    def overflow_report(self) -> list[dict]:
        out = []
        for m in self.conv_layers():
            st = m.conv.stats.summary() if m.conv.stats is not None else {}
            out.append({"layer": m.name, "fan_in": m.conv.fan_in, "acc_bits": m.conv.acc.bits,
                        "acc_mode": m.conv.acc.mode, **st})
        return out

    # -- forward -------------------------------------------------------------------------
    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Scores [B, n_classes] for int8-valued features [B, T, F] (any numeric dtype)."""
        x = feats.float().transpose(1, 2)
        for layer in self.layers:
            x = layer(x)
        return x[:, :, 0]

    @torch.no_grad()
    def integer_forward(self, feats: torch.Tensor, all_layers: bool = False):
        """The deployed arithmetic, exactly: int32 scores [B, n_classes].

        all_layers=True returns every layer's output in the integer model's layout
        [B, T, C]: uint8 bits (1 = positive value) or int32 scores (last layer).
        Equal to ``to_integer_model(self).forward(feats, all_layers)``.
        """
        x = feats.to(torch.float64)
        if x.ndim == 2:
            x = x[None]
        x = x.transpose(1, 2)
        outs = []
        kind = "int8"
        for layer in self.layers:
            if isinstance(layer, BnnLayer):
                if kind != "int8":
                    x = bits_to_values(x, kind, torch.float64)
                x = layer.integer_forward(x)
                kind = layer.out_act if layer.output == "threshold" else "int32"
            else:  # OR pooling on bits
                x = layer(x.to(torch.float64)).to(torch.uint8)
            outs.append(x.transpose(1, 2).contiguous())
        return outs if all_layers else outs[-1][:, 0, :]

    # -- size and cost -------------------------------------------------------------------
    def cost(self) -> dict:
        """Model size and work per inference (one 49-frame window)."""
        t = self.config["n_frames"]
        weight_bits = 0
        packed = 0
        extra = 0
        binary_ops = 0
        int8_adds = 0
        for layer in self.layers:
            if isinstance(layer, BnnLayer):
                cv = layer.conv
                t_out = cv.out_len(t)
                n = cv.c_out * cv.kernel * (cv.c_in // cv.groups)
                weight_bits += n
                packed += cv.c_out * cv.kernel * (-(-(cv.c_in // cv.groups) // 32)) * 4
                extra += cv.c_out * (5 if layer.output == "threshold" else 10)
                work = t_out * cv.c_out * cv.fan_in
                if cv.input_kind == "int8":
                    int8_adds += work
                else:
                    binary_ops += work
                t = t_out
            else:
                t = layer.out_len(t)
        return {
            "binary_params": weight_bits,
            "weight_bytes": packed,
            "model_bytes": packed + extra,
            "binary_ops": binary_ops,
            "int8_additions": int8_adds,
        }


# --------------------------------------------------------------------------------------
# Float baselines
# --------------------------------------------------------------------------------------
class FloatKws(nn.Module):
    """Common input handling of the float baselines: int8 features scaled by 1/32."""

    config: dict

    def cost(self) -> dict:
        params = sum(p.numel() for p in self.parameters())
        return {"float_params": params, "model_bytes": 4 * params, "macs": self.macs()}

    def macs(self) -> int:
        total = 0

        def hook(mod, inp, out):
            nonlocal total
            if isinstance(mod, nn.Conv2d | nn.Conv1d):
                k = int(np.prod(mod.kernel_size)) * (mod.in_channels // mod.groups)
                total += out.numel() * k
            elif isinstance(mod, nn.Linear):
                total += mod.in_features * mod.out_features

        hs = [m.register_forward_hook(hook) for m in self.modules()]
        was = self.training
        self.eval()
        with torch.no_grad():
            self(torch.zeros(1, self.config["n_frames"], self.config["n_mels"]))
        self.train(was)
        for h in hs:
            h.remove()
        return total


class DSCNN(FloatKws):
    """Depthwise-separable CNN shaped like the MLPerf Tiny KWS reference (64 channels,
    a 10x4 stride-2 first conv, four depthwise 3x3 + pointwise blocks, average pool, FC).

    Here on 49 x 40 log-mel bands (the reference uses 49 x 10 MFCCs), same parameter count.
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        c = config.get("channels", 64)
        self.stem = nn.Sequential(nn.Conv2d(1, c, (10, 4), (2, 2), padding=(5, 1), bias=False),
                                  nn.BatchNorm2d(c), nn.ReLU())
        blocks = []
        for _ in range(config.get("blocks", 4)):
            blocks += [nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
        self.blocks = nn.Sequential(*blocks)
        self.drop = nn.Dropout(config.get("dropout", 0.2))
        self.fc = nn.Linear(c, config["n_classes"])
        self.labels: list[str] | None = None
        self.frontend_bytes: bytes | None = None

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = feats.float()[:, None] / 32.0
        x = self.blocks(self.stem(x))
        return self.fc(self.drop(x.mean(dim=(2, 3))))


class _TCBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(c_in, c_out, 9, stride, 4, bias=False)
        self.b1 = nn.BatchNorm1d(c_out)
        self.c2 = nn.Conv1d(c_out, c_out, 9, 1, 4, bias=False)
        self.b2 = nn.BatchNorm1d(c_out)
        self.skip = None
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm1d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (x if self.skip is None else self.skip(x)))


class TCResNet8(FloatKws):
    """TC-ResNet8 (Choi et al., Interspeech 2019): temporal 1-D convolutions over frames
    with the mel bands as channels; 3 residual blocks (kernel 9, stride 2), width
    multiplier ``width`` on 16/24/32/48 channels."""

    # (output channels, stride) of each residual block after a 16-channel stem
    PLAN: tuple[tuple[int, int], ...] = ((24, 2), (32, 2), (48, 2))

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        k = config.get("width", 1.0)
        ch = [int(round(16 * k))] + [int(round(c * k)) for c, _ in self.PLAN]
        self.stem = nn.Conv1d(config["n_mels"], ch[0], 3, 1, 1, bias=False)
        self.blocks = nn.Sequential(
            *[_TCBlock(ch[i], ch[i + 1], s) for i, (_, s) in enumerate(self.PLAN)]
        )
        self.drop = nn.Dropout(config.get("dropout", 0.2))
        self.fc = nn.Linear(ch[-1], config["n_classes"])
        self.labels: list[str] | None = None
        self.frontend_bytes: bytes | None = None

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = feats.float().transpose(1, 2) / 32.0
        x = self.blocks(self.stem(x))
        return self.fc(self.drop(x.mean(dim=2)))


def float_config(kind: str, n_classes: int = 10) -> dict:
    """Config of a float baseline: kind "dscnn" or "tcresnet8"."""
    if kind not in ("dscnn", "tcresnet8"):
        from bnnkws.generator.training import kws_zoo  # the other literature baselines

        return kws_zoo.zoo_config(kind, n_classes)
    return {"kind": kind, "n_frames": N_FRAMES, "n_mels": N_MELS, "n_classes": n_classes}


def build_model(config: dict) -> nn.Module:
    """Model for a config dict (as stored in checkpoints)."""
    kind = config.get("kind")
    if kind == "bnn":
        return BnnKws(config)
    if kind == "dscnn":
        return DSCNN(config)
    if kind == "tcresnet8":
        return TCResNet8(config)
    from bnnkws.generator.training import kws_zoo

    if kind in kws_zoo.CLASSES:
        return kws_zoo.build(config)
    raise ValueError(f"unknown model kind {kind!r}, expected bnn, dscnn or tcresnet8")
