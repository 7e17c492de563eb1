"""Ten keyword-spotting networks from the literature, as float baselines for the accelerator
comparison (docs/ACCELERATOR.md): trained by the same trainer on the same features and
split as the BNN, measured in float and with int8 quantisation simulated, their int8 work
listed layer by layer for the int8 MAC machine (tools/bench/accelerator_model.py).

Why these ten: the seven architectures of Zhang et al., "Hello Edge: Keyword Spotting on
Microcontrollers" (arXiv:1711.07128, 2017) in their small (microcontroller-sized)
variants — DNN, CNN, LSTM, GRU, CRNN, DS-CNN (the MLPerf Tiny reference shape) and the
basic recurrent baselines — are the usual comparison set of KWS accelerator papers; the
three compact temporal-convolution networks that followed are the strongest small models:
TC-ResNet8 and TC-ResNet14 (Choi et al., Interspeech 2019), MatchboxNet-3x1x64 (Majumdar
& Ginsburg, Interspeech 2020) and BC-ResNet-1 (Kim et al., Interspeech 2021).

Every network takes the int8 log-mel features [B, 49, 40] (scaled by 1/32, as
:class:`~bnnkws.generator.training.model.FloatKws`), where the papers used 49 x 10 MFCCs
(Hello Edge) or 40-64 log-mel bands: layer widths follow the papers, input-dependent sizes
(flattened inputs, frequency extents) follow our input. BC-ResNet uses batch norm where
the paper uses sub-spectral norm. Published accuracies (:data:`PUBLISHED`) are for the
full Google Speech Commands 12-class task; ours are on this project's data and labels,
so the two columns are not the same measurement.

int8 simulation (:func:`int8_evaluate`): post-training, weights symmetric per output
channel (per gate row for recurrent layers), activations asymmetric per tensor at the
input of every convolution, linear and recurrent layer, ranges calibrated on training
features; batch norm is left unfolded, which for per-channel symmetric weights gives the
same quantised weights as folding first; biases, residual additions and the recurrent
state stay in float (an int8 deployment keeps biases in int32 and states in int16).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bnnkws.generator.training.model import DSCNN, N_FRAMES, N_MELS, FloatKws, TCResNet8, _TCBlock

# kind: (name, published accuracy %, where it was published)
PUBLISHED = {
    "dnn": ("DNN", 84.6, "Zhang et al. 2017 (Hello Edge), DNN-S, GSC v1 12 classes"),
    "cnn": ("CNN", 91.6, "Zhang et al. 2017 (Hello Edge), CNN-S, GSC v1 12 classes"),
    "lstm": ("LSTM", 92.9, "Zhang et al. 2017 (Hello Edge), LSTM-S, GSC v1 12 classes"),
    "gru": ("GRU", 93.5, "Zhang et al. 2017 (Hello Edge), GRU-S, GSC v1 12 classes"),
    "crnn": ("CRNN", 94.0, "Zhang et al. 2017 (Hello Edge), CRNN-S, GSC v1 12 classes"),
    "dscnn": ("DS-CNN", 94.4, "Zhang et al. 2017 (Hello Edge), DS-CNN-S, GSC v1 12 classes"),
    "tcresnet8": ("TC-ResNet8", 96.1, "Choi et al. 2019, GSC v1 12 classes"),
    "tcresnet14": ("TC-ResNet14", 96.2, "Choi et al. 2019, GSC v1 12 classes"),
    "matchboxnet": ("MatchboxNet-3x1x64", 97.2, "Majumdar & Ginsburg 2020, GSC v1 12 classes"),
    "bcresnet1": ("BC-ResNet-1", 96.6, "Kim et al. 2021, GSC v1 12 classes"),
}
ZOO = tuple(PUBLISHED)


class Add(nn.Module):
    """A residual (or broadcast) addition, as a module so that costing sees it."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class GlobalPool(nn.Module):
    """Mean over the given dims, as a module so that costing sees it."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=self.dims)


class _Zoo(FloatKws):
    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        self.labels: list[str] | None = None
        self.frontend_bytes: bytes | None = None

    @staticmethod
    def _in(feats: torch.Tensor) -> torch.Tensor:
        return feats.float() / 32.0  # [B, T, F]

    def macs(self) -> int:
        return sum(layer["macs"] for layer in mac_layers(self))


class DNN(_Zoo):
    """Hello Edge DNN-S: three fully connected layers of 144 units on the flattened input."""

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        h = config.get("hidden", 144)
        d = config["n_frames"] * config["n_mels"]
        self.net = nn.Sequential(
            nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU()
        )
        self.fc = nn.Linear(h, config["n_classes"])

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net(self._in(feats).flatten(1)))


class CNN(_Zoo):
    """Hello Edge CNN-S: conv 28 x (10x4), conv 30 x (10x4) stride (2,1), linear 16,
    fully connected 128."""

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.c1 = nn.Sequential(nn.Conv2d(1, 28, (10, 4)), nn.BatchNorm2d(28), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(28, 30, (10, 4), (2, 1)), nn.BatchNorm2d(30), nn.ReLU())
        t1, f1 = config["n_frames"] - 9, config["n_mels"] - 3
        t2, f2 = (t1 - 10) // 2 + 1, f1 - 3
        self.lin = nn.Linear(30 * t2 * f2, 16)
        self.fc1 = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Dropout(0.2))
        self.fc = nn.Linear(128, config["n_classes"])

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.c2(self.c1(self._in(feats)[:, None]))
        return self.fc(self.fc1(self.lin(x.flatten(1))))


class _Rnn(_Zoo):
    """One recurrent layer over the frames (mel bands as the input vector), the last
    output to a fully connected layer."""

    cell: type[nn.Module] = nn.LSTM
    units = 98

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.rnn = self.cell(config["n_mels"], config.get("units", self.units), batch_first=True)
        self.fc = nn.Linear(config.get("units", self.units), config["n_classes"])

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(self._in(feats))
        return self.fc(y[:, -1])


class LSTM(_Rnn):
    """Hello Edge LSTM-S: 98 cells."""

    cell = nn.LSTM
    units = 98


class GRU(_Rnn):
    """Hello Edge GRU-S: 154 units."""

    cell = nn.GRU
    units = 154


class CRNN(_Zoo):
    """Hello Edge CRNN-S: conv 48 x (10x4) stride (2,2), one GRU layer of 60 units over
    the conv output's time steps, fully connected 84."""

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.conv = nn.Sequential(nn.Conv2d(1, 48, (10, 4), (2, 2)), nn.BatchNorm2d(48), nn.ReLU())
        f = (config["n_mels"] - 4) // 2 + 1
        self.rnn = nn.GRU(48 * f, 60, batch_first=True)
        self.fc1 = nn.Sequential(nn.Linear(60, 84), nn.ReLU(), nn.Dropout(0.2))
        self.fc = nn.Linear(84, config["n_classes"])

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.conv(self._in(feats)[:, None])  # [B, 48, T', F']
        x = x.permute(0, 2, 1, 3).flatten(2)  # [B, T', 48 F']
        y, _ = self.rnn(x)
        return self.fc(self.fc1(y[:, -1]))


