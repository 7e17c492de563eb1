"""Integer models with random weights and parameters, for kernel and end-to-end tests.

Thresholds are drawn around the middle of each layer's accumulator distribution so that
output bits toggle; narrow accumulators then wrap or saturate on real inputs.
"""

from __future__ import annotations

import numpy as np

from bnnkws.generator.frontend import FrontendConfig, FrontendParams, default_params, make_params
from bnnkws.generator.integer.intmodel import ConvLayer, IntegerModel, PoolLayer

# (kind, c_out, kernel, stride, groups) per hidden stage; "pool" entries give a kernel.
ARCHS = {
    # exercises: int8 first layer, grouped 01/pm1 layers with a gathered fan-in
    # (c_in % 32 != 0), a direct (c_in = 32, groups 1) layer, OR pooling, a last layer
    # whose kernel covers the remaining time, c_out not a multiple of 32
    "small": [("conv", 24, 3, 2, 1), ("conv", 32, 3, 1, 2), ("pool", 2), ("conv", 20, 2, 1, 1)],
    # the trainer's "structured" preset shape (generator/training/model.py bnn_preset): 128
    # channels, full convolutions, OR pooling by 2 after the first binary layer, 12 channels
    # per class (c_out -12), and a last layer grouped per class over the remaining steps
    "structured": [
        ("conv", 128, 3, 2, 1),
        ("conv", 128, 3, 1, 1),
        ("pool", 2),
        ("conv", 128, 3, 1, 1),
        ("conv", -12, 3, 1, 1),
    ],
    # 128 channels in groups of 16 (grouped {0,1} layers of whole words, OR pooling to one step)
    "grouped": [
        ("conv", 128, 3, 2, 1),
        ("conv", 128, 3, 1, 8),
        ("pool", 2),
        ("conv", 128, 3, 1, 8),
        ("conv", 128, 3, 1, 8),
        ("pool", 0),
    ],
    # the trainer's "dense" preset shape (64 channels, full convolutions)
    "dense": [
        ("conv", 64, 3, 2, 1),
        ("conv", 64, 3, 1, 1),
        ("pool", 2),
        ("conv", 64, 3, 1, 1),
        ("conv", 64, 3, 1, 1),
    ],
    # the column-layout binary kernels (24+ outputs per group): 48 per group in a grouped
    # layer, 40 outputs (not a multiple of 32) in an ungrouped one
    "columns": [("conv", 48, 3, 2, 1), ("conv", 96, 3, 1, 2), ("pool", 2), ("conv", 40, 3, 1, 1)],
    # tiny, for MicroPython end to end
    "tiny": [("conv", 8, 3, 2, 1), ("conv", 12, 2, 1, 2), ("pool", 2)],
}


def threshold_conv(**kw) -> ConvLayer:
    """A threshold-output ConvLayer; defaults: stride 1, groups 1, tile 32, 01 output,
    thresholds 0, no flips. Give at least input, c_in, c_out, kernel, weights, acc_bits,
    acc_mode."""
    base = dict(name="l", stride=1, groups=1, tile=32, output="threshold", out_act="01")
    base.update(kw)
    base.setdefault("thr", np.zeros(base["c_out"], dtype=np.int32))
    base.setdefault("flip", np.zeros(base["c_out"], dtype=np.uint8))
    return ConvLayer(**base)


def small_frontend(n_mels: int = 8) -> FrontendParams:
    """A cheap front-end (128-point FFT, few bands) for MicroPython tests."""
    return make_params(
        FrontendConfig(frame_len=128, hop=80, n_mels=n_mels, fmin=100.0, fmax=7000.0)
    )


