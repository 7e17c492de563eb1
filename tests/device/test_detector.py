"""Streaming detector: the C one (firmware/detector.c) and the Python one
(bnnkws.tools.device.detector) give the same posteriors and detections bit for bit, and the rule
does what firmware/detector.h says (smoothing, thresholds, refractory time)."""

from __future__ import annotations

import random

import pytest
from host_c import dlopen_host
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnkws.tools.device.detector import (
    EXP2_NEG_Q15,
    NEVER,
    ConfigError,
    Detection,
    Detector,
    DetectorConfig,
    posteriors,
)
from bnnkws.tools.host import hostlib

CDEF = hostlib.DET_CDEF  # the declarations the host library itself uses

INT32 = st.integers(-(2**31), 2**31 - 1)


@pytest.fixture(scope="module")
def clib():
    return dlopen_host(CDEF)


class CDetector:
    def __init__(self, clib, cfg: DetectorConfig) -> None:
        self.ffi, self.lib = clib
        c = self.ffi.new("bk_det_config_t *")
        c.n_classes, c.smooth, c.temp_shift, c.refractory = (
            cfg.n_classes,
            cfg.smooth,
            cfg.temp_shift,
            cfg.refractory,
        )
        for i, t in enumerate(cfg.thr):
            c.thr[i] = t
        assert self.lib.bk_det_config_check(c) == 0
        self.d = self.ffi.new("bk_det_t *")
        self.lib.bk_det_init(self.d, c)
        self.out = self.ffi.new("bk_detection_t *")

    def push(self, scores, frame: int) -> Detection | None:
        s = self.ffi.new("int32_t[]", list(scores))
        if not self.lib.bk_det_push(self.d, s, frame, self.out):
            return None
        return Detection(self.out.frame, self.out.label, self.out.posterior)


def c_posteriors(clib, scores, temp_shift):
    ffi, lib = clib
    post = ffi.new("uint16_t[]", len(scores))
    lib.bk_det_posteriors(ffi.new("int32_t[]", list(scores)), len(scores), temp_shift, post)
    return list(post)


def test_exp2_table_is_the_documented_rounding():
    assert list(EXP2_NEG_Q15) == [round(32768 * 2 ** (-k / 64)) for k in range(64)]


@settings(max_examples=300, deadline=None)
@given(scores=st.lists(INT32, min_size=1, max_size=16), t=st.integers(0, 16))
def test_c_and_python_posteriors_agree(clib, scores, t):
    py = posteriors(scores, t)
    assert c_posteriors(clib, scores, t) == py
    # a distribution in Q15, up to truncation: each term loses less than 1
    assert 32768 - len(scores) < sum(py) <= 32768
    top = max(range(len(scores)), key=lambda c: (scores[c], -c))
    assert py[top] == max(py)


def test_posteriors_follow_the_base_two_rule():
    # t = 3: 8 score units are a factor 2 in odds
    assert posteriors([8, 0], 3) == [
        (32768 << 15) // (32768 + 16384),
        (16384 << 15) // (32768 + 16384),
    ]
    assert posteriors([5, 5, 5, 5], 0) == [8192] * 4
    # 16 or more factors of 2 below the top weigh nothing
    assert posteriors([0, -16], 0) == [32768, 0]


def random_config(rng: random.Random, n: int) -> DetectorConfig:
    thr = tuple(NEVER if rng.random() < 0.2 else rng.randrange(0, 33000) for _ in range(n))
    return DetectorConfig(thr, rng.randrange(1, 9), rng.randrange(0, 6), rng.randrange(0, 30))


def run_both(clib, seed: int) -> tuple[list, list]:
    rng = random.Random(seed)
    n = rng.randrange(1, 17)
    cfg = random_config(rng, n)
    c, py = CDetector(clib, cfg), Detector(cfg)
    frame = rng.choice([0, 2**32 - 40])  # also across the uint32 wrap of frame numbers
    got_c, got_py = [], []
    for _ in range(300):
        hot = rng.randrange(n)
        scores = [
            rng.randrange(-30, 30) + (rng.randrange(0, 60) if k == hot else 0) for k in range(n)
        ]
        f = frame & 0xFFFFFFFF
        got_c.append(c.push(scores, f))
        got_py.append(py.push(scores, f))
        frame += rng.randrange(1, 6)
    return got_c, got_py


def test_c_and_python_detectors_agree_on_random_streams(clib):
    fired = 0
    for seed in range(40):
        got_c, got_py = run_both(clib, seed)
        assert got_c == got_py, f"seed {seed}"
        fired += sum(d is not None for d in got_py)
    assert fired > 100  # the streams do exercise detections