class TCResNet14(TCResNet8):
    """TC-ResNet14 (Choi et al. 2019): as TC-ResNet8 with six residual blocks
    (24, 24, 32, 32, 48, 48 channels; stride 2 in the first of each pair)."""

    PLAN = ((24, 2), (24, 1), (32, 2), (32, 1), (48, 2), (48, 1))


class _SepBlock(nn.Module):
    """MatchboxNet block (R = 1): time-channel separable conv (depthwise over time, then
    pointwise), batch norm, a pointwise + batch-norm residual, ReLU, dropout."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.dw = nn.Conv1d(c_in, c_in, k, padding=k // 2, groups=c_in, bias=False)
        self.pw = nn.Conv1d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm1d(c_out)
        self.res = nn.Sequential(nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out))
        self.add = Add()
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(F.relu(self.add(self.bn(self.pw(self.dw(x))), self.res(x))))


class MatchboxNet(_Zoo):
    """MatchboxNet-3x1x64: prologue separable conv (128, k 11, stride 2), three blocks of
    64 channels (k 13, 15, 17), epilogue separable conv (128, k 29, dilation 2), pointwise
    128, pointwise to the classes, global average pool."""

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        c = config["n_mels"]

        def sep(c_in: int, c_out: int, k: int, stride: int = 1, dil: int = 1) -> nn.Sequential:
            pad = dil * (k // 2)
            return nn.Sequential(
                nn.Conv1d(c_in, c_in, k, stride, pad, dil, groups=c_in, bias=False),
                nn.Conv1d(c_in, c_out, 1, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(),
            )

        self.prologue = sep(c, 128, 11, 2)
        self.blocks = nn.Sequential(
            _SepBlock(128, 64, 13), _SepBlock(64, 64, 15), _SepBlock(64, 64, 17)
        )
        self.epilogue = nn.Sequential(
            sep(64, 128, 29, dil=2),
            nn.Conv1d(128, 128, 1, bias=False),
            nn.BatchNorm1d(128),
            nn.ReLU(),
            nn.Conv1d(128, config["n_classes"], 1),
        )
        self.pool = GlobalPool((2,))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self._in(feats).transpose(1, 2)
        return self.pool(self.epilogue(self.blocks(self.prologue(x))))


class _BcBlock(nn.Module):
    """BC-ResNet block: frequency-depthwise conv (3 x 1) + norm -> f2; average over
    frequency -> temporal depthwise conv (1 x 3) + norm + swish + pointwise + dropout -> f1;
    out = relu(x + f2 + broadcast f1). A transition block (channels change) first maps the
    input by pointwise conv + norm + relu and has no identity term."""

    def __init__(self, c_in: int, c_out: int, stride: int, dil: int) -> None:
        super().__init__()
        self.transition = c_in != c_out
        self.pre = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())
            if self.transition
            else None
        )
        self.f2 = nn.Sequential(
            nn.Conv2d(c_out, c_out, (3, 1), (stride, 1), (1, 0), groups=c_out, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.fpool = GlobalPool((2,))  # [B, C, F, T] -> mean over F
        self.f1 = nn.Sequential(
            nn.Conv1d(c_out, c_out, 3, 1, dil, dil, groups=c_out, bias=False),
            nn.BatchNorm1d(c_out),
            nn.SiLU(),
            nn.Conv1d(c_out, c_out, 1, bias=False),
            nn.Dropout(0.1),
        )
        self.add1 = Add()
        self.add2 = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, F, T]
        if self.pre is not None:
            x = self.pre(x)
        y = self.f2(x)
        z = self.f1(self.fpool(y))[:, :, None, :]
        out = self.add1(y, z)
        if not self.transition:
            out = self.add2(out, x)
        return F.relu(out)


class BCResNet1(_Zoo):
    """BC-ResNet-1 (tau = 1): conv 5x5 stride (2,1) to 16 channels; stages of 2, 2, 4, 4
    blocks with 8, 12, 16, 20 channels (frequency stride 2 entering stages 2 and 3,
    temporal dilation 1, 2, 4, 8); depthwise conv 5x5 over frequency, pointwise 32,
    average pool, pointwise to the classes."""

    def __init__(self, config: dict) -> None:
        super().__init__(config)
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 5, (2, 1), 2, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        blocks, c = [], 16
        for n, (ch, stride, dil) in enumerate(((8, 1, 1), (12, 2, 2), (16, 2, 4), (20, 1, 8))):
            for i in range((2, 2, 4, 4)[n]):
                blocks.append(_BcBlock(c, ch, stride if i == 0 else 1, dil))
                c = ch
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Conv2d(20, 20, (5, 5), padding=(0, 2), groups=20, bias=False),
            nn.Conv2d(20, 32, 1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
        )
        self.pool = GlobalPool((2, 3))
        self.fc = nn.Conv2d(32, config["n_classes"], 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self._in(feats).transpose(1, 2)[:, None]  # [B, 1, F, T]
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.pool(x)[:, :, None, None])[:, :, 0, 0]


CLASSES: dict[str, Callable[[dict], nn.Module]] = {
    "dnn": DNN,
    "cnn": CNN,
    "lstm": LSTM,
    "gru": GRU,
    "crnn": CRNN,
    "dscnn": DSCNN,
    "tcresnet8": TCResNet8,
    "tcresnet14": TCResNet14,
    "matchboxnet": MatchboxNet,
    "bcresnet1": BCResNet1,
}


def zoo_config(kind: str, n_classes: int = 10) -> dict:
    if kind not in CLASSES:
        raise ValueError(f"unknown KWS model {kind!r}, expected one of {', '.join(ZOO)}")
    return {"kind": kind, "n_frames": N_FRAMES, "n_mels": N_MELS, "n_classes": n_classes}


def build(config: dict) -> nn.Module:
    return CLASSES[config["kind"]](config)


# --------------------------------------------------------------------------------------
# The int8 view: MAC layers for the int8 MAC machine
# --------------------------------------------------------------------------------------
def _rnn_layer(mod: nn.Module, n_in: int, steps: int, batch: int) -> dict:
    """Per inference: gate matrix-vector products (gates x units x (inputs + units)) at
    every step, plus the elementwise gate products (LSTM: c = f c + i g and h = o tanh c,
    3 per unit; GRU: r h, z h and (1 - z) n, 3 per unit) counted as MACs; one
    requantisation per gate value."""
    gates = 4 if isinstance(mod, nn.LSTM) else 3
    h, x = mod.hidden_size, mod.input_size
    per_step = gates * h * (x + h) + 3 * h
    return {
        "name": type(mod).__name__.lower(),
        "kind": "rnn",
        "macs": steps * per_step,
        "outputs": steps * gates * h,
        "weights": gates * h * (x + h),
        "channels": gates * h,
        "adds": 0,
        "in_values": n_in // batch,
        "out_values": steps * h,
    }


def mac_layers(model: nn.Module) -> list[dict]:
    """The int8 layers of a float network in execution order, as dicts of
    :class:`~bnnkws.tools.bench.accelerator_model.MacLayer` fields: convolutions and linear
    layers (batch norm and activations folded into their requantisation, as TFLite does),
    recurrent layers, residual additions and global average pools (plain additions and one
    scaling per output)."""
    out: list[dict] = []

    def add(name, kind, macs, outputs, weights=0, channels=0, adds=0, n_in=0, n_out=0):
        out.append(
            {
                "name": name,
                "kind": kind,
                "macs": int(macs),
                "outputs": int(outputs),
                "weights": int(weights),
                "channels": int(channels),
                "adds": int(adds),
                "in_values": int(n_in),
                "out_values": int(n_out),
            }
        )

    def hook(mod, inp, res):
        name = type(mod).__name__
        if isinstance(mod, nn.Conv1d | nn.Conv2d):
            n_out = res.numel()
            k = int(np.prod(mod.kernel_size)) * (mod.in_channels // mod.groups)
            kind = "dwconv" if 1 < mod.groups == mod.in_channels else "conv"
            add(
                name,
                kind,
                n_out * k,
                n_out,
                mod.weight.numel(),
                mod.out_channels,
                0,
                inp[0].numel(),
                n_out,
            )
        elif isinstance(mod, nn.Linear):
            add(
                name,
                "fc",
                mod.in_features * mod.out_features,
                res.numel(),
                mod.weight.numel(),
                mod.out_features,
                0,
                inp[0].numel(),
                res.numel(),
            )
        elif isinstance(mod, nn.LSTM | nn.GRU):
            out.append(_rnn_layer(mod, inp[0].numel(), inp[0].shape[1], inp[0].shape[0]))
        elif isinstance(mod, Add | _TCBlock):  # one addition and one requantisation per value
            n = res.numel()
            add("residual", "add", 0, n, adds=n, n_in=2 * n, n_out=n)
        elif isinstance(mod, GlobalPool) or (
            isinstance(model, DSCNN | TCResNet8 | TCResNet14) and mod is model.blocks
        ):
            n_in = inp[0].numel() if isinstance(mod, GlobalPool) else res.numel()
            c = res.numel() if isinstance(mod, GlobalPool) else res.shape[1]
            add("avgpool", "avgpool", 0, c, adds=n_in, n_in=n_in, n_out=c)

    hooks = [m.register_forward_hook(hook) for m in model.modules()]
    was = model.training
    model.eval()
    cfg = model.config
    try:
        with torch.no_grad():
            model(torch.zeros(1, cfg["n_frames"], cfg["n_mels"]))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return out


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------
# int8 quantisation, simulated
# --------------------------------------------------------------------------------------
QUANT_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.LSTM, nn.GRU)


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per output channel (dim 0): round(w / s) * s, s = max|w| / 127."""
    flat = w.reshape(w.shape[0], -1)
    s = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.clamp(torch.round(flat / s[:, None]), -127, 127) * s[:, None]
    return q.reshape(w.shape)


