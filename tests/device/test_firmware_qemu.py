"""The firmware on the emulated board (QEMU mps2-an386, Cortex-M4F; and mps2-an385,
Cortex-M3), through pyserial like a real board: handshake and INFO; scores equal to the
host library's and the MicroPython reference's bit for bit; keywords separated by noise
give the expected detections; malformed frames do not break the session; a port that
goes away gives a clear error. Every test starts and stops its own QEMU.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from bnn_models import random_integer_model

from bnnkws.generator.base.errors import DeviceError
from bnnkws.generator.codegen.emit_c import emit_c
from bnnkws.generator.export import blob as blobmod
from bnnkws.generator.frontend import default_params, features
from bnnkws.generator.integer.intmodel import ConvLayer, IntegerModel
from bnnkws.tools.device import protocol as P
from bnnkws.tools.device.detector import NEVER, Detector, DetectorConfig

pytestmark = pytest.mark.qemu

SR = 16000


@pytest.fixture(scope="module", autouse=True)
def toolchain() -> None:
    """The emulator and the cross compiler are part of the set-up (tools/bootstrap.sh):
    a missing one is a failure, not a skip."""
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc") if not shutil.which(t)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run tools/bootstrap.sh setup")


# -- firmware images -------------------------------------------------------------------
@pytest.fixture(scope="module")
def build_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fw-build")


def build(model: IntegerModel, target: str, root: Path, name: str) -> Path:
    """Firmware for `model`, copied out of the build folder (the next build reuses it)."""
    from bnnkws.tools.device.firmware import build_firmware

    fw = build_firmware(emit_c(model, root / "models" / name), target, root / "scons")
    elf = root / f"{name}-{target}.elf"
    shutil.copyfile(fw.elf, elf)
    return elf


@pytest.fixture(scope="module")
def small_model() -> IntegerModel:
    return random_integer_model(7, arch="small", n_classes=4)


@pytest.fixture(scope="module")
def small_elf(small_model, build_root) -> Path:
    return build(small_model, "mps2-an386", build_root, "small")


def beep_model() -> tuple[IntegerModel, DetectorConfig]:
    """A hand-made detector of loud harmonic sounds ("beep") against background noise.

    Layer 0 (int8, kernel 1): every weight +1, so the accumulator is the sum of a frame's
    40 features; 8 channels fire at 8 thresholds between the noise's and the beep's level.
    Layer 1 ({0,1} -> scores, kernel 49): "beep" gets p - M, "_silence_" M - p, p = the
    number of fired (frame, channel) bits in the 1 s window, M = 96 (12 frames of 8).
    """
    fe = default_params()
    bg = noise(1.0, seed=5)
    noise_sum = features(bg, fe).astype(np.int64).sum(axis=1).mean()
    beep_sum = features(mix(bg, beep(1.0), 0), fe).astype(np.int64).sum(axis=1).mean()
    thr = np.round(noise_sum + (beep_sum - noise_sum) * (np.arange(8) + 2) / 10).astype(np.int32)
    energy = ConvLayer(
        "energy",
        "int8",
        40,
        8,
        1,
        1,
        1,
        np.ones((8, 1, 40), np.uint8),
        16,
        "wrap",
        32,
        "threshold",
        "01",
        thr=thr,
        flip=np.zeros(8, np.uint8),
    )
    weights = np.stack([np.zeros((49, 8), np.uint8), np.ones((49, 8), np.uint8)])
    m = 96
    scores = ConvLayer(
        "scores",
        "01",
        8,
        2,
        49,
        1,
        1,
        weights,
        16,
        "wrap",
        32,
        "shiftbn",
        mu=np.array([-m, m], np.int32),
        shift=np.zeros(2, np.int8),
        sign=np.ones(2, np.int8),
        beta=np.zeros(2, np.int32),
    )
    model = IntegerModel(fe, ["_silence_", "beep"], 49, [energy, scores], meta={"test": "beep"})
    model.validate()
    # 2^2 score units = a factor 2: 8 loud frames past M (16 units each way) is 0.94
    return model, DetectorConfig((NEVER, 19661), smooth=3, temp_shift=2, refractory=60)


def noise(seconds: float, seed: int = 0, level: float = 300.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.standard_normal(int(SR * seconds)))  # brownish
    x = x - np.convolve(x, np.ones(64) / 64, mode="same")
    return (x / (np.std(x) + 1e-9) * level).astype(np.int16)


def mix(background: np.ndarray, sound: np.ndarray, at: int) -> np.ndarray:
    out = background.astype(np.int32)
    out[at : at + sound.size] += sound[: out.size - at]
    return np.clip(out, -32768, 32767).astype(np.int16)


def beep(seconds: float, f0: float = 700.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    return (x / np.max(np.abs(x)) * 9000).astype(np.int16)


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    from bnnkws.tools.bench.mcu import bench_audio

    return bench_audio(seconds, seed)


# -- a session ---------------------------------------------------------------------------
def session(elf: Path, machine: str = "mps2-an386", serial: str = "pty", **link_kw):
    from bnnkws.tools.device.qemu import Emulator
    from bnnkws.tools.device.serial_link import open_link

    emu = Emulator(elf, machine=machine, serial=serial)
    emu.start()
    try:
        link = open_link(emu.port, **link_kw)
    except BaseException:
        emu.stop()
        raise
    return emu, link


def collect(link, audio: np.ndarray | None = None, feats: np.ndarray | None = None):
    results, detections = [], []

    def listener(t, obj):
        (results if t == P.MsgType.RESULT else detections).append(obj)

    link.listener = listener
    try:
        if audio is not None:
            link.stream_audio(audio)
        else:
            link.stream_features(feats)
    finally:
        link.listener = None
    return results, detections


# -- tests ---------------------------------------------------------------------------------
def test_handshake_and_info_describe_the_flashed_model(small_model, small_elf):
    emu, link = session(small_elf)
    try:
        info = link.info
        blob_hash = blobmod.model_hash(blobmod.to_bytes(small_model))
        assert info.model_hash.hex() == blob_hash[:16]
        assert info.labels == tuple(small_model.labels)
        assert info.acc_bits == tuple(
            la.acc_bits for la in small_model.layers if isinstance(la, ConvLayer)
        )
        assert (info.n_frames, info.n_mels, info.hop, info.frame_len) == (49, 40, 320, 512)
        assert info.board == "mps2-an386" and info.protocol == P.VERSION and info.rx_window >= 1
        assert info.tick_hz == 25_000_000
        # a second handshake starts a new session on the same port
        link.handshake()
        assert link.get_info() == info
        stats = link.get_stats()
        assert stats.inferences == 0 and stats.parser.bad_crc == 0
        link.shutdown()
        assert emu.wait(10) == 0  # SHUTDOWN: semihosting exit with status 0
    finally:
        link.close()
        emu.stop()


def test_scores_equal_the_host_library_and_micropython_bit_for_bit(small_model, small_elf):
    from bnnkws.tools.host import micropython_runner
    from bnnkws.tools.host.hostlib import CFrontend, CNet

    audio = speechlike(1.64, seed=2)  # 50 frames and more: inferences at frames 48, 53, ...
    emu, link = session(small_elf)
    try:
        link.configure(P.Config(1, DetectorConfig.for_labels(small_model.labels)))  # every frame
        results, detections = collect(link, audio)
        stats = link.get_stats()
        link.shutdown()
    finally:
        link.close()
        emu.stop()
    feats = CFrontend(small_model.frontend).features(audio)  # the host's C front-end
    assert np.array_equal(feats, features(audio, small_model.frontend))
    assert [r.frame for r in results] == list(range(48, feats.shape[0]))
    net = CNet.build(small_model)
    windows = np.stack([feats[r.frame - 48 : r.frame + 1] for r in results])
    host_scores, _ = net.scores(windows)
    device_scores = np.array([r.scores for r in results], dtype=np.int32)
    assert np.array_equal(device_scores, host_scores)
    assert np.array_equal(device_scores, small_model.forward(windows))  # numpy reference
    # MicroPython reference, front-end included, on the audio of the first and last window
    clips = [
        audio[(r.frame - 48) * 320 : (r.frame - 48) * 320 + 48 * 320 + 512]
        for r in (results[0], results[-1])
    ]
    blob = blobmod.to_bytes(small_model)
    mpy = micropython_runner.run_model_audio(small_model, blob, clips)
    for (mfeats, outs), r in zip(mpy, (results[0], results[-1]), strict=True):
        assert np.array_equal(mfeats, feats[r.frame - 48 : r.frame + 1])
        assert np.array_equal(outs[-1].reshape(-1).astype(np.int32), np.array(r.scores, np.int32))
    # the device's detections are what the host detector makes of the same scores
    host = Detector(DetectorConfig.for_labels(small_model.labels))
    expected = [d for r in results if (d := host.push(r.scores, r.frame)) is not None]
    assert [(d.frame, d.label, d.posterior) for d in detections] == [
        (d.frame, d.label, d.posterior) for d in expected
    ]
    # timer figures: every inference counted, the stack within its reservation
    assert stats.inferences == len(results) and stats.hops == feats.shape[0]
    assert 0 < stats.infer_ticks_min <= stats.infer_ticks_last
    assert sum(stats.layer_ticks) <= stats.infer_ticks_last
    assert stats.stack_used + 256 < stats.stack_size


def test_board_streaming_inference_equals_the_full_window_and_costs_less(build_root):
    """On the board: the same stream with streaming inference (the default) and with every
    window recomputed whole (CONFIG flag FULL_WINDOW) gives the same scores, which are the
    host library's full-window scores, from a cold start and after a reset; streaming costs
    a fraction of the full window's instructions."""
    from bnnkws.tools.host.hostlib import CFrontend, CNet

    model = random_integer_model(21, arch="structured", n_classes=4, first_bits=16)
    elf = build(model, "mps2-an386", build_root, "structured4")
    audio = speechlike(20.0, seed=5)  # 1,000 hops: 191 inferences at stride 5
    det = DetectorConfig.for_labels(model.labels)
    passes = [("full", 5, P.FULL_WINDOW, audio), ("stream", 5, 0, audio)]
    passes += [(f"stride{k}", k, 0, audio[: 16000 * 3]) for k in (1, 3, 4)]
    emu, link = session(elf)
    try:
        runs = {}
        for name, stride, flag, clip in passes:
            link.reset_stream()
            link.configure(P.Config(stride, det, P.SEND_RESULT | flag))
            before = link.get_stats()
            results, _ = collect(link, clip)
            after = link.get_stats()
            ticks = after.infer_ticks_total - before.infer_ticks_total
            runs[name] = (results, ticks / (after.inferences - before.inferences))
        link.shutdown()
    finally:
        link.close()
        emu.stop()
    full, stream = runs["full"][0], runs["stream"][0]
    assert [r.frame for r in stream] == [r.frame for r in full] and len(stream) > 180
    assert [list(r.scores) for r in stream] == [list(r.scores) for r in full]
    feats = CFrontend(model.frontend).features(audio)
    net = CNet.build(model)
    for name, stride, _, _ in passes[1:]:
        res = runs[name][0]
        assert [r.frame for r in res][:3] == [48, 48 + stride, 48 + 2 * stride], name
        windows = np.stack([feats[r.frame - 48 : r.frame + 1] for r in res])
        host, _ = net.scores(windows)
        assert np.array_equal(np.array([r.scores for r in res], dtype=np.int32), host), name
    # 2-4x fewer instructions per inference on average at stride 5 (cold start included)
    assert runs["stream"][1] < 0.5 * runs["full"][1], runs


