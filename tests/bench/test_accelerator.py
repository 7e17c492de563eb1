"""The accelerator cost model: hand-computed costs, what the integer model computes, and the
same operation counts as the firmware's kernels (host library built with BK_COUNT_OPS)."""

from dataclasses import replace

import numpy as np
import pytest
from bnn_models import random_integer_model, threshold_conv

from bnnkws.generator.base.errors import BuildError
from bnnkws.generator.frontend import default_params
from bnnkws.generator.integer import intmodel as im
from bnnkws.tools.bench import accelerator_model as acc
from bnnkws.tools.host import hostlib


def _model(bits: int, mode: str, tile: int) -> im.IntegerModel:
    rng = np.random.default_rng(bits)

    def rb(*shape):
        return rng.integers(0, 2, shape).astype(np.uint8)

    layers = [
        im.ConvLayer(
            "c0",
            "int8",
            40,
            32,
            3,
            2,
            1,
            rb(32, 3, 40),
            16,
            mode,
            tile,
            "threshold",
            "pm1",
            thr=rng.integers(-50, 50, 32),
            flip=rb(32),
        ),
        im.ConvLayer(
            "c1",
            "pm1",
            32,
            48,
            3,
            1,
            4,
            rb(48, 3, 8),
            bits,
            mode,
            tile,
            "threshold",
            "01",
            thr=rng.integers(-3, 3, 48),
            flip=rb(48),
        ),
        im.PoolLayer("p", 2),
        im.ConvLayer(
            "c2",
            "01",
            48,
            5,
            11,
            1,
            1,
            rb(5, 11, 48),
            bits,
            mode,
            tile,
            "shiftbn",
            mu=rng.integers(-4, 4, 5),
            shift=np.zeros(5, int),
            sign=np.ones(5, int),
            beta=np.zeros(5, int),
        ),
    ]
    m = im.IntegerModel(default_params(), list("abcde"), 49, layers)
    m.validate()
    return m


