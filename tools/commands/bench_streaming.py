"""`bnnkws bench streaming`: streaming recall, false alarms per hour and a DET curve on long
streams built from a dataset split (tools/bench/streaming.py), optionally calibrating the
detector first (--calibrate --target-fa-per-hour F)."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.tools.cli import command_line
from bnnkws.tools.commands.bench_host import bench_actions


def _snr(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LO,HI in dB, e.g. 6,18") from None
    if lo > hi:
        raise argparse.ArgumentTypeError(f"{text!r}: LO above HI")
    return lo, hi


def register(subparsers: argparse._SubParsersAction) -> None:
    p = bench_actions(subparsers).add_parser(
        "streaming",
        help="streaming recall, false alarms per hour and DET curve on long streams from a split",
        description="Build a long stream from a split (real background noise, the split's keyword "
        "and other-word clips every 2-3 s at random SNRs, as TensorFlow's "
        "generate_streaming_test_wav.py), run it through the bit-exact pipeline (host C library, "
        "or the emulated board), score it as test_streaming_accuracy.py (750 ms tolerance) and "
        "draw a DET curve. --calibrate first chooses per-keyword thresholds and the smoothing "
        "window on the validation split for a false-alarm target and stores them in the model.",
    )
    p.add_argument("--model", type=Path, required=True, help="checkpoint or blob")
    p.add_argument(
        "--data", type=Path, required=True, help="Speech Commands folder (training layout)"
    )
    p.add_argument("--split", choices=("test", "validation", "train"), default="test")
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="stream length (default: every clip of the split once)",
    )
    p.add_argument("--seed", type=int, default=0, help="stream seed (default 0)")
    p.add_argument(
        "--snr",
        type=_snr,
        default=(6.0, 18.0),
        metavar="LO,HI",
        help="speech-to-background ratio range in dB (default 6,18)",
    )
    p.add_argument(
        "--device",
        choices=("host", "emulated"),
        default="host",
        help="emulated: also stream to the firmware on QEMU and compare (slow)",
    )
    p.add_argument(
        "--device-minutes",
        type=float,
        default=None,
        help="--device emulated: stream only the first N minutes to the board (QEMU runs "
        "about 0.6x real time; default: all)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="choose thresholds and smoothing on the validation split first",
    )
    p.add_argument(
        "--target-fa-per-hour",
        type=float,
        default=None,
        metavar="F",
        help="--calibrate: false alarms per hour allowed (e.g. 6 = one per 10 minutes)",
    )
    p.add_argument(
        "--calibration-minutes",
        type=float,
        default=60.0,
        help="--calibrate: validation stream length; the split's clips are reused "
        "in new places, SNRs and noise (default 60)",
    )
    p.add_argument(
        "--refractory-ms",
        default=None,
        metavar="MS[,MS...]",
        help="--calibrate: quiet times after a detection to choose from (default 1000,1500; "
        "TensorFlow's RecognizeCommands suppresses for 1500 ms)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="--calibrate: write the calibrated model here (default: the checkpoint itself)",
    )
    p.add_argument(
        "--stride",
        type=int,
        default=None,
        help="hops between inferences (default: the firmware's, firmware/app/app.h BK_APP_STRIDE)",
    )
    p.add_argument(
        "--doc", type=Path, default=None, help="write the report (e.g. docs/STREAMING.md)"
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="write the numbers as JSON (the model card reads docs/results/streaming-NAME.json)",
    )
    p.add_argument(
        "--png",
        type=Path,
        default=None,
        help="DET curve plot (default: streaming.png beside --doc)",
    )
    p.add_argument(
        "--save-stream",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the stream WAV and its label file",
    )
    p.set_defaults(func=_bench_streaming)


def _bench_streaming(args: argparse.Namespace) -> int:
    from bnnkws.tools.bench import streaming as S

    if args.calibrate and args.target_fa_per_hour is None:
        raise BnnkwsError("--calibrate needs --target-fa-per-hour F")
    if args.target_fa_per_hour is not None and not args.calibrate:
        raise BnnkwsError("--target-fa-per-hour is for --calibrate")
    if args.refractory_ms is not None and not args.calibrate:
        raise BnnkwsError("--refractory-ms is for --calibrate")
    try:
        refractory_ms = tuple(float(v) for v in str(args.refractory_ms or "1000,1500").split(","))
    except ValueError:
        raise BnnkwsError(
            f"--refractory-ms {args.refractory_ms!r}: expected milliseconds, e.g. 1000,1500"
        ) from None
    if not refractory_ms or any(not 0 <= v <= 60000 for v in refractory_ms):
        raise BnnkwsError(f"--refractory-ms {args.refractory_ms}: expected 0..60000 ms each")
    tty = sys.stderr.isatty()

    def progress(msg: str) -> None:
        if tty:
            print(f"  {msg}", file=sys.stderr, flush=True)

    r = S.run_bench(
        args.model,
        args.data,
        args.split,
        args.minutes,
        args.seed,
        args.snr,
        args.device,
        args.target_fa_per_hour if args.calibrate else None,
        args.calibration_minutes,
        args.out,
        progress=progress,
        device_minutes=args.device_minutes,
        stride=args.stride if args.stride is not None else S.DEFAULT_STRIDE,
        refractory_ms=refractory_ms,
    )
    if r.calibration is not None:
        c = r.calibration
        print(
            f"calibrated on {c.seconds / 60:.1f} min of validation stream: recall "
            f"{100 * c.score.recall:.1f}%, {c.score.fa_per_hour:.1f} false alarms per hour "
            f"(target {c.target_fa_per_hour:g}); written to {args.out or args.model}"
        )
    print(S.format_summary(r))
    if args.results is not None:
        import json

        write_atomic(args.results, (json.dumps(S.result_summary(r), indent=1) + "\n").encode())
        print(f"wrote {args.results}")
    if args.save_stream is not None:
        wav, labels = r.stream.save(args.save_stream)
        print(f"wrote {wav} and {labels}")
    if args.doc is not None or args.png is not None:
        png = args.png or (args.doc.parent / "streaming.png")
        title = (
            f"{r.model_name}: {r.stream.split} stream, {r.stream.seconds / 60:.0f} min, SNR "
            f"{r.stream.snr_db[0]:g}-{r.stream.snr_db[1]:g} dB, seed {r.stream.seed}"
        )
        b = r.baseline if r.calibrated else None
        S.plot_det(
            r.det,
            (r.score.fa_per_hour, r.score.miss_rate),
            png,
            title,
            (b.fa_per_hour, b.miss_rate) if b is not None else None,
        )
        print(f"wrote {png}")
        if args.doc is not None:
            date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
            try:
                rel = png.resolve().relative_to(args.doc.parent.resolve())
            except ValueError:
                rel = png
            write_atomic(args.doc, S.format_doc(r, command_line(), str(rel), date).encode())
            print(f"wrote {args.doc}")
    ok = r.host_c_detector_agrees and r.device_agrees is not False
    if not ok:
        print(
            "bnnkws bench streaming: the detectors or the board disagree with the host",
            file=sys.stderr,
        )
    return 0 if ok else 1