def test_smoothing_needs_a_sustained_keyword():
    # classes: silence (never fires), "yes"; threshold 0.75, smoothed over 3 windows
    cfg = DetectorConfig((NEVER, 24576), smooth=3, temp_shift=0, refractory=0)
    d = Detector(cfg)
    quiet, loud = [10, 0], [0, 10]  # posteriors ~1.0 for silence / "yes"
    assert d.push(quiet, 0) is None
    assert d.push(quiet, 5) is None
    assert d.push(loud, 10) is None  # mean of (0, 0, 1) < 0.75
    assert d.push(loud, 15) is None  # mean of (0, 1, 1) = 0.67
    det = d.push(loud, 20)  # mean of (1, 1, 1)
    assert det is not None and det.label == 1 and det.frame == 20 and det.posterior > 32700


def test_nothing_fires_before_the_history_is_full():
    d = Detector(DetectorConfig((NEVER, 16384), smooth=3, refractory=0))
    loud = [0, 10]
    assert d.push(loud, 0) is None and d.push(loud, 1) is None
    assert d.push(loud, 2) is not None
    # the history starts again after a detection
    assert d.push(loud, 3) is None and d.push(loud, 4) is None
    assert d.push(loud, 5) is not None


def test_refractory_time_and_history_reset():
    cfg = DetectorConfig((NEVER, 16384), smooth=1, temp_shift=0, refractory=10)
    d = Detector(cfg)
    loud = [0, 10]
    assert d.push(loud, 100) is not None
    assert d.push(loud, 105) is None  # 5 frames later: refractory
    assert d.push(loud, 109) is None
    assert d.push(loud, 110) is not None  # 10 frames later: allowed again


def test_never_threshold_classes_never_fire():
    d = Detector(DetectorConfig((NEVER, NEVER), smooth=1))
    assert all(d.push([0, 100], f) is None for f in range(50))


def test_largest_candidate_wins_and_ties_go_to_the_lower_index():
    d = Detector(DetectorConfig((0, 0, 0), smooth=1, refractory=0))
    assert d.push([5, 5, 0], 1).label == 0
    assert d.push([0, 3, 5], 2).label == 2


def test_bad_settings_are_refused_with_the_field_named(clib):
    with pytest.raises(ConfigError, match="smooth 9"):
        Detector(DetectorConfig((1, 2), smooth=9))
    with pytest.raises(ConfigError, match="temp_shift 17"):
        DetectorConfig((1,), temp_shift=17).check()
    with pytest.raises(ConfigError, match="17 classes"):
        DetectorConfig(tuple(range(17))).check()
    ffi, lib = clib
    c = ffi.new("bk_det_config_t *")
    c.n_classes, c.smooth, c.temp_shift = 2, 0, 0
    assert lib.bk_det_config_check(c) == 1


def test_for_labels_disables_silence_and_unknown():
    cfg = DetectorConfig.for_labels(["_silence_", "_unknown_", "yes", "no"], threshold=0.5)
    assert cfg.thr == (NEVER, NEVER, 16384, 16384)


def test_the_blob_section_round_trips_and_refuses_bad_payloads():
    from bnnkws.generator.export.detector_config import (
        DEFAULT_REFRACTORY,
        DEFAULT_REFRACTORY_MS,
        refractory_frames,
    )

    cfg = DetectorConfig((NEVER, NEVER, 20000, 31000), smooth=6, temp_shift=3, refractory=77)
    data = cfg.to_payload()
    assert len(data) == 6 + 2 * 4 and DetectorConfig.from_payload(data) == cfg
    assert DetectorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="4 thresholds need 14"):
        DetectorConfig.from_payload(data[:-2])
    with pytest.raises(ConfigError, match="reserved byte 1"):
        DetectorConfig.from_payload(data[:3] + b"\x01" + data[4:])
    with pytest.raises(ConfigError, match="smooth 9"):
        DetectorConfig.from_payload(data[:1] + b"\x09" + data[2:])
    # the defaults: keywords at 0.6, 3 windows, 1 s in the model's hops
    assert DEFAULT_REFRACTORY == refractory_frames(DEFAULT_REFRACTORY_MS, 320, 16000) == 50
    d = DetectorConfig.default_for(["_silence_", "yes"], hop=160, sample_rate=16000)
    assert d == DetectorConfig((NEVER, 19661), smooth=3, temp_shift=0, refractory=100)
