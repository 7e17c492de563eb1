"""`bnnkws demo`: the whole path on the emulated board, in a few minutes on 2 cores.

1. model: the shipped default (models/), a --model PATH, or --train: a small one trained
   here on synthetic speech (bnnkws data synth, bnnkws train);
2. export to the integer model, generate C, build the Cortex-M4 firmware (flash/RAM);
3. start it on QEMU mps2-an386 (-icount shift=0) with its UART as a pty;
4. synthesize a spoken sequence of keywords in background noise with voices from the
   synthesizer's test split (talkers no training clip came from), at known times;
5. stream it over the serial link and print what was detected against what was said,
   with the device's own instruction counts.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.generator.base.paths import MODELS_DIR, shipped_model
from bnnkws.generator.export.detector_config import DEFAULT_THRESHOLD

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Said:
    word: str
    start_s: float
    end_s: float
    talker: str


def spoken_sequence(
    words: list[str],
    seed: int = 0,
    gap_s: tuple[float, float] = (1.2, 2.0),
    snr_db: float = 15.0,
    trained_on_synthetic: bool = False,
) -> tuple[np.ndarray, list[Said]]:
    """int16 audio: `words` said one after the other by TTS talkers the model never heard,
    over background noise, and where each word is.

    A model trained on synthetic speech (``--train``) hears the synthesizer's test-split
    talkers, the only ones no training clip came from. A model trained on real speech (the
    shipped default: real recordings plus espeak-ng voices, see models/MODEL_CARD.md) has
    heard no flite or festival voice; it hears the five voices built from recordings of
    real people (flite/festival: kal, ked, slt, awb, rms), the most
    intelligible ones (checked with a closed-set recognizer when the synthesizer was built),
    so the demo measures the model, not espeak.
    """
    from bnnkws.generator.data import synth

    rng = np.random.default_rng(seed)
    talkers = synth.default_talkers(seed)
    if trained_on_synthetic:
        split = synth.assign_splits(talkers)
        unseen = [t for t in talkers if split[t.name] == "test"]
    else:
        unseen = [t for t in talkers if t.family == "recorded"]
    synth.check_engines(unseen)
    voices = {t.name: synth.synthesize_talker(t, sorted(set(words))) for t in unseen}
    noises = synth.make_noises(seed, [])
    pieces, said, pos = [], [], 0
    lead = int(SAMPLE_RATE * 1.5)  # the first window is full before the first word
    pieces.append(np.zeros(lead))
    pos = lead
    for i, word in enumerate(words):
        talker = unseen[i % len(unseen)]
        renderings = voices[talker.name][word]
        x = synth.trim_silence(
            np.asarray(renderings[rng.integers(len(renderings))], dtype=np.float64)
        )
        x = x / (np.max(np.abs(x)) + 1e-12) * 10 ** (rng.uniform(-9, -3) / 20) * 32767
        said.append(Said(word, pos / SAMPLE_RATE, (pos + len(x)) / SAMPLE_RATE, talker.name))
        gap = np.zeros(int(SAMPLE_RATE * rng.uniform(*gap_s)))
        pieces += [x, gap]
        pos += len(x) + len(gap)
    speech = np.concatenate(pieces)
    names = sorted(noises)
    noise = np.concatenate(
        [
            noises[names[rng.integers(len(names))]]
            for _ in range(len(speech) // len(noises[names[0]]) + 1)
        ]
    )
    noise = noise[: len(speech)].astype(np.float64)
    speech_rms = np.sqrt(
        np.mean(
            np.concatenate(
                [speech[int(s.start_s * SAMPLE_RATE) : int(s.end_s * SAMPLE_RATE)] for s in said]
            )
            ** 2
        )
    )
    noise = noise / (np.sqrt(np.mean(noise**2)) + 1e-12) * speech_rms * 10 ** (-snr_db / 20)
    return np.clip(np.rint(speech + noise), -32768, 32767).astype(np.int16), said


def match(
    said: list[Said], heard: list, late_s: float = 1.2
) -> tuple[list[tuple[Said, object | None]], list]:
    """Pair each said word with the first unused detection of the same label whose window
    ends between the word's start and end + late_s; the rest are false alarms."""
    used: set[int] = set()
    pairs = []
    for s in said:
        hit = None
        for i, h in enumerate(heard):
            if i not in used and h.label == s.word and s.start_s < h.time_s <= s.end_s + late_s:
                hit = h
                used.add(i)
                break
        pairs.append((s, hit))
    return pairs, [h for i, h in enumerate(heard) if i not in used]


