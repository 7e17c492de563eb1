"""Speech Commands datasets: find the clips of a split, label them, load 1-s int16 audio.

Two folder layouts are recognised (``detect_layout``):

* ``"training"`` -- the Google Speech Commands layout: one folder per word,
  ``validation_list.txt`` and ``testing_list.txt`` (paths relative to the root,
  one a line) and ``_background_noise_/`` with long noise recordings. The
  training split is every clip named in neither list. ``bnnkws data synth``
  writes this layout.
* ``"test"`` -- the official test-set layout: folders for the keywords plus
  ``_unknown_`` and ``_silence_``, no list files. Every clip is in the test split
  and the set is used as it is (no subsampling, no generated silence).

Labels are in a fixed order: ``labels = ["_silence_", "_unknown_", *keywords]``,
so silence is index 0, unknown is index 1 and keyword i is index i + 2. Every
word folder that is not a keyword is ``_unknown_``.

In the training layout, each split is balanced like the TensorFlow
``speech_commands`` reference: unknown-word clips are subsampled to about
``unknown_fraction`` times the number of keyword clips of that split, and
``silence_fraction`` times that number of silence clips are added, each a
random 1-s slice of a ``_background_noise_`` file at a random gain. All random
choices derive from ``seed`` and the split name, so a given call always yields
the same entries.

A requested keyword that has no folder raises DatasetError unless
``allow_missing=True``, which warns (``warnings.warn``) and keeps the label
with no clips -- so the real ``speech_commands_real`` set, which has no
``on``/``off``, loads with the ten default keywords only when asked to.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bnnkws.generator.base.errors import DatasetError
from bnnkws.generator.data.audio_io import (
    SAMPLE_RATE,
    AudioNote,
    Report,
    print_note,
    read_audio,
)
from bnnkws.generator.data.keywords import DEFAULT_KEYWORDS, SPEECH_COMMANDS_KEYWORDS  # noqa: F401

CLIP_SAMPLES = SAMPLE_RATE  # one second at 16 kHz
SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
BACKGROUND_DIR = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
AUDIO_SUFFIXES = (".wav", ".flac")
SPLITS = ("train", "validation", "test", "all")


@dataclass(frozen=True)
class Entry:
    """One 1-s example.

    ``source`` is the audio file, or for a generated silence clip the
    background-noise file it is cut from; then ``offset`` (samples) is where
    the slice starts and ``gain`` (linear, 0..1) scales it.
    """

    source: Path
    label: int
    silence: bool = False
    offset: int = 0
    gain: float = 1.0


@dataclass
class Dataset:
    """The entries of one split, with the label names and where they came from."""

    root: Path
    layout: str
    split: str
    labels: list[str]
    entries: list[Entry]

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Entry:
        return self.entries[index]

    def audio(self, index: int) -> np.ndarray:
        """Int16 samples [16000] of entry ``index`` (16 kHz, 1 s)."""
        return load_entry(self.entries[index])

    def label_counts(self) -> dict[str, int]:
        """Number of entries per label name, in label order."""
        counts = Counter(e.label for e in self.entries)
        return {name: counts.get(i, 0) for i, name in enumerate(self.labels)}


def make_labels(keywords: Sequence[str]) -> list[str]:
    """Label names in model output order: ``["_silence_", "_unknown_", *keywords]``."""
    keywords = list(keywords)
    if not keywords:
        raise DatasetError("no keywords given: expected at least one keyword")
    if len(set(keywords)) != len(keywords):
        raise DatasetError(f"keywords {keywords}: each keyword may appear only once")
    for word in keywords:
        if word in (SILENCE_LABEL, UNKNOWN_LABEL) or word.startswith("_") or "/" in word:
            raise DatasetError(f"keyword {word!r}: expected a plain word folder name")
    return [SILENCE_LABEL, UNKNOWN_LABEL, *keywords]


def fit_to_length(samples: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Centre ``samples`` in ``length`` samples: zero-pad both sides or trim both ends.

    With an odd difference the extra padded sample goes to the end and the
    extra trimmed sample comes off the end.
    """
    samples = np.asarray(samples)
    n = samples.shape[0]
    if n == length:
        return samples
    if n > length:
        start = (n - length) // 2
        return samples[start : start + length]
    out = np.zeros(length, dtype=samples.dtype)
    start = (length - n) // 2
    out[start : start + n] = samples
    return out


