"""C kernels (firmware/bnn.h) against the integer model (generator/integer/intmodel.py), bit for bit.

Golden vectors per kernel (values worked out by hand in the comments), property tests
for packing and for the N-bit accumulator at every width 4..32 in both modes (values at
the overflow boundary included), and whole layers and networks on random weights.
"""

import shutil
import subprocess

import numpy as np
import pytest
from bnn_models import assert_net_matches, random_integer_model, threshold_conv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnnkws.generator.base.paths import FIRMWARE_DIR as FIRMWARE
from bnnkws.generator.codegen.emit_c import weights_by_column
from bnnkws.generator.integer.intmodel import (
    PoolLayer,
    accumulate,
    pack_bits,
    shift,
    unpack_bits,
)
from bnnkws.tools.host.hostlib import CNet, ffi, load
from bnnkws.tools.host.verify import random_inputs

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def lib():
    return load()


def u32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.uint32)


def ptr(ctype, a):
    return ffi.cast(ctype, ffi.from_buffer(a))


# --------------------------------------------------------------------------------------
# popcount
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("x", "n"),
    [
        (0, 0),
        (0xFFFFFFFF, 32),
        (0x80000001, 2),
        (0x12345678, 13),
        (0xAAAAAAAA, 16),
        (0xFF00FF00, 16),
    ],
)
def test_popcount_golden(lib, x, n):
    assert lib.bk_popcount32_portable(x) == n
    assert lib.bk_popcount32_instruction(x) == n


@PROPS
@given(st.integers(0, 2**32 - 1))
def test_popcount_variants_agree(lib, x):
    n = bin(x).count("1")
    assert lib.bk_popcount32_portable(x) == n == lib.bk_popcount32_instruction(x)


# --------------------------------------------------------------------------------------
# bit packing
# --------------------------------------------------------------------------------------
def test_pack_golden(lib):
    # element i -> word i // 32, bit i % 32: [1,0,1,1] -> 0b1101; element 32 -> word 1 bit 0
    bits = np.zeros(33, dtype=np.uint8)
    bits[[0, 2, 3, 32]] = 1
    words = np.zeros(2, dtype=np.uint32)
    lib.bk_pack_bits(ptr("uint8_t *", bits), 33, ptr("uint32_t *", words))
    assert words.tolist() == [0b1101, 1]
    assert pack_bits(bits).tolist() == [0b1101, 1]


