"""Streaming bench and calibration (tools/bench/streaming.py, generator/data/streams.py):
streams built from a split, TensorFlow's scoring rule, the host pipeline against the numpy
reference, the C detector against the Python one on stream scores, calibration meeting its
false-alarm target (or naming the best rate), the calibrated configuration travelling
through checkpoint, blob, generated C, host library and MicroPython reader, and the
emulated board giving the host's detections."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_firmware_qemu import beep, beep_model, noise

from bnnkws.generator.base.errors import DatasetError, FormatError
from bnnkws.generator.codegen.emit_c import emit_c
from bnnkws.generator.data.audio_io import write_wav
from bnnkws.generator.data.streams import UNKNOWN, Placed, Stream, make_stream, split_clips
from bnnkws.generator.export import blob as blobmod
from bnnkws.generator.export.detector_config import DetectorConfig
from bnnkws.generator.frontend import features
from bnnkws.tools.bench import streaming as S
from bnnkws.tools.device.detector import NEVER, Detection, posteriors

SR = 16000


def _clip(sound: np.ndarray, at: float = 0.3) -> np.ndarray:
    out = np.zeros(SR, dtype=np.int16)
    a = int(at * SR)
    out[a : a + sound.size] = sound[: SR - a]
    return out


@pytest.fixture(scope="module")
def beep_data(tmp_path_factory) -> Path:
    """A tiny dataset in the Speech Commands layout: keyword 'beep', other word 'hum'."""
    root = tmp_path_factory.mktemp("beepdata")
    for i in range(6):
        write_wav(root / "beep" / f"b{i}.wav", _clip(beep(0.45, 600 + 40 * i)))
    t = np.arange(int(0.5 * SR)) / SR
    for i in range(3):
        hum = (np.sin(2 * np.pi * (120 + 10 * i) * t) * 3000).astype(np.int16)
        write_wav(root / "hum" / f"h{i}.wav", _clip(hum))
    write_wav(root / "_background_noise_" / "brown.wav", noise(20.0, seed=3))
    (root / "testing_list.txt").write_text(
        "beep/b0.wav\nbeep/b1.wav\nbeep/b2.wav\nbeep/b3.wav\nhum/h0.wav\nhum/h1.wav\n"
    )
    (root / "validation_list.txt").write_text("beep/b4.wav\nbeep/b5.wav\nhum/h2.wav\n")
    return root


@pytest.fixture(scope="module")
def beeper():
    """(the hand-made beep detector of test_firmware_qemu.py, its detector configuration)"""
    return beep_model()


def test_stream_places_each_clip_at_its_label_time_and_snr(beep_data):
    st = make_stream(beep_data, "test", ["beep"], seed=4, snr_db=(6.0, 18.0))
    assert sorted(p.path for p in st.placed) == sorted(
        (beep_data / "testing_list.txt").read_text().split()
    )
    assert {p.label for p in st.placed} == {"beep", UNKNOWN}
    starts = [p.start_s for p in st.placed]
    gaps = np.diff(starts)
    assert np.all((gaps >= 2.0 - 1e-3) & (gaps <= 3.0 + 1e-3))
    assert all(6.0 <= p.snr_db <= 18.0 for p in st.placed)
    assert st.seconds >= starts[-1] + 1.0
    lines = st.labels_text().splitlines()
    assert lines[0] == f"{st.placed[0].label},{round(1000 * st.placed[0].start_s)}"
    # the clip is in the audio at its place: the louder part of the stream
    a = int(st.placed[0].start_s * SR) + int(0.3 * SR)
    seg = st.audio[a : a + int(0.4 * SR)].astype(float)
    quiet = st.audio[int(0.2 * SR) : int(1.2 * SR)].astype(float)
    assert np.sqrt(np.mean(seg**2)) > 1.5 * np.sqrt(np.mean(quiet**2))
    # same seed, same stream; --minutes repeats clips to the length asked for
    again = make_stream(beep_data, "test", ["beep"], seed=4)
    assert np.array_equal(again.audio, st.audio)
    longer = make_stream(beep_data, "test", ["beep"], seed=4, minutes=1.0)
    assert len(longer.placed) == 24 and 59 < longer.seconds < 66


def test_bad_dataset_folders_get_one_line(beep_data, tmp_path, capsys):
    from bnnkws.tools.cli import main

    with pytest.raises(DatasetError, match="no folder for keyword"):
        split_clips(beep_data, "test", ["beep", "yes"])
    bad = tmp_path / "bad"
    shutil.copytree(beep_data, bad)
    (bad / "testing_list.txt").write_text("beep/b0.wav\nbeep/gone.wav\n")
    with pytest.raises(DatasetError, match="names 1 missing file.*beep/gone.wav"):
        make_stream(bad, "test", ["beep"])
    empty = tmp_path / "empty"
    shutil.copytree(beep_data, empty)
    shutil.rmtree(empty / "_background_noise_")
    (empty / "_background_noise_").mkdir()
    blob = tmp_path / "beep.bkim"
    blobmod.save(beep_model()[0], blob)
    rc = main(["bench", "streaming", "--model", str(blob), "--data", str(empty)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "_background_noise_" in err[0] and "no WAV" in err[0]
    # refractory times: only with --calibrate, and numbers in range, each in one line
    for extra, says in (
        (["--refractory-ms", "1500"], "--refractory-ms is for --calibrate"),
        (["--calibrate", "--target-fa-per-hour", "6", "--refractory-ms", "1s"], "expected milliseconds"),
        (["--calibrate", "--target-fa-per-hour", "6", "--refractory-ms", "1000,-5"], "0..60000 ms"),
    ):
        rc = main(["bench", "streaming", "--model", str(blob), "--data", str(beep_data), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and says in err[0], err


def test_vectorised_posteriors_are_the_detector_rule():
    rng = random.Random(5)
    rows = [[rng.randint(-(2**31), 2**31 - 1) for _ in range(10)] for _ in range(40)]
    rows += [[rng.randint(-40, 40) for _ in range(10)] for _ in range(200)]
    rows += [[7] * 10, [0] * 9 + [2**31 - 1]]
    for t in (0, 1, 2, 5, 16):
        got = S.posteriors_array(np.array(rows, dtype=np.int64), t).tolist()
        assert got == [posteriors(r, t) for r in rows]


def _track(frames: list[int], scores: list[list[int]]) -> S.ScoreTrack:
    return S.ScoreTrack(np.array(frames), np.array(scores, dtype=np.int32), 320, 640, 49, SR)


def test_scoring_follows_tensorflows_streaming_rule():
    labels = ["_silence_", "_unknown_", "yes", "no"]
    tr = _track([0], [[0, 0, 0, 0]])
    win = tr.window_s  # 1.0 s: a detection's time is its window's start
    placed = [
        Placed("yes", "yes", 10.0, 10.0, "a"),
        Placed("no", "no", 20.0, 10.0, "b"),
        Placed(UNKNOWN, "cat", 30.0, 10.0, "c"),
        Placed("yes", "yes", 40.0, 10.0, "d"),
    ]

    def at(t_start: float, label: int) -> Detection:  # window starting at t_start
        frame = round((t_start + win - 640 / SR) * SR / 320)
        return Detection(frame, label, 30000)

    dets = [
        at(10.5, 2),  # yes, 0.5 s after its start: correct
        at(10.7, 2),  # the same clip again: false alarm
        at(19.4, 2),  # "yes" on a "no" within 0.75 s: wrong label
        at(30.2, 3),  # on an other word: false alarm
        at(41.0, 2),  # 1.0 s after the clip start: out of reach, false alarm
    ]
    sc = S.score(placed, dets, labels, tr, 3600.0)
    assert (sc.keywords, sc.correct, sc.wrong, sc.false_alarms) == (3, 1, 1, 3)
    assert sc.wrong_pairs == [("no", "yes")]
    assert sc.per_keyword == {"yes": (1, 2), "no": (0, 1)}
    assert sc.fa_per_hour == 3.0 and abs(sc.recall - 1 / 3) < 1e-12
    # exact 95 % intervals (published values: Garwood 3 events 0.619..8.767, 0 events 0..3.689;
    # Clopper-Pearson 1 of 3: 0.0084..0.9057)
    lo, hi = sc.fa_interval()
    assert abs(lo - 0.6186) < 1e-3 and abs(hi - 8.7673) < 1e-3
    assert S.poisson_interval(0, 0.5) == (0.0, pytest.approx(3.6889 / 0.5, abs=1e-3))
    lo, hi = sc.recall_interval()
    assert abs(lo - 0.0084) < 1e-3 and abs(hi - 0.9057) < 1e-3
    assert S.binomial_interval(5, 5)[1] == 1.0 and S.binomial_interval(0, 5)[0] == 0.0


def test_host_pipeline_is_the_numpy_reference_and_the_c_detector_agrees(beeper, beep_data):
    model, cfg = beeper
    st = make_stream(beep_data, "test", ["beep"], seed=1)
    hp = S.HostPipeline(model)
    tr = hp.run(st.audio)
    feats = features(st.audio, model.frontend)
    wins = np.stack([feats[f - 48 : f + 1] for f in tr.frames])
    assert tr.frames[0] == 48 and np.all(np.diff(tr.frames) == S.DEFAULT_STRIDE)
    assert np.array_equal(tr.scores, model.forward(wins))
    # the C detector == the Python one on these scores, with settings that fire often
    for c in (cfg, DetectorConfig((NEVER, 9000), smooth=1, temp_shift=0, refractory=0)):
        dets = S.detect(c, tr)
        assert dets and S.c_detector_agrees(c, tr, dets, hp.net.lib)
    sc = S.score(st.placed, S.detect(cfg, tr), model.labels, tr, st.seconds)
    assert sc.correct >= 3  # the beeps are heard


def _synthetic_runs() -> tuple[list, list[str]]:
    """One 'yes' keyword said 10 times; a noise burst that looks like 'yes' at 0.9, and
    one that is 'yes' beyond doubt (posterior 1.0 even at threshold 1)."""
    labels = ["_silence_", "_unknown_", "yes"]
    frames, scores, placed = [], [], []
    quiet = [8, 0, 0]
    f = 48
    for k in range(10):
        placed.append(Placed("yes", "yes", 5.0 * k + 2.0, 10.0, f"y{k}"))
        start_frame = round((5.0 * k + 2.0 + 0.3) * SR / 320)  # window starts 0.3 s after
        end = start_frame + 48
        while f < end - 30:
            frames.append(f)
            scores.append(quiet)
            f += 5
        for _ in range(3):
            frames.append(f)
            scores.append([0, 0, 4 + k % 3])
            f += 5
    for burst in ([0, 0, 2], [0, 0, 10**6]):  # false alarms in the gap of the last clip
        for _ in range(12):
            frames.append(f)
            scores.append(quiet)
            f += 5
        for _ in range(3 if burst[2] == 2 else 9):  # longer than any smoothing window
            frames.append(f)
            scores.append(burst)
            f += 5
    stream = Stream(np.zeros(3600 * SR, np.int16), placed, "test", 0, (6.0, 18.0))  # 1 hour
    return [(stream, _track(frames, scores))], labels


def test_calibration_meets_the_target_or_names_the_best_rate():
    runs, labels = _synthetic_runs()
    base = DetectorConfig.for_labels(labels)
    cal = S.calibrate(base, labels, runs, target_fa_per_hour=1.0)
    assert cal.score.false_alarms <= 1 and cal.score.correct == 10
    # the DET curve passes through the configuration (offset 0); lower thresholds, more alarms
    pts = S.det_curve(cal.config, labels, runs)
    (zero,) = [p for p in pts if p.offset == 0]
    assert (zero.miss_rate, zero.fa_per_hour) == (cal.score.miss_rate, cal.score.fa_per_hour)
    assert pts[0].fa_per_hour >= zero.fa_per_hour >= pts[-1].fa_per_hour
    assert pts[0].miss_rate <= zero.miss_rate <= pts[-1].miss_rate
    loose = S.calibrate(base, labels, runs, target_fa_per_hour=2.0)
    assert loose.score.correct == 10 and loose.score.false_alarms <= 2
    with pytest.raises(
        S.CalibrationError, match=r"target of 0/h cannot be met: the lowest rate reached is 1\.00/h"
    ):
        S.calibrate(base, labels, runs, target_fa_per_hour=0.0)


def test_calibration_chooses_the_refractory_time():
    """A keyword whose windows keep firing for 1.4 s: a 1 s refractory time counts the late
    second detection as a false alarm, 1.5 s does not; calibration picks the longer one
    when it is offered and otherwise names the rate it cannot go below."""
    labels = ["_silence_", "_unknown_", "yes"]
    placed = [Placed("yes", "yes", 10.0, 10.0, "y")]
    frames = list(range(48, 48 + 5 * 300, 5))  # window starts f * 0.02 - 0.96 s, 0.1 s apart
    scores = [[0, 0, 10**6] if 9.9 <= f * 0.02 - 0.96 <= 11.3 else [8, 0, 0] for f in frames]
    runs = [(Stream(np.zeros(3600 * SR, np.int16), placed, "test", 0, (6.0, 18.0)), _track(frames, scores))]
    base = DetectorConfig.for_labels(labels, refractory=50)
    one = {"smooths": (1,), "temp_shifts": (0,)}  # longer smoothing would delay the second alarm
    with pytest.raises(S.CalibrationError, match="lowest rate reached is 1.00/h"):
        S.calibrate(base, labels, runs, target_fa_per_hour=0.0, **one)
    cal = S.calibrate(base, labels, runs, target_fa_per_hour=0.0, refractories=(50, 75), **one)
    assert cal.config.refractory == 75 and (cal.score.correct, cal.score.false_alarms) == (1, 0)
    dets = S.detect(DetectorConfig(cal.config.thr, cal.config.smooth, cal.config.temp_shift, 50), runs[0][1])
    assert len(dets) == 2


def test_calibrated_configuration_travels_to_blob_c_host_and_micropython(beeper, tmp_path):
    from bnnkws.reference.bnn import Model as RefModel
    from bnnkws.tools.host.hostlib import CNet

    model, _ = beeper
    plain = blobmod.to_bytes(model)
    assert "DETC" not in [s.tag for s in blobmod.check_header(plain).sections]
    cfg = DetectorConfig((NEVER, 23456), smooth=5, temp_shift=3, refractory=40)
    model.meta["detector"] = cfg.to_dict()
    try:
        data = blobmod.to_bytes(model)
    finally:
        del model.meta["detector"]
    assert blobmod.to_bytes(model) == plain  # uncalibrated: byte for byte as before
    assert [s.tag for s in blobmod.check_header(data).sections][-2:] == ["META", "DETC"]
    back = blobmod.from_bytes(data)
    assert DetectorConfig.of_model(back) == cfg
    assert RefModel(data).detector == cfg.to_dict()
    assert RefModel(plain).detector is None
    # the real micropython reads the calibrated blob and computes the same scores
    from bnnkws.tools.host import micropython_runner

    x = np.random.default_rng(0).integers(-128, 128, (1, 49, 40), dtype=np.int8)
    got = micropython_runner.run_model(back, data, x)
    assert np.array_equal(np.stack([g[-1][0] for g in got]), back.forward(x))
    assert CNet.from_model_dir(emit_c(back, tmp_path / "cal")).detector_config() == cfg
    fe = model.frontend
    default = DetectorConfig.default_for(model.labels, fe.hop, fe.sample_rate)
    assert CNet.from_model_dir(emit_c(model, tmp_path / "plain")).detector_config() == default
    # a DETC whose class count disagrees with MODL is refused
    bad = DetectorConfig((NEVER, 1, 2), 1, 0, 0).to_payload()
    body = data[blobmod.HEADER.size :]
    i = body.rindex(b"DETC")
    body = body[:i] + blobmod._section(b"DETC", bad)
    import zlib

    forged = blobmod.HEADER.pack(blobmod.MAGIC, 1, 16, 16 + len(body), zlib.crc32(body)) + body
    with pytest.raises(FormatError, match="DETC has 3 thresholds"):
        blobmod.from_bytes(forged)


def test_calibration_travels_in_the_checkpoint(tmp_path):
    from bnnkws.generator.export.loading import load_any
    from bnnkws.generator.training.checkpoint import set_detector

    src = Path(__file__).resolve().parents[2] / "models" / "default.pt"
    ckpt = tmp_path / "m.pt"
    shutil.copyfile(src, ckpt)
    set_detector(ckpt, None)  # the shipped model may be calibrated: start without
    before = load_any(ckpt)
    assert "detector" not in before.model.meta
    labels = before.model.labels
    cfg = DetectorConfig.for_labels(labels, threshold=0.9, smooth=4, temp_shift=1)
    set_detector(ckpt, {**cfg.to_dict(), "calibration": {"target_fa_per_hour": 6.0}})
    after = load_any(ckpt)
    assert DetectorConfig.of_model(after.model) == cfg
    assert after.model.meta["calibration"] == {"target_fa_per_hour": 6.0}
    set_detector(ckpt, None)
    assert load_any(ckpt).blob == before.blob


def test_bench_command_calibrates_writes_the_report_and_the_plot(
    beeper, beep_data, tmp_path, capsys
):
    from bnnkws.tools.cli import main

    blob = tmp_path / "beep.bkim"
    blobmod.save(beeper[0], blob)
    out, doc = tmp_path / "cal.bkim", tmp_path / "docs" / "STREAMING.md"
    rc = main(
        [
            "bench",
            "streaming",
            "--model",
            str(blob),
            "--data",
            str(beep_data),
            "--minutes",
            "0.5",
            "--calibrate",
            "--target-fa-per-hour",
            "100000",
            "--calibration-minutes",
            "0.5",
            "--out",
            str(out),
            "--doc",
            str(doc),
        ]
    )
    cap = capsys.readouterr()
    text = cap.out
    assert rc == 0, text + cap.err
    assert "C detector (firmware/detector.c) == Python detector on these scores: True" in text
    cal = blobmod.load(out)
    assert "detector" in cal.meta and cal.meta["calibration"]["target_fa_per_hour"] == 100000.0
    md = doc.read_text()
    assert "750 ms" in md and "seed" in md.lower() and "6-18 dB" in md
    assert (doc.parent / "streaming.png").read_bytes()[:4] == b"\x89PNG"
    # a target no setting meets: one line naming the lowest rate reached
    rc = main(
        [
            "bench",
            "streaming",
            "--model",
            str(blob),
            "--data",
            str(beep_data),
            "--calibrate",
            "--target-fa-per-hour",
            "0",
            "--calibration-minutes",
            "0.5",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "target of 0/h cannot be met: the lowest rate reached is" in err[0]


@pytest.mark.qemu
def test_the_emulated_board_starts_with_the_calibrated_configuration_and_agrees(beeper, beep_data):
    if not shutil.which("qemu-system-arm") or not shutil.which("arm-none-eabi-gcc"):
        pytest.fail(
            "qemu-system-arm / arm-none-eabi-gcc not installed: run tools/bootstrap.sh setup"
        )
    plain, cfg = beeper
    # calibrated: the firmware starts with this configuration (bk_model_detector), no CONFIG
    model = blobmod.from_bytes(blobmod.to_bytes(plain))
    model.meta["detector"] = cfg.to_dict()
    st = make_stream(beep_data, "validation", ["beep"], seed=2)  # 3 clips, about 9 s
    hp = S.HostPipeline(model)
    assert hp.default_config == cfg != DetectorConfig.of_model(plain)
    tr = hp.run(st.audio)
    host = S.detect(cfg, tr)
    assert host
    n = 6 * SR  # the first 6 s: the board's windows and detections are the host's up to there
    assert any(tr.end_s(d.frame) <= 6.0 for d in host)
    dev = S.emulated_run(model, st.audio[:n], cfg, configure=False)
    assert S.compare_device(dev, tr, host, n)
    assert not S.compare_device(dev, tr, host)  # the whole stream has more windows


def test_stream_options_default_to_the_flashed_models_configuration(beeper):
    import argparse
    import dataclasses

    from bnnkws.tools.commands.stream import device_config
    from bnnkws.tools.device import protocol as P
    from bnnkws.tools.device.session import model_detector

    plain, cfg = beeper
    model = blobmod.from_bytes(blobmod.to_bytes(plain))
    model.meta["detector"] = cfg.to_dict()
    h = blobmod.model_hash(blobmod.to_bytes(model))
    emit_c(model)  # build/models/<hash16>/model.bkim, as `bnnkws build` leaves it
    fe = model.frontend
    info = P.Info(
        1,
        4,
        512,
        fe.sample_rate,
        fe.frame_len,
        fe.hop,
        fe.n_mels,
        49,
        5,
        25_000_000,
        bytes.fromhex(h[:16]),
        (16, 16),
        "0.1.0",
        "test",
        tuple(model.labels),
    )
    assert model_detector(info) == cfg
    none = dict(threshold=None, smooth=None, temp_shift=None, refractory_ms=None, stride=None)
    assert device_config(info, argparse.Namespace(**none)).detector == cfg
    got = device_config(
        info, argparse.Namespace(**{**none, "smooth": 2, "threshold": 0.5})
    ).detector
    assert got == DetectorConfig((NEVER, 16384), 2, cfg.temp_shift, cfg.refractory)
    # a board whose model was not built here: the defaults
    other = dataclasses.replace(info, model_hash=b"\0" * 8)
    assert model_detector(other) == DetectorConfig.default_for(model.labels, fe.hop, fe.sample_rate)


def test_a_float_baseline_streams_through_the_same_front_end_and_detector(
    beep_data, tmp_path, capsys
):
    """A float DS-CNN checkpoint: calibrated on the validation stream (written into the
    checkpoint), scored on the test stream, its numbers written as JSON and shown in the
    model card's streaming table; its scores are its logits in fixed point; no firmware."""
    import json

    import torch

    from bnnkws.generator.training.checkpoint import save_checkpoint
    from bnnkws.generator.training.model import build_model, float_config
    from bnnkws.tools.bench import card
    from bnnkws.tools.cli import main
    from bnnkws.tools.host.hostlib import CFrontend

    torch.manual_seed(0)
    labels = ["_silence_", "_unknown_", "beep"]
    model = build_model(float_config("dscnn", n_classes=3))
    ckpt = tmp_path / "dscnn.pt"
    save_checkpoint(ckpt, model, labels)
    res = tmp_path / "results" / "streaming-dscnn.json"
    rc = main(
        ["bench", "streaming", "--model", str(ckpt), "--data", str(beep_data), "--minutes", "0.5",
         "--calibrate", "--target-fa-per-hour", "100000", "--calibration-minutes", "0.5",
         "--results", str(res)]
    )
    cap = capsys.readouterr()
    assert rc == 0, cap.out + cap.err
    assert "C detector (firmware/detector.c) == Python detector on these scores: True" in cap.out
    got = json.loads(res.read_text())
    assert got["kind"] == "dscnn" and got["detector"]["calibrated"] and got["stride"] == 5
    assert got["stream"]["split"] == "test" and 0.0 <= got["recall"] <= 1.0
    fm = S.load_float(ckpt)
    assert fm is not None and fm.detector is not None  # the calibration is in the checkpoint
    assert S.load_float(Path(__file__).resolve().parents[2] / "models" / "default.pt") is None
    # the scores: the float logits of each window of the C front-end's rows, in fixed point
    audio = noise(2.0, seed=9)
    track = S.FloatPipeline(fm).run(audio)
    rows = CFrontend(fm.frontend).features(audio)
    e = int(track.frames[-1])
    with torch.no_grad():
        logits = fm.torch_model.eval()(torch.from_numpy(rows[e - 48 : e + 1][None])).numpy()[0]
    scale = S.FLOAT_UNITS_PER_OCTAVE / np.log(2.0)
    assert np.array_equal(track.scores[-1], np.rint(logits.astype(np.float64) * scale).astype(np.int32))
    # the card's streaming section reads the file
    streams = card.load_streaming(res.parent, ["dscnn", "default"])
    assert list(streams) == ["dscnn"]
    table = "\n".join(card._streaming_table(streams))
    assert "| `dscnn` |" in table and "miss at <= 1 FA/h" in table
    # this run's calibration travels in the results (the card's candidate table reads it)
    assert got["calibration"]["target_fa_per_hour"] == 100000
    assert 0.0 <= got["calibration"]["validation_recall"] <= 1.0
    assert len(got["fa_per_hour_95"]) == 2 and len(got["recall_95"]) == 2
    # no firmware for a float model: one line
    rc = main(
        ["bench", "streaming", "--model", str(ckpt), "--data", str(beep_data), "--minutes", "0.5",
         "--device", "emulated"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "float baseline (dscnn)" in err[0]


def test_the_cards_selection_rule_reads_the_validation_streams():
    """Among candidates within 1 point of the best validation clip accuracy, the highest
    validation-stream recall; candidates without calibrated stream numbers do not take part."""
    from bnnkws.tools.bench import card

    def res(val_recall):
        return {"recall": 0.8, "correct": 8, "wrong": 1, "fa_per_hour": 3.0, "fa_per_hour_95": [1.0, 9.0],
                "stream": {"minutes": 23.0, "seed": 0, "snr_db": [6.0, 18.0], "keywords": 10},
                "detector": {"smooth": 6, "temp_shift": 3, "refractory": 75, "calibrated": True},
                "calibration": {"validation_recall": val_recall, "validation_fa_per_hour": 5.0}}

    abl = [{"name": "a", "validation": 0.910}, {"name": "b", "validation": 0.903},
           {"name": "c", "validation": 0.895}, {"name": "d", "validation": 0.950}]
    streams = {"a": res(0.85), "b": res(0.87), "c": res(0.99)}  # d: no stream numbers
    assert card.select_default(abl, streams) == "b"  # c is more than 1 point below a
    streams["a"] = res(0.87)
    assert card.select_default(abl, streams) == "a"  # a tie: the better clip accuracy
    assert card.select_default(abl, {}) is None
    text = "\n".join(card._candidates_table(abl, streams))
    assert "| `a` (the pick) | 91.0 % | 87.0 % (5.0) |" in text and "`d`" not in text
    assert "1.0-9.0" in text and "By the rule above the default is `a`." in text
