"""The integer model file (generator/export/blob.py, docs/FORMAT.md): layout, round trip, rejection."""

import hashlib
import struct
import zlib

import numpy as np
import pytest
from bnn_models import random_integer_model
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnkws.generator.base.errors import FormatError
from bnnkws.generator.export import blob
from bnnkws.generator.frontend import FrontendConfig, make_params
from bnnkws.generator.integer.intmodel import ConvLayer, IntegerModel, pack_bits, unpack_bits


@pytest.fixture(scope="module")
def model():
    return random_integer_model(1, 6, "saturate", 7, "pm1", "small")


@pytest.fixture(scope="module")
def data(model):
    return blob.to_bytes(model)


def reseal(data: bytes) -> bytes:
    """Fix length and CRC after an edit, so the parser reaches the field under test."""
    body = data[16:]
    return data[:4] + struct.pack("<HHII", 1, 16, len(data), zlib.crc32(body)) + body


def section(data: bytes, tag: str, nth: int = 0) -> blob.Section:
    return [s for s in blob.check_header(data).sections if s.tag == tag][nth]


# --------------------------------------------------------------------------------------
# layout
# --------------------------------------------------------------------------------------
def test_header_fields(data):
    magic, version, hsize, length, crc = struct.unpack_from("<4sHHII", data)
    assert (magic, version, hsize, length) == (b"BKIM", 1, 16, len(data))
    assert crc == zlib.crc32(data[16:])
    assert blob.model_hash(data) == hashlib.sha256(data[16:]).hexdigest()


def test_sections_in_order_and_aligned(model, data):
    info = blob.check_header(data)
    assert [s.tag for s in info.sections] == ["MODL", "FRNT", "LABL"] + ["LAYR"] * len(
        model.layers
    ) + ["META"]
    assert all(s.offset % 4 == 0 for s in info.sections)
    fr = section(data, "FRNT")
    assert data[fr.offset : fr.offset + fr.size] == model.frontend.to_bytes()  # BKFE as is
    n_layers, n_frames, n_classes, reserved = struct.unpack_from(
        "<HHHH", data, section(data, "MODL").offset
    )
    assert (n_layers, n_frames, n_classes, reserved) == (len(model.layers), 49, 4, 0)