@PROPS
@given(st.lists(st.integers(0, 1), min_size=1, max_size=200))
def test_pack_matches_numpy_and_round_trips(lib, bits):
    b = np.array(bits, dtype=np.uint8)
    words = np.full((len(bits) + 31) // 32, 0xDEADBEEF, dtype=np.uint32)  # garbage is cleared
    lib.bk_pack_bits(ptr("uint8_t *", b), b.size, ptr("uint32_t *", words))
    assert np.array_equal(words, pack_bits(b))
    back = np.zeros_like(b)
    lib.bk_unpack_bits(ptr("uint32_t *", words), b.size, ptr("uint8_t *", back))
    assert np.array_equal(back, b)
    assert np.array_equal(unpack_bits(words, b.size), b)


@PROPS
@given(
    st.integers(0, 200),
    st.integers(0, 200),
    st.integers(0, 130),
    st.integers(0, 2**31),
    st.integers(0, 2**31),
)
def test_bits_copy_moves_exactly_n_bits(lib, src_off, dst_off, n, seed_a, seed_b):
    rng = np.random.default_rng(seed_a)
    src_bits = rng.integers(0, 2, src_off + n + 40, dtype=np.uint8)
    dst_bits = np.random.default_rng(seed_b).integers(0, 2, dst_off + n + 40, dtype=np.uint8)
    src, dst = u32(pack_bits(src_bits)), u32(pack_bits(dst_bits))
    lib.bk_bits_copy(ptr("uint32_t *", dst), dst_off, ptr("uint32_t *", src), src_off, n)
    want = dst_bits.copy()
    want[dst_off : dst_off + n] = src_bits[src_off : src_off + n]
    assert np.array_equal(unpack_bits(dst, dst_bits.size), want)  # other bits kept


# --------------------------------------------------------------------------------------
# the N-bit accumulator
# --------------------------------------------------------------------------------------
def c_accumulate(lib, partials, bits, mode):
    p = np.ascontiguousarray(partials, dtype=np.int32)
    return lib.bk_accumulate(ptr("int32_t *", p), p.size, bits, {"wrap": 0, "saturate": 1}[mode])


@pytest.mark.parametrize(
    ("partials", "bits", "mode", "expected"),
    [
        ([127, 1], 8, "wrap", -128),  # 128 wraps to -128
        ([-129], 8, "wrap", 127),
        ([100, 100, -100], 8, "wrap", 100),  # order-independent: exact sum 100
        ([100, 100, -100], 8, "saturate", 27),  # 127 (clamped) - 100
        ([-100, 100, 100], 8, "saturate", 100),  # same partials, another order
        ([7, 1], 4, "saturate", 7),
        ([-8, -1], 4, "saturate", -8),
        ([7, 1], 4, "wrap", -8),
        ([2**31 - 1, 1], 32, "wrap", -(2**31)),
        ([2**31 - 1, 1], 32, "saturate", 2**31 - 1),
        ([-(2**31), -1], 32, "saturate", -(2**31)),
        ([-(2**31), -(2**31)], 32, "wrap", 0),
    ],
)
def test_accumulator_golden(lib, partials, bits, mode, expected):
    assert c_accumulate(lib, partials, bits, mode) == expected
    assert int(accumulate(np.array([partials]), bits, mode)[0]) == expected


@st.composite
def partials_at_boundary(draw):
    bits = draw(st.integers(4, 32))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    edge = st.sampled_from([lo, hi, lo - 1, hi + 1, 0, 1, -1, hi // 2 + 1, lo // 2 - 1])
    value = st.one_of(edge, st.integers(lo * 2, hi * 2)).map(
        lambda v: max(-(2**31), min(2**31 - 1, v))
    )
    return bits, draw(st.lists(value, min_size=1, max_size=12))


@PROPS
@given(partials_at_boundary(), st.sampled_from(["wrap", "saturate"]))
def test_accumulator_matches_intmodel_at_every_width(lib, case, mode):
    bits, partials = case
    assert c_accumulate(lib, partials, bits, mode) == int(
        accumulate(np.array([partials]), bits, mode)[0]
    )


# --------------------------------------------------------------------------------------
# output transforms, pooling, argmax
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("acc", "thr", "flip", "bit"),
    [(5, 5, 0, 1), (4, 5, 0, 0), (5, 5, 1, 1), (6, 5, 1, 0), (-(2**31), -(2**31), 0, 1)],
)
def test_threshold_golden(lib, acc, thr, flip, bit):
    assert lib.bk_threshold(acc, thr, flip) == bit


@pytest.mark.parametrize(
    ("args", "y"),
    [
        ((7, 2, 1, 1, 3), 13),  # (7 - 2) << 1 + 3
        ((7, 2, -1, 1, 3), 5),  # (5 >> 1) + 3 = 2 + 3
        ((-7, 0, -1, -1, 0), 4),  # floor(-7 / 2) = -4, sign -1 -> 4
        ((-1, 0, -16, 1, 0), -1),  # floor(-1 / 65536) = -1
        ((2**31 - 1, -(2**31), 16, 1, 0), 2**31 - 1),  # clamped to int32
        ((2**31 - 1, -(2**31), 16, -1, 0), -(2**31)),
    ],
)
def test_shiftbn_golden(lib, args, y):
    assert lib.bk_shiftbn(*args) == y


@PROPS
@given(
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-16, 16),
    st.sampled_from([-1, 1]),
    st.integers(-(2**31), 2**31 - 1),
)
def test_shiftbn_matches_intmodel(lib, acc, mu, s, sign, beta):
    y = sign * int(shift(np.int64(acc) - mu, np.int64(s))) + beta
    assert lib.bk_shiftbn(acc, mu, s, sign, beta) == max(-(2**31), min(2**31 - 1, y))


def test_pool_or_golden(lib):
    # rows of one word; kernel 2: OR pairs, the odd last row is dropped
    x = u32([0b0001, 0b0100, 0b1000, 0b1000, 0xFFFF])
    y = np.zeros(2, dtype=np.uint32)
    lib.bk_pool_or(ptr("uint32_t *", x), 5, 1, 2, ptr("uint32_t *", y))
    assert y.tolist() == [0b0101, 0b1000]


def test_argmax_first_maximum(lib):
    v = np.array([3, 9, -2, 9, 1], dtype=np.int32)
    assert lib.bk_argmax_i32(ptr("int32_t *", v), 5) == 1


# --------------------------------------------------------------------------------------
# convolutions: golden vectors
# --------------------------------------------------------------------------------------
def one_layer(layer, t_in, c_in):
    return CNet.from_layers([layer], t_in, c_in, layer.c_out)


def test_bconv_int8_golden():
    # fan-in order k outer, c inner: x = [10, 20, 30, 40], w = [+1, -1, -1, +1]
    # exact: 10 - 20 - 30 + 40 = 0
    # saturate, 4 bits [-8, 7], tile 1: 10 -> 7, -20 -> -8, -30 -> -8, +40 -> 7
    # saturate, tile 2: partials -10, 10: -8, 2;  wrap 4 bits: 0
    w = np.array([[[1, 0], [0, 1]]], dtype=np.uint8)
    x = np.array([[10, 20], [30, 40]], dtype=np.int8)
    for mode, tile, want in (("saturate", 1, 7), ("saturate", 2, 2), ("wrap", 1, 0)):
        layer = threshold_conv(
            input="int8", c_in=2, c_out=1, kernel=2, weights=w, acc_bits=4, acc_mode=mode, tile=tile
        )
        assert int(layer.accumulate(x[None])[0, 0, 0]) == want
        assert one_layer(layer, 2, 2).layer_accumulate(0, x).tolist() == [[want]]


def test_bconv_int8_extreme_values():
    # all -128 with +1 weights: fan-in 64 -> -8192; at 14 bits [-8192, 8191] it fits,
    # at 13 bits it wraps to 0 and saturates at -4096
    w = np.ones((1, 1, 64), dtype=np.uint8)
    x = np.full((1, 64), -128, dtype=np.int8)
    for bits, mode, want in ((14, "wrap", -8192), (13, "wrap", 0), (13, "saturate", -4096)):
        layer = threshold_conv(
            input="int8", c_in=64, c_out=1, kernel=1, weights=w, acc_bits=bits, acc_mode=mode
        )
        assert one_layer(layer, 1, 64).layer_accumulate(0, x).tolist() == [[want]]
        assert int(layer.accumulate(x[None])[0, 0, 0]) == want


def test_bconv_bin_golden():
    # pm1: x bits [1,1,0] = (+1,+1,-1), w bits [1,0,0] = (+1,-1,-1): +1 -1 +1 = 1
    #      = L - 2 * popcount(x ^ w) = 3 - 2*1
    # 01:  x = (1,1,0): w1*1 + w2*1 = +1 - 1 = 0 = 2*popcount(x & w) - popcount(x) = 2 - 2
    x = np.array([[1, 1, 0]], dtype=np.uint8)
    w = np.array([[[1, 0, 0]]], dtype=np.uint8)
    for kind, want in (("pm1", 1), ("01", 0)):
        layer = threshold_conv(
            input=kind, c_in=3, c_out=1, kernel=1, weights=w, acc_bits=8, acc_mode="wrap"
        )
        assert one_layer(layer, 1, 3).layer_accumulate(0, x).tolist() == [[want]]
        assert int(layer.accumulate(x[None])[0, 0, 0]) == want


def test_bconv_bin_saturates_per_tile_in_fan_in_order():
    # pm1, fan-in 40 = all agree (+1 each), 5 bits [-16, 15], tile 8: 8, 15, 15, 15, 15
    # then flip the last 16 elements to disagree: 8, 15, 15, 7, -1
    x = np.ones((1, 40), dtype=np.uint8)
    w = np.ones((1, 1, 40), dtype=np.uint8)
    layer = threshold_conv(
        input="pm1", c_in=40, c_out=1, kernel=1, weights=w, acc_bits=5, acc_mode="saturate", tile=8
    )
    assert one_layer(layer, 1, 40).layer_accumulate(0, x).tolist() == [[15]]
    x2 = x.copy()
    x2[0, 24:] = 0
    assert one_layer(layer, 1, 40).layer_accumulate(0, x2).tolist() == [[-1]]
    assert int(layer.accumulate(x2[None])[0, 0, 0]) == -1


# --------------------------------------------------------------------------------------
# convolutions: properties over shapes, widths and modes
# --------------------------------------------------------------------------------------
@st.composite
def conv_case(draw):
    kind = draw(st.sampled_from(["int8", "pm1", "01"]))
    groups = draw(st.sampled_from([1, 1, 2, 4]))
    c_in = groups * draw(st.integers(1, 24 if groups > 1 else 70))
    c_out = groups * draw(st.integers(1, 6))
    kernel = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    t_in = kernel + draw(st.integers(0, 5))
    bits = draw(st.integers(4, 32))
    mode = draw(st.sampled_from(["wrap", "saturate"]))
    tile = draw(st.sampled_from([1, 3, 7, 31, 32, 33, 64, 100]))
    seed = draw(st.integers(0, 2**31))
    return kind, groups, c_in, c_out, kernel, stride, t_in, bits, mode, tile, seed


@PROPS
@given(conv_case())
def test_conv_layer_matches_intmodel(case):
    kind, groups, c_in, c_out, kernel, stride, t_in, bits, mode, tile, seed = case
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95)  # skewed weights and inputs reach the overflow boundary
    weights = (rng.random((c_out, kernel, c_in // groups)) < p).astype(np.uint8)
    if kind == "int8":
        x = rng.integers(-128, 128, (t_in, c_in)).astype(np.int8)
        extreme = rng.random(x.shape) < 0.4
        x[extreme] = rng.choice(np.array([-128, 127], dtype=np.int8), int(extreme.sum()))
    else:
        x = (rng.random((t_in, c_in)) < rng.uniform(0.1, 0.9)).astype(np.uint8)
    half = 1 << (bits - 1)
    layer = threshold_conv(
        input=kind,
        c_in=c_in,
        c_out=c_out,
        kernel=kernel,
        stride=stride,
        groups=groups,
        weights=weights,
        acc_bits=bits,
        acc_mode=mode,
        tile=tile,
        out_act="pm1",
        thr=rng.integers(-half, half, c_out).astype(np.int32),
        flip=rng.integers(0, 2, c_out).astype(np.uint8),
    )
    net = one_layer(layer, t_in, c_in)
    assert np.array_equal(net.layer_accumulate(0, x), layer.accumulate(x[None])[0])
    assert np.array_equal(net.layer_forward(0, x), layer.forward(x[None])[0])


def test_pool_layer_matches_intmodel():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 2, (11, 45), dtype=np.uint8)
    pool = PoolLayer("p", 3)
    net = CNet.from_layers([pool], 11, 45)
    assert np.array_equal(net.layer_forward(0, x), pool.forward(x[None])[0])


# --------------------------------------------------------------------------------------
# whole networks
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@pytest.mark.parametrize(
    ("arch", "bits", "act", "tile"),
    [
        ("small", 4, "01", 32),
        ("small", 6, "pm1", 7),
        ("structured", 6, "01", 32),
        ("dense", 8, "pm1", 64),
        ("structured", 32, "01", 5),
        ("dense", 8, "01", 32),
        ("dense", 5, "01", 64),
        ("columns", 8, "01", 32),
        ("columns", 6, "pm1", 64),
        ("columns", 10, "01", 12),
    ],
)
def test_network_matches_intmodel(arch, bits, act, tile, mode):
    model = random_integer_model(
        bits * 7 + tile, bits, mode, tile, act, arch, first_bits=min(bits + 6, 32)
    )
    x = random_inputs(bits, 6, model=model)
    net = CNet.from_model(model)
    assert_net_matches(net, model, x)
    assert net.work.size == net.lib.bk_model_work_words_needed(net.m)
    if arch in ("dense", "columns"):
        # these shapes exist to reach the column-layout kernels of bconv_bin.c
        assert any(weights_by_column(layer) for layer in model.layers)


@pytest.fixture(scope="module")
def builtin_lib():
    """The kernels built with the popcount-instruction variant (popcount=builtin)."""
    return load(popcount="builtin")


def test_popcount_instruction_variant_computes_the_same_network(builtin_lib):
    model = random_integer_model(11, 5, "saturate", 32, "pm1", "small")
    x = random_inputs(2, 4, model=model)
    a, _ = CNet.from_model(model).scores(x)
    b, _ = CNet.from_model(model, lib=builtin_lib).scores(x)
    assert np.array_equal(a, b) and np.array_equal(a, model.forward(x))


@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m3"])
def test_kernels_compile_for_cortex_m(cpu, tmp_path):
    cc = shutil.which("arm-none-eabi-gcc")
    if cc is None:
        pytest.skip("no arm-none-eabi-gcc")
    for src in sorted(FIRMWARE.glob("*.c")):  # every portable file (SConstruct's KERNELS)
        proc = subprocess.run(
            [
                cc,
                f"-mcpu={cpu}",
                "-mthumb",
                "-O2",
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                f"-I{FIRMWARE}",
                "-c",
                str(src),
                "-o",
                str(tmp_path / (src.stem + ".o")),
            ],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"{src.name}: {proc.stderr}"