def test_keywords_separated_by_noise_give_the_expected_detections(build_root):
    model, det = beep_model()
    elf = build(model, "mps2-an386", build_root, "beep")
    starts = [0.6, 2.8, 5.0]
    audio = noise(6.6, seed=1)
    for s in starts:
        audio = mix(audio, beep(0.5), int(s * SR))
    emu, link = session(elf)
    try:
        link.configure(P.Config(5, det))
        results, detections = collect(link, audio)
        link.shutdown()
    finally:
        link.close()
        emu.stop()
    times = [(d.frame * 320 + 512) / SR for d in detections]
    assert [d.label for d in detections] == [1, 1, 1], times
    for s, t in zip(starts, times, strict=True):
        assert s < t <= s + 0.5 + 1.0, (starts, times)
    mirror = Detector(det)
    expected = [d for r in results if (d := mirror.push(r.scores, r.frame)) is not None]
    assert [(d.frame, d.label, d.posterior) for d in detections] == [
        (d.frame, d.label, d.posterior) for d in expected
    ]


def expect(link, kind: int, deadline_s: float = 5.0) -> P.Event:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for ev in link.poll(0.05):
            if ev.type == kind:
                return ev
    raise AssertionError(f"no {P.msg_name(kind)} within {deadline_s} s")


