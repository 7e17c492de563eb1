"""`bnnkws stream --port PORT|emulated --wav FILE...`: stream audio to the firmware, print
detections with timestamps as they arrive.

Each file is a fresh stream (RESET): the firmware runs the front-end per hop, the
network every `stride` frames on the last 1 s window and the detector, and sends RESULT
and DETECTION frames. The host runs the same detector (bnnkws.tools.device.detector) on the RESULT
scores and reports any difference from the device's detections (there should be none).
With --features the host computes the features and sends those instead (a slow link:
2 kB/s instead of 32 kB/s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.tools.device import detector as D
from bnnkws.tools.device import protocol as P
from bnnkws.tools.device.detector import DetectorConfig
from bnnkws.tools.device.session import (
    Heard,
    Microphone,
    features_for,
    model_detector,
    open_port,
    run_stream,
    window_end_s,
)


def device_config(info: P.Info, args: argparse.Namespace) -> P.Config:
    """CONFIG from the command line over the model's own configuration: stride in frames,
    refractory in ms -> frames; options not given keep the model's values."""
    base = model_detector(info)
    thr = base.thr
    if args.threshold is not None:
        thr = DetectorConfig.for_labels(info.labels, threshold=args.threshold).thr
    det = DetectorConfig(
        thr,
        base.smooth if args.smooth is None else args.smooth,
        base.temp_shift if args.temp_shift is None else args.temp_shift,
        base.refractory
        if args.refractory_ms is None
        else D.refractory_frames(args.refractory_ms, info.hop, info.sample_rate),
    )
    det.check()
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
    calibrated = "the model's calibrated value, else"
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help=f"keyword posterior threshold 0..1 (default: {calibrated} {D.DEFAULT_THRESHOLD})",
    )
    p.add_argument(
        "--smooth",
        type=int,
        default=None,
        help=f"windows averaged by the detector (default: {calibrated} {D.DEFAULT_SMOOTH})",
    )
    p.add_argument(
        "--temp-shift",
        type=int,
        default=None,
        help=f"2^T score units are a factor 2 in odds (default: {calibrated} {D.DEFAULT_TEMP_SHIFT})",
    )
    p.add_argument(
        "--refractory-ms",
        type=float,
        default=None,
        help=f"quiet time after a detection (default: {calibrated} {D.DEFAULT_REFRACTORY_MS:g})",
    )
    p.add_argument("--results", action="store_true", help="also print every RESULT (scores)")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout, no progress")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_stream)


def _stream(args: argparse.Namespace) -> int:
    from bnnkws.generator.data.audio_io import read_audio

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
                feats = features_for(info, audio) if args.features else None
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