def test_weight_packing_order_golden():
    # one conv layer, c_out 2, kernel 2, cg 3: fan-in element i = k * 3 + c, bit i of word 0
    w = np.array([[[1, 0, 0], [0, 0, 1]], [[0, 1, 1], [1, 1, 1]]], dtype=np.uint8)
    layer = ConvLayer(
        name="w",
        input="int8",
        c_in=3,
        c_out=2,
        kernel=2,
        stride=1,
        groups=1,
        weights=w,
        acc_bits=8,
        acc_mode="wrap",
        tile=32,
        output="shiftbn",
        mu=np.array([1, -2], dtype=np.int32),
        shift=np.array([0, -1], dtype=np.int8),
        sign=np.array([1, -1], dtype=np.int8),
        beta=np.array([5, 7], dtype=np.int32),
    )
    fe = make_params(FrontendConfig(frame_len=64, hop=32, n_mels=3, fmin=100, fmax=7000))
    m = IntegerModel(fe, ["a", "b"], 2, [layer])
    d = blob.to_bytes(m)
    s = section(d, "LAYR")
    head = struct.unpack_from("<BBBBBBHHHHHHH", d, s.offset)
    assert head == (0, 0, 1, 255, 8, 0, 32, 3, 2, 2, 1, 1, 1)  # conv, int8, shiftbn, no act, ...
    off = s.offset + 20 + 1 + 3  # record, name "w", padding to 4
    words = struct.unpack_from("<2I", d, off)
    assert words == (0b100001, 0b111110)  # o=0: elements 0 and 5; o=1: elements 1..5
    mu, beta = struct.unpack_from("<2i", d, off + 8), struct.unpack_from("<2i", d, off + 16)
    assert mu == (1, -2) and beta == (5, 7)
    assert struct.unpack_from("<2b2b", d, off + 24) == (0, -1, 1, -1)  # shift, sign


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 1), min_size=1, max_size=100), min_size=1, max_size=4))
def test_packing_property(rows):
    n = min(len(r) for r in rows)
    bits = np.array([r[:n] for r in rows], dtype=np.uint8)
    words = pack_bits(bits)
    assert words.shape == (len(rows), (n + 31) // 32)
    for r in range(len(rows)):
        for i in range(n):  # element i is bit i % 32 of word i // 32
            assert (int(words[r, i // 32]) >> (i % 32)) & 1 == bits[r, i]
        if n % 32:
            assert int(words[r, -1]) >> (n % 32) == 0  # padding is zero
    assert np.array_equal(unpack_bits(words, n), bits)


# --------------------------------------------------------------------------------------
# round trip
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arch", "bits", "mode", "act", "tile"),
    [
        ("small", 6, "saturate", "pm1", 7),
        ("structured", 8, "wrap", "01", 32),
        ("dense", 32, "saturate", "pm1", 64),
        ("tiny", 4, "wrap", "01", 1),
    ],
)
def test_round_trip_is_exact(arch, bits, mode, act, tile):
    m = random_integer_model(3, bits, mode, tile, act, arch)
    m.meta = {"note": "µ-law ✓", "acc": [bits, mode], "nested": {"x": 1.5}}
    m.labels = ["_silence_", "_unknown_", "yes", "ça va"]
    d = blob.to_bytes(m)
    back = blob.from_bytes(d)
    assert blob.model_differences(m, back) == []
    assert back.meta == m.meta and back.labels == m.labels
    assert blob.to_bytes(back) == d  # byte-stable
    x = np.random.default_rng(0).integers(-128, 128, (3, 49, 40)).astype(np.int8)
    assert np.array_equal(back.forward(x), m.forward(x))


def test_save_and_load(tmp_path, model):
    h = blob.save(model, tmp_path / "m.bkim")
    assert h == blob.model_hash((tmp_path / "m.bkim").read_bytes())
    assert blob.model_differences(model, blob.load(tmp_path / "m.bkim")) == []


def test_hash_follows_every_weight_bit(model):
    h0 = blob.model_hash(blob.to_bytes(model))
    layer = model.layers[1]
    w = layer.weights.copy()
    layer.weights[0, 0, 0] ^= 1
    try:
        assert blob.model_hash(blob.to_bytes(model)) != h0
    finally:
        layer.weights[:] = w
    assert blob.model_hash(blob.to_bytes(model)) == h0


def test_differences_are_named(model):
    other = blob.from_bytes(blob.to_bytes(model))
    other.layers[0].thr[3] += 1
    other.labels[1] = "zzz"
    assert blob.model_differences(model, other) == ["labels", "layer 0 (conv0): thr"]


# --------------------------------------------------------------------------------------
# rejection
# --------------------------------------------------------------------------------------
def rejects(data: bytes, pattern: str) -> None:
    with pytest.raises(FormatError, match=pattern):
        blob.from_bytes(data, "m.bkim")


def test_bad_magic(data):
    rejects(b"XKIM" + data[4:], r"m\.bkim: magic b'XKIM', expected b'BKIM'")


def test_bad_version(data):
    rejects(
        data[:4] + struct.pack("<H", 2) + data[6:],
        r"m\.bkim: version 2, this bnnkws reads version 1",
    )


def test_truncated_and_trailing(data):
    rejects(data[:-10], r"length field says \d+ bytes, the file has \d+ \(truncated\)")
    rejects(data + b"\0", r"\(trailing data\)")
    rejects(data[:10], r"too short for the 16-byte header")


def test_crc_mismatch(data):
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x40
    rejects(bytes(bad), r"m\.bkim: CRC32 mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)")


def test_section_order(data):
    s = section(data, "META")
    bad = bytearray(data)
    bad[s.offset - 8 : s.offset - 4] = b"LAYR"
    rejects(reseal(bytes(bad)), r"sections \[.*\], expected MODL FRNT LABL LAYR\.\.\. META")


def test_bad_layer_fields(data):
    s = section(data, "LAYR", 1)
    for byte, value, pattern in (
        (0, 7, r"layer 1 \(conv1\): kind code 7, expected one of \[0, 1\]"),
        (4, 40, r"layer 1 \(conv1\): conv1: acc_bits 40 outside 4\.\.32"),
        (5, 3, r"layer 1 \(conv1\): acc_mode code 3"),
        (1, 9, r"layer 1 \(conv1\): input code 9"),
    ):
        bad = bytearray(data)
        bad[s.offset + byte] = value
        rejects(reseal(bytes(bad)), pattern)
    bad = bytearray(data)
    struct.pack_into("<H", bad, s.offset + 10, 33)  # c_out 33: record too short for it
    rejects(
        reseal(bytes(bad)),
        r"layer 1 \(conv1\): .*(not a valid convolution|layer record is \d+ bytes)",
    )


def test_weight_padding_must_be_zero(data, model):
    s = section(data, "LAYR", 0)
    name_len = len(model.layers[0].name)
    off = s.offset + 20 + name_len + (-(20 + name_len)) % 4
    bad = bytearray(data)
    struct.pack_into("<I", bad, off + 12, 0x80000000)  # fan-in 120: bit 127 is padding
    rejects(
        reseal(bytes(bad)), r"layer 0 \(conv0\): weight padding bits past the fan-in are not zero"
    )


def test_bad_front_end_and_meta(data):
    fr = section(data, "FRNT")
    bad = bytearray(data)
    bad[fr.offset] = ord("X")
    rejects(reseal(bytes(bad)), r"FRNT: magic")
    me = section(data, "META")
    bad = bytearray(data)
    bad[me.offset] = ord("[")
    rejects(reseal(bytes(bad)), r"META is not a UTF-8 JSON object|META is list")


def test_load_names_the_file(tmp_path):
    p = tmp_path / "broken.bkim"
    p.write_bytes(b"BKIM\x01\x00")
    with pytest.raises(FormatError, match=r"broken\.bkim: 6 bytes, too short"):
        blob.load(p)
    with pytest.raises(FormatError, match=r"missing\.bkim: cannot read"):
        blob.load(tmp_path / "missing.bkim")


def test_writer_refuses_unrepresentable_values(model):
    m = blob.from_bytes(blob.to_bytes(model))
    m.layers[-1].shift[0] = 17
    with pytest.raises(FormatError, match=r"layer scores: shift outside -16\.\.16"):
        blob.to_bytes(m)
    m = blob.from_bytes(blob.to_bytes(model))
    m.layers[0].c_out = 70000
    with pytest.raises(FormatError, match="integer model: "):
        blob.to_bytes(m)