def test_malformed_frames_get_nak_or_error_and_the_session_goes_on(small_model, small_elf):
    emu, link = session(small_elf)
    try:
        seq = link.seq
        link.write(bytes(range(256)) * 2)  # noise, magic bytes included
        bad_crc = bytearray(P.encode(P.MsgType.AUDIO, seq, bytes(100)))
        bad_crc[20] ^= 0x01
        link.write(bytes(bad_crc))
        nak = P.unpack_nak(expect(link, P.MsgType.NAK).payload)
        assert (nak.seq, nak.reason, nak.expected) == (seq, P.Err.BAD_CRC, seq)

        link.write(P.header(P.MsgType.AUDIO, seq, 5000))  # oversized
        err = P.unpack_error(expect(link, P.MsgType.ERROR).payload)
        assert (err.code, err.seq) == (P.Err.OVERSIZE, seq)

        hdr = bytearray(P.header(P.MsgType.INFO_REQ, seq, 0))
        hdr[6] ^= 0xFF
        link.write(bytes(hdr) + b"\0" * 4)  # header check byte wrong
        assert P.unpack_nak(expect(link, P.MsgType.NAK).payload).reason == P.Err.BAD_HEADER

        link.write(P.encode(P.MsgType.AUDIO, seq, bytes(64))[:30])  # truncated, then silence
        nak = P.unpack_nak(expect(link, P.MsgType.NAK, 3.0).payload)
        assert (nak.reason, nak.seq) == (P.Err.TRUNCATED, seq)

        link.write(P.encode(P.MsgType.AUDIO, (seq + 40) & 0xFF, bytes(64)))  # out of order
        nak = P.unpack_nak(expect(link, P.MsgType.NAK).payload)
        assert (nak.reason, nak.expected) == (P.Err.OUT_OF_ORDER, seq)

        with pytest.raises(DeviceError, match="AUDIO seq .*BAD_PAYLOAD"):
            link.request(P.MsgType.AUDIO, b"\x01\x02\x03")  # not whole samples
        with pytest.raises(DeviceError, match="UNKNOWN_TYPE"):
            link.request(0x7E)
        bad_cfg = bytearray(
            P.pack_config(P.Config(5, DetectorConfig.for_labels(small_model.labels)))
        )
        bad_cfg[2] = 9  # smooth 9 > 8
        with pytest.raises(DeviceError, match="BAD_CONFIG"):
            link.request(P.MsgType.CONFIG, bytes(bad_cfg))

        # still the same session: requests work and audio gives results (sent as a live
        # source would, in uneven chunks)
        assert link.get_info().labels == tuple(small_model.labels)
        results = []
        link.listener = lambda t, obj: results.append(obj) if t == P.MsgType.RESULT else None
        audio = speechlike(1.0)
        sent = link.stream_audio_chunks(audio[i : i + 1000] for i in range(0, audio.size, 1000))
        link.listener = None
        assert sent == audio.size and len(results) == 1
        stats = link.get_stats()
        c = stats.parser
        assert c.bad_crc >= 1 and c.oversize >= 1 and c.bad_header >= 1 and c.truncated >= 1
        assert c.noise > 0 and stats.rx_overruns == 0
        assert emu.alive()
    finally:
        link.close()
        emu.stop()


