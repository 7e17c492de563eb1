"""Synthetic Speech Commands data from Debian's speech synthesizers.

Writes the Google Speech Commands layout (see bnnkws.generator.data.dataset):
``<word>/<talker>_nohash_<j>.wav`` (16 kHz mono int16, exactly 16000 samples),
``_background_noise_/*.wav`` (synthesized noises, 20 s each),
``validation_list.txt`` and ``testing_list.txt``, plus ``manifest.csv`` and
``SYNTH_INFO.json``.

How it stays fast: every (talker, word) pair is synthesized a few times
("renderings": accent, speaking rate, engine) and each clip is one rendering
run through a cheap random augmentation (speed/pitch warp, EQ tilt, reverb,
level, position in the 1-s window, noise floor). TTS runs ~4k times for any
dataset size; clips cost a few ms each.

Talkers. A talker is one underlying voice identity; its renderings may come
from several engines (flite's and festival's ``kal`` are the same recorded
speaker, so are ``slt``) and, for espeak-ng, several accents of one voice
variant. The split into train/validation/test is by talker, so a test talker
never appears in training: talkers are ordered by a hash of their name (not the
seed) within each family -- ``recorded`` (flite/festival voices built from one
person's recordings) and ``formant`` (espeak-ng) -- and each family with at
least 3 talkers gives about 10 % (at least one) to validation and to test.
With the default talkers every split therefore has talkers from at least two
engines. Recorded talkers are drawn ``RECORDED_WEIGHT`` times as often as
espeak-ng talkers because they are far more intelligible.

Determinism. TTS settings and per-talker pitch personas derive from
(seed, talker); clip k of a word derives everything (talker, rendering,
augmentation) from (seed, word, k). The same seed gives byte-identical audio
and list files for any number of jobs.
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm import tqdm

from bnnkws.generator.base.errors import DatasetError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.data.audio_io import SAMPLE_RATE, write_wav
from bnnkws.generator.data.dataset import (
    BACKGROUND_DIR,
    CLIP_SAMPLES,
    SPEECH_COMMANDS_KEYWORDS,
    TESTING_LIST,
    VALIDATION_LIST,
)

DEFAULT_UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila",
    "tree", "wow", "zero", "one", "two", "three", "four",
)  # fmt: skip
ENGINES = ("espeak-ng", "flite", "festival")
NOISE_SECONDS = 20
RECORDED_WEIGHT = 5  # clip share of one recorded talker relative to one espeak-ng talker
PERSONAS = 4  # fixed pitch/formant warps per talker, see _personas
MANIFEST = "manifest.csv"
INFO = "SYNTH_INFO.json"

# Debian package that provides each engine, festival voice and flite voice.
ENGINE_PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}
FESTIVAL_PACKAGES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}

# espeak-ng voice variants used as talkers: the plain male/female/klatt sets and
# named variants that sound like a person (no heavy echo, whisper or robot).
ESPEAK_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "Alex", "Annie", "Denis", "Mike", "Nguyen",
    "adam", "antonio", "belinda", "david", "edward", "linda", "paul", "robert", "steph",
    "travis",
)  # fmt: skip
# Every espeak-ng talker speaks en-us and en (British) plus one of the others.
ESPEAK_EXTRA_ACCENTS = (
    "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)  # fmt: skip

_WORD = re.compile(r"^[a-z]+$")


# --- talkers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendering:
    """One way to synthesize a word: engine, engine voice, duration stretch (>1 slower), pitch.

    ``pitch`` is espeak-ng's 0..99 pitch setting and ignored by the other engines.
    """

    engine: str
    voice: str
    stretch: float = 1.0
    pitch: int = 50


@dataclass(frozen=True)
class Talker:
    """An underlying voice identity: file-name-safe ``name``, split ``family``, renderings."""

    name: str
    family: str  # "recorded" or "formant"
    renderings: tuple[Rendering, ...]

    @property
    def engines(self) -> tuple[str, ...]:
        return tuple(sorted({r.engine for r in self.renderings}))


def _recorded_talkers() -> list[Talker]:
    # Stretches lean slow: TTS says isolated words faster than the Speech
    # Commands speakers (median word about 0.7 s). HTS ignores Duration_Stretch.
    fl, fe = "flite", "festival"
    table = {
        "kal": [
            (fl, "kal16", 1.0),
            (fl, "kal", 1.3),
            (fe, "kal_diphone", 1.0),
            (fe, "kal_diphone", 1.3),
        ],
        "ked": [(fe, "ked_diphone", 0.9), (fe, "ked_diphone", 1.15), (fe, "ked_diphone", 1.4)],
        "slt": [(fl, "slt", 1.0), (fl, "slt", 1.35), (fe, "cmu_us_slt_arctic_hts", 1.0)],
        "awb": [(fl, "awb", 0.9), (fl, "awb", 1.15), (fl, "awb", 1.4)],
        "rms": [(fl, "rms", 0.9), (fl, "rms", 1.15), (fl, "rms", 1.4)],
    }
    return [
        Talker(name, "recorded", tuple(Rendering(e, v, s) for e, v, s in rows))
        for name, rows in table.items()
    ]


def _espeak_talker(variant: str, seed: int) -> Talker:
    rng = np.random.default_rng([seed, zlib.crc32(variant.encode()), 0])
    accents = ("en-us", "en", ESPEAK_EXTRA_ACCENTS[rng.integers(len(ESPEAK_EXTRA_ACCENTS))])
    renderings = tuple(
        Rendering(
            "espeak-ng",
            f"{accent}+{variant}",
            stretch=round(float(rng.uniform(0.95, 1.5)), 3),
            pitch=int(rng.integers(35, 66)),
        )
        for accent in accents
    )
    return Talker("espk-" + variant.lower(), "formant", renderings)


def default_talkers(seed: int = 0) -> list[Talker]:
    """All talkers: 5 recorded voices (kal, ked, slt, awb, rms) and 32 espeak-ng variants."""
    return _recorded_talkers() + [_espeak_talker(v, seed) for v in ESPEAK_VARIANTS]


def select_talkers(
    talkers: Sequence[Talker], engines: Iterable[str] = ENGINES, names: Iterable[str] | None = None
) -> list[Talker]:
    """Keep renderings from ``engines`` only and, if given, the talkers called ``names``."""
    engines = set(engines)
    unknown = engines - set(ENGINES)
    if unknown:
        raise DatasetError(f"engine(s) {', '.join(sorted(unknown))}: expected {', '.join(ENGINES)}")
    by_name = {t.name: t for t in talkers}
    if names is not None:
        names = list(names)
        missing = [n for n in names if n not in by_name]
        if missing:
            raise DatasetError(
                f"talker(s) {', '.join(missing)}: expected names from {', '.join(by_name)}"
            )
        talkers = [by_name[n] for n in names]
    kept = []
    for t in talkers:
        renderings = tuple(r for r in t.renderings if r.engine in engines)
        if renderings:
            kept.append(Talker(t.name, t.family, renderings))
    if not kept:
        raise DatasetError("no talker left after choosing engines and talker names")
    return kept


def _name_hash(name: str) -> int:
    return zlib.crc32(("bnnkws-talker:" + name).encode())


def assign_splits(talkers: Sequence[Talker]) -> dict[str, str]:
    """Map talker name -> "train" | "validation" | "test" (independent of the seed).

    Within each family, talkers sorted by name hash go ~10 % to test, ~10 % to
    validation (at least one each when the family has 3 or more), the rest to
    train. If that leaves validation or test empty and there are 3 or more
    talkers in all, the first training talkers of the largest family move there.
    """
    families: dict[str, list[str]] = {}
    for t in talkers:
        families.setdefault(t.family, []).append(t.name)
    split: dict[str, str] = {}
    for names in families.values():
        names.sort(key=_name_hash)
        n_held = max(1, round(0.1 * len(names))) if len(names) >= 3 else 0
        for i, name in enumerate(names):
            split[name] = "test" if i < n_held else "validation" if i < 2 * n_held else "train"
    if len(split) >= 3:
        largest = max(families.values(), key=len)
        for part in ("test", "validation"):
            if part not in split.values():
                pool = [n for n in largest if split[n] == "train"] or [
                    n for n in split if split[n] == "train"
                ]
                split[pool[0]] = part
    return split


# --- engines -------------------------------------------------------------------------------------


def check_engines(talkers: Sequence[Talker]) -> dict[str, str]:
    """Make sure every engine and voice the talkers need is installed; return engine versions.

    Raises DatasetError naming the Debian package to install.
    """
    needed = {r.engine for t in talkers for r in t.renderings}
    versions = {}
    for engine in sorted(needed):
        program = "text2wave" if engine == "festival" else engine
        if shutil.which(program) is None or shutil.which(engine) is None:
            raise DatasetError(
                f"{engine} not found: install the Debian package {ENGINE_PACKAGES[engine]} "
                f"(apt-get install {ENGINE_PACKAGES[engine]})"
            )
        versions[engine] = _engine_version(engine)
    flite_voices = {r.voice for t in talkers for r in t.renderings if r.engine == "flite"}
    if flite_voices:
        listed = _run(["flite", "-lv"], "flite -lv").decode(errors="replace").split()
        for voice in sorted(flite_voices - set(listed)):
            raise DatasetError(f"flite voice {voice} missing: reinstall the Debian package flite")
    for t in talkers:
        for r in t.renderings:
            if r.engine == "festival" and not _festival_voice_dirs(r.voice):
                package = FESTIVAL_PACKAGES.get(r.voice, "festvox-*")
                raise DatasetError(
                    f"festival voice {r.voice} missing: install the Debian package {package}"
                )
    return versions


def _festival_voice_dirs(voice: str) -> list[Path]:
    return [p for p in Path("/usr/share/festival/voices").glob(f"*/{voice}") if p.is_dir()]


def _engine_version(engine: str) -> str:
    try:
        done = subprocess.run([engine, "--version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
    return text[0] if text else "unknown"


def _run(cmd: list[str], what: str, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatasetError(f"{what}: could not run {cmd[0]} ({exc})") from None
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-300:]
        raise DatasetError(f"{what}: {cmd[0]} exited with {done.returncode}: {tail}")
    return done.stdout


def _read_tts(path: Path, what: str) -> np.ndarray:
    """Float32 samples at 16 kHz from an engine's output file, trimmed and peak-normalised."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DatasetError(f"{what}: engine wrote no readable audio ({exc})") from None
    x = data.mean(axis=1)
    if rate != SAMPLE_RATE:
        g = math.gcd(SAMPLE_RATE, int(rate))
        x = signal.resample_poly(x, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
    x = trim_silence(x)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= 1e-4:
        raise DatasetError(f"{what}: engine produced silence")
    return (x / peak).astype(np.float32)


def trim_silence(x: np.ndarray, threshold_db: float = -40.0, margin_s: float = 0.02) -> np.ndarray:
    """Cut leading/trailing 10-ms frames quieter than ``threshold_db`` below the loudest frame."""
    frame = SAMPLE_RATE // 100
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (threshold_db / 20))
    margin = int(margin_s * SAMPLE_RATE)
    start = max(0, loud[0] * frame - margin)
    stop = min(len(x), (loud[-1] + 1) * frame + margin)
    return x[start:stop]