def _layer(**kw) -> im.ConvLayer:
    base = dict(input="pm1", c_in=32, c_out=4, kernel=2, acc_bits=8, acc_mode="wrap")
    base.update(kw)
    base.setdefault(
        "weights",
        np.zeros(
            (base["c_out"], base["kernel"], base["c_in"] // base.get("groups", 1)), dtype=np.uint8
        ),
    )
    return threshold_conv(**base)


@pytest.mark.parametrize(("width", "bitops"), [(0, 0), (1, 0), (2, 1), (3, 3), (4, 4), (32, 57)])
def test_popcount_tree(width, bitops):
    # 32 inputs: 16 one-bit + 8 two-bit + 4 three-bit + 2 four-bit + 1 five-bit adders
    assert acc.popcount_tree_bitops(width) == bitops


def test_hand_computed_layer():
    # pm1, fan-in 64 = 2 lanes of 32, 4 outputs x 2 steps, N = 8 wrap, comparator
    lc = acc.conv_cost(_layer(), t_in=3, cfg=acc.AcceleratorConfig())
    assert (lc.outputs, lc.elements, lc.words, lc.lane_steps, lc.sat_adds) == (8, 512, 16, 16, 0)
    assert lc.bitops_products == 8 * 64  # one XNOR per element
    assert lc.bitops_popcount == 8 * (2 * 57 + 2 * 7)  # two trees + (6+1)-bit L - 2d per lane
    assert lc.bitops_accumulate == 8 * 2 * 8  # an 8-bit add per lane step
    assert lc.bitops_output == 8 * 9  # 9-bit compare
    assert lc.bitops == 8 * (64 + 128 + 16 + 9)
    # one block of PEs: 2 steps x 2 lanes, 2 x 1 output cycles, weights 256 bits = 4 words,
    # parameters 4 x (9 + 1) bits = 1 word
    assert (lc.compute_cycles, lc.output_cycles, lc.fetch_cycles) == (4, 2, 5)
    assert lc.cycles == 11
    assert (lc.weight_bits, lc.param_bits) == (256, 40)


def test_output_units():
    layer = _layer()
    cfg = acc.AcceleratorConfig()
    assert acc.output_unit(layer, cfg, 8) == ("comparator", 9, 1, 10)
    assert acc.output_unit(layer, replace(cfg, bn_unit="shifter"), 8) == (
        "shifter",
        8 * 7,
        1,
        8 + 8 + 5 + 1,
    )
    # standard BN: subtract (32), 32 x 16 multiply, add (32 + 16); 4 cycles; mu, gamma, beta
    assert acc.output_unit(layer, acc.baseline_config(cfg), 32) == (
        "multiplier",
        512 + 64 + 16,
        4,
        80,
    )
    scores = _layer(
        output="shiftbn",
        out_act=None,
        mu=np.zeros(4),
        shift=np.zeros(4),
        sign=np.ones(4),
        beta=np.zeros(4),
    )
    assert acc.output_unit(scores, cfg, 8)[0] == "shifter"  # scores need more than a compare


def test_saturate_adds_per_tile_and_sums_long_tiles_exactly():
    cfg = acc.AcceleratorConfig()
    wrap = acc.conv_cost(_layer(kernel=3), 3, cfg)  # fan-in 96: 3 lanes
    sat = acc.conv_cost(_layer(kernel=3, acc_mode="saturate", tile=32), 3, cfg)
    assert sat.sat_adds == sat.lane_steps == wrap.lane_steps
    assert sat.bitops_accumulate == 2 * wrap.bitops_accumulate  # adder + clamp per step
    # tiles of 64 = 2 lanes: each summed exactly in a 7+1-bit register, then one saturating add
    long = acc.conv_cost(_layer(kernel=3, acc_mode="saturate", tile=64), 3, cfg)
    assert long.sat_adds == 2 * 4 and long.lane_steps == wrap.lane_steps
    assert long.bitops_accumulate == 4 * ((2 * 8 + 2 * 8) + (2 * 8))
    # tiles of 16: half-used lanes, one step each
    short = acc.conv_cost(_layer(kernel=3, acc_mode="saturate", tile=16), 3, cfg)
    assert short.lane_steps == 4 * 6 and short.compute_cycles == 6


def test_int8_layer_is_bit_serial():
    cfg = acc.AcceleratorConfig()
    layer = _layer(input="int8", c_in=40, kernel=3, acc_bits=16)  # fan-in 120: 4 lanes
    lc = acc.conv_cost(layer, 3, cfg)
    assert (lc.planes, lc.words, lc.lane_steps) == (8, 4 * 4, 8 * 16)
    assert lc.compute_cycles == 8 * 4
    assert lc.bitops_products == 8 * lc.elements
    # each output: 8 planes x (3 full trees + a 24-input tree + 4 corrections) + shared trees
    own = 4 * 8 * (3 * 57 + acc.popcount_tree_bitops(24) + 4 * 7)
    assert lc.bitops_popcount == own + 1 * 8 * (3 * 57 + acc.popcount_tree_bitops(24))


def test_grouped_layer_reads_one_input_lane_per_group_in_a_block():
    grouped = _layer(input="01", c_in=32, c_out=4, groups=4, kernel=1)
    assert acc._block_groups(grouped, 16) == 4
    assert acc._block_groups(grouped, 2) == 4
    assert acc._block_groups(_layer(c_out=40), 16) == 3


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
        if mode == "saturate":
            assert lc.lane_steps == parts[0].size * planes
            assert lc.sat_adds == parts[0].size
        assert lc.outputs == parts.shape[1] * parts.shape[2]
        assert lc.elements == lc.outputs * layer.fan_in
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
    assert ours.register_bits == 16 * 16 and base.register_bits == 16 * 32
    # the binary work itself is the same network
    assert ours.total("bitops_products") == base.total("bitops_products")
    assert ours.total("lane_steps") == base.total("lane_steps")
    sat = acc.model_cost(_model(8, "saturate", tile=32), cfg)
    assert sat.total("bitops_accumulate") > ours.total("bitops_accumulate")


def test_output_overlap_and_sharing_move_only_output_cycles():
    model = _model(8, "wrap", tile=32)
    cfg = acc.baseline_config(acc.AcceleratorConfig())
    plain = acc.model_cost(model, cfg)
    overlap = acc.model_cost(model, replace(cfg, overlap_output=True))
    shared = acc.model_cost(model, replace(cfg, output_units=1))
    for other in (overlap, shared):
        assert other.bitops == plain.bitops
        assert other.total("compute_cycles") == plain.total("compute_cycles")
    assert (
        overlap.total("output_cycles")
        < plain.total("output_cycles")
        < shared.total("output_cycles")
    )


def test_memory_sizes():
    model = _model(8, "wrap", tile=32)
    cost = acc.model_cost(model)
    assert cost.param_memory_bits == sum(
        layer.weights.size for layer in model.layers if isinstance(layer, im.ConvLayer)
    ) + cost.total("param_bits")
    # the largest activation is the int8 features (49 x 40 x 8 bits), double-buffered
    assert cost.act_buffer_bits == 2 * 49 * 40 * 8


def test_mac_machine_hand_computed():
    cfg = acc.AcceleratorConfig()
    layer = acc.MacLayer(
        "fc", "fc", macs=64 * 10, outputs=10, weights=640, channels=10, in_values=64, out_values=10
    )
    lc = acc.mac_layer_cost(layer, cfg)
    assert lc.bitops_products == 640 * 64 and lc.bitops_accumulate == 640 * 32
    assert lc.bitops_output == 10 * (32 * 16 + 64 + 16)
    assert lc.compute_cycles == 40 and lc.output_cycles == 4
    assert lc.weight_bits == 640 * 8 and lc.param_bits == 10 * (32 + 16 + 5)
    cost = acc.mac_model_cost([layer], 64, cfg)
    extra = cost.hw.output_extra_cycles  # requantisation slower than the clock: multicycle
    assert cost.bitops == lc.bitops
    assert cost.cycles == lc.cycles + extra and cost.total("output_cycles") == 4 + extra


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="bn_unit"):
        acc.AcceleratorConfig(bn_unit="divider")
    with pytest.raises(ValueError, match="acc_bits"):
        acc.AcceleratorConfig(acc_bits=64)
    with pytest.raises(ValueError, match="output_units"):
        acc.AcceleratorConfig(output_units=0)


