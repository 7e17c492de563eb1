"""Long test streams built from a split of a Speech Commands folder, the way TensorFlow's
speech_commands ``generate_streaming_test_wav.py`` builds them: a bed of real background
noise (the dataset's ``_background_noise_`` recordings), with the split's keyword clips and
other-word clips placed at random times, and a label file of (label, start time).

Here:

* the bed is made of random 5-15 s stretches of the background recordings, each at a
  random level (RMS uniform in ``bed_dbfs``, default -45..-25 dBFS), joined with 50 ms
  cross-fades; validation and test streams take them from the last 20 % of each
  recording, the part the mix recipe (generator/data/mixing.py) never trains on;
* clip i starts ``gap_s`` (uniform 2..3 s, mean 2.5 s) after clip i-1, its 1 s span
  holding the word;
* each clip is scaled so that its speech (its 10 ms frames within 30 dB of its loudest)
  is ``snr`` dB (uniform in the range, default 6..18) above the bed's RMS under it;
* without ``minutes`` every keyword and other-word clip of the split is placed once in
  random order; with it, clips are drawn in rounds of the shuffled split until the
  stream is that long.

Other words are labelled ``_unknown_``; a detection on them is a false alarm.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnnkws.generator.base.errors import DatasetError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.data.audio_io import read_audio, write_wav
from bnnkws.generator.data.mixing import MixOptions

SAMPLE_RATE = 16000
UNKNOWN = "_unknown_"
BACKGROUND = "_background_noise_"
SPLIT_LISTS = {"test": "testing_list.txt", "validation": "validation_list.txt"}
AUDIO_EXT = (".wav", ".flac")


@dataclass(frozen=True)
class Placed:
    """One clip in the stream."""

    label: str  # the keyword, or _unknown_
    word: str  # the folder it came from
    start_s: float
    snr_db: float
    path: str  # relative to the dataset folder


@dataclass
class Stream:
    audio: np.ndarray  # int16
    placed: list[Placed]
    split: str
    seed: int
    snr_db: tuple[float, float]

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE

    @property
    def keywords_placed(self) -> list[Placed]:
        return [p for p in self.placed if p.label != UNKNOWN]

    def labels_text(self) -> str:
        """The label file: one ``label,start_ms`` line per clip (TensorFlow's layout)."""
        return "".join(f"{p.label},{round(1000 * p.start_s)}\n" for p in self.placed)

    def save(self, folder: str | os.PathLike) -> tuple[Path, Path]:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        wav, labels = out / f"stream-{self.split}.wav", out / f"stream-{self.split}.txt"
        write_wav(wav, self.audio)
        write_atomic(labels, self.labels_text().encode())
        return wav, labels


def _split_keys(root: Path, split: str) -> list[str]:
    """Relative paths of a split's clips (train: those in neither list)."""
    lists = {}
    for name, fname in SPLIT_LISTS.items():
        f = root / fname
        if not f.is_file():
            raise DatasetError(f"{root}: no {fname} (needed to find the {name} split)")
        lists[name] = [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]
    if split in lists:
        keys = lists[split]
        missing = [k for k in keys if not (root / k).is_file()]
        if missing:
            raise DatasetError(
                f"{root / SPLIT_LISTS[split]}: names {len(missing)} missing file(s), "
                f"first {missing[0]}"
            )
        return keys
    if split != "train":
        raise DatasetError(f"split {split!r}: expected train, validation or test")
    held = set(lists["test"]) | set(lists["validation"])
    keys = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        keys += [
            f"{d.name}/{f.name}"
            for f in sorted(d.iterdir())
            if f.suffix.lower() in AUDIO_EXT and f"{d.name}/{f.name}" not in held
        ]
    return keys


def split_clips(
    root: str | os.PathLike, split: str, keywords: Sequence[str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(keyword clips, other-word clips) of a split as (word, relative path)."""
    r = Path(root)
    if not r.is_dir():
        raise DatasetError(f"{r}: no such dataset folder")
    absent = [w for w in keywords if not (r / w).is_dir()]
    if absent:
        raise DatasetError(
            f"{r}: no folder for keyword(s) {', '.join(absent)} (expected the Speech Commands layout)"
        )
    kw, other = [], []
    for key in _split_keys(r, split):
        word = key.split("/")[0]
        if word.startswith("_"):
            continue
        (kw if word in keywords else other).append((word, key))
    found = {w for w, _ in kw}
    empty = [w for w in keywords if w not in found]
    if empty:
        raise DatasetError(f"{r}: the {split} split has no clip of keyword(s) {', '.join(empty)}")
    return kw, other


def background_files(root: str | os.PathLike) -> list[Path]:
    folder = Path(root) / BACKGROUND
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no background-noise folder")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in AUDIO_EXT)
    if not files:
        raise DatasetError(f"{folder}: background-noise folder holds no WAV or FLAC file")
    return files


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def speech_rms(x: np.ndarray, frame: int = 160, range_db: float = 30.0) -> float:
    """RMS of a clip's 10 ms frames within range_db of its loudest (its speech)."""
    n = x.size // frame
    if n == 0:
        return _rms(x)
    e = np.mean(np.square(x[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    keep = e >= e.max() * 10 ** (-range_db / 10)
    return float(np.sqrt(np.mean(e[keep])))


def _bed(
    noises: list[np.ndarray], n: int, rng: np.random.Generator, dbfs: tuple[float, float]
) -> np.ndarray:
    fade = SAMPLE_RATE // 20
    out = np.zeros(n + 16 * SAMPLE_RATE, dtype=np.float64)
    pos = 0
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    while pos < n:
        src = noises[rng.integers(len(noises))]
        length = min(int(rng.uniform(5, 15) * SAMPLE_RATE), src.size)
        start = rng.integers(0, src.size - length + 1)
        seg = src[start : start + length].astype(np.float64)
        seg *= 32768 * 10 ** (rng.uniform(*dbfs) / 20) / max(_rms(seg), 1e-9)
        if length > 2 * fade:
            seg[:fade] *= ramp
            seg[-fade:] *= ramp[::-1]
        out[pos : pos + length] += seg
        pos += max(length - fade, 1)
    return out[:n]


def make_stream(
    root: str | os.PathLike,
    split: str,
    keywords: Sequence[str],
    seed: int = 0,
    minutes: float | None = None,
    snr_db: tuple[float, float] = (6.0, 18.0),
    gap_s: tuple[float, float] = (2.0, 3.0),
    bed_dbfs: tuple[float, float] = (-45.0, -25.0),
    lead_s: float = 1.5,
) -> Stream:
    """A stream of the split's clips in background noise (module docstring)."""
    if not snr_db[0] <= snr_db[1]:
        raise DatasetError(f"SNR range {snr_db[0]},{snr_db[1]}: low above high")
    r = Path(root)
    kw, other = split_clips(r, split, keywords)
    noises = [read_audio(f) for f in background_files(r)]
    if split != "train":
        # validation and test streams lie on the last part of each recording, which the
        # mix recipe never trains on (generator/data/mixing.py, background_split)
        cut = MixOptions().background_split
        noises = [n[int(n.size * cut) :] for n in noises]
        noises = [n for n in noises if n.size >= SAMPLE_RATE] or noises
    rng = np.random.default_rng(seed)
    pool = kw + other
    if minutes is None:
        order = [pool[i] for i in rng.permutation(len(pool))]
    else:
        if minutes <= 0:
            raise DatasetError(f"--minutes {minutes}: expected a positive length")
        count = max(1, int(minutes * 60 / np.mean(gap_s)))
        order = []
        while len(order) < count:
            order += [pool[i] for i in rng.permutation(len(pool))]
        order = order[:count]
    starts = lead_s + np.concatenate([[0.0], np.cumsum(rng.uniform(*gap_s, len(order) - 1))])
    total = int((starts[-1] + gap_s[1]) * SAMPLE_RATE)
    bed = _bed(noises, total, rng, bed_dbfs)
    mix = bed.copy()
    placed = []
    kwset = set(keywords)
    for (word, key), t in zip(order, starts, strict=True):
        clip = read_audio(r / key).astype(np.float64)[:SAMPLE_RATE]
        a = int(round(t * SAMPLE_RATE))
        snr = float(rng.uniform(*snr_db))
        level = _rms(bed[a : a + clip.size]) * 10 ** (snr / 20)
        mix[a : a + clip.size] += clip * (level / max(speech_rms(clip), 1.0))
        placed.append(
            Placed(word if word in kwset else UNKNOWN, word, a / SAMPLE_RATE, round(snr, 2), key)
        )
    audio = np.clip(np.rint(mix), -32768, 32767).astype(np.int16)
    return Stream(audio, placed, split, seed, (float(snr_db[0]), float(snr_db[1])))
