"""The mix recipe (generator/data/mixing.py): what a deployed spotter hears."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bnnkws.generator.base.errors import DatasetError
from bnnkws.generator.data import mixing
from bnnkws.generator.data.mixing import MixOptions

SR = 16000


def burst(value: int, start: int = 6000, end: int = 10000, n: int = SR) -> np.ndarray:
    x = np.zeros(n, dtype=np.int16)
    x[start:end] = value
    return x


def write(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, SR, subtype="PCM_16")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """yes/no keywords, other words cat/bed/happy, speakers s0..s5 (s4 validation, s5 test),
    a 10-s background whose first 80 % is positive and the rest negative."""
    r = tmp_path / "sc"
    val, test = [], []
    for w, word in enumerate(["yes", "no", "cat", "bed", "happy"]):
        for s in range(6):
            name = f"s{s}_nohash_0.wav"
            write(r / word / name, burst(1000 * (w + 1) + s))
            (val if s == 4 else test if s == 5 else []).append(f"{word}/{name}")
    (r / "validation_list.txt").write_text("\n".join(val) + "\n")
    (r / "testing_list.txt").write_text("\n".join(test) + "\n")
    rng = np.random.default_rng(0)
    bg = (np.abs(rng.standard_normal(10 * SR)) * 2000 + 100).astype(np.int16)
    bg[8 * SR :] *= -1
    write(r / "_background_noise_" / "noise.wav", bg)
    return r


def test_deterministic_and_counts(root: Path) -> None:
    opt = MixOptions(copies=3, unknown_ratio=1.0, silence_ratio=2.0, cut_ratio=1.0, splice_ratio=1.0)
    a = mixing.build_split(root, ["yes", "no"], "train", opt=opt, seed=3)
    b = mixing.build_split(root, ["yes", "no"], "train", opt=opt, seed=3)
    c = mixing.build_split(root, ["yes", "no"], "train", opt=opt, seed=4)
    assert np.array_equal(a.audio, b.audio) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.audio, c.audio)
    per_kw = 4 * 3  # 4 training speakers, 3 copies
    counts = a.counts()
    assert counts["keyword"] == 2 * per_kw
    assert counts["silence"] == 2 * per_kw
    assert counts["cut"] == per_kw and counts["splice"] == per_kw
    # every real trainable other-word clip (cat, bed: 4 speakers) three times; happy never
    assert counts["unknown"] == 2 * 4 * 3
    assert "heldout" not in counts
    assert a.audio.shape == (len(a.labels), SR) and a.audio.dtype == np.int16
    assert set(np.unique(a.labels[np.array(a.kinds) == "silence"])) == {0}
    assert set(np.unique(a.labels[np.isin(a.kinds, ["unknown", "cut", "splice"])])) == {1}


def test_heldout_word_only_in_validation_and_test(root: Path) -> None:
    for split in ("validation", "test"):
        m = mixing.build_split(root, ["yes", "no"], split, opt=MixOptions(unknown_ratio=5.0))
        counts = m.counts()
        assert counts["heldout"] == 1 and counts["unknown"] == 2  # happy; cat and bed
        # validation/test clips are not augmented: the recorded clip itself
        k = m.kinds.index("heldout")
        assert set(np.unique(m.audio[k])) == {0, 5000 + (4 if split == "validation" else 5)}


def test_extra_words_held_out_by_hash(root: Path, tmp_path: Path) -> None:
    opt = MixOptions(holdout_mod=2)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    held = [w for w in words if mixing.word_held_out(w, opt, extra=True)]
    assert held and len(held) < len(words)
    assert not mixing.word_held_out("alpha", opt, extra=False) or "alpha" in opt.holdout
    extra = tmp_path / "extra"
    for word in [*words, "yes"]:
        for s in range(6):
            write(extra / word / f"t{s}_nohash_0.wav", burst(300))
    (extra / "validation_list.txt").write_text("".join(f"{w}/t4_nohash_0.wav\n" for w in words))
    (extra / "testing_list.txt").write_text("".join(f"{w}/t5_nohash_0.wav\n" for w in words))
    train_ok, train_held = mixing._other_clips(extra, ["yes", "no"], "train", opt, extra=True)
    assert {p.parent.name for p in train_ok} == set(words) - set(held)
    assert {p.parent.name for p in train_held} == set(held)
    assert "yes" not in {p.parent.name for p in train_ok + train_held}  # keyword folders ignored
    m = mixing.build_split(root, ["yes", "no"], "train", [extra], MixOptions(holdout_mod=2, unknown_ratio=20.0))
    # the extra set's six "yes" clips (in no list: training) join the keywords, twice each
    assert m.counts()["keyword"] == (2 * 4 + 6) * 2
    per_kw = (2 * 4 + 6) * 2 / 2
    assert m.counts()["unknown"] == round(20 * per_kw)
    m = mixing.build_split(root, ["yes", "no"], "train", [extra],
                           MixOptions(holdout_mod=2, unknown_ratio=20.0, extra_keywords=False))
    assert m.counts()["keyword"] == 2 * 4 * 2 and m.counts()["unknown"] == 20 * 4 * 2


def test_background_split_in_time(root: Path) -> None:
    opt = MixOptions(silence_ratio=20.0)
    for split, sign in (("train", 1), ("validation", -1), ("test", -1)):
        m = mixing.build_split(root, ["yes", "no"], split, opt=opt, seed=1)
        sil = m.audio[np.array(m.kinds) == "silence"].astype(np.int64)
        # slices of the recording are all one sign (white/pink noise and near silence are not)
        one_sign = [x for x in sil if (np.all(x >= 0) or np.all(x <= 0)) and np.abs(x).max() > 2]
        assert one_sign, split
        assert all(np.sign(x[np.abs(x).argmax()]) == sign for x in one_sign), split


def test_cut_keeps_the_visible_fraction_at_an_edge() -> None:
    x = burst(1000, 6400, 9600)  # whole 10-ms frames
    assert mixing.speech_extent(x) == (6400, 9600)
    opt = MixOptions(cut_visible=(0.25, 0.25))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        y = mixing._cut(x, rng, opt)
        on = np.flatnonzero(y)
        assert on.size == 800
        edge = "end" if on[-1] == SR - 1 else "start" if on[0] == 0 else "middle"
        assert edge != "middle"
        seen.add(edge)
    assert seen == {"start", "end"}


def test_snr_of_the_mixed_background(root: Path) -> None:
    bg = mixing.Backgrounds(root, "train", MixOptions())
    opt = MixOptions(shift_ms=0, noise_prob=1.0, snr_db=(6.0, 6.0), gain_db=(0.0, 0.0))
    x = burst(4000, 4000, 12000)
    rng = np.random.default_rng(5)
    for _ in range(5):
        y = mixing._augment(x, bg, opt, rng).astype(np.float64)
        noise = y - x
        ps = np.mean(x[4000:12000].astype(np.float64) ** 2)
        snr = 10 * np.log10(ps / np.mean(noise**2))
        assert abs(snr - 6.0) < 0.1


def test_bad_input(root: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no clips of keyword"):
        mixing.build_split(root, ["yes", "maybe"], "train")
    for p in (root / "_background_noise_").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match="_background_noise_: no background recordings"):
        mixing.build_split(root, ["yes", "no"], "train")
    with pytest.raises(DatasetError, match="split 'all'"):
        mixing.build_split(root, ["yes", "no"], "all")


def test_test_layout_has_only_heldout_unknown(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "official"
    counts = mixing.write_test_layout(root, ["yes", "no"], out, opt=MixOptions(silence_ratio=3.0))
    assert counts == {"yes": 1, "no": 1, "_unknown_": 1, "_silence_": 3}
    (clip,) = (out / "_unknown_").iterdir()
    x, sr = sf.read(str(clip), dtype="int16")
    assert sr == SR and set(np.unique(x)) == {0, 5005}  # happy, test speaker s5
    with pytest.raises(DatasetError, match="not empty"):
        mixing.write_test_layout(root, ["yes", "no"], out)


def test_placement_inside_keeps_the_word_in_the_window() -> None:
    """place="inside": every shift keeps the spoken part inside the window and the shifts
    reach both edges; a cut word keeps the small shift; the default recipe's options (and so
    its cache key) do not name the placement."""
    x = burst(3000, start=5000, end=9000)  # speech 5000..9000
    opt = MixOptions(place="inside")
    rng = np.random.default_rng(0)
    ks = [mixing.placement(x, opt, rng) for _ in range(2000)]
    assert min(ks) >= -5000 and max(ks) <= SR - 9000
    assert min(ks) < -4500 and max(ks) > SR - 9000 - 500  # the whole range is used
    for k in ks[:50]:
        assert np.count_nonzero(mixing._shift(x, k)) == 4000  # never cut
    assert all(abs(mixing.placement(x, opt, rng, keep_cut=True)) <= 1600 for _ in range(200))
    long = np.full(SR, 1000, dtype=np.int16)
    assert mixing.placement(long, opt, rng) == 0
    assert "place" not in MixOptions().to_dict()
    assert MixOptions.from_dict(opt.to_dict()) == opt and opt.to_dict()["place"] == "inside"


def test_inside_recipe_differs_only_in_placement(root: Path) -> None:
    base = MixOptions(copies=2, noise_prob=0.0, gain_db=(0.0, 0.0))
    a = mixing.build_split(root, ["yes", "no"], "train", opt=base, seed=1)
    b = mixing.build_split(root, ["yes", "no"], "train", opt=MixOptions(**{**base.__dict__, "place": "inside"}),
                           seed=1)
    assert a.counts() == b.counts() and np.array_equal(a.labels, b.labels)
    kw = [i for i, k in enumerate(b.kinds) if k == "keyword"]
    starts = [mixing.speech_extent(b.audio[i])[0] for i in kw]
    assert max(starts) - min(starts) > 4000  # spread over the window, not +-100 ms
    assert all(np.count_nonzero(b.audio[i]) == 4000 for i in kw)  # the burst is never cut