def detect_layout(root: str | os.PathLike) -> str:
    """Return ``"training"`` or ``"test"`` for a dataset folder; DatasetError if neither."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such dataset folder")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder, expected a Speech Commands dataset folder")
    lists = [name for name in (VALIDATION_LIST, TESTING_LIST) if (root / name).is_file()]
    if len(lists) == 2:
        return "training"
    if len(lists) == 1:
        missing = TESTING_LIST if lists[0] == VALIDATION_LIST else VALIDATION_LIST
        raise DatasetError(f"{root}: has {lists[0]} but no {missing}; expected both list files")
    if (root / UNKNOWN_LABEL).is_dir() or (root / SILENCE_LABEL).is_dir():
        return "test"
    words = _word_folders(root)
    if not words:
        raise DatasetError(
            f"{root}: no word folders; expected a Speech Commands dataset "
            "(word folders with .wav/.flac clips)"
        )
    raise DatasetError(
        f"{root}: has word folders ({', '.join(words[:5])}{', ...' if len(words) > 5 else ''}) "
        f"but neither {VALIDATION_LIST} + {TESTING_LIST} (training layout) nor "
        f"{UNKNOWN_LABEL}/ or {SILENCE_LABEL}/ folders (official test-set layout)"
    )


def load_dataset(
    root: str | os.PathLike,
    keywords: Sequence[str] = SPEECH_COMMANDS_KEYWORDS,
    split: str = "train",
    silence_fraction: float = 0.1,
    unknown_fraction: float | None = 0.1,
    seed: int = 0,
    allow_missing: bool = False,
) -> Dataset:
    """Index one split of a Speech Commands folder (no audio is read yet).

    ``split`` is ``"train"``, ``"validation"``, ``"test"`` or ``"all"`` (the
    three concatenated, each balanced on its own). ``silence_fraction`` and
    ``unknown_fraction`` are ratios to the number of keyword clips of the split
    (``unknown_fraction=None`` keeps every unknown clip); they apply to the
    training layout only. See the module docstring for layouts and labels.
    """
    root = Path(root)
    if split not in SPLITS:
        raise DatasetError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    labels = make_labels(keywords)
    layout = detect_layout(root)
    _check_keywords(root, layout, labels[2:], allow_missing)
    if layout == "test":
        if split not in ("test", "all"):
            raise DatasetError(
                f"{root}: official test-set layout (no list files) holds only the test split, "
                f"not {split!r}"
            )
        entries = _test_layout_entries(root, labels)
    else:
        parts = ("train", "validation", "test") if split == "all" else (split,)
        clips = _training_layout_clips(root)
        entries = []
        for part in parts:
            entries += _balanced_split(
                root, clips[part], labels, part, silence_fraction, unknown_fraction, seed
            )
    return Dataset(root=root, layout=layout, split=split, labels=labels, entries=entries)


def load_entry(entry: Entry, report: Report | None = print_note) -> np.ndarray:
    """Int16 samples [16000] of one entry: the clip centred and padded/trimmed, or a silence slice.

    Audio in another format is converted (``read_audio``), with its notes passed to ``report``.
    """
    if entry.silence:
        noise, notes = _background(str(entry.source))
        if report is not None:
            for note in notes:
                report(note)
        piece = noise[entry.offset : entry.offset + CLIP_SAMPLES].astype(np.float32)
        piece = np.rint(piece * np.float32(entry.gain))
        return fit_to_length(np.clip(piece, -32768, 32767).astype(np.int16))
    return fit_to_length(read_audio(entry.source, report=report))


def load_arrays(
    dataset: Dataset,
    jobs: int | None = None,
    progress: bool = True,
    report: Report | None = print_note,
) -> tuple[np.ndarray, np.ndarray]:
    """Load every entry of ``dataset`` at once.

    Returns ``(audio, labels)``: int16 [n, 16000] samples at 16 kHz and int64
    [n] label indices into ``dataset.labels``. Files are read by ``jobs``
    threads (default: up to 4); an unreadable file raises AudioError naming it.
    Files not in 16 kHz mono int16 are converted (``read_audio``); instead of a
    note per file, ``report`` then receives one summary note for the dataset
    (and one for files shorter than their headers declare).
    """
    n = len(dataset.entries)
    audio = np.zeros((n, CLIP_SAMPLES), dtype=np.int16)
    labels = np.fromiter((e.label for e in dataset.entries), dtype=np.int64, count=n)
    jobs = jobs or min(4, os.cpu_count() or 1)
    notes: dict[tuple[Path, str], AudioNote] = {}

    def fill(i: int) -> None:
        audio[i] = load_entry(
            dataset.entries[i], report=lambda note: notes.setdefault((note.path, note.kind), note)
        )

    bar = tqdm(total=n, desc=f"load {dataset.split}", unit="clip",
               disable=not progress or not sys.stderr.isatty())
    with bar, ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(fill, range(n)):
            bar.update(1)
    if report is not None:
        for note in summarize(dataset.root, sorted(notes.values(), key=lambda a: str(a.path))):
            report(note)
    return audio, labels


def summarize(root: Path, notes: Sequence[AudioNote]) -> list[AudioNote]:
    """One note for all converted files (how many, from what) and one for all truncated files."""
    out = []
    converted = Counter(note.source for note in notes if note.kind == "converted")
    if converted:
        total = sum(converted.values())
        order = sorted(converted.items(), key=lambda item: (-item[1], item[0]))
        parts = ", ".join(f"{k} from {src}" for src, k in order)
        text = f"{root}: {total} file(s) converted to {SAMPLE_RATE} Hz mono int16 ({parts})"
        out.append(AudioNote(root, "converted", text, source=parts))
    truncated = [note for note in notes if note.kind == "truncated"]
    if truncated:
        text = (
            f"{root}: {len(truncated)} file(s) shorter than their headers declare, "
            f"read as far as they go; first: {truncated[0].text}"
        )
        out.append(AudioNote(root, "truncated", text))
    return out


# --- folder scanning -------------------------------------------------------------------------


def _word_folders(root: Path) -> list[str]:
    """Names of folders under root that hold clips (not hidden, not ``_background_noise_``)."""
    names = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith(".") or child.name == BACKGROUND_DIR:
            continue
        names.append(child.name)
    return names


def _audio_files(folder: Path) -> list[Path]:
    """Audio files directly inside ``folder``, sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES
    )


