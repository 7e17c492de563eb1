"""The MicroPython reference (reference/bnn.py) against the integer model, under CPython
and under the real `micropython` binary; front-end included; corrupt blobs rejected."""

import struct
import zlib

import numpy as np
import pytest
from bnn_models import random_integer_model, small_frontend
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnkws.generator import frontend as fe
from bnnkws.generator.base.errors import BuildError
from bnnkws.generator.export import blob
from bnnkws.generator.integer.intmodel import accumulate, wrap
from bnnkws.reference import bnn
from bnnkws.tools.host import micropython_runner
from bnnkws.tools.host.verify import random_inputs


def reference_outputs(m, data, x):
    r = bnn.Model(data)
    out = []
    for b in range(len(x)):
        outs = r.forward_all(x[b].tolist())
        out.append(
            [
                np.array(r.output_values(i, o)).reshape(-1, r.layers[i].c_out)
                for i, o in enumerate(outs)
            ]
        )
    return out


def assert_layers_equal(got, ref):
    for b, outs in enumerate(got):
        for i, o in enumerate(outs):
            assert np.array_equal(o, ref[i][b]), f"layer {i} input {b}"


# --------------------------------------------------------------------------------------
# arithmetic helpers
# --------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**70))
def test_popcount_any_size(x):
    assert bnn.popcount(x) == bin(x).count("1")


@settings(max_examples=200, deadline=None)
@given(st.integers(4, 32), st.lists(st.integers(-(2**33), 2**33), min_size=1, max_size=8))
def test_wrap_and_saturate_match_intmodel(bits, partials):
    assert bnn.wrap(sum(partials), bits) == int(wrap(sum(partials), bits))
    acc = 0
    for p in partials:
        acc = bnn.saturate(acc + p, bits)
    assert acc == int(accumulate(np.array([partials]), bits, "saturate")[0])


# --------------------------------------------------------------------------------------
# CPython: many configurations, fast
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["wrap", "saturate"])
@pytest.mark.parametrize(
    ("arch", "bits", "act", "tile"),
    [
        ("small", 4, "01", 32),
        ("small", 7, "pm1", 5),
        ("structured", 6, "01", 32),
        ("dense", 16, "pm1", 96),
    ],
)
def test_reference_matches_intmodel_cpython(arch, bits, act, tile, mode):
    m = random_integer_model(bits + 100, bits, mode, tile, act, arch, first_bits=min(32, bits + 4))
    x = random_inputs(bits, 3, model=m)
    assert_layers_equal(reference_outputs(m, blob.to_bytes(m), x), m.forward(x, all_layers=True))
    s, cls = bnn.Model(blob.to_bytes(m)).predict(x[0].tolist())
    assert s == m.forward(x[:1])[0].tolist() and cls == int(m.predict(x[:1])[0])


def test_reference_reads_labels_and_front_end():
    m = random_integer_model(1, 8, "wrap", 32, "01", "small")
    m.labels = ["_silence_", "_unknown_", "ça", "go"]
    r = bnn.Model(blob.to_bytes(m))
    assert r.labels == m.labels and r.n_frames == 49
    assert r.frontend.window == m.frontend.window.tolist()


# --------------------------------------------------------------------------------------
# the micropython binary
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arch", "bits", "mode", "act", "tile"),
    [
        ("small", 5, "wrap", "01", 32),
        ("small", 6, "saturate", "pm1", 7),
        ("structured", 8, "saturate", "01", 32),
    ],
)
def test_reference_under_micropython(arch, bits, mode, act, tile):
    m = random_integer_model(bits, bits, mode, tile, act, arch)
    x = random_inputs(bits + 1, 2, model=m)
    got = micropython_runner.run_model(m, blob.to_bytes(m), x)
    assert_layers_equal(got, m.forward(x, all_layers=True))


def test_front_end_and_network_from_audio_under_micropython():
    p = small_frontend(n_mels=8)
    m = random_integer_model(5, 6, "saturate", 5, "pm1", "tiny", n_frames=12, frontend=p)
    n = p.frame_len + 11 * p.hop
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(n) * 4000).astype(np.int16), np.zeros(n, dtype=np.int16)]
    clips[1][::7] = 32767
    got = micropython_runner.run_model_audio(m, blob.to_bytes(m), clips)
    for clip, (feats, outs) in zip(clips, got, strict=True):
        f = fe.features(clip, p)
        assert np.array_equal(feats, f)
        ref = m.forward(f, all_layers=True)
        assert all(np.array_equal(o, r[0]) for o, r in zip(outs, ref, strict=True))


# --------------------------------------------------------------------------------------
# corrupt blobs
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good():
    m = random_integer_model(2, 6, "wrap", 32, "01", "tiny", n_frames=12, frontend=small_frontend())
    return m, blob.to_bytes(m)


def corruptions(data: bytes) -> dict[str, bytes]:
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    version = data[:4] + struct.pack("<H", 9) + data[6:]
    body = bytearray(data[16:])
    body[12] = 3  # MODL n_classes (tag 4, size 4, n_layers 2, n_frames 2) wrong, CRC recomputed
    recrc = data[:12] + struct.pack("<I", zlib.crc32(bytes(body))) + bytes(body)
    return {
        "magic": b"XXXX" + data[4:],
        "version": version,
        "length": data[:-4],
        "CRC32": bytes(flipped),
        "counts": recrc,
    }


@pytest.mark.parametrize("what", ["magic", "version", "length", "CRC32", "counts"])
def test_corrupt_blob_rejected_cpython(good, what):
    with pytest.raises(bnn.BlobError, match=what if what != "counts" else "MODL counts|LABL"):
        bnn.Model(corruptions(good[1])[what])


def test_corrupt_blob_rejected_under_micropython(good):
    m, data = good
    for what, bad in corruptions(data).items():
        with pytest.raises(BuildError, match="BlobError") as info:
            micropython_runner.run_model(m, bad, np.zeros((1, 12, 8), dtype=np.int8), timeout=60)
        if what != "counts":
            assert what in str(info.value)
