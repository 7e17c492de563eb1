"""Training examples that look like what a deployed spotter hears (the "mix" recipe).

A spotter in the field hears words it was never taught, background noise at any level
and windows that cut a word. The plain loader (generator/data/dataset.py) gives clean,
centred clips with a few unknown words and silence at one level; this module builds each
split of a training-layout dataset as int16 audio [n, 16000] + labels from:

* **keywords** -- every keyword clip of the split; in the training split ``copies``
  augmented versions of each: random time shift (``place="shift"``: uniform within
  +-``shift_ms``; ``place="inside"``: uniform over every position that keeps the spoken
  part inside the window, as the windows of a stream see a word at 100 ms steps),
  background noise at a random SNR
  (``snr_db``, probability ``noise_prob``) and a random level (``gain_db``);
* **unknown** -- every other word of the dataset (less ``holdout`` words, which appear
  only in validation and test, so the number that is optimised is the rejection of words
  never heard) and the other-word clips of ``extra`` datasets (for example
  ``bnnkws data synth`` output with a broad vocabulary, or recordings of other speech: only
  their non-keyword folders are used; their words with ``crc32(word) % holdout_mod == 0``
  are held out the same way), augmented like keywords, up to ``unknown_ratio`` times the
  mean keyword count; with ``extra_keywords`` the keyword clips of the ``extra`` datasets
  join the keywords, so that a voice heard only saying other words (a synthetic one, say)
  does not become a cue for `_unknown_`;
* **cut keywords** (training only, label ``_unknown_``) -- a keyword clip shifted so that
  only ``cut_visible`` of its spoken part is inside the window, at the start or the end,
  as a stream's window sees a word while it slides in or out;
* **splices** (training only, label ``_unknown_``) -- the first part of a keyword joined
  to the last part of another word;
* **silence** -- 1-s slices of the ``_background_noise_`` recordings at a random level,
  log-uniform from ``silence_db[0]`` dB to ``silence_db[1]`` dB, some replaced by white
  or pink noise and by near digital silence (a few LSB), ``silence_ratio`` times the mean
  keyword count.

Background recordings are split in time: the first ``background_split`` of each file feeds
training (noise for mixing and silence), the rest validation and test, so no noise
excerpt is both trained on and measured.

Validation and test clips are not augmented, but the unknown and silence classes are
built the same way (held-out words included). Every random choice derives from
``seed`` and the split name: a given call always yields the same audio.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bnnkws.generator.base.errors import DatasetError
from bnnkws.generator.data.audio_io import read_audio
from bnnkws.generator.data.dataset import (
    BACKGROUND_DIR,
    CLIP_SAMPLES,
    _audio_files,
    _training_layout_clips,
    detect_layout,
    fit_to_length,
    make_labels,
)

SR = 16000
FRAME = 160  # 10 ms frames for the speech-extent estimate


@dataclass(frozen=True)
class MixOptions:
    """The recipe's knobs (all stored in the feature-cache key and the checkpoint)."""

    copies: int = 2
    shift_ms: int = 100
    noise_prob: float = 0.85
    snr_db: tuple[float, float] = (0.0, 24.0)
    gain_db: tuple[float, float] = (-20.0, 6.0)
    unknown_ratio: float = 2.0
    cut_ratio: float = 0.3
    cut_visible: tuple[float, float] = (0.15, 0.45)
    splice_ratio: float = 0.2
    silence_ratio: float = 1.0
    silence_db: tuple[float, float] = (-60.0, 0.0)
    holdout: tuple[str, ...] = ("happy",)
    holdout_mod: int = 6
    background_split: float = 0.8
    extra_keywords: bool = True
    place: str = "shift"  # "shift" (+-shift_ms) or "inside" (anywhere the speech fits)

    def to_dict(self) -> dict:
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if d["place"] == "shift":  # the cache key of recipes made before placement existed
            d.pop("place")
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> MixOptions:
        d = dict(d or {})
        for k, v in list(d.items()):
            if isinstance(v, list):
                d[k] = tuple(v)
        return cls(**d)