def random_integer_model(
    seed: int,
    acc_bits: int = 8,
    mode: str = "wrap",
    tile: int = 32,
    act: str = "01",
    arch: str = "small",
    first_bits: int | None = None,
    n_classes: int = 4,
    n_frames: int = 49,
    frontend: FrontendParams | None = None,
    last_groups: int | None = None,
) -> IntegerModel:
    """A valid IntegerModel with random weights; every hidden layer uses (acc_bits, mode,
    tile), the first layer first_bits (default acc_bits) with the same mode and tile. The
    last layer has `last_groups` groups (default: one per class for "structured", else 1)."""
    if last_groups is None:
        last_groups = n_classes if arch == "structured" else 1
    rng = np.random.default_rng(seed)
    fe = frontend or default_params()
    t, c, kind = n_frames, fe.n_mels, "int8"
    layers: list = []
    stages = ARCHS[arch]
    for j, st in enumerate(stages):
        if st[0] == "pool":
            k = st[1] or t
            layers.append(PoolLayer(f"pool{j}", k))
            t //= k
            continue
        _, c_out, kernel, stride, groups = st
        c_out = -c_out * n_classes if c_out < 0 else c_out  # channels per class
        kernel = min(kernel, t)
        bits = (first_bits or acc_bits) if kind == "int8" else acc_bits
        cg = c // groups
        fan_in = kernel * cg
        # per-channel weight bias, so some sums are systematically large (overflow)
        p_pos = rng.uniform(0.1, 0.9, (c_out, 1, 1))
        weights = (rng.random((c_out, kernel, cg)) < p_pos).astype(np.uint8)
        # thresholds near each channel's typical sum: int8 features ~ -20 +- 50,
        # 01 bits ~ 0.5, pm1 ~ 0; then clipped into the N-bit accumulator range
        mean_x, sd_x = {"int8": (-20.0, 50.0), "01": (0.5, 0.5), "pm1": (0.0, 1.0)}[kind]
        centre = mean_x * (2.0 * weights.reshape(c_out, -1).sum(axis=1) - fan_in)
        thr = centre + rng.normal(0, 0.5, c_out) * sd_x * np.sqrt(fan_in)
        half = 2.0 ** (bits - 1)
        thr = np.clip(np.round(thr), -half, half - 1).astype(np.int32)
        layers.append(
            threshold_conv(
                name=f"conv{j}",
                input=kind,
                c_in=c,
                c_out=c_out,
                kernel=kernel,
                stride=stride,
                groups=groups,
                weights=weights,
                acc_bits=bits,
                acc_mode=mode,
                tile=tile,
                out_act=act,
                thr=thr,
                flip=rng.integers(0, 2, c_out, dtype=np.uint8),
            )
        )
        t, c, kind = (t - kernel) // stride + 1, c_out, act
    layers.append(
        ConvLayer(
            name="scores",
            input=kind,
            c_in=c,
            c_out=n_classes,
            kernel=t,
            stride=1,
            groups=last_groups,
            weights=rng.integers(0, 2, (n_classes, t, c // last_groups), dtype=np.uint8),
            acc_bits=acc_bits,
            acc_mode=mode,
            tile=tile,
            output="shiftbn",
            mu=rng.integers(-4, 5, n_classes).astype(np.int32),
            shift=rng.integers(-3, 4, n_classes).astype(np.int8),
            sign=rng.choice(np.array([-1, 1], dtype=np.int8), n_classes),
            beta=rng.integers(-20, 21, n_classes).astype(np.int32),
        )
    )
    labels = [f"w{i}" for i in range(n_classes)]
    model = IntegerModel(
        frontend=fe,
        labels=labels,
        n_frames=n_frames,
        layers=layers,
        meta={"seed": seed, "arch": arch},
    )
    model.validate()
    return model


def assert_net_matches(net, model: IntegerModel, x: np.ndarray) -> None:
    """A CNet (bnnkws.tools.host.hostlib) equals the integer model on inputs x [B, T, F]: every
    layer (fed the C output before it), the bk_model_run scores and the argmax."""
    ref = model.forward(x, all_layers=True)
    for b in range(len(x)):
        for i, out in enumerate(net.forward_all(x[b])):
            assert np.array_equal(out, ref[i][b]), f"layer {i} input {b}"
    scores, cls = net.scores(x)
    assert np.array_equal(scores, ref[-1][:, 0, :])
    assert np.array_equal(cls, model.predict(x))