def describe_detector(det, labels, meta: dict) -> str:
    """One line: where the configuration comes from, smoothing, thresholds."""
    cal = meta.get("calibration") or {}
    origin = (
        f"calibrated for {cal['target_fa_per_hour']:g} false alarms/h"
        if "detector" in meta and "target_fa_per_hour" in cal
        else "calibrated"
        if "detector" in meta
        else "defaults (the model is not calibrated)"
    )
    thr = sorted({t for w, t in zip(labels, det.thr, strict=True) if not w.startswith("_")})
    shown = (
        f"{thr[0] / 32768:.3f}" if len(thr) == 1 else f"{thr[0] / 32768:.3f}-{thr[-1] / 32768:.3f}"
    )
    return (
        f"{origin}; smoothing {det.smooth}, temp_shift {det.temp_shift}, "
        f"refractory {det.refractory} frames, keyword thresholds {shown}"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="default model -> firmware -> emulated Cortex-M4 -> stream spoken keywords -> detections",
        description="Build the firmware for the shipped model (or --model, or --train a small one), "
        "run it on the emulated Cortex-M4, stream keywords spoken by unseen synthetic voices in "
        "noise, and print what was detected against what was said.",
    )
    p.add_argument(
        "--model", type=Path, default=None, help="blob or checkpoint instead of the shipped model"
    )
    p.add_argument(
        "--train", action="store_true", help="train a small model on synthetic speech first"
    )
    p.add_argument(
        "--per-word",
        type=int,
        default=600,
        help="--train: synthetic clips per keyword (default 600)",
    )
    p.add_argument("--epochs", type=int, default=15, help="--train: epochs (default 15)")
    p.add_argument(
        "--words", type=int, default=8, help="keywords in the spoken sequence (default 8)"
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the spoken sequence (default 1)")
    p.add_argument(
        "--snr", type=float, default=15.0, help="speech-to-noise ratio in dB (default 15)"
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="keyword threshold 0..1 (default: the model's calibrated detector configuration, "
        f"else {DEFAULT_THRESHOLD})",
    )
    p.add_argument(
        "--workdir", type=Path, default=None, help="keep the audio and the trained model here"
    )
    p.set_defaults(func=_demo)


def _train_small(workdir: Path, per_word: int, epochs: int) -> Path:
    """bnnkws data synth + bnnkws train, as a user would run them; returns the checkpoint."""
    exe = [sys.executable, "-m", "bnnkws.tools.cli"]
    data, out = workdir / "synth", workdir / "small.pt"
    synth = ["data", "synth", "--out", str(data), "--per-word", str(per_word), "--force", "--quiet"]
    train = [
        "train",
        "--data",
        str(data),
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        "--cache",
        str(workdir / "cache"),
    ]
    for step in (synth, train):
        print("$ bnnkws " + " ".join(step), flush=True)
        if subprocess.run(exe + step).returncode != 0:
            raise BnnkwsError(f"demo --train: `bnnkws {' '.join(step[:2])}` failed")
    if not out.is_file():
        raise BnnkwsError(f"demo --train: bnnkws train wrote no checkpoint {out}")
    return out


def _demo(args: argparse.Namespace) -> int:
    from bnnkws.generator.data.audio_io import write_wav
    from bnnkws.tools.device.detector import DetectorConfig
    from bnnkws.tools.device.firmware import build_for_model
    from bnnkws.tools.device.qemu import Emulator
    from bnnkws.tools.device.serial_link import open_link
    from bnnkws.tools.device.session import run_stream

    t_start = time.monotonic()
    tmp = None
    workdir = args.workdir
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="bnnkws-demo-")
        workdir = Path(tmp)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.model is not None:
            model_path = args.model
        elif args.train:
            model_path = _train_small(workdir, args.per_word, args.epochs)
        else:
            model_path = shipped_model()
            if model_path is None:
                raise BnnkwsError(f"no shipped model in {MODELS_DIR}: use --train or --model PATH")
        print(f"1. model: {model_path}", flush=True)
        fw, loaded = build_for_model(model_path, "mps2-an386")
        labels = loaded.model.labels
        print(f"2. firmware for model {loaded.hash[:16]} ({', '.join(labels)}): {fw.elf}")
        print(f"   {fw.size_line()}", flush=True)
        keywords = [w for w in labels if not w.startswith("_") and w.isalpha()]
        if not keywords:
            raise BnnkwsError(f"{model_path}: no keyword labels to say ({', '.join(labels)})")
        rng = np.random.default_rng(args.seed)
        words = [
            keywords[i] for i in rng.permutation(np.resize(np.arange(len(keywords)), args.words))
        ][: args.words]
        print(
            f"3. saying {len(words)} keywords with unseen synthetic voices in noise ({args.snr:.0f} dB SNR) ...",
            flush=True,
        )
        audio, said = spoken_sequence(
            words, args.seed, snr_db=args.snr, trained_on_synthetic=bool(args.train)
        )
        wav = workdir / "spoken.wav"
        write_wav(wav, audio)
        print(
            f"   {wav}: {audio.size / SAMPLE_RATE:.1f} s: "
            + ", ".join(f"{s.word}@{s.start_s:.1f}s" for s in said)
        )
        with Emulator(fw.elf, machine="mps2-an386") as emu, open_link(emu.port) as link:
            info = link.info
            print(f"4. emulated Cortex-M4 on {emu.port}: {info.summary()}", flush=True)
            from bnnkws.tools.device import protocol as P

            det = DetectorConfig.of_model(loaded.model)  # what the firmware starts with
            if args.threshold is not None:
                det = DetectorConfig(
                    DetectorConfig.for_labels(info.labels, threshold=args.threshold).thr,
                    det.smooth,
                    det.temp_shift,
                    det.refractory,
                )
            print(f"   detector: {describe_detector(det, info.labels, loaded.model.meta)}")
            link.configure(P.Config(info.stride, det))
            print("5. streaming (detections as they arrive):", flush=True)
            report = run_stream(
                link,
                audio,
                str(wav),
                det,
                on_detection=lambda h: print(
                    f"   heard {h.label:<8} at {h.time_s:6.2f} s (posterior {h.posterior:.2f})",
                    flush=True,
                ),
            )
            stats = link.get_stats()
            link.shutdown()
        pairs, false_alarms = match(said, report.detections)
        print("\n   said          at        heard")
        for s, h in pairs:
            got = f"{h.label} at {h.time_s:.2f} s" if h else "-- missed"
            print(f"   {s.word:<8} {s.start_s:6.2f}-{s.end_s:5.2f} s   {got}   [{s.talker}]")
        for h in false_alarms:
            print(f"   {'':<8} {'':<15}   {h.label} at {h.time_s:.2f} s (false alarm)")
        hits = sum(h is not None for _, h in pairs)
        per_inf = stats.instructions(stats.infer_ticks_min)
        print(
            f"\n   recall {hits}/{len(said)} ({100 * hits / max(1, len(said)):.0f}%), "
            f"{len(false_alarms)} false alarm(s) in {report.audio_s:.0f} s of audio; "
            f"host detector {'agrees' if report.detector_agrees else 'DISAGREES'} with the device"
        )
        print(
            f"   device: {stats.inferences} inferences, {per_inf:,} instructions per inference, "
            f"{stats.instructions(stats.frontend_ticks_total // max(1, stats.hops)):,} per front-end hop; "
            f"{report.audio_s:.1f} s of audio streamed in {report.wall_s:.1f} s; demo took "
            f"{time.monotonic() - t_start:.0f} s"
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0