def _espeak(r: Rendering, word: str, tmp: Path) -> np.ndarray:
    out = tmp / "espeak.wav"
    wpm = str(round(175 / r.stretch))
    _run(
        ["espeak-ng", "-v", r.voice, "-s", wpm, "-p", str(r.pitch), "-w", str(out), word],
        f"espeak-ng -v {r.voice} {word!r}",
    )
    return _read_tts(out, f"espeak-ng voice {r.voice} word {word!r}")


def _flite(r: Rendering, word: str, tmp: Path) -> np.ndarray:
    out = tmp / "flite.wav"
    cmd = [
        "flite",
        "-voice",
        r.voice,
        "--setf",
        f"duration_stretch={r.stretch}",
        "-t",
        word,
        "-o",
        str(out),
    ]
    _run(cmd, f"flite -voice {r.voice} {word!r}")
    return _read_tts(out, f"flite voice {r.voice} word {word!r}")


def _festival_batch(jobs: list[tuple[Rendering, str]], tmp: Path) -> list[np.ndarray]:
    """Synthesize many (rendering, word) pairs in one festival process (start-up is slow)."""
    lines, current = [], None
    for i, (r, word) in enumerate(jobs):
        if r != current:  # select the voice once per rendering, not per word
            lines += [f"(voice_{r.voice})", f"(Parameter.set 'Duration_Stretch {r.stretch})"]
            current = r
        lines.append(f'(utt.save.wave (SynthText "{word}") "{tmp / f"fest{i}.wav"}" \'riff)')
    _run(["festival", "--pipe"], "festival batch", stdin="\n".join(lines).encode() + b"\n")
    return [
        _read_tts(tmp / f"fest{i}.wav", f"festival voice {r.voice} word {word!r}")
        for i, (r, word) in enumerate(jobs)
    ]