def _check_keywords(root: Path, layout: str, keywords: Iterable[str], allow_missing: bool) -> None:
    present = set(_word_folders(root))
    missing = [w for w in keywords if w not in present]
    empty = [w for w in keywords if w in present and not _has_audio(root / w)]
    if not missing and not empty:
        return
    problems = []
    if missing:
        problems.append(
            f"no folder for keyword(s) {', '.join(missing)} "
            f"(word folders present: {', '.join(sorted(present)) or 'none'})"
        )
    if empty:
        suffixes = "/".join(AUDIO_SUFFIXES)
        problems.append(f"keyword folder(s) {', '.join(empty)} hold no {suffixes} clips")
    message = f"{root}: " + "; ".join(problems)
    if not allow_missing:
        raise DatasetError(
            message + "; drop them from the keywords or pass allow_missing=True (--allow-missing)"
        )
    warnings.warn(message + "; their labels will have no clips", stacklevel=3)


def _has_audio(folder: Path) -> bool:
    return any(
        p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".") and p.is_file()
        for p in folder.iterdir()
    )


def _label_of(word: str, labels: list[str]) -> int:
    if word == SILENCE_LABEL:
        return 0
    try:
        return labels.index(word, 2)
    except ValueError:
        return 1


def _test_layout_entries(root: Path, labels: list[str]) -> list[Entry]:
    entries = []
    for word in _word_folders(root):
        label = _label_of(word, labels)
        entries += [Entry(source=p, label=label) for p in _audio_files(root / word)]
    return entries