@dataclass
class MixedSplit:
    """The audio and labels of one split, and where each example came from."""

    audio: np.ndarray
    labels: np.ndarray
    kinds: list[str] = field(default_factory=list)  # keyword/unknown/heldout/cut/splice/silence

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for k in self.kinds:
            out[k] = out.get(k, 0) + 1
        return out


def _rng(seed: int, split: str, what: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(split.encode()), zlib.crc32(what.encode())])


def word_held_out(word: str, opt: MixOptions, extra: bool) -> bool:
    """True for a word that must never be trained on (validation/test unknown only)."""
    if word in opt.holdout:
        return True
    return extra and opt.holdout_mod > 0 and zlib.crc32(word.encode()) % opt.holdout_mod == 0


def speech_extent(x: np.ndarray) -> tuple[int, int]:
    """(start, end) samples of the spoken part: 10-ms frames above 5 % of the peak frame energy."""
    n = x.shape[0] // FRAME
    if n == 0:
        return 0, x.shape[0]
    e = (x[: n * FRAME].astype(np.float64).reshape(n, FRAME) ** 2).mean(axis=1)
    on = np.flatnonzero(e >= 0.05 * e.max()) if e.max() > 0 else np.arange(n)
    return int(on[0]) * FRAME, int(on[-1] + 1) * FRAME


def _power(x: np.ndarray) -> float:
    s, e = speech_extent(x)
    seg = x[s:e].astype(np.float64)
    return float(np.mean(seg**2)) if seg.size else 0.0


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(x)
    if k >= 0:
        out[k:] = x[: x.shape[0] - k]
    else:
        out[:k] = x[-k:]
    return out


class Backgrounds:
    """The background recordings of a dataset, cut to one split's part of each file."""

    def __init__(self, root: Path, split: str, opt: MixOptions) -> None:
        folder = root / BACKGROUND_DIR
        files = _audio_files(folder) if folder.is_dir() else []
        if not files:
            raise DatasetError(
                f"{folder}: no background recordings; the mix recipe needs long noise "
                "recordings (WAV/FLAC) for the silence class and for mixing"
            )
        self.parts: list[np.ndarray] = []
        for p in files:
            x = read_audio(p)
            cut = int(x.shape[0] * opt.background_split)
            part = x[:cut] if split == "train" else x[cut:]
            if part.shape[0] >= CLIP_SAMPLES:
                self.parts.append(part.astype(np.float64))
        if not self.parts:
            raise DatasetError(
                f"{folder}: no background recording is long enough "
                f"(each needs {CLIP_SAMPLES / SR / (1 - opt.background_split):.0f} s or more)"
            )

    def slice(self, rng: np.random.Generator) -> np.ndarray:
        x = self.parts[int(rng.integers(len(self.parts)))]
        off = int(rng.integers(x.shape[0] - CLIP_SAMPLES + 1))
        return x[off : off + CLIP_SAMPLES]


def placement(x: np.ndarray, opt: MixOptions, rng: np.random.Generator, keep_cut: bool = False) -> int:
    """The time shift in samples of one training example: uniform in +-``shift_ms``, or with
    ``place="inside"`` uniform over the shifts that keep the spoken part (speech_extent)
    inside the window (0 for a word longer than the window). A cut word (``keep_cut``)
    keeps the small shift, so the cut stays where it was made."""
    if opt.place == "inside" and not keep_cut:
        s, e = speech_extent(x)
        lo, hi = -s, CLIP_SAMPLES - e
        return int(rng.integers(lo, hi + 1)) if lo <= hi else 0
    return int(rng.integers(-opt.shift_ms, opt.shift_ms + 1)) * SR // 1000