def synthesize_talker(talker: Talker, words: Sequence[str]) -> dict[str, list[np.ndarray]]:
    """Every rendering of every word: word -> list (one per rendering) of float32 16 kHz audio."""
    result: dict[str, list[np.ndarray | None]] = {w: [None] * len(talker.renderings) for w in words}
    festival = []
    with tempfile.TemporaryDirectory(prefix="bnnkws-tts-") as name:
        tmp = Path(name)
        for i, r in enumerate(talker.renderings):
            for word in words:
                if r.engine == "festival":
                    festival.append((i, word))
                else:
                    fn = _espeak if r.engine == "espeak-ng" else _flite
                    result[word][i] = fn(r, word, tmp)
        if festival:
            clips = _festival_batch([(talker.renderings[i], w) for i, w in festival], tmp)
            for (i, word), clip in zip(festival, clips, strict=True):
                result[word][i] = clip
    return result  # type: ignore[return-value]


def _synthesize_task(
    args: tuple[Talker, tuple[str, ...]],
) -> tuple[str, dict[str, list[np.ndarray]]]:
    talker, words = args
    return talker.name, synthesize_talker(talker, words)


# --- noises --------------------------------------------------------------------------------------


def _shaped_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), RMS 1."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    shape = np.zeros_like(f)
    shape[f >= 20] = f[f >= 20] ** (-exponent / 2)  # nothing below 20 Hz
    x = np.fft.irfft(spectrum * shape, n)
    return x / np.sqrt(np.mean(x**2))