def quantize_activation(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Asymmetric int8 per tensor over [lo, hi] (0 representable): 256 levels."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-12) / 255.0
    zero = round(-lo / scale) - 128
    q = torch.clamp(torch.round(x / scale) + zero, -128, 127)
    return (q - zero) * scale


def int8_copy(model: nn.Module, calib: torch.Tensor) -> nn.Module:
    """A copy of `model` with int8-quantised weights whose quantisable layers quantise
    their input (ranges from one pass over `calib`, float features [n, T, F])."""
    q = copy.deepcopy(model).cpu().eval()
    ranges: dict[nn.Module, list[float]] = {}

    def observe(mod, inp):
        x = inp[0].detach()
        r = ranges.setdefault(mod, [float("inf"), float("-inf")])
        r[0], r[1] = min(r[0], float(x.min())), max(r[1], float(x.max()))

    mods = [m for m in q.modules() if isinstance(m, QUANT_TYPES)]
    hs = [m.register_forward_pre_hook(observe) for m in mods]
    with torch.no_grad():
        for i in range(0, calib.shape[0], 256):
            q(calib[i : i + 256])
    for h in hs:
        h.remove()
    with torch.no_grad():
        for m in mods:
            for name, p in m.named_parameters():
                if name.startswith("weight"):
                    p.copy_(quantize_weight(p))

    def fake(mod, inp):
        lo, hi = ranges[mod]
        return (quantize_activation(inp[0], lo, hi),) + tuple(inp[1:])

    for m in mods:
        if m in ranges:
            m.register_forward_pre_hook(fake)
    return q


def int8_evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, calib: np.ndarray) -> float:
    """Test accuracy of the int8-simulated model (calibrated on `calib` features)."""
    q = int8_copy(model, torch.as_tensor(np.asarray(calib)).float())
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), 512):
            s = q(torch.as_tensor(np.asarray(x[i : i + 512])).float())
            correct += int((s.argmax(1).numpy() == np.asarray(y[i : i + 512])).sum())
    return correct / max(len(y), 1)
