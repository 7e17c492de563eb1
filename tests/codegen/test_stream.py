"""Streaming inference (firmware/bnn_stream.c, intmodel.StreamingForward, reference Stream)
equals the full-window forward bit for bit: every stride, from a cold start, across long
runs, after resets, for windows in any order; and it computes only the new steps."""

from __future__ import annotations

import numpy as np
import pytest
from bnn_models import random_integer_model

from bnnkws.generator.base.paths import MODELS_DIR
from bnnkws.generator.codegen.emit_c import emit_c, stream_state_words, stream_work_words
from bnnkws.generator.export import blob as blobmod
from bnnkws.generator.export.loading import load_any
from bnnkws.generator.integer.intmodel import StreamingForward
from bnnkws.reference import bnn as ref
from bnnkws.tools.host.hostlib import CNet


def stream_rows(model, n_rows: int, seed: int) -> np.ndarray:
    """A feature stream: int8 rows with slowly varying structure (so bits toggle)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-60, 60, (n_rows, model.frontend.n_mels))
    drift = np.cumsum(rng.integers(-8, 9, (n_rows, 1)), axis=0) % 90 - 45
    return np.clip(base + drift, -128, 127).astype(np.int8)


def full_scores(net: CNet, rows: np.ndarray, starts: list[int]) -> np.ndarray:
    n = net.n_frames
    wins = np.stack([rows[s : s + n] for s in starts])
    return net.scores(wins)[0]


def expected_new_steps(model, stride: int) -> int:
    """Steps a steady-state window computes: per hidden layer stride / gcd(stride, S_i)
    (S_i: product of steps up to i), bounded by the layer's steps per window; 1 for the last."""
    total, s = 0, 1
    for layer, (t, _) in list(zip(model.layers, model.shapes(), strict=True))[:-1]:
        s *= layer.stride if hasattr(layer, "stride") else layer.kernel
        total += min(t, stride // np.gcd(stride, s))
    return total + 1


@pytest.mark.parametrize(
    "arch,mode,bits",
    [("structured", "wrap", 8), ("small", "saturate", 6), ("columns", "wrap", 7), ("grouped", "wrap", 8)],
)
def test_c_stream_equals_full_window_at_every_stride(arch, mode, bits):
    model = random_integer_model(3, acc_bits=bits, mode=mode, arch=arch, first_bits=16)
    net = CNet.build(model)
    rows = stream_rows(model, 160, seed=4)
    n = model.n_frames
    for stride in (1, 2, 3, 4, 5, 7, 8, 13, 49, 60):
        st = net.stream(stride)
        starts = list(range(0, rows.shape[0] - n + 1, stride))
        got = np.stack([st.run(rows[s : s + n], s)[0] for s in starts])
        np.testing.assert_array_equal(got, full_scores(net, rows, starts), err_msg=f"stride {stride}")


def test_c_stream_computes_only_new_steps():
    model = random_integer_model(5, arch="structured", first_bits=16)
    net = CNet.build(model)
    rows = stream_rows(model, 200, seed=6)
    n = model.n_frames
    cold = sum(t for t, _ in model.shapes())  # the full window's steps
    for stride in (4, 5, 8):
        st = net.stream(stride)
        st.run(rows[:n], 0)
        assert st.steps == cold
        # the first windows after a cold start still fill the other phases of the rings
        for k in range(1, 12):
            st.run(rows[k * stride : k * stride + n], k * stride)
        before = st.steps
        for k in range(12, 14):
            st.run(rows[k * stride : k * stride + n], k * stride)
        per_window = (st.steps - before) / 2
        assert per_window == expected_new_steps(model, stride)
        # the network's total step is 4: at stride 4, 2 + 2 + 1 + 1 + 1 new steps and the last layer
        if stride == 4:
            assert per_window == 8
    # state sizes agree with the generator's
    assert int(net.lib.bk_stream_state_words(net.m, 1)) == stream_state_words(model, 1)
    assert int(net.lib.bk_stream_state_words(net.m, 4)) == stream_state_words(model, 4)
    assert int(net.lib.bk_stream_work_words(net.m)) == stream_work_words(model)


def test_c_stream_any_order_of_windows_and_reset():
    """Windows out of order, repeated, jumping ahead: every result is the full window's
    (tags make a stale ring row impossible to reuse); a reset starts cold."""
    model = random_integer_model(7, arch="columns", first_bits=12, acc_bits=6)
    net = CNet.build(model)
    rows = stream_rows(model, 300, seed=8)
    n = model.n_frames
    rng = np.random.default_rng(9)
    starts = [int(s) for s in rng.integers(0, rows.shape[0] - n + 1, 60)] + [5, 5, 6, 200, 3]
    st = net.stream(5)
    got = np.stack([st.run(rows[s : s + n], s)[0] for s in starts])
    np.testing.assert_array_equal(got, full_scores(net, rows, starts))
    st.reset()
    assert st.steps == 0
    st.run(rows[10 : 10 + n], 10)
    assert st.steps == sum(t for t, _ in model.shapes())


def test_c_stream_long_run_with_the_shipped_default_model():
    """The shipped default model over a long stream (4,000 hops = 80 s) at the firmware's
    stride: identical scores, and only the new steps computed."""
    model = load_any(MODELS_DIR / "default.pt").model
    net = CNet.build(model)
    rows = stream_rows(model, 4000, seed=10)
    n = model.n_frames
    st = net.stream(5)
    starts = list(range(0, rows.shape[0] - n + 1, 5))
    got = np.stack([st.run(rows[s : s + n], s)[0] for s in starts])
    np.testing.assert_array_equal(got, full_scores(net, rows, starts))
    cold = sum(t for t, _ in model.shapes())
    # every window but a few at the start computes only its new steps
    assert st.steps <= 4 * cold + len(starts) * expected_new_steps(model, 5)
    assert st.steps < len(starts) * cold / 2


@pytest.mark.parametrize("stride", [1, 3, 4, 5])
def test_python_stream_twin_equals_forward(stride):
    model = random_integer_model(11, arch="small", mode="saturate", acc_bits=6)
    rows = stream_rows(model, 110, seed=12)
    n = model.n_frames
    sf = StreamingForward(model)
    starts = list(range(0, rows.shape[0] - n + 1, stride))
    got = np.stack([sf.run(rows[s : s + n], s) for s in starts])
    want = model.forward(np.stack([rows[s : s + n] for s in starts]))
    np.testing.assert_array_equal(got, want)
    # steady state: the last windows compute only their new steps
    before = sf.steps
    more = [starts[-1] + stride * k for k in (1, 2, 3)]
    rows = np.concatenate([rows, stream_rows(model, 3 * stride, seed=13)])
    for s in more:
        sf.run(rows[s : s + n], s)
    assert sf.steps - before == 3 * expected_new_steps(model, stride)


def test_reference_stream_equals_forward_under_cpython():
    model = random_integer_model(13, arch="tiny", n_classes=3)
    rows = stream_rows(model, 70, seed=14)
    m = ref.Model(blobmod.to_bytes(model))
    st = ref.Stream(m)
    n = model.n_frames
    for s in range(0, rows.shape[0] - n + 1, 5):
        win = rows[s : s + n].tolist()
        assert st.scores(win, s) == m.scores(win)
    assert st.steps < (len(range(0, rows.shape[0] - n + 1, 5))) * sum(t for t, _ in model.shapes())


def test_reference_stream_under_micropython_equals_host():
    from bnnkws.tools.host import micropython_runner as mp

    model = random_integer_model(15, arch="tiny", n_classes=3)
    rows = stream_rows(model, 80, seed=16)
    got = mp.run_stream(model, blobmod.to_bytes(model), rows, 5)
    net = CNet.from_model_dir(emit_c(model))
    starts = list(range(0, rows.shape[0] - model.n_frames + 1, 5))
    np.testing.assert_array_equal(got, full_scores(net, rows, starts))