# --------------------------------------------------------------------------------------
# Hardware (v2): area, critical path, clock
# --------------------------------------------------------------------------------------
LIB = acc.CellLibrary()


def test_adders_hand_computed():
    assert acc.adder_area(8, "ripple", LIB) == 8 * LIB.fa
    assert acc.adder_delay(8, "ripple", LIB) == 7 * LIB.d_fa_carry + LIB.d_fa_sum
    # Sklansky: p/g (XOR + AND) and a sum XOR per bit, 3 levels of 4 carry cells
    assert acc.adder_area(8, "prefix", LIB) == 8 * (2 * LIB.xor2 + LIB.and2) + 3 * 4 * LIB.ao21
    assert acc.adder_delay(8, "prefix", LIB) == 2 * LIB.d_xor + 3 * LIB.d_ao21
    assert acc.adder_delay(32, "ripple", LIB) > 3 * acc.adder_delay(8, "ripple", LIB)
    assert acc.adder_delay(32, "prefix", LIB) - acc.adder_delay(8, "prefix", LIB) == 2 * LIB.d_ao21


@pytest.mark.parametrize(
    ("heights", "expected"),
    [
        ([3], (1, 0, 1, 0)),  # one full adder: sum and carry, one bit each column
        ([2], (0, 0, 0, 1)),  # already two rows: a 1-bit final adder
        ([4], (1, 0, 1, 2)),  # FA + a passing bit -> columns (2, 1)
        ([6], (2, 0, 1, 2)),  # 2 FAs -> columns (2, 2): a 2-bit final adder
    ],
)
def test_compressor_tree_hand_computed(heights, expected):
    fas, has, stages, width = acc.compress(heights)
    assert (fas, has, stages, width) == expected


def test_popcount_tree_counts_every_input():
    # every adder removes at most one bit: w inputs down to bits(w) outputs
    for w in (7, 16, 32, 64):
        fas, has, stages, width = acc.compress([w])
        assert fas + has >= w - w.bit_length()
        assert stages <= 2 * w.bit_length()


