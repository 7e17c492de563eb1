"""`data synth`: layout, audio format, talker-disjoint splits, determinism, clear errors."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bnnkws.generator.base.errors import DatasetError
from bnnkws.generator.data import synth
from bnnkws.generator.data.dataset import load_arrays, load_dataset
from bnnkws.generator.data.synth import (
    SynthConfig,
    assign_splits,
    augment,
    default_talkers,
    plan_word,
    select_talkers,
    synthesize_dataset,
)
from bnnkws.tools.commands import data as data_command

# Two espeak-ng talkers per split at most, one flite-only and one festival-only talker.
TINY_TALKERS = ("espk-m1", "espk-f2", "espk-m3", "awb", "ked")


def tiny_config(out: Path, jobs: int = 1) -> SynthConfig:
    return SynthConfig(
        out=out,
        keywords=("yes", "no"),
        unknown_words=("cat",),
        per_word=8,
        unknown_per_word=3,
        seed=7,
        jobs=jobs,
        talkers=TINY_TALKERS,
        progress=False,
    )


def speaker(rel: str) -> str:
    return Path(rel).name.split("_nohash_")[0]


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Audio and list files (not SYNTH_INFO.json, which holds the wall time)."""
    files = [*root.rglob("*.wav"), root / "validation_list.txt", root / "testing_list.txt"]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "tiny"
    synthesize_dataset(tiny_config(out))
    return out


# --- planning (no TTS) ---------------------------------------------------------------------------


def test_default_talkers_split_by_talker_with_two_engines_each() -> None:
    talkers = default_talkers(0)
    split = assign_splits(talkers)
    assert set(split) == {t.name for t in talkers}
    engines: dict[str, set[str]] = {"train": set(), "validation": set(), "test": set()}
    for t in talkers:
        engines[split[t.name]].update(t.engines)
    for part, used in engines.items():
        assert len(used) >= 2, (part, used)
    n = len(talkers)
    held = [sum(1 for s in split.values() if s == part) for part in ("validation", "test")]
    assert all(0.05 * n <= h <= 0.2 * n for h in held)
    # the split depends on talker names only, not on the seed
    assert assign_splits(default_talkers(123)) == split


def test_variants_of_one_voice_stay_one_talker() -> None:
    by_name = {t.name: t for t in default_talkers(0)}
    kal = by_name["kal"]
    assert set(kal.engines) == {"flite", "festival"}  # one recorded speaker, two engines
    m1 = by_name["espk-m1"]
    accents = {r.voice.split("+")[0] for r in m1.renderings}
    assert {"en-us", "en"} <= accents and len(accents) == 3


def test_small_talker_sets_still_fill_every_split() -> None:
    talkers = select_talkers(default_talkers(0), names=["espk-m1", "espk-f2", "awb"])
    assert sorted(assign_splits(talkers).values()) == ["test", "train", "validation"]


def test_plan_word_weights_and_numbers_files() -> None:
    talkers = select_talkers(default_talkers(0), names=["kal", "espk-m1", "espk-f1"])
    plan = plan_word("yes", 70, talkers, seed=0)
    names = [name for name, _ in plan]
    assert names.count("kal") == synth.RECORDED_WEIGHT * names.count("espk-m1")
    for name in set(names):
        assert sorted(j for n, j in plan if n == name) == list(range(names.count(name)))
    assert plan == plan_word("yes", 70, talkers, seed=0)
    assert plan != plan_word("yes", 70, talkers, seed=1)


def test_augment_gives_one_second_int16_deterministically() -> None:
    t = np.arange(9000) / 16000
    base = (np.sin(2 * np.pi * 220 * t) * np.hanning(9000)).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(3 * 16000).astype(np.float32) * 0.1
    clips = [augment(base, np.random.default_rng(s), [noise], 1.05) for s in (1, 1, 2)]
    for c in clips:
        assert c.dtype == np.int16 and c.shape == (16000,)
        assert 0 < np.abs(c.astype(np.int32)).max() <= 32767
    np.testing.assert_array_equal(clips[0], clips[1])
    assert not np.array_equal(clips[0], clips[2])


def test_bad_words_and_talkers_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="lower-case"):
        synthesize_dataset(SynthConfig(out=tmp_path, keywords=("Yes!",), progress=False))
    with pytest.raises(DatasetError, match="more than once"):
        synthesize_dataset(
            SynthConfig(out=tmp_path, keywords=("yes",), unknown_words=("yes",), progress=False)
        )
    with pytest.raises(DatasetError, match="talker.*nobody"):
        select_talkers(default_talkers(0), names=["nobody"])


def test_missing_engine_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(synth.shutil, "which", lambda p: None if p == "flite" else real_which(p))
    talkers = select_talkers(default_talkers(0), names=["awb"])
    with pytest.raises(DatasetError, match=r"flite not found: install the Debian package flite"):
        synth.check_engines(talkers)