def test_the_port_going_away_gives_a_clear_error(small_elf, tmp_path, capsys):
    import threading

    from bnnkws.generator.data.audio_io import write_wav
    from bnnkws.tools import cli
    from bnnkws.tools.device.qemu import Emulator

    emu, link = session(small_elf)
    try:
        os.kill(emu.proc.pid, 15)
        emu.wait(5)
        with pytest.raises(DeviceError, match="went away"):
            link.stream_audio(speechlike(1.0))
    finally:
        link.close()
        emu.stop()
    # on the command line, the board vanishing mid-stream: one line, exit status 2
    wav = tmp_path / "long.wav"
    write_wav(wav, speechlike(20.0))
    with Emulator(small_elf) as emu:
        killer = threading.Timer(2.5, lambda: os.kill(emu.proc.pid, 15))
        killer.start()
        try:
            assert cli.main(["stream", "--port", emu.port, "--wav", str(wav), "--quiet"]) == 2
        finally:
            killer.cancel()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("bnnkws stream: error:") and "went away" in err[0]


def test_a_silent_port_times_out_instead_of_hanging():
    from bnnkws.tools.device.serial_link import Link

    master, slave = os.openpty()
    try:
        link = Link(os.ttyname(slave))
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="no answer to HELLO"):
            link.handshake(tries=2, wait=0.5)
        assert time.monotonic() - t0 < 5
        link.close()
    finally:
        os.close(master)
        os.close(slave)