def test_narrow_accumulator_shrinks_area_and_ripple_carry_chain():
    model = _model(8, "wrap", tile=32)
    cfg = acc.AcceleratorConfig()
    ours = acc.model_cost(model, cfg).hw
    wide = acc.model_cost(model, replace(cfg, acc_bits=32)).hw
    assert ours.acc_width == 16 and wide.acc_width == 32  # the int8 layer's 16 bits
    # 16 PEs, each an N-bit ripple adder and an N-bit register
    assert ours.area["accumulator"] == 16 * 16 * (LIB.fa + LIB.dff)
    assert wide.area["accumulator"] == 16 * 32 * (LIB.fa + LIB.dff)
    assert ours.stages["accumulate"] < wide.stages["accumulate"]
    assert ours.fmax_mhz >= wide.fmax_mhz
    # a prefix adder makes the carry chain short: the popcount tree sets the clock
    pre = acc.model_cost(model, replace(cfg, adder="prefix")).hw
    assert pre.critical_stage == "popcount"
    # the standard-BN multiplier is a multicycle path, not the clock
    base = acc.model_cost(model, acc.baseline_config(cfg))
    assert base.hw.stages["output unit"] > base.hw.period_gates
    assert base.hw.output_extra_cycles >= 1
    assert base.total("output_cycles") > acc.model_cost(model, replace(cfg, acc_bits=32)).total(
        "output_cycles"
    )


def test_latency_is_cycles_over_fmax_and_energy_counts_busy_units():
    model = _model(8, "wrap", tile=32)
    cost = acc.model_cost(model)
    assert cost.latency_us() == pytest.approx(cost.cycles / cost.hw.fmax_mhz)
    hw = cost.hw
    assert cost.energy_logic == pytest.approx(
        cost.total("lane_steps") * hw.pe.total
        + cost.total("unit_busy") * hw.output.total
        + cost.total("compute_cycles") * hw.shared.total
    )
    small = acc.model_cost(model, replace(acc.AcceleratorConfig(), lib=replace(LIB, fa=4.5)))
    assert small.hw.compute_ge < hw.compute_ge  # the library is configurable


def test_bad_adder_is_rejected():
    with pytest.raises(ValueError, match="adder"):
        acc.AcceleratorConfig(adder="carry-skip")


# --------------------------------------------------------------------------------------
# The firmware kernels perform the operations the model counts
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def count_lib():
    return hostlib.load(count_ops=True)


def _span(lo: int, hi: int) -> int:
    """32-bit words holding elements [lo, hi)."""
    return (hi - 1) // 32 - lo // 32 + 1


def _exact_tiles(layer, tile_ends: list[int]) -> int:
    """Leading tiles whose running sum can never leave the N-bit range: every product is at
    most 1 (binary) or 128 (int8) in magnitude, so a prefix of e elements is safe while
    vmax * e <= 2^(N-1) - 1. A kernel adds those exactly, without saturation."""
    vmax = 128 if layer.input == "int8" else 1
    hi = (1 << (layer.acc_bits - 1)) - 1
    n = 0
    for end in tile_ends:
        if vmax * end > hi:
            break
        n += 1
    return n