def _augment(x: np.ndarray, bg: Backgrounds, opt: MixOptions, rng: np.random.Generator,
             keep_cut: bool = False) -> np.ndarray:
    """Time shift (placement), background at a random SNR, random level."""
    k = placement(x, opt, rng, keep_cut)
    y = _shift(x, k).astype(np.float64)
    if rng.random() < opt.noise_prob:
        n = bg.slice(rng)
        ps, pn = _power(y), float(np.mean(n**2))
        if ps > 0 and pn > 0:
            snr = rng.uniform(*opt.snr_db)
            y = y + n * np.sqrt(ps / (pn * 10 ** (snr / 10)))
    y = y * 10 ** (rng.uniform(*opt.gain_db) / 20)
    return _to_int16(y)


def _cut(x: np.ndarray, rng: np.random.Generator, opt: MixOptions) -> np.ndarray:
    """Only a fraction of the spoken part inside the window, at its start or its end."""
    s, e = speech_extent(x)
    visible = int((e - s) * rng.uniform(*opt.cut_visible))
    if rng.random() < 0.5:  # the word's beginning at the window's end (sliding in)
        k = CLIP_SAMPLES - (s + visible)
    else:  # the word's end at the window's start (sliding out)
        k = -(e - visible)
    return _shift(x, k)


