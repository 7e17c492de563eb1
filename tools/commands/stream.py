"""`bnnkws stream --port PORT|emulated --wav FILE...`: stream audio to the firmware, print
detections with timestamps as they arrive.

Each file is a fresh stream (RESET): the firmware runs the front-end per hop, the
network every `stride` frames on the last 1 s window and the detector, and sends RESULT
and DETECTION frames. The host runs the same detector (bnnkws.detector) on the RESULT
scores and reports any difference from the device's detections (there should be none).
With --features the host computes the features and sends those instead (a slow link:
2 kB/s instead of 32 kB/s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bnnkws import protocol as P
from bnnkws.detector import Detector, DetectorConfig
from bnnkws.errors import BnnkwsError, DeviceError

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


def device_config(info: P.Info, args: argparse.Namespace) -> P.Config:
    """CONFIG from the command line: stride in frames, refractory in ms -> frames."""
    hop_ms = 1000.0 * info.hop / info.sample_rate
    det = DetectorConfig.for_labels(
        info.labels,
        threshold=args.threshold,
        smooth=args.smooth,
        temp_shift=args.temp_shift,
        refractory=max(0, round(args.refractory_ms / hop_ms)),
    )
    stride = args.stride or info.stride
    return P.Config(stride, det)


class Progress:
    """One self-rewriting stderr line per file (off for --json/--quiet or no terminal)."""

    def __init__(self, name: str, info: P.Info, enabled: bool, features: bool) -> None:
        self.name, self.info, self.enabled, self.features = name, info, enabled, features
        self.t0 = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        unit = self.info.hop if self.features else 1
        sec = done * unit / self.info.sample_rate
        tot = total * unit / self.info.sample_rate
        wall = max(1e-6, time.monotonic() - self.t0)
        print(
            f"\r  {self.name}: {100 * done // max(1, total):3d}% {sec:5.1f}/{tot:.1f} s "
            f"({sec / wall:.2f}x real time)",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def end(self) -> None:
        if self.enabled:
            print("\r" + " " * 70 + "\r", end="", file=sys.stderr, flush=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stream",
        help="stream audio files (or a microphone) to the firmware and print detections",
        description="Stream 16 kHz mono audio to the firmware over a serial port with flow "
        "control and print each detection with its time in the file as it arrives.",
    )
    p.add_argument(
        "--port",
        required=True,
        help="serial port (/dev/ttyACM0, /dev/pts/N, socket://HOST:PORT) or 'emulated'",
    )
    p.add_argument(
        "--wav", type=Path, nargs="+", default=[], metavar="FILE", help="16 kHz mono WAV/FLAC files"
    )
    p.add_argument(
        "--mic",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stream SECONDS from the default microphone (needs arecord)",
    )
    p.add_argument(
        "--target", default="mps2-an386", help="board for --port emulated (default mps2-an386)"
    )
    p.add_argument(
        "--elf",
        type=Path,
        default=None,
        help="firmware for --port emulated (default: the last build)",
    )
    p.add_argument(
        "--features",
        action="store_true",
        help="compute features on the host and send those (slow links)",
    )
    p.add_argument(
        "--stride", type=int, default=None, help="frames between inferences (default: firmware's)"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.6,
        help="keyword posterior threshold 0..1 (default 0.6)",
    )
    p.add_argument(
        "--smooth", type=int, default=3, help="windows averaged by the detector (default 3)"
    )
    p.add_argument(
        "--temp-shift",
        type=int,
        default=0,
        help="2^T score units are a factor 2 in odds (default 0)",
    )
    p.add_argument(
        "--refractory-ms",
        type=float,
        default=1000.0,
        help="quiet time after a detection (default 1000)",
    )
    p.add_argument("--results", action="store_true", help="also print every RESULT (scores)")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout, no progress")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_stream)


def _features_for(info: P.Info, audio: np.ndarray) -> np.ndarray:
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
    from bnnkws import qemu
    from bnnkws.firmware import default_build_root
    from bnnkws.serial_link import open_link

    emu = None
    if port == "emulated":
        run = qemu.running(default_build_root(), target) if elf is None else None
        if run is not None:
            port = run.port
        else:
            from bnnkws.firmware import load

            image = elf or load(target).elf
            emu = qemu.Emulator(image, machine=target)
            port = emu.start()
    try:
        return open_link(port), emu
    except BaseException:
        if emu is not None:
            emu.stop()
        raise


def _stream(args: argparse.Namespace) -> int:
    from bnnkws.audio_io import read_audio

    if not args.wav and args.mic is None:
        raise BnnkwsError("nothing to stream: give --wav FILE... or --mic SECONDS")
    clips: list = [(str(w), read_audio(w)) for w in args.wav]  # fail on a bad file before starting
    mic = Microphone(args.mic) if args.mic is not None else None
    link, emu = open_port(args.port, args.target, args.elf)
    out = sys.stdout
    try:
        info = link.info
        config = device_config(info, args)
        link.configure(config)
        if args.json:
            print(
                json.dumps(
                    {
                        "event": "info",
                        "port": link.port_name,
                        **_info_json(info),
                        "stride": config.stride,
                    }
                ),
                file=out,
                flush=True,
            )
        else:
            print(f"{link.port_name}: {info.summary()}", file=out)
        if mic is not None:
            clips.append((mic.name, mic))
        for name, audio in clips:
            if isinstance(audio, Microphone):
                if not args.json:
                    print(f"{name}: listening for {audio.seconds} s", file=out, flush=True)
                audio = audio.chunks()
                feats = None
            else:
                feats = _features_for(info, audio) if args.features else None
                if not args.json:
                    print(f"{name}: {audio.size / info.sample_rate:.2f} s", file=out, flush=True)
            prog = Progress(
                Path(name).name,
                info,
                not (args.json or args.quiet) and sys.stderr.isatty(),
                args.features,
            )

            def on_det(h: Heard, name: str = name, prog: Progress = prog) -> None:
                prog.end()
                if args.json:
                    print(
                        json.dumps({"event": "detection", "file": name, **h.__dict__}),
                        file=out,
                        flush=True,
                    )
                else:
                    print(
                        f"  {h.time_s:7.2f} s  {h.label:<12} {h.posterior:.2f}",
                        file=out,
                        flush=True,
                    )

            def on_res(r: P.Result, name: str = name) -> None:
                if args.json:
                    print(
                        json.dumps(
                            {
                                "event": "result",
                                "file": name,
                                "frame": r.frame,
                                "time_s": round(window_end_s(info, r.frame), 3),
                                "scores": list(r.scores),
                            }
                        ),
                        file=out,
                        flush=True,
                    )
                else:
                    print(
                        f"  {window_end_s(info, r.frame):7.2f} s  scores {' '.join(map(str, r.scores))}",
                        file=out,
                    )

            report = run_stream(
                link,
                audio,
                name,
                config.detector,
                feats,
                on_det,
                on_res if args.results else None,
                prog,
            )
            prog.end()
            if args.json:
                print(json.dumps(report.to_json()), file=out, flush=True)
            else:
                rt = report.audio_s / max(report.wall_s, 1e-6)
                print(
                    f"  {len(report.detections)} detection(s), {len(report.results)} inferences, "
                    f"streamed in {report.wall_s:.1f} s ({rt:.2f}x real time)",
                    file=out,
                )
            if not report.detector_agrees:
                print(
                    f"bnnkws stream: warning: {name}: host detector gives {report.host_detections}, "
                    f"device gave {report.detections}",
                    file=sys.stderr,
                )
        stats = link.get_stats()
        per_inf = stats.instructions(stats.infer_ticks_min) if stats.inferences else 0
        per_hop = stats.instructions(stats.frontend_ticks_total // max(1, stats.hops))
        if args.json:
            print(
                json.dumps(
                    {
                        "event": "stats",
                        "inferences": stats.inferences,
                        "instructions_per_inference": per_inf,
                        "frontend_instructions_per_hop": per_hop,
                    }
                ),
                file=out,
                flush=True,
            )
        else:
            print(
                f"device: {stats.inferences} inferences, {per_inf} instructions per inference, "
                f"front-end {per_hop} per hop (valid under QEMU -icount shift=0)",
                file=out,
            )
    finally:
        link.close()
        if emu is not None:
            emu.stop()
    return 0


def _info_json(info: P.Info) -> dict:
    d = dict(info.__dict__)
    d["model_hash"] = info.model_hash.hex()
    d["acc_bits"] = list(info.acc_bits)
    d["labels"] = list(info.labels)
    return d
