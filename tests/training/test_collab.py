"""Collaborative training, part by part: the overflow penalty, the masked straight-through
estimate and the wide partner each change what the training computes (outputs or
gradients), and each is inert where it should be (no overflow possible)."""

import torch
import torch.nn.functional as F

from bnnkws.generator.training import binary_layers
from bnnkws.generator.training.model import BnnKws, bnn_config
from bnnkws.generator.training.train import TrainData, TrainOptions, _partner_logits, train_model


def _model(bits: int = 6, mode: str = "wrap") -> BnnKws:
    torch.manual_seed(0)
    model = BnnKws(bnn_config("dense", 4, bits, mode))
    model.train()
    return model


def _batch(n: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-128, 128, (n, 49, 40), generator=g).float(), torch.randint(
        0, 4, (n,), generator=g
    )


def _grads(model: BnnKws, loss: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [c.weight.grad.clone() for c in model.binary_convs()]


def test_the_penalty_measures_sums_beyond_the_final_range_and_moves_the_weights():
    x, _ = _batch()
    model = _model(6)
    for conv in model.binary_convs():
        conv.want_excess, conv.excess_bits = True, 6
    model(x)
    pen = sum(c.last_excess for c in model.binary_convs())
    assert pen.item() > 1.0  # {-1,+1} sums over fan-in 384 leave [-31, 31]
    grads = _grads(model, pen)
    assert all(g.abs().sum() > 0 for g in grads)  # the penalty pulls the weights
    # measured against a range no sum can leave, it is exactly zero
    for conv in model.binary_convs():
        conv.excess_bits = 32
    model(x)
    assert sum(c.last_excess for c in model.binary_convs()).item() == 0.0


def test_the_mask_removes_the_task_gradient_of_overflowed_outputs_only():
    x, y = _batch()

    def task_grads(bits: int, mask: bool) -> list[torch.Tensor]:
        model = _model(bits)
        for conv in model.binary_convs():
            conv.mask_overflow_grad = mask
        return _grads(model, F.cross_entropy(model(x), y))

    plain, masked = task_grads(6, False), task_grads(6, True)
    assert any(not torch.equal(a, b) for a, b in zip(plain, masked, strict=True))
    # the masked gradient is smaller: overflowed outputs pass none
    assert sum(g.abs().sum() for g in masked) < sum(g.abs().sum() for g in plain)
    # where nothing can overflow (32 bits) the mask changes nothing
    wide, wide_masked = task_grads(32, False), task_grads(32, True)
    assert all(torch.equal(a, b) for a, b in zip(wide, wide_masked, strict=True))


def test_the_mask_fires_in_collaborative_training_where_sums_overflow(monkeypatch):
    fired = []
    real = binary_layers._MaskedStraightThrough.backward

    def counting(ctx, g):
        (ok,) = ctx.saved_tensors
        fired.append(int((~ok).sum()))
        return real(ctx, g)

    monkeypatch.setattr(binary_layers._MaskedStraightThrough, "backward", staticmethod(counting))
    x, y = _batch(64)
    data = TrainData(x.numpy(), y.numpy(), x[:16].numpy(), y[:16].numpy(), list("abcd"))
    opt = TrainOptions(epochs=2, batch_size=32, threads=1, collab=True, start_bits=6, augment=False)
    train_model(_model(6), data, opt, log=None)
    assert fired and sum(fired) > 0  # overflowed outputs lost their task gradient


def test_the_partner_is_the_wide_network_and_adds_its_own_gradient():
    x, y = _batch()
    model = _model(6)
    narrow = model(x)
    stats = [m.bn.running_mean.clone() for m in model.conv_layers()]
    wide = _partner_logits(model, x)
    assert not torch.allclose(narrow, wide)  # 6-bit sums wrap, the partner's do not
    assert model.accumulator.bits == 6  # restored
    assert all(
        torch.equal(a, m.bn.running_mean) for a, m in zip(stats, model.conv_layers(), strict=True)
    )  # the partner records no statistics
    ce = F.cross_entropy(model(x), y)
    alone = _grads(model, ce)
    with_partner = _grads(
        model, F.cross_entropy(model(x), y) + F.cross_entropy(_partner_logits(model, x), y)
    )
    assert any(not torch.equal(a, b) for a, b in zip(alone, with_partner, strict=True))
    # at 32 bits the partner computes what the model computes
    wide_model = _model(32)
    assert torch.allclose(wide_model(x), _partner_logits(wide_model, x))


def test_each_part_changes_the_trained_weights():
    x, y = _batch(64, seed=3)
    data = TrainData(x.numpy(), y.numpy(), x[:16].numpy(), y[:16].numpy(), list("abcd"))

    def trained(**over) -> list[torch.Tensor]:
        model = _model(6)
        opt = TrainOptions(
            epochs=1, batch_size=32, threads=1, collab=True, start_bits=6, augment=False, **over
        )
        train_model(model, data, opt, log=None)
        return [c.weight.detach().clone() for c in model.binary_convs()]

    full = trained()
    for over in ({"penalty": 0.0}, {"partner": 0.0}, {"mask_overflow_grad": False}):
        other = trained(**over)
        assert any(not torch.equal(a, b) for a, b in zip(full, other, strict=True)), over