def _splice(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sa, ea = speech_extent(a)
    sb, eb = speech_extent(b)
    head = a[sa : sa + int((ea - sa) * rng.uniform(0.3, 0.6))]
    tail = b[sb + int((eb - sb) * rng.uniform(0.3, 0.6)) : eb]
    return fit_to_length(np.concatenate([head, tail]).astype(np.int16))


def _silence(bg: Backgrounds, rng: np.random.Generator, opt: MixOptions) -> np.ndarray:
    u = rng.random()
    if u < 0.05:  # near digital silence
        return rng.integers(-2, 3, CLIP_SAMPLES).astype(np.int16)
    if u < 0.2:  # white or pink noise
        w = rng.standard_normal(CLIP_SAMPLES)
        if u < 0.125:
            spec = np.fft.rfft(w)
            spec[1:] /= np.sqrt(np.arange(1, spec.shape[0]))
            w = np.fft.irfft(spec, CLIP_SAMPLES)
        w = w / (np.sqrt(np.mean(w**2)) + 1e-12) * 3000.0
    else:
        w = bg.slice(rng)
    return _to_int16(w * 10 ** (rng.uniform(*opt.silence_db) / 20))


def _other_clips(root: Path, keywords: Sequence[str], split: str, opt: MixOptions, extra: bool
                 ) -> tuple[list[Path], list[Path]]:
    """(trainable, held-out) other-word clips of one split of one dataset."""
    clips = _training_layout_clips(root)[split]
    train_ok, held = [], []
    for word, path in clips:
        if word in keywords:
            continue
        (held if word_held_out(word, opt, extra) else train_ok).append(path)
    return train_ok, held


def build_split(
    root: str | Path,
    keywords: Sequence[str],
    split: str,
    extra: Sequence[str | Path] = (),
    opt: MixOptions | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> MixedSplit:
    """One split of the mix recipe (see the module docstring)."""
    opt = opt or MixOptions()
    root = Path(root)
    if split not in ("train", "validation", "test"):
        raise DatasetError(f"split {split!r}: expected train, validation or test")
    if detect_layout(root) != "training":
        raise DatasetError(f"{root}: the mix recipe needs the training layout (word folders + list files)")
    labels = make_labels(keywords)
    clips = _training_layout_clips(root)[split]
    missing = [w for w in keywords if not any(w == c for c, _ in clips)]
    if missing:
        raise DatasetError(f"{root}: split {split} has no clips of keyword(s) {', '.join(missing)}")
    bg = Backgrounds(root, split, opt)
    kw = [(labels.index(w), p) for w, p in clips if w in keywords]
    real, real_held = _other_clips(root, keywords, split, opt, extra=False)
    more, more_held = [], []
    for e in extra:
        e = Path(e)
        if detect_layout(e) != "training":
            raise DatasetError(f"{e}: extra unknown data must be in the training layout")
        t, h = _other_clips(e, keywords, split, opt, extra=True)
        more += t
        more_held += h
        if opt.extra_keywords:  # the same voices saying keywords: voice is not a class cue
            kw += [(labels.index(w), p) for w, p in _training_layout_clips(e)[split] if w in keywords]
    train = split == "train"
    held = set(real_held) | set(more_held)
    if not train:  # validation/test: every other word, held-out ones included
        real, more = real + real_held, more + more_held
    reps = opt.copies if train else 1
    per_kw = len(kw) / len(keywords) * reps
    rng = _rng(seed, split, "plan")
    audio: list[np.ndarray] = []
    ys: list[int] = []
    kinds: list[str] = []
    cache: dict[Path, np.ndarray] = {}

    def load(p: Path) -> np.ndarray:
        if p not in cache:
            cache[p] = fit_to_length(read_audio(p))
        return cache[p]

    target = int(round(per_kw * opt.unknown_ratio))
    # every real other-word clip (reps times), then extra clips up to the unknown target
    unknown = [p for p in real for _ in range(reps)]
    if more and len(unknown) < target:
        n = target - len(unknown)
        picks = rng.permutation(np.resize(np.arange(len(more)), max(n, len(more))))[:n]
        unknown += [more[i] for i in np.sort(picks)]
    total = int(len(kw) * reps + len(unknown) + per_kw * opt.silence_ratio
                + (per_kw * (opt.cut_ratio + opt.splice_ratio) if train else 0))
    done = 0

    def add(x: np.ndarray, y: int, kind: str) -> None:
        nonlocal done
        audio.append(x)
        ys.append(y)
        kinds.append(kind)
        done += 1
        if progress and done % 256 == 0:
            progress(done, total)

    for y, p in kw:
        x = load(p)
        for _ in range(reps):
            add(_augment(x, bg, opt, rng) if train else x, y, "keyword")
    for p in unknown:
        x = load(p)
        add(_augment(x, bg, opt, rng) if train else x, 1, "heldout" if p in held else "unknown")
    if train:
        for _ in range(int(round(per_kw * opt.cut_ratio))):
            _, p = kw[int(rng.integers(len(kw)))]
            add(_augment(_cut(load(p), rng, opt), bg, opt, rng, keep_cut=True), 1, "cut")
        others = [p for _, p in kw] + real + more
        for _ in range(int(round(per_kw * opt.splice_ratio))):
            _, p = kw[int(rng.integers(len(kw)))]
            q = others[int(rng.integers(len(others)))]
            add(_augment(_splice(load(p), load(q), rng), bg, opt, rng), 1, "splice")
    for _ in range(int(round(per_kw * opt.silence_ratio))):
        add(_silence(bg, rng, opt), 0, "silence")
    if progress:
        progress(total, total)
    return MixedSplit(np.stack(audio), np.asarray(ys, dtype=np.int64), kinds)


def write_test_layout(
    root: str | Path,
    keywords: Sequence[str],
    out: str | Path,
    split: str = "test",
    extra: Sequence[str | Path] = (),
    opt: MixOptions | None = None,
    seed: int = 0,
    heldout_only: bool = True,
) -> dict[str, int]:
    """Write one split as the official Speech Commands test set is laid out: a folder per
    keyword, ``_unknown_`` (by default only words held out of training: words the model
    never heard) and ``_silence_`` (1-s background slices from the held-out part of each
    recording, at a random level). Returns the clip count per folder."""
    from bnnkws.generator.data.audio_io import write_wav

    opt = opt or MixOptions()
    m = build_split(root, keywords, split, extra, opt, seed)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out}: not empty; choose a new folder for the test layout")
    names = make_labels(keywords)
    counts: dict[str, int] = {}
    for i, (x, y, kind) in enumerate(zip(m.audio, m.labels, m.kinds, strict=True)):
        if y == 1 and heldout_only and kind != "heldout":
            continue
        folder = out / names[int(y)]
        folder.mkdir(parents=True, exist_ok=True)
        write_wav(folder / f"{kind}_{i:05d}.wav", x)
        counts[names[int(y)]] = counts.get(names[int(y)], 0) + 1
    return counts