def _check_layer(layer, lc: acc.LayerCost, got: dict, t_out: int) -> None:
    """What a kernel executed (BK_COUNT_OPS) against what the accelerator model counts."""
    from bnnkws.generator.codegen.emit_c import weights_by_column

    conv = isinstance(layer, im.ConvLayer)
    assert got["thresholds"] == (lc.outputs if conv and layer.output == "threshold" else 0)
    assert got["shiftbns"] == (lc.outputs if conv and layer.output == "shiftbn" else 0)
    assert got["pool_ors"] == lc.pool_ors
    if not conv:
        assert got["elements"] == got["words"] == got["sat_adds"] == 0
        return
    n, tile = layer.fan_in, layer.tile
    ends = [min(lo + tile, n) for lo in range(0, n, tile)] if layer.acc_mode == "saturate" else [n]
    exact = _exact_tiles(layer, ends) if layer.acc_mode == "saturate" else len(ends)
    outputs = lc.outputs
    if weights_by_column(layer):
        # bit-sliced over 32 outputs: it adds one column word (one element's weights of
        # 32 outputs) per listed input element, and saturates 32 lanes at a time
        blocks = t_out * layer.groups * -(-(layer.c_out // layer.groups) // 32)
        assert got["elements"] == 32 * got["words"]
        assert 0 < got["words"] <= 2 * blocks * n  # set (and clear) elements, weight counts
        assert got["sat_adds"] == 32 * blocks * (len(ends) - exact)
        return
    assert got["elements"] == lc.elements  # every product, by popcount or by table
    if layer.acc_mode == "wrap":
        assert got["words"] == lc.words and got["sat_adds"] == 0
        return
    # saturate: one exact run over the safe prefix, then a saturating add per tile after it
    safe = ends[exact - 1] if exact else 0
    after = list(zip([safe] + ends[exact:], ends[exact:], strict=False))  # (lo, hi) per tile
    per_output = (_span(0, safe) if safe else 0) + sum(_span(lo, hi) for lo, hi in after)
    assert got["sat_adds"] == outputs * len(after) <= lc.sat_adds
    assert lc.sat_adds - got["sat_adds"] == outputs * exact  # the model adds every tile
    assert got["words"] == outputs * per_output


CASES = [
    ("small", "01", "wrap", 32),
    ("small", "pm1", "saturate", 32),
    ("small", "01", "saturate", 16),
    ("structured", "01", "saturate", 64),
    ("grouped", "01", "saturate", 64),
    ("structured", "01", "wrap", 32),
    ("dense", "pm1", "wrap", 32),
    ("dense", "pm1", "saturate", 32),
]


@pytest.mark.parametrize(("arch", "act", "mode", "tile"), CASES)
def test_kernels_count_what_they_execute(count_lib, arch, act, mode, tile):
    model = random_integer_model(
        3,
        acc_bits=8,
        mode=mode,
        tile=tile,
        act=act,
        arch=arch,
        first_bits=16,
        last_groups=2 if arch == "small" else None,
    )
    net = hostlib.CNet.from_model(model, count_lib)
    cost = acc.model_cost(model, acc.AcceleratorConfig(lane=32))
    feats = np.random.default_rng(0).integers(-128, 128, (model.n_frames, 40), dtype=np.int8)
    hostlib.op_counts(count_lib, reset=True)
    x = feats
    per_layer = []
    shapes = model.shapes()
    for i, (layer, lc) in enumerate(zip(model.layers, cost.layers, strict=True)):
        x = net.layer_forward(i, x)
        got = hostlib.op_counts(count_lib, reset=True)
        _check_layer(layer, lc, got, shapes[i][0])
        per_layer.append(got)
    # the whole network through bk_model_run executes the same operations
    net.scores(feats)
    totals = {k: sum(g[k] for g in per_layer) for k in hostlib.OP_COUNTS}
    assert hostlib.op_counts(count_lib, reset=True) == totals


def test_a_saturating_layer_skips_the_saturating_adds_of_its_safe_prefix(count_lib):
    # fan-in 384, tile 32, N = 8: the first 3 tiles (96 elements) can never reach 127
    model = random_integer_model(5, acc_bits=8, mode="saturate", tile=32, arch="structured")
    layer = model.layers[1]
    assert layer.fan_in == 384 and layer.acc_mode == "saturate"
    net = hostlib.CNet.from_model(model, count_lib)
    x = net.layer_forward(0, np.zeros((model.n_frames, 40), dtype=np.int8))
    hostlib.op_counts(count_lib, reset=True)
    net.layer_forward(1, x)
    got = hostlib.op_counts(count_lib, reset=True)
    t_out = model.shapes()[1][0]
    # 12 tiles, 3 exact; bit-sliced blocks of 32 outputs (column layout) or one per output
    from bnnkws.generator.codegen.emit_c import weights_by_column

    per = 32 * 4 if weights_by_column(layer) else 128
    assert got["sat_adds"] == t_out * per * (12 - 3)


def test_the_default_library_has_no_counters():
    # no counter symbol at all: nothing in its kernels counts
    with pytest.raises(BuildError, match="count_ops"):
        hostlib.op_counts(hostlib.load())


def test_the_structured_test_net_is_the_trainers_preset():
    from bnnkws.tools.bench.mcu import preset_model

    def shape(model):
        return [
            (la.input, la.c_in, la.c_out, la.kernel, la.stride, la.groups, la.output)
            if isinstance(la, im.ConvLayer)
            else ("pool", la.kernel)
            for la in model.layers
        ]

    for n in (4, 10):
        ours = random_integer_model(0, arch="structured", n_classes=n, first_bits=16)
        assert shape(ours) == shape(preset_model("structured", 8, "wrap", n_classes=n))
