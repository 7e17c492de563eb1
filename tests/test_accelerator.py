"""The accelerator cost model counts what the integer model computes."""

import numpy as np
import pytest

from bnnkws.generator import accelerator as acc
from bnnkws.generator import intmodel as im
from bnnkws.generator.frontend import default_params


def _model(bits: int, mode: str, tile: int) -> im.IntegerModel:
    rng = np.random.default_rng(bits)

    def rb(*shape):
        return rng.integers(0, 2, shape).astype(np.uint8)

    layers = [
        im.ConvLayer("c0", "int8", 40, 32, 3, 2, 1, rb(32, 3, 40), 16, mode, tile, "threshold", "pm1",
                     thr=rng.integers(-50, 50, 32), flip=rb(32)),
        im.ConvLayer("c1", "pm1", 32, 48, 3, 1, 4, rb(48, 3, 8), bits, mode, tile, "threshold", "01",
                     thr=rng.integers(-3, 3, 48), flip=rb(48)),
        im.PoolLayer("p", 2),
        im.ConvLayer("c2", "01", 48, 5, 11, 1, 1, rb(5, 11, 48), bits, mode, tile, "shiftbn",
                     mu=rng.integers(-4, 4, 5), shift=np.zeros(5, int), sign=np.ones(5, int),
                     beta=np.zeros(5, int)),
    ]
    m = im.IntegerModel(default_params(), list("abcde"), 49, layers)
    m.validate()
    return m


@pytest.mark.parametrize(("width", "bitops"), [(1, 0), (2, 1), (3, 3), (4, 4), (32, 57)])
def test_popcount_tree(width, bitops):
    # 32 inputs: 16 one-bit + 8 two-bit + 4 three-bit + 2 four-bit + 1 five-bit adders
    assert acc.popcount_tree_bitops(width) == bitops


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
def test_lane_steps_equal_the_integer_models_tiles(mode):
    # with lane == tile, every saturate step of the integer model is one lane step
    model = _model(8, mode, tile=16)
    cost = acc.model_cost(model, acc.AcceleratorConfig(lane=16))
    x = np.zeros((1, 49, 40), dtype=np.int8)
    for layer, lc in zip(model.layers, cost.layers, strict=True):
        if isinstance(layer, im.PoolLayer):
            x = layer.forward(x)
            continue
        parts = layer.partials(x)  # [1, T_out, c_out, n_tiles]
        planes = 8 if layer.input == "int8" else 1
        assert lc.lane_steps == parts[0].size * planes
        assert lc.outputs == parts.shape[1] * parts.shape[2]
        assert lc.binary_ops == lc.outputs * layer.fan_in * planes
        assert lc.weight_bits == layer.weights.size
        x = layer.forward(x)


def test_narrow_accumulators_and_thresholds_cost_less():
    model = _model(8, "wrap", tile=32)
    cfg = acc.AcceleratorConfig()
    ours = acc.model_cost(model, cfg)
    base = acc.model_cost(model, acc.baseline_config(cfg))
    assert ours.bitops < base.bitops
    assert ours.cycles < base.cycles
    assert ours.total("param_bits") < base.total("param_bits")
    # the binary work itself is the same network
    assert ours.total("binary_ops") == base.total("binary_ops")
    sat = acc.model_cost(_model(8, "saturate", tile=32), cfg)
    assert sat.total("bitops_accumulate") > ours.total("bitops_accumulate")


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="bn_unit"):
        acc.AcceleratorConfig(bn_unit="divider")