def _list_keys(path: Path) -> dict[str, tuple[int, str]]:
    """Clip keys (``word/name`` without extension) named in a list file -> (line number, line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read list file ({exc})") from None
    keys: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.replace("\\", "/").split("/")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise DatasetError(f"{path}:{number}: {line!r}, expected 'word/file.wav'")
        keys.setdefault(f"{parts[0]}/{Path(parts[1]).stem}", (number, line))
    return keys


def _training_layout_clips(root: Path) -> dict[str, list[tuple[str, Path]]]:
    """(word, path) of every clip, grouped by split.

    List entries match clips by word folder and file stem, so a list naming
    ``.wav`` files also selects the same clips stored as ``.flac``. A list entry
    that matches no clip raises DatasetError naming the list, line and entry.
    """
    validation = _list_keys(root / VALIDATION_LIST)
    testing = _list_keys(root / TESTING_LIST)
    both = validation.keys() & testing.keys()
    if both:
        raise DatasetError(
            f"{root}: {len(both)} clip(s) in both {VALIDATION_LIST} and {TESTING_LIST}, "
            f"e.g. {sorted(both)[0]}; expected disjoint lists"
        )
    clips: dict[str, list[tuple[str, Path]]] = {"train": [], "validation": [], "test": []}
    found: set[str] = set()
    for word in _word_folders(root):
        for path in _audio_files(root / word):
            key = f"{word}/{path.stem}"
            found.add(key)
            part = "validation" if key in validation else "test" if key in testing else "train"
            clips[part].append((word, path))
    for name, keys in ((VALIDATION_LIST, validation), (TESTING_LIST, testing)):
        absent = sorted((keys[k] for k in keys.keys() - found), key=lambda nl: nl[0])
        if absent:
            number, line = absent[0]
            raise DatasetError(
                f"{root / name}:{number}: {line!r} names a clip that is not in the folder "
                f"({len(absent)} such line(s)); expected every listed clip to exist"
            )
    return clips


# --- balancing ---------------------------------------------------------------------------------


def _rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(split.encode())])


def _balanced_split(
    root: Path,
    clips: list[tuple[str, Path]],
    labels: list[str],
    split: str,
    silence_fraction: float,
    unknown_fraction: float | None,
    seed: int,
) -> list[Entry]:
    if silence_fraction < 0 or (unknown_fraction is not None and unknown_fraction < 0):
        raise DatasetError("silence_fraction and unknown_fraction must be >= 0")
    rng = _rng(seed, split)
    known = [Entry(p, _label_of(w, labels)) for w, p in clips if _label_of(w, labels) >= 2]
    unknown = [Entry(p, 1) for w, p in clips if _label_of(w, labels) == 1]
    if unknown_fraction is not None:
        n_unknown = min(len(unknown), int(np.ceil(unknown_fraction * len(known))))
        keep = np.sort(rng.choice(len(unknown), size=n_unknown, replace=False))
        unknown = [unknown[i] for i in keep]
    n_silence = int(np.ceil(silence_fraction * len(known)))
    return known + unknown + _silence_entries(root, n_silence, rng)


def _silence_entries(root: Path, count: int, rng: np.random.Generator) -> list[Entry]:
    """``count`` random 1-s background slices at gains uniform in [0, 1)."""
    if count == 0:
        return []
    folder = root / BACKGROUND_DIR
    expected = (
        "expected long WAV/FLAC noise recordings for the silence class (or silence_fraction=0)"
    )
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder; {expected}")
    noises = _audio_files(folder)
    if not noises:
        raise DatasetError(f"{folder}: holds no .wav/.flac file; {expected}")
    lengths = [_frames(p) for p in noises]
    usable = [(p, n) for p, n in zip(noises, lengths, strict=True) if n >= CLIP_SAMPLES]
    if not usable:
        raise DatasetError(
            f"{folder}: no background file of at least 1 s (longest "
            f"{max(lengths) / SAMPLE_RATE:.2f} s of {len(noises)}); {expected}"
        )
    picks = rng.integers(len(usable), size=count)
    entries = []
    for pick in picks:
        path, n = usable[pick]
        offset = int(rng.integers(n - CLIP_SAMPLES + 1))
        entries.append(Entry(path, 0, silence=True, offset=offset, gain=float(rng.uniform())))
    return entries


def _frames(path: Path) -> int:
    """Length in samples of a background file (read fully, so format errors surface here)."""
    return int(_background(str(path))[0].shape[0])


@functools.lru_cache(maxsize=16)
def _background(path: str) -> tuple[np.ndarray, tuple[AudioNote, ...]]:
    """A background file's samples and the notes reading it gave (repeated by ``load_entry``)."""
    notes: list[AudioNote] = []
    return read_audio(path, report=notes.append), tuple(notes)
