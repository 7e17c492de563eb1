"""A streaming session with the firmware: audio (or features) in, RESULT and DETECTION
frames out, the host detector run beside the device's (they must agree)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bnnkws.generator.base.errors import BnnkwsError, DeviceError, FormatError
from bnnkws.generator.codegen.emit_c import default_out_dir
from bnnkws.generator.export import blob as blobmod
from bnnkws.tools.device import protocol as P
from bnnkws.tools.device.detector import Detector, DetectorConfig

CHUNK = 256  # samples per AUDIO frame (512 bytes, the payload limit)


@dataclass(frozen=True)
class Heard:
    """One detection, placed in the audio file's time."""

    time_s: float  # end of the 1 s window that fired
    label: str
    posterior: float  # smoothed, 0..1
    frame: int


@dataclass
class StreamReport:
    name: str
    audio_s: float
    wall_s: float = 0.0
    detections: list[Heard] = field(default_factory=list)
    results: list[P.Result] = field(default_factory=list)
    host_detections: list[Heard] = field(default_factory=list)

    @property
    def detector_agrees(self) -> bool:
        return self.detections == self.host_detections

    def to_json(self) -> dict:
        return {
            "event": "done",
            "file": self.name,
            "audio_s": round(self.audio_s, 3),
            "wall_s": round(self.wall_s, 3),
            "detections": len(self.detections),
            "inferences": len(self.results),
            "host_detector_agrees": self.detector_agrees,
        }


def window_end_s(info: P.Info, frame: int) -> float:
    """End time (s) of the feature window whose last frame is `frame`."""
    return (frame * info.hop + info.frame_len) / info.sample_rate


def run_stream(
    link,
    audio: np.ndarray | Iterator[np.ndarray],
    name: str,
    detector: DetectorConfig,
    features: np.ndarray | None = None,
    on_detection: Callable[[Heard], None] | None = None,
    on_result: Callable[[P.Result], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StreamReport:
    """Stream one file (int16 audio, its features, or live chunks from an iterator) from
    the stream start; collect what the device reports and what the host detector makes
    of the same scores."""
    info = link.info
    labels = info.labels
    live = not isinstance(audio, np.ndarray)
    report = StreamReport(name, 0.0 if live else audio.size / info.sample_rate)
    mirror = Detector(detector)

    def heard(d) -> Heard:
        return Heard(
            round(window_end_s(info, d.frame), 3),
            labels[d.label],
            round(d.posterior / 32768, 4),
            d.frame,
        )

    def listener(msg_type: int, obj) -> None:
        if msg_type == P.MsgType.RESULT:
            report.results.append(obj)
            d = mirror.push(obj.scores, obj.frame)
            if d is not None:
                report.host_detections.append(heard(d))
            if on_result:
                on_result(obj)
        elif msg_type == P.MsgType.DETECTION:
            h = heard(obj)
            report.detections.append(h)
            if on_detection:
                on_detection(h)

    link.reset_stream()
    link.listener = listener
    t0 = time.monotonic()
    try:
        if live:
            report.audio_s = link.stream_audio_chunks(audio, CHUNK) / info.sample_rate
        elif features is None:
            link.stream_audio(audio, CHUNK, progress)
        else:
            link.stream_features(features, progress=progress)
    finally:
        link.listener = None
    report.wall_s = time.monotonic() - t0
    return report


def features_for(info: P.Info, audio: np.ndarray) -> np.ndarray:
    from bnnkws.generator.frontend import default_params, features

    fe = default_params()
    if (fe.frame_len, fe.hop, fe.n_mels, fe.sample_rate) != (
        info.frame_len,
        info.hop,
        info.n_mels,
        info.sample_rate,
    ):
        raise BnnkwsError(
            "--features: the firmware's front-end differs from the default one; stream audio instead"
        )
    return features(audio, fe)


def model_detector(info: P.Info) -> DetectorConfig:
    """The detector configuration the firmware starts with: the flashed model's own
    (calibrated) one when its blob was built here (build/models/<hash>/model.bkim), else
    the defaults (generator/export/detector_config.py)."""
    path = default_out_dir(info.model_hash.hex()) / "model.bkim"
    if path.is_file():
        try:
            model = blobmod.load(path)
            if list(model.labels) == list(info.labels):
                return DetectorConfig.of_model(model)
        except FormatError:
            pass
    return DetectorConfig.default_for(info.labels, info.hop, info.sample_rate)


class Microphone:
    """Live 16 kHz mono capture through arecord (alsa-utils), read as it is recorded."""

    def __init__(self, seconds: float) -> None:
        import shutil

        if not shutil.which("arecord"):
            raise DeviceError("--mic needs arecord (Debian package alsa-utils)")
        cards = subprocess.run(["arecord", "-l"], capture_output=True, text=True).stdout
        if "card" not in cards:
            raise DeviceError("--mic: no capture device found (arecord -l lists none)")
        self.seconds = max(1, round(seconds))
        self.name = "microphone"

    def chunks(self, samples: int = 1600) -> Iterator[np.ndarray]:
        cmd = [
            "arecord",
            "-q",
            "-f",
            "S16_LE",
            "-r",
            "16000",
            "-c",
            "1",
            "-t",
            "raw",
            "-d",
            str(self.seconds),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            while True:
                raw = proc.stdout.read(2 * samples)
                if not raw:
                    break
                yield np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)
            if proc.wait(5) != 0:
                lines = proc.stderr.read().decode(errors="replace").strip().splitlines()
                raise DeviceError(
                    f"microphone: arecord failed ({lines[-1] if lines else 'no output'})"
                )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def open_port(port: str, target: str, elf: Path | None):
    """(Link, emulator or None). 'emulated' uses the board `bnnkws flash` left running,
    else starts one for this command (the caller stops it)."""
    from bnnkws.tools.device import qemu
    from bnnkws.tools.device.firmware import default_build_root
    from bnnkws.tools.device.serial_link import open_link

    emu = None
    if port == "emulated":
        run = qemu.running(default_build_root(), target) if elf is None else None
        if run is not None:
            port = run.port
        else:
            from bnnkws.tools.device.firmware import load

            image = elf or load(target).elf
            emu = qemu.Emulator(image, machine=target)
            port = emu.start()
    try:
        return open_link(port), emu
    except BaseException:
        if emu is not None:
            emu.stop()
        raise
