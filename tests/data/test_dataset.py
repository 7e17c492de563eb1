"""Speech Commands loader: both layouts, labels, splits, balancing, audio shape, bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from bnnkws.generator.base.errors import AudioError, DatasetError
from bnnkws.generator.data.dataset import (
    CLIP_SAMPLES,
    detect_layout,
    fit_to_length,
    load_arrays,
    load_dataset,
    load_entry,
    make_labels,
)

SR = 16000


def tone(n: int, value: int) -> np.ndarray:
    """A recognisable clip: constant ``value`` (so centring is easy to check), n samples."""
    return np.full(n, value, dtype=np.int16)


def write(path: Path, samples: np.ndarray, rate: int = SR, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype="PCM_16", format=fmt)


@pytest.fixture
def training_root(tmp_path: Path) -> Path:
    """yes/no keywords (6 clips each), unknown cat/bed (5 each), lists, one noise file.

    Speakers s0..s5; s4 is validation, s5 is test. Some clips are FLAC and some
    shorter or longer than 1 s.
    """
    root = tmp_path / "train_layout"
    validation, testing = [], []
    for w, word in enumerate(["yes", "no", "cat", "bed"]):
        for s in range(6 if word in ("yes", "no") else 5):
            ext = ".flac" if s % 2 else ".wav"
            name = f"s{s}_nohash_0{ext}"
            n = [16000, 12000, 17001][s % 3]
            write(root / word / name, tone(n, 100 * (w + 1) + s))
            if s == 4:
                validation.append(f"{word}/{name}")
            if s == 5 or (word in ("cat", "bed") and s == 3):
                testing.append(f"{word}/{name}")
    (root / "validation_list.txt").write_text("\n".join(validation) + "\n")
    (root / "testing_list.txt").write_text("\n".join(testing) + "\n")
    rng = np.random.default_rng(0)
    write(
        root / "_background_noise_" / "noise.wav",
        (rng.standard_normal(3 * SR) * 3000).astype(np.int16),
    )
    (root / "README.md").write_text("not a folder, ignored\n")
    return root


@pytest.fixture
def test_root(tmp_path: Path) -> Path:
    """Official test-set layout: yes, no, _unknown_, _silence_; no list files."""
    root = tmp_path / "test_layout"
    for w, word in enumerate(["yes", "no", "_unknown_", "_silence_"]):
        for s in range(3):
            write(root / word / f"t{s}_nohash_0.wav", tone(16000, 10 * w + s))
    return root


# --- labels and layouts -----------------------------------------------------------------------


def test_labels_have_silence_then_unknown_then_keywords() -> None:
    assert make_labels(["yes", "no"]) == ["_silence_", "_unknown_", "yes", "no"]
    with pytest.raises(DatasetError, match="only once"):
        make_labels(["yes", "yes"])
    with pytest.raises(DatasetError, match="plain word"):
        make_labels(["_unknown_"])


def test_layouts_are_detected(training_root: Path, test_root: Path) -> None:
    assert detect_layout(training_root) == "training"
    assert detect_layout(test_root) == "test"


def test_training_split_is_everything_not_listed(training_root: Path) -> None:
    parts = {
        s: load_dataset(training_root, ["yes", "no"], s, 0.0, None)
        for s in ("train", "validation", "test")
    }
    names = {
        s: {(e.source.parent.name, e.source.stem) for e in d.entries} for s, d in parts.items()
    }
    assert ("yes", "s4_nohash_0") in names["validation"]
    assert ("yes", "s5_nohash_0") in names["test"]
    assert ("cat", "s3_nohash_0") in names["test"]
    assert ("yes", "s0_nohash_0") in names["train"]
    assert not names["train"] & names["validation"]
    assert not names["train"] & names["test"]
    total = sum(len(d) for d in parts.values())
    assert total == 2 * 6 + 2 * 5
    assert parts["train"].label_counts() == {"_silence_": 0, "_unknown_": 6, "yes": 4, "no": 4}
    every = load_dataset(training_root, ["yes", "no"], "all", 0.0, None)
    assert len(every) == total


def test_list_entries_match_by_stem(training_root: Path) -> None:
    """A list naming .wav selects the same clip stored as .flac (converted datasets)."""
    listed = (training_root / "testing_list.txt").read_text()
    assert ".flac" in listed
    (training_root / "testing_list.txt").write_text(listed.replace(".flac", ".wav"))
    d = load_dataset(training_root, ["yes", "no"], "test", 0.0, None)
    assert sorted(e.source.name for e in d.entries if e.label == 2) == ["s5_nohash_0.flac"]
    assert len(d) == 4


def test_non_keyword_folders_are_unknown(training_root: Path) -> None:
    d = load_dataset(training_root, ["cat"], "train", 0.0, None)
    words = {e.source.parent.name for e in d.entries if e.label == 1}
    assert words == {"yes", "no", "bed"}
    assert {e.source.parent.name for e in d.entries if e.label == 2} == {"cat"}


def test_unknown_and_silence_are_balanced(training_root: Path) -> None:
    d = load_dataset(training_root, ["yes"], "train", silence_fraction=0.5, unknown_fraction=0.5)
    counts = d.label_counts()
    assert counts["yes"] == 4
    assert counts["_unknown_"] == 2  # ceil(0.5 * 4) of the 10 unknown training clips
    assert counts["_silence_"] == 2
    again = load_dataset(
        training_root, ["yes"], "train", silence_fraction=0.5, unknown_fraction=0.5
    )
    assert again.entries == d.entries  # same seed, same choice
    other = [
        load_dataset(training_root, ["yes"], "train", 0.5, 0.5, seed=s).entries for s in range(1, 6)
    ]
    assert any(o != d.entries for o in other)


def test_silence_clips_are_scaled_noise_slices(training_root: Path) -> None:
    d = load_dataset(
        training_root, ["yes", "no"], "train", silence_fraction=1.0, unknown_fraction=0
    )
    silence = [e for e in d.entries if e.label == 0]
    assert len(silence) == 8
    noise, _ = sf.read(str(training_root / "_background_noise_" / "noise.wav"), dtype="int16")
    for e in silence:
        assert e.silence and 0 <= e.gain < 1
        clip = load_entry(e)
        expect = np.rint(
            noise[e.offset : e.offset + CLIP_SAMPLES].astype(np.float32) * np.float32(e.gain)
        )
        assert clip.dtype == np.int16 and clip.shape == (CLIP_SAMPLES,)
        np.testing.assert_array_equal(clip, expect.astype(np.int16))


def test_test_layout_uses_folders_as_labels(test_root: Path) -> None:
    d = load_dataset(test_root, ["yes", "no"], "test")
    assert d.layout == "test"
    assert d.label_counts() == {"_silence_": 3, "_unknown_": 3, "yes": 3, "no": 3}
    # a keyword folder not requested joins _unknown_
    d = load_dataset(test_root, ["yes"], "all")
    assert d.label_counts() == {"_silence_": 3, "_unknown_": 6, "yes": 3}
    with pytest.raises(DatasetError, match="only the test split"):
        load_dataset(test_root, ["yes", "no"], "train")


# --- audio ---------------------------------------------------------------------------------------


def test_load_arrays_centres_and_pads(training_root: Path) -> None:
    d = load_dataset(
        training_root, ["yes", "no"], "train", silence_fraction=0.25, unknown_fraction=0
    )
    audio, labels = load_arrays(d, progress=False)
    assert audio.shape == (len(d), CLIP_SAMPLES) and audio.dtype == np.int16
    assert labels.dtype == np.int64 and list(labels) == [e.label for e in d.entries]
    by_name = {(e.source.parent.name, e.source.name): i for i, e in enumerate(d.entries)}
    short = audio[by_name[("yes", "s1_nohash_0.flac")]]  # 12000 samples of value 101
    assert (
        np.all(short[:2000] == 0)
        and np.all(short[2000:14000] == 101)
        and np.all(short[14000:] == 0)
    )
    long = audio[by_name[("no", "s2_nohash_0.wav")]]  # 17001 samples of value 202
    assert np.all(long == 202)
    for i in range(len(d)):
        np.testing.assert_array_equal(audio[i], d.audio(i))


@given(n=st.integers(1, 40000))
def test_fit_to_length_centres(n: int) -> None:
    x = np.arange(n, dtype=np.int32) + 1
    y = fit_to_length(x)
    assert y.shape == (CLIP_SAMPLES,)
    if n <= CLIP_SAMPLES:
        start = (CLIP_SAMPLES - n) // 2
        np.testing.assert_array_equal(y[start : start + n], x)
        assert np.count_nonzero(y) == n
    else:
        start = (n - CLIP_SAMPLES) // 2
        assert y[0] == start + 1 and y[-1] == start + CLIP_SAMPLES


# --- bad input -----------------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_dataset(tmp_path / "nope")


def test_word_folders_without_lists(tmp_path: Path) -> None:
    write(tmp_path / "yes" / "a_nohash_0.wav", tone(16000, 1))
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path, ["yes"])
    message = str(err.value)
    assert str(tmp_path) in message
    assert "validation_list.txt" in message and "_unknown_" in message


def test_only_one_list_file(training_root: Path) -> None:
    (training_root / "testing_list.txt").unlink()
    with pytest.raises(DatasetError, match="no testing_list.txt"):
        load_dataset(training_root, ["yes"])


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no word folders"):
        load_dataset(tmp_path, ["yes"])


def test_missing_keyword_is_an_error_or_a_warning(training_root: Path) -> None:
    with pytest.raises(DatasetError, match="no folder for keyword.*off"):
        load_dataset(training_root, ["yes", "off"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = load_dataset(training_root, ["yes", "off"], allow_missing=True, unknown_fraction=None)
    assert any("off" in str(w.message) for w in caught)
    assert d.label_counts()["off"] == 0 and d.labels[3] == "off"


def test_silence_needs_background_noise(training_root: Path) -> None:
    for p in (training_root / "_background_noise_").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match="_background_noise_"):
        load_dataset(training_root, ["yes"], silence_fraction=0.1)
    assert len(load_dataset(training_root, ["yes"], silence_fraction=0.0)) > 0


def test_corrupt_file_is_named(training_root: Path) -> None:
    bad = training_root / "yes" / "s0_nohash_0.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk")
    d = load_dataset(training_root, ["yes"], "train", 0.0, 0.0)
    with pytest.raises(AudioError, match="s0_nohash_0.wav"):
        load_arrays(d, progress=False)


def test_other_rates_and_stereo_are_converted(training_root: Path) -> None:
    # the rule itself is tested in tests/data/test_audio_input.py
    write(training_root / "yes" / "s0_nohash_0.wav", tone(8000, 5), rate=8000)
    write(training_root / "no" / "s0_nohash_0.wav", np.full((16000, 2), [10, 31], dtype=np.int16))
    d = load_dataset(training_root, ["yes", "no"], "train", 0.0, 0.0)
    notes = []
    audio, _ = load_arrays(d, progress=False, report=notes.append)
    assert [n.kind for n in notes] == ["converted"]
    assert "2 file(s) converted to 16000 Hz mono int16" in notes[0].text
    by_name = {(e.source.parent.name, e.source.name): i for i, e in enumerate(d.entries)}
    assert np.all(audio[by_name[("no", "s0_nohash_0.wav")]] == 20)  # mean 20.5 rounds to even
    upsampled = audio[by_name[("yes", "s0_nohash_0.wav")]]  # 8000 samples -> 16000
    assert np.all(upsampled[200:-200] == 5)


def test_bad_list_line(training_root: Path) -> None:
    (training_root / "testing_list.txt").write_text("just-a-name.wav\n")
    with pytest.raises(DatasetError, match=r"testing_list.txt:1"):
        load_dataset(training_root, ["yes"])


def test_bad_split_name(training_root: Path) -> None:
    with pytest.raises(DatasetError, match="split 'dev'"):
        load_dataset(training_root, ["yes"], split="dev")
