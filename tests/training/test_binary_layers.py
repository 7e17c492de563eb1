"""Binary layers: the training forward is the deployed integer arithmetic.

Specification: docs/INTEGER_MODEL.md. The brute-force reference below walks the fan-in
element by element in the documented order, with plain Python integers.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnkws.generator.export.to_integer import to_integer_model
from bnnkws.generator.integer import intmodel
from bnnkws.generator.training.binary_layers import (
    Accumulator,
    BinaryConv1d,
    OverflowStats,
    saturate_tiles,
    sign_ste,
    step_ste,
    wrap_tensor,
)
from bnnkws.generator.training.model import BNN_PRESETS, BnnKws, bnn_config
from bnnkws.generator.training.shift_bn import ShiftBatchNorm, ap2, apply_shiftbn, apply_threshold


def brute_force(x: np.ndarray, w: np.ndarray, kind: str, stride: int, groups: int, bits: int,
                mode: str, tile: int) -> np.ndarray:
    """acc [B, c_out, T_out] by the letter of the spec. x [B, c_in, T] values, w [c_out, cg, k] +-1."""
    b, c_in, t_in = x.shape
    c_out, cg, k = w.shape
    og = c_out // groups
    t_out = (t_in - k) // stride + 1
    half = 1 << (bits - 1)
    out = np.zeros((b, c_out, t_out), dtype=np.int64)
    for n in range(b):
        for o in range(c_out):
            g = o // og
            for t in range(t_out):
                prods = [int(x[n, g * cg + c, t * stride + kk]) * int(w[o, c, kk])
                         for kk in range(k) for c in range(cg)]  # k outer, c inner
                if mode == "wrap":
                    acc = ((sum(prods) + half) % (2 * half)) - half
                else:
                    acc = 0
                    for i in range(0, len(prods), tile):
                        acc = min(max(acc + sum(prods[i:i + tile]), -half), half - 1)
                out[n, o, t] = acc
    return out


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["int8", "pm1", "01"]),
    groups=st.sampled_from([1, 2]),
    cg=st.integers(1, 5),
    og=st.integers(1, 3),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    bits=st.integers(4, 32),
    mode=st.sampled_from(["wrap", "saturate"]),
    tile=st.integers(1, 7),
    seed=st.integers(0, 2**31 - 1),
)
def test_accumulator_equals_brute_force(kind, groups, cg, og, k, stride, bits, mode, tile, seed):
    rng = np.random.default_rng(seed)
    c_in, c_out = cg * groups, og * groups
    conv = BinaryConv1d(c_in, c_out, k, stride, groups, kind, Accumulator(bits, mode, tile))
    with torch.no_grad():
        conv.weight.uniform_(-1, 1)
    t_in = k + stride * 3
    if kind == "int8":
        x = rng.integers(-128, 128, size=(2, c_in, t_in))
    elif kind == "pm1":
        x = 2 * rng.integers(0, 2, size=(2, c_in, t_in)) - 1
    else:
        x = rng.integers(0, 2, size=(2, c_in, t_in))
    w = conv.binary_weight().detach().numpy().astype(np.int64)
    want = brute_force(x, w, kind, stride, groups, bits, mode, tile)
    for dtype in (None, torch.float64):  # training dtype (float32 here) and the exact path
        _, acc = conv.accumulate(torch.from_numpy(x).float(), exact_dtype=dtype)
        np.testing.assert_array_equal(acc.detach().numpy().astype(np.int64), want)


@given(v=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20), bits=st.integers(4, 32))
def test_wrap_matches_integer_model(v, bits):
    got = wrap_tensor(torch.tensor(v, dtype=torch.float64), bits).numpy().astype(np.int64)
    np.testing.assert_array_equal(got, intmodel.wrap(np.array(v), bits))


@given(p=st.lists(st.integers(-200, 200), min_size=1, max_size=12), bits=st.integers(4, 12))
def test_saturate_matches_integer_model(p, bits):
    got = saturate_tiles(torch.tensor([p], dtype=torch.float32), bits).numpy().astype(np.int64)
    np.testing.assert_array_equal(got, intmodel.accumulate(np.array([p]), bits, "saturate"))


def test_float32_exactness_is_checked():
    small = BinaryConv1d(40, 8, 3, input_kind="int8")
    assert small.float32_exact  # 120 * 128 < 2^24
    huge = BinaryConv1d(2**17, 1, 1, input_kind="int8")
    assert not huge.float32_exact
    with pytest.raises(ValueError, match="2\\^24"):
        huge.accumulate(torch.zeros(1, 2**17, 1), exact_dtype=torch.float32)


def test_overflow_statistics_count_wrapped_outputs():
    conv = BinaryConv1d(64, 2, 3, input_kind="pm1", acc=Accumulator(8, "wrap"))
    with torch.no_grad():
        conv.weight.fill_(0.5)  # all +1: the sum of 192 ones is 192 -> wraps to -64
    conv.stats = OverflowStats()
    exact, acc = conv.accumulate(torch.ones(3, 64, 5))
    assert float(exact.detach().max()) == 192 and float(acc.detach().max()) == -64
    s = conv.stats.summary()
    assert s["overflow_fraction"] == 1.0
    assert s["mean_overflow_error"] == 256.0
    assert s["mean_excess"] == 192 - 127


def test_straight_through_gradients():
    v = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    sign_ste(v).sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), [0, 1, 1, 1, 0])
    assert sign_ste(v).tolist() == [-1, -1, 1, 1, 1]
    assert step_ste(v).tolist() == [0, 0, 1, 1, 1]
    # accumulator: the gradient is that of the exact sum (identity), masked where it overflowed
    conv = BinaryConv1d(64, 1, 3, input_kind="pm1", acc=Accumulator(8, "wrap"))
    with torch.no_grad():
        conv.weight.fill_(0.5)
    x = torch.ones(1, 64, 4)
    x[:, :32, 2:] = -1  # first outputs overflow (192), the last one does not (0)
    x.requires_grad_(True)
    exact, acc = conv.accumulate(x)
    acc.sum().backward()
    assert x.grad.abs().sum() > 0
    conv.mask_overflow_grad = True
    x.grad = None
    _, acc = conv.accumulate(x)
    acc.sum().backward()
    over = (exact != acc).squeeze()
    assert over.tolist() == [True, False]
    assert float(x.grad[0, :, 0].abs().sum()) == 0  # frame 0 feeds only the overflowed output


def test_ap2_is_signed_power_of_two_with_identity_gradient():
    x = torch.tensor([0.3, -5.0, 1.0, 1e-9, 70000.0], requires_grad=True)
    y = ap2(x)
    assert y.tolist() == [0.25, -4.0, 1.0, 2.0**-16, 2.0**16]
    y.sum().backward()
    assert x.grad.tolist() == [1.0] * 5


def _trained_bn(c: int, ap2_scale: bool, seed: int) -> ShiftBatchNorm:
    g = torch.Generator().manual_seed(seed)
    bn = ShiftBatchNorm(c, ap2_scale=ap2_scale)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=g) * 40)
        bn.running_var.copy_(torch.rand(c, generator=g) * 500 + 1)
        bn.gamma.copy_(torch.randn(c, generator=g))
        bn.beta.copy_(torch.randn(c, generator=g) * 2)
    bn.eval()
    return bn


@pytest.mark.parametrize("ap2_scale", [True, False])
def test_shift_bn_threshold_equals_sign_of_float_form(ap2_scale):
    bn = _trained_bn(16, ap2_scale, 1)
    acc = torch.arange(-300, 301, dtype=torch.float64)[None, None, :].expand(1, 16, -1).contiguous()
    y = bn.double()(acc)
    thr, flip = bn.threshold()
    bits = apply_threshold(acc, torch.from_numpy(thr), torch.from_numpy(flip))
    ties = y.abs() < 1e-9  # exactly on the threshold the float rounding decides; avoid
    assert torch.equal(bits.bool()[~ties], (y >= 0)[~ties])


def test_shift_bn_shift_form_is_exact_scaled_float_form():
    bn = _trained_bn(10, True, 2)
    acc = torch.arange(-500, 501, dtype=torch.float64)[None, None, :].expand(1, 10, -1).contiguous()
    y = bn.double()(acc)
    p = bn.shiftbn()
    scores = apply_shiftbn(acc.long(), {k: torch.from_numpy(v) for k, v in p.items()})
    assert np.all((p["shift"] >= -16) & (p["shift"] <= 16))
    # with every shift left (the usual case), scores = 2^k * y up to the rounding of beta
    sign, s = bn.exponents()
    k = int(p["shift"][0]) - int(s[0])
    assert np.all(p["shift"] >= 0)
    err = (scores.double() - (2.0**k) * y).abs().max()
    assert err <= 0.5 + 1e-6
    # and it is literally a shift and an add
    manual = sign[None, :, None].astype(np.int64) * (acc.long().numpy() << p["shift"].astype(np.int64)[None, :, None])
    np.testing.assert_array_equal(scores.numpy(), manual + p["beta"][None, :, None])


def _randomised(model: BnnKws, seed: int) -> BnnKws:
    """Give every batch-norm statistics in a realistic range, so thresholds are not trivial."""
    g = torch.Generator().manual_seed(seed)
    for layer in model.conv_layers():
        bn, fan = layer.bn, layer.conv.fan_in
        scale = 60.0 if layer.conv.input_kind == "int8" else 1.0
        with torch.no_grad():
            bn.running_mean.copy_(torch.randn(bn.channels, generator=g) * scale * fan**0.5 * 0.3)
            bn.running_var.copy_((torch.rand(bn.channels, generator=g) + 0.5) * scale**2 * fan)
            bn.gamma.copy_(torch.randn(bn.channels, generator=g))
            bn.beta.copy_(torch.randn(bn.channels, generator=g))
    return model.eval()


@pytest.mark.parametrize("preset", BNN_PRESETS)
@pytest.mark.parametrize("bits,mode", [(4, "wrap"), (6, "saturate"), (8, "wrap"), (8, "saturate"),
                                       (13, "saturate"), (32, "wrap")])
def test_integer_forward_equals_integer_model(preset, bits, mode):
    torch.manual_seed(bits)
    model = _randomised(BnnKws(bnn_config(preset, 10, bits, mode, tile=24)), bits)
    x = np.random.default_rng(bits).integers(-128, 128, size=(3, 49, 40)).astype(np.int8)
    mine = model.integer_forward(torch.from_numpy(x), all_layers=True)
    ref = to_integer_model(model).forward(x, all_layers=True)
    assert len(mine) == len(ref)
    for a, b in zip(mine, ref, strict=True):
        assert a.dtype == torch.from_numpy(b).dtype
        assert np.array_equal(a.numpy(), b)
    # the eval-mode training forward gives the same scores and the same accumulators
    for c in model.binary_convs():
        c.keep_acc = True
    scores = model(torch.from_numpy(x))
    np.testing.assert_array_equal(scores.numpy().astype(np.int64), ref[-1][:, 0, :])
    im = to_integer_model(model)
    convs = [la for la in im.layers if isinstance(la, intmodel.ConvLayer)][1:]
    inputs = [x] + ref[:-1]
    conv_inputs = [inputs[i] for i, la in enumerate(im.layers) if isinstance(la, intmodel.ConvLayer)][1:]
    for conv, layer, xin in zip(model.binary_convs(), convs, conv_inputs, strict=True):
        want = layer.accumulate(xin).transpose(0, 2, 1)
        np.testing.assert_array_equal(conv.last_acc.numpy().astype(np.int64), want)


@pytest.mark.parametrize("preset", [p for p in BNN_PRESETS if p != "dense"])
def test_grouped_last_layer_scores_never_overflow_at_8_bits(preset):
    """The {0,1} presets' last layer sees 7 steps of its own class's channels: fan-in < 128."""
    from bnnkws.generator.integer.certificate import model_certificate

    cfg = bnn_config(preset, 10, 8, "wrap")
    model = _randomised(BnnKws(cfg), 8)
    last = model_certificate(to_integer_model(model))[-1]
    per_class = cfg["blocks"][-1]["c_out"] // cfg["n_classes"]
    assert last.fan_in == 7 * per_class < 128
    assert last.min_bits <= 8 and not last.can_overflow


def test_the_cli_offers_every_preset():
    import argparse

    from bnnkws.tools.commands.train import add_model_args

    p = argparse.ArgumentParser()
    add_model_args(p)
    assert [p.parse_args(["--preset", name]).preset for name in BNN_PRESETS] == list(BNN_PRESETS)


def test_integer_model_layers_carry_the_accumulator_settings():
    model = BnnKws(bnn_config("structured", 10, 6, "saturate", tile=16, first_acc_bits=20)).eval()
    im = to_integer_model(model, labels=[f"w{i}" for i in range(10)])
    convs = [la for la in im.layers if isinstance(la, intmodel.ConvLayer)]
    assert convs[0].input == "int8" and convs[0].acc_bits == 20
    assert all(c.acc_bits == 6 and c.acc_mode == "saturate" and c.tile == 16 for c in convs[1:])
    assert all(c.input == "01" for c in convs[1:])
    assert convs[-1].output == "shiftbn" and convs[-1].groups == 10
    assert im.labels[0] == "w0" and im.meta["acc_bits"] == 6


def test_ap2_exponent_in_training_is_the_exported_one():
    # training takes the power of two from the running variance, as export does; with the
    # batch variance some channels of a trained model deployed another exponent
    torch.manual_seed(0)
    bn = ShiftBatchNorm(32, ap2_scale=True)
    opt = torch.optim.SGD(bn.parameters(), lr=0.05)
    for _ in range(30):
        acc = torch.randn(8, 32, 5) * torch.linspace(0.3, 40, 32)[None, :, None] + 3
        bn.train()
        y = bn(acc)
        opt.zero_grad()
        (y**2).mean().backward()
        opt.step()
    acc = torch.randn(8, 32, 5) * torch.linspace(0.3, 40, 32)[None, :, None] + 3
    bn.train()
    y = bn(acc)  # updates the running variance, then scales by it
    mean = acc.mean(dim=(0, 2))
    sign, s = bn.exponents()
    scale = torch.from_numpy(sign.astype(np.float64) * 2.0 ** s.astype(np.float64)).float()
    expected = scale[None, :, None] * (acc - mean[None, :, None]) + bn.beta.detach()[None, :, None]
    assert torch.allclose(y.detach(), expected, rtol=1e-4, atol=1e-4)
    # the batch variance differs from the running one enough to pick other exponents
    raw_batch = bn.gamma.detach() / torch.sqrt(acc.var(dim=(0, 2), unbiased=False) + bn.eps)
    exp_batch = torch.round(torch.log2(raw_batch.abs()))
    assert (exp_batch != torch.from_numpy(s.astype(np.float32))).any()