def test_cortex_m3_build_gives_the_same_scores_over_a_tcp_serial_port(
    small_model, small_elf, build_root
):
    """mps2-an385 has no DSP/FPU instructions: a build that used one would fault there."""
    m3 = build(small_model, "mps2-an385", build_root, "small")
    feats = features(speechlike(1.2, seed=4), small_model.frontend)
    out = {}
    for name, elf, machine in (("m4", small_elf, "mps2-an386"), ("m3", m3, "mps2-an385")):
        emu, link = session(elf, machine, serial="tcp", max_window=1)
        try:
            assert link.port_name.startswith("socket://")
            assert link.info.board == machine
            results, _ = collect(link, feats=feats)
            out[name] = (results, link.get_stats())
            link.shutdown()
        finally:
            link.close()
            emu.stop()
    assert out["m4"][0] == out["m3"][0] and len(out["m4"][0]) >= 2
    # under -icount the counts are exact up to the timer's 40-instruction tick: where an
    # interval starts within a tick depends on host timing (idle time runs in real time)
    emu, link = session(small_elf, max_window=1)
    try:
        collect(link, feats=feats)
        again = link.get_stats()
    finally:
        link.close()
        emu.stop()
    first = out["m4"][1]
    assert abs(again.infer_ticks_min - first.infer_ticks_min) <= 1
    assert all(abs(a - b) <= 1 for a, b in zip(again.layer_ticks, first.layer_ticks, strict=True))


def test_flash_then_stream_emulated_from_the_command_line(
    small_model, tmp_path, monkeypatch, capsys
):
    import json

    from bnnkws.generator.data.audio_io import write_wav
    from bnnkws.tools import cli
    from bnnkws.tools.device.firmware import build_firmware

    monkeypatch.setenv("BNNKWS_BUILD_DIR", str(tmp_path / "build"))
    build_firmware(emit_c(small_model, tmp_path / "model"), "mps2-an386", tmp_path / "build")
    wav = tmp_path / "speech.wav"
    write_wav(wav, speechlike(1.3, seed=6))
    try:
        assert cli.main(["flash"]) == 0
        out = capsys.readouterr().out
        assert "serial port: /dev/pts/" in out and "model " + small_model_hash(small_model) in out
        assert (
            cli.main(["stream", "--port", "emulated", "--wav", str(wav), "--json", "--results"])
            == 0
        )
        events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        kinds = [e["event"] for e in events]
        assert kinds[0] == "info" and kinds[-1] == "stats" and "done" in kinds
        results = [e for e in events if e["event"] == "result"]
        assert [r["frame"] for r in results] == [48, 53, 58, 63]  # 64 frames in 1.3 s
        done = next(e for e in events if e["event"] == "done")
        assert done["host_detector_agrees"] and done["inferences"] == 4
    finally:
        assert cli.main(["flash", "--stop"]) == 0
    assert "stopped emulator" in capsys.readouterr().out


def small_model_hash(model: IntegerModel) -> str:
    return blobmod.model_hash(blobmod.to_bytes(model))[:16]