def _babble(rng: np.random.Generator, n: int, sources: Sequence[np.ndarray]) -> np.ndarray:
    """Six overlapping streams of words from training talkers, RMS 1."""
    out = np.zeros(n)
    for _ in range(6):
        pos = int(rng.integers(0, SAMPLE_RATE // 2))
        while pos < n:
            word = sources[rng.integers(len(sources))]
            piece = word[: n - pos] * rng.uniform(0.3, 1.0)
            out[pos : pos + len(piece)] += piece
            pos += len(word) + int(rng.integers(0, SAMPLE_RATE // 3))
    return out / np.sqrt(np.mean(out**2) + 1e-12)


def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics, slowly wobbling) over faint pink noise, RMS 1."""
    t = np.arange(n) / SAMPLE_RATE
    base = 50.0 if rng.uniform() < 0.5 else 60.0
    x = np.zeros(n)
    for h in range(1, 9):
        wobble = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6.3))
        x += wobble * np.sin(2 * np.pi * base * h * t + rng.uniform(0, 6.3)) / h
    x /= np.sqrt(np.mean(x**2))
    return x + 0.1 * _shaped_noise(rng, n, 1.0)


def _fan(rng: np.random.Generator, n: int) -> np.ndarray:
    """Band-limited rumble with a blade-rate amplitude modulation, RMS 1."""
    t = np.arange(n) / SAMPLE_RATE
    sos = signal.butter(2, [80, 1200], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    x = signal.sosfilt(sos, rng.standard_normal(n)) * (1 + 0.4 * np.sin(2 * np.pi * 7.3 * t))
    x = x + 0.3 * _shaped_noise(rng, n, 2.0)
    return x / np.sqrt(np.mean(x**2))


def make_noises(seed: int, babble_sources: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Background noises, ``NOISE_SECONDS`` long, float32 in [-1, 1] at 16 kHz, keyed by file name.

    Levels (RMS, dBFS): white -24, pink -22, brown -20, hum -26, fan -22, babble -20.
    """
    rng = np.random.default_rng([seed, zlib.crc32(b"noise")])
    n = NOISE_SECONDS * SAMPLE_RATE
    levels = {"white_noise": -24, "pink_noise": -22, "brown_noise": -20, "hum": -26, "fan": -22}
    noises = {
        "white_noise": _shaped_noise(rng, n, 0.0),
        "pink_noise": _shaped_noise(rng, n, 1.0),
        "brown_noise": _shaped_noise(rng, n, 2.0),
        "hum": _hum(rng, n),
        "fan": _fan(rng, n),
    }
    if babble_sources:
        noises["babble"] = _babble(rng, n, babble_sources)
        levels["babble"] = -20
    return {
        name: np.clip(x * 10 ** (levels[name] / 20), -1, 1).astype(np.float32)
        for name, x in noises.items()
    }


# --- augmentation --------------------------------------------------------------------------------


def _personas(seed: int, talker: str) -> np.ndarray:
    """PERSONAS fixed warp factors of one talker (pitch and formants up when > 1): 1.0 and 3 in 0.88..1.12."""
    rng = np.random.default_rng([seed, zlib.crc32(talker.encode()), 1])
    return np.concatenate([[1.0], rng.uniform(0.88, 1.12, PERSONAS - 1)])


def warp(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (pitch and formants scale by ``factor``), 0.5 % steps."""
    up, down = 200, round(200 * factor)
    if up == down:
        return x
    g = math.gcd(up, down)
    return signal.resample_poly(x, up // g, down // g)


def _shelf(kind: str, f0: float, gain_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Biquad shelving filter (RBJ audio-EQ cookbook, slope 1): returns (b, a)."""
    a_lin = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / SAMPLE_RATE
    cos, alpha = np.cos(w0), np.sin(w0) / 2 * np.sqrt(2)
    root = 2 * np.sqrt(a_lin) * alpha
    sign = 1 if kind == "low" else -1
    b = a_lin * np.array(
        [
            (a_lin + 1) - sign * (a_lin - 1) * cos + root,
            2 * sign * ((a_lin - 1) - sign * (a_lin + 1) * cos),
            (a_lin + 1) - sign * (a_lin - 1) * cos - root,
        ]
    )
    a = np.array(
        [
            (a_lin + 1) + sign * (a_lin - 1) * cos + root,
            -2 * sign * ((a_lin - 1) + sign * (a_lin + 1) * cos),
            (a_lin + 1) + sign * (a_lin - 1) * cos - root,
        ]
    )
    return b / a[0], a / a[0]


def _equalize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random spectral tilt (low and high shelf), sometimes a telephone band (300-3400 Hz)."""
    b, a = _shelf("low", rng.uniform(150, 600), rng.uniform(-8, 8))
    x = signal.lfilter(b, a, x)
    b, a = _shelf("high", rng.uniform(2000, 5000), rng.uniform(-10, 6))
    x = signal.lfilter(b, a, x)
    if rng.uniform() < 0.1:
        x = signal.sosfilt(_TELEPHONE, x)
    return x


_TELEPHONE = signal.butter(2, [300, 3400], btype="bandpass", fs=SAMPLE_RATE, output="sos")


def _reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add a decaying-noise room tail: RT60 0.15..0.7 s, direct-to-reverberant ratio -3..12 dB."""
    rt60 = rng.uniform(0.15, 0.7)
    n = int(min(rt60, 0.5) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    ir[: SAMPLE_RATE // 1000] = 0  # tail starts 1 ms after the direct sound
    ir /= np.sqrt(np.sum(ir**2))
    wet = signal.fftconvolve(x, ir)
    dry = np.pad(x, (0, n - 1))
    return dry + wet * 10 ** (-rng.uniform(-3, 12) / 20)


def augment(
    base: np.ndarray, rng: np.random.Generator, noises: Sequence[np.ndarray], factor: float
) -> np.ndarray:
    """One 1-s clip (int16 [16000]) from a clean rendering (float, peak 1).

    Steps: warp by ``factor`` times a jitter of 0.96..1.04; EQ tilt; reverb
    (40 %); peak level -30..-1 dBFS; random position in the window (a longer
    sound is cut at a random point); noise floor from ``noises`` at 5..35 dB
    SNR (85 %), else faint white noise at -75..-60 dBFS RMS.
    """
    x = warp(base, factor * rng.uniform(0.96, 1.04))
    x = _equalize(x, rng)
    if rng.uniform() < 0.4:
        x = _reverb(x, rng)
    speech_rms = np.sqrt(np.mean(x**2)) + 1e-12
    gain = 10 ** (rng.uniform(-30, -1) / 20) * 32767 / (np.max(np.abs(x)) + 1e-12)
    out = np.zeros(CLIP_SAMPLES)
    if len(x) <= CLIP_SAMPLES:
        start = int(rng.integers(0, CLIP_SAMPLES - len(x) + 1))
        out[start : start + len(x)] = x * gain
    else:
        start = int(rng.integers(0, len(x) - CLIP_SAMPLES + 1))
        out[:] = x[start : start + CLIP_SAMPLES] * gain
    if noises and rng.uniform() < 0.85:
        noise = noises[rng.integers(len(noises))]
        offset = int(rng.integers(0, len(noise) - CLIP_SAMPLES + 1))
        piece = noise[offset : offset + CLIP_SAMPLES].astype(np.float64)
        snr = rng.uniform(5, 35)
        scale = speech_rms * gain / (np.sqrt(np.mean(piece**2)) + 1e-12) * 10 ** (-snr / 20)
        out += piece * scale
    else:
        out += rng.standard_normal(CLIP_SAMPLES) * 32767 * 10 ** (rng.uniform(-75, -60) / 20)
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


# --- clip planning and writing -------------------------------------------------------------------


@dataclass(frozen=True)
class ClipJob:
    """The clips of one (word, talker): (k, j) pairs, k = index in the word, j = file number."""

    word: str
    talker: str
    split: str
    clips: tuple[tuple[int, int], ...]
    renderings: tuple[np.ndarray, ...] = field(repr=False)
    voices: tuple[str, ...]
    personas: np.ndarray = field(repr=False)


def plan_word(word: str, count: int, talkers: Sequence[Talker], seed: int) -> list[tuple[str, int]]:
    """Talker and file number j of clips k = 0..count-1 of ``word``.

    Talkers take turns in a per-word shuffled cycle in which each recorded
    talker has RECORDED_WEIGHT slots and each espeak-ng talker one.
    """
    slots = [
        t.name for t in talkers for _ in range(RECORDED_WEIGHT if t.family == "recorded" else 1)
    ]
    rng = np.random.default_rng([seed, zlib.crc32(word.encode()), 2])
    order = [slots[i] for i in rng.permutation(len(slots))]
    seen: Counter[str] = Counter()
    plan = []
    for k in range(count):
        name = order[k % len(order)]
        plan.append((name, seen[name]))
        seen[name] += 1
    return plan


_WORKER_NOISES: list[np.ndarray] = []
_WORKER_OUT = Path()
_WORKER_SEED = 0


def _init_clip_worker(noises: list[np.ndarray], out: Path, seed: int) -> None:
    global _WORKER_NOISES, _WORKER_OUT, _WORKER_SEED
    _WORKER_NOISES, _WORKER_OUT, _WORKER_SEED = noises, out, seed


def _clip_task(job: ClipJob) -> list[dict[str, str]]:
    """Write the clips of one job; return their manifest rows."""
    rows = []
    for k, j in job.clips:
        rng = np.random.default_rng([_WORKER_SEED, zlib.crc32(job.word.encode()), k])
        which = int(rng.integers(len(job.renderings)))
        factor = float(job.personas[rng.integers(len(job.personas))])
        audio = augment(job.renderings[which], rng, _WORKER_NOISES, factor)
        rel = f"{job.word}/{job.talker}_nohash_{j}.wav"
        write_wav(_WORKER_OUT / rel, audio)
        rows.append(
            {
                "path": rel,
                "word": job.word,
                "speaker": job.talker,
                "split": job.split,
                "voice": job.voices[which],
                "warp": f"{factor:.4f}",
            }
        )
    return rows


# --- the whole run -------------------------------------------------------------------------------


@dataclass
class SynthConfig:
    """What ``synthesize_dataset`` makes. Counts are clips per word; times are in seconds."""

    out: Path
    keywords: tuple[str, ...] = SPEECH_COMMANDS_KEYWORDS
    unknown_words: tuple[str, ...] = DEFAULT_UNKNOWN_WORDS
    per_word: int = 2000
    unknown_per_word: int | None = None  # default: per_word // 4, at least 1
    seed: int = 0
    jobs: int | None = None  # default: os.cpu_count()
    engines: tuple[str, ...] = ENGINES
    talkers: tuple[str, ...] | None = None  # default: all of default_talkers()
    force: bool = False
    progress: bool = True


def _check_words(config: SynthConfig) -> list[str]:
    words = list(config.keywords) + list(config.unknown_words)
    for w in words:
        if not _WORD.match(w):
            raise DatasetError(f"word {w!r}: expected lower-case letters a-z only")
    dup = [w for w, n in Counter(words).items() if n > 1]
    if dup:
        raise DatasetError(
            f"word(s) {', '.join(dup)} given more than once (keywords + unknown words)"
        )
    if not config.keywords:
        raise DatasetError("no keywords: expected at least one")
    if config.per_word < 1 or (config.unknown_per_word is not None and config.unknown_per_word < 0):
        raise DatasetError("per_word must be >= 1 and unknown_per_word >= 0")
    return words


def _prepare_out(out: Path, force: bool) -> None:
    """Refuse to mix with other files; with ``force`` remove a previous synth output first."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a folder")
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    if not (out / INFO).is_file() or not (out / MANIFEST).is_file():
        raise DatasetError(
            f"{out}: not empty and not a 'data synth' output; choose an empty folder"
        )
    if not force:
        raise DatasetError(
            f"{out}: holds a previous 'data synth' output; pass --force to replace it"
        )
    with open(out / MANIFEST, newline="", encoding="utf-8") as fh:
        old = [row["path"] for row in csv.DictReader(fh)]
    for name in [VALIDATION_LIST, TESTING_LIST, INFO, *old, MANIFEST]:
        (out / name).unlink(missing_ok=True)
    for folder in sorted(out.iterdir()):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _pool_map(
    fn: Callable,
    tasks: list,
    jobs: int,
    desc: str,
    progress: bool,
    initializer: Callable | None = None,
    initargs: tuple = (),
) -> Iterator:
    """Run ``fn`` over ``tasks`` in ``jobs`` processes (inline when 1), with a progress bar."""
    bar = tqdm(total=len(tasks), desc=desc, unit="task", disable=not progress)
    with bar:
        if jobs <= 1:
            if initializer:
                initializer(*initargs)
            for task in tasks:
                yield fn(task)
                bar.update(1)
            return
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(jobs, initializer=initializer, initargs=initargs) as pool:
            for result in pool.imap_unordered(fn, tasks):
                yield result
                bar.update(1)


def _clip_counts(config: SynthConfig) -> dict[str, int]:
    """Clips per word: ``per_word`` for keywords, ``unknown_per_word`` (default per_word // 4)."""
    unknown_n = config.unknown_per_word
    if unknown_n is None:
        unknown_n = max(1, config.per_word // 4)
    return {w: config.per_word for w in config.keywords} | {
        w: unknown_n for w in config.unknown_words
    }


def _clip_jobs(
    config: SynthConfig,
    words: Sequence[str],
    talkers: Sequence[Talker],
    split_of: dict[str, str],
    audio: dict[str, dict[str, list[np.ndarray]]],
) -> list[ClipJob]:
    """One ClipJob per (word, talker) with that talker's renderings of the word."""
    counts = _clip_counts(config)
    by_name = {t.name: t for t in talkers}
    jobs = []
    for word in words:
        grouped: dict[str, list[tuple[int, int]]] = {}
        for k, (name, j) in enumerate(plan_word(word, counts[word], talkers, config.seed)):
            grouped.setdefault(name, []).append((k, j))
        for name, clips in grouped.items():
            voices = tuple(f"{r.engine}:{r.voice}" for r in by_name[name].renderings)
            renderings = tuple(audio[name][word])
            personas = _personas(config.seed, name)
            jobs.append(
                ClipJob(word, name, split_of[name], tuple(clips), renderings, voices, personas)
            )
    return jobs


def synthesize_dataset(config: SynthConfig) -> dict:
    """Write a synthetic Speech Commands dataset to ``config.out``; return SYNTH_INFO's content."""
    started = time.monotonic()
    words = _check_words(config)
    out = Path(config.out)
    talkers = select_talkers(default_talkers(config.seed), config.engines, config.talkers)
    versions = check_engines(talkers)
    split_of = assign_splits(talkers)
    jobs = max(1, config.jobs or os.cpu_count() or 1)
    _prepare_out(out, config.force)

    tasks = [(t, tuple(words)) for t in talkers]
    audio: dict[str, dict[str, list[np.ndarray]]] = dict(
        _pool_map(_synthesize_task, tasks, jobs, "synthesize", config.progress)
    )
    babble = [
        clip
        for t in talkers
        if split_of[t.name] == "train"
        for w in words
        for clip in audio[t.name][w]
    ]
    tts_done = time.monotonic()
    noises = make_noises(config.seed, babble)
    for name, x in noises.items():
        write_wav(out / BACKGROUND_DIR / f"{name}.wav", np.rint(x * 32767).astype(np.int16))

    jobs_list = _clip_jobs(config, words, talkers, split_of, audio)
    del audio, babble
    rows = []
    initargs = (list(noises.values()), out, config.seed)
    for part in _pool_map(
        _clip_task, jobs_list, jobs, "augment", config.progress, _init_clip_worker, initargs
    ):
        rows += part
    rows.sort(key=lambda r: r["path"])
    stages = {"tts_s": tts_done - started, "noise_and_augment_s": time.monotonic() - tts_done}
    return _write_index(
        out, config, rows, talkers, split_of, versions, list(noises), started, stages
    )


def _write_index(
    out: Path,
    config: SynthConfig,
    rows: list[dict[str, str]],
    talkers: Sequence[Talker],
    split_of: dict[str, str],
    versions: dict[str, str],
    noise_names: list[str],
    started: float,
    stages: dict[str, float],
) -> dict:
    """Write manifest.csv, SYNTH_INFO.json and, last, the two list files."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / MANIFEST, buf.getvalue())
    counts: dict[str, Counter[str]] = {s: Counter() for s in ("train", "validation", "test")}
    for row in rows:
        counts[row["split"]][row["word"]] += 1
    info = {
        "seed": config.seed,
        "sample_rate": SAMPLE_RATE,
        "clip_samples": CLIP_SAMPLES,
        "keywords": list(config.keywords),
        "unknown_words": list(config.unknown_words),
        "engines": versions,
        "talkers": {
            s: sorted(t.name for t in talkers if split_of[t.name] == s)
            for s in ("train", "validation", "test")
        },
        "talker_engines": {t.name: list(t.engines) for t in talkers},
        "background_noise": [f"{BACKGROUND_DIR}/{n}.wav" for n in noise_names],
        "counts": {s: dict(sorted(c.items())) for s, c in counts.items()},
        "clips": len(rows),
        "jobs": max(1, config.jobs or os.cpu_count() or 1),
        "wall_time_s": round(time.monotonic() - started, 1),
        "stage_wall_time_s": {k: round(v, 1) for k, v in stages.items()},
    }
    write_atomic(out / INFO, json.dumps(info, indent=2) + "\n")
    for name, part in ((VALIDATION_LIST, "validation"), (TESTING_LIST, "test")):
        write_atomic(out / name, "".join(r["path"] + "\n" for r in rows if r["split"] == part))
    return info
