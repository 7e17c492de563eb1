"""The ten literature KWS networks (generator/training/kws_zoo.py): built through the trainer's
model registry, their int8 work counted by hand, and the int8 simulation."""

import numpy as np
import pytest
import torch

from bnnkws.generator.training import kws_zoo as zoo
from bnnkws.generator.training.model import build_model, float_config


@pytest.mark.parametrize("kind", zoo.ZOO)
def test_every_method_builds_through_the_registry_and_classifies(kind):
    torch.manual_seed(0)
    model = build_model(float_config(kind, 7))
    assert model.config["kind"] == kind
    x = torch.randint(-128, 128, (3, 49, 40)).float()
    y = model(x)
    assert y.shape == (3, 7)
    y.sum().backward()  # trainable end to end
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    layers = zoo.mac_layers(model)
    assert layers[-1]["outputs"] == 7 or layers[-1]["kind"] == "avgpool"
    assert sum(la["weights"] for la in layers) <= zoo.count_params(model)


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="unknown KWS model 'rnn9'"):
        float_config("rnn9")


def test_dnn_and_lstm_macs_by_hand():
    dnn = build_model(float_config("dnn", 10))
    assert sum(la["macs"] for la in zoo.mac_layers(dnn)) == 1960 * 144 + 2 * 144 * 144 + 144 * 10
    lstm = build_model(float_config("lstm", 10))
    rnn, fc = zoo.mac_layers(lstm)
    # 49 steps of 4 gates x 98 units x (40 inputs + 98 state), 3 gate products per unit
    assert rnn["macs"] == 49 * (4 * 98 * (40 + 98) + 3 * 98) and rnn["outputs"] == 49 * 4 * 98
    assert fc["macs"] == 98 * 10
    gru = build_model(float_config("gru", 10))
    assert zoo.mac_layers(gru)[0]["macs"] == 49 * (3 * 154 * (40 + 154) + 3 * 154)


def test_residual_additions_and_pools_are_costed():
    mbx = build_model(float_config("matchboxnet", 10))
    kinds = [la["kind"] for la in zoo.mac_layers(mbx)]
    assert kinds.count("add") == 3 and kinds[-1] == "avgpool"
    assert "dwconv" in kinds


def test_weight_quantisation_is_symmetric_per_channel():
    w = torch.randn(6, 4, 3) * torch.arange(1, 7)[:, None, None]
    q = zoo.quantize_weight(w)
    for o in range(6):
        s = w[o].abs().max() / 127
        levels = q[o] / s
        assert torch.allclose(levels, levels.round(), atol=1e-4)
        assert levels.abs().max() <= 127 + 1e-4
        assert (q[o] - w[o]).abs().max() <= s / 2 + 1e-6
    assert torch.equal(q.abs().amax(dim=(1, 2)), w.abs().amax(dim=(1, 2)))


def test_activation_quantisation_keeps_zero_and_half_a_step():
    x = torch.linspace(-1.0, 3.0, 1001)
    q = zoo.quantize_activation(x, -1.0, 3.0)
    step = 4.0 / 255
    assert (q - x).abs().max() <= step / 2 + 1e-6
    assert zoo.quantize_activation(torch.zeros(1), -1.0, 3.0).item() == 0.0
    assert len(torch.unique(q)) <= 256
    # relu outputs: the range starts at 0
    assert zoo.quantize_activation(torch.tensor([5.0]), 0.0, 3.0).item() == pytest.approx(3.0)


def test_int8_copy_changes_the_outputs_not_the_model():
    torch.manual_seed(1)
    model = build_model(float_config("tcresnet8", 10)).eval()
    x = torch.randint(-128, 128, (64, 49, 40)).float()
    before = [p.detach().clone() for p in model.parameters()]
    q = zoo.int8_copy(model, x)
    with torch.no_grad():
        a, b = model(x), q(x)
    assert not torch.equal(a, b)
    assert (a - b).abs().max() < 0.1 * a.abs().max()
    assert all(torch.equal(p, p0) for p, p0 in zip(model.parameters(), before, strict=True))
    acc = zoo.int8_evaluate(model, x.numpy(), a.argmax(1).numpy(), x.numpy())
    assert 0.8 <= acc <= 1.0  # int8 mostly agrees with float on its own predictions


def test_published_accuracies_name_their_papers():
    for kind, (name, acc, where) in zoo.PUBLISHED.items():
        assert kind in zoo.CLASSES and name and 80 < acc < 100 and " 20" in where
    assert np.unique([zoo.PUBLISHED[k][0] for k in zoo.ZOO]).size == 10