def test_missing_festival_voice_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synth, "_festival_voice_dirs", lambda voice: [])
    talkers = select_talkers(default_talkers(0), names=["ked"])
    with pytest.raises(DatasetError, match="festvox-kdlpc16k"):
        synth.check_engines(talkers)


# --- a tiny real run -----------------------------------------------------------------------------


def test_layout_and_audio_format(tiny: Path) -> None:
    for word, n in (("yes", 8), ("no", 8), ("cat", 3)):
        files = sorted((tiny / word).glob("*.wav"))
        assert len(files) == n
        for f in files:
            assert speaker(f.name) in TINY_TALKERS
            info = sf.info(str(f))
            assert (info.samplerate, info.channels, info.subtype, info.frames) == (
                16000,
                1,
                "PCM_16",
                16000,
            )
    noises = sorted((tiny / "_background_noise_").glob("*.wav"))
    assert len(noises) >= 5
    for f in noises:
        info = sf.info(str(f))
        assert info.samplerate == 16000 and info.channels == 1 and info.frames >= 10 * 16000
    assert not list(tiny.rglob(".tmp-*"))


def test_lists_are_relative_and_talker_disjoint(tiny: Path) -> None:
    every = {
        str(p.relative_to(tiny)) for w in ("yes", "no", "cat") for p in (tiny / w).glob("*.wav")
    }
    validation = (tiny / "validation_list.txt").read_text().split()
    testing = (tiny / "testing_list.txt").read_text().split()
    assert validation and testing
    assert set(validation) <= every and set(testing) <= every
    train = every - set(validation) - set(testing)
    talkers = {
        name: {speaker(p) for p in paths}
        for name, paths in (("train", train), ("validation", validation), ("test", testing))
    }
    assert not talkers["train"] & talkers["test"]
    assert not talkers["train"] & talkers["validation"]
    assert not talkers["validation"] & talkers["test"]
    info = json.loads((tiny / "SYNTH_INFO.json").read_text())
    assert {k: set(v) for k, v in info["talkers"].items()} == talkers
    assert info["seed"] == 7 and info["clips"] == 19
    rows = (tiny / "manifest.csv").read_text().splitlines()
    assert rows[0].startswith("path,word,speaker,split") and len(rows) == 20


def test_speech_is_audible_and_varied(tiny: Path) -> None:
    clips = [sf.read(str(p), dtype="int16")[0] for p in sorted((tiny / "yes").glob("*.wav"))]
    peaks = [int(np.abs(c.astype(np.int32)).max()) for c in clips]
    assert min(peaks) > 300  # -30 dBFS or louder
    assert len({c.tobytes() for c in clips}) == len(clips)


def test_same_seed_same_bytes_any_jobs(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    synthesize_dataset(tiny_config(again, jobs=2))
    assert tree_bytes(again) == tree_bytes(tiny)


def test_loader_reads_synth_output(tiny: Path) -> None:
    d = load_dataset(tiny, ["yes", "no"], "train", silence_fraction=0.5, unknown_fraction=1.0)
    audio, labels = load_arrays(d, progress=False)
    assert d.labels == ["_silence_", "_unknown_", "yes", "no"]
    assert audio.shape == (len(d), 16000)
    assert set(labels.tolist()) == {0, 1, 2, 3}


def test_output_folder_rules(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="--force"):
        synthesize_dataset(tiny_config(tiny))
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        synthesize_dataset(tiny_config(other))
    assert (other / "keep.txt").read_text() == "mine"


def test_force_replaces_previous_output(tmp_path: Path, tiny: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(tiny, out)
    (out / "yes" / "stale_nohash_0.wav").write_bytes(
        (tiny / "yes").glob("*.wav").__next__().read_bytes()
    )
    manifest = (out / "manifest.csv").read_text()
    (out / "manifest.csv").write_text(manifest + "yes/stale_nohash_0.wav,yes,stale,train,x,1\n")
    config = tiny_config(out)
    config.force = True
    config.unknown_words = ()
    synthesize_dataset(config)
    assert not (out / "cat").exists()
    assert not (out / "yes" / "stale_nohash_0.wav").exists()
    assert len(list((out / "yes").glob("*.wav"))) == 8


# --- command line --------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bnnkws")
    data_command.register(p.add_subparsers(dest="command"))
    return p


def test_cli_help_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["data", "--help"], ["data", "synth", "--help"]):
        with pytest.raises(SystemExit) as done:
            parser().parse_args(argv)
        assert done.value.code == 0
    assert "--per-word" in capsys.readouterr().out
    args = parser().parse_args(["data", "synth", "--out", "x"])
    assert args.per_word == 2000 and args.keywords[:2] == ["yes", "no"] and args.jobs is None


def test_cli_info(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["data", "info", str(tiny), "--keywords", "yes", "no"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "training layout" in out and "validation" in out and "yes=" in out
