"""Training: feature cache, augmentation, the loop (plain and collaborative), the commands."""

import argparse
import json

import numpy as np
import pytest
import torch

from bnnkws.generator.data.audio_io import write_wav
from bnnkws.generator.frontend import default_params
from bnnkws.generator.training import ablation
from bnnkws.generator.training.checkpoint import load_checkpoint
from bnnkws.generator.training.model import BnnKws, build_model, float_config
from bnnkws.generator.training.train import (
    AugmentOptions,
    DataSpec,
    TrainData,
    TrainOptions,
    augment,
    bits_at,
    cache_folder,
    evaluate,
    load_split,
    train_model,
)

LABELS = ["_silence_", "_unknown_", "yes", "no"]


def tiny_config(n_classes: int, bits: int = 32, mode: str = "wrap", act: str = "01") -> dict:
    return {
        "kind": "bnn", "preset": "tiny", "n_frames": 49, "n_mels": 40, "n_classes": n_classes, "act": act,
        "first": {"c_out": 32, "kernel": 3, "stride": 2, "acc_bits": 16},
        "blocks": [{"c_out": 32, "kernel": 3, "groups": 1, "pool": 2},
                   {"c_out": 8 * n_classes, "kernel": 3, "groups": 1, "pool": 1}],
        "last": {"groups": n_classes, "pool": 1},
        "acc": {"bits": bits, "mode": mode, "tile": 16}, "ap2": True,
    }


def separable_features(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class c: a loud band at mel bands 8c..8c+5 in frames 12..36, over a noisy floor."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    x = rng.integers(-110, -60, size=(n, 49, 40))
    for i, c in enumerate(y):
        x[i, 12:36, 8 * c : 8 * c + 6] += 90
    return np.clip(x, -128, 127).astype(np.int8), y.astype(np.int64)


def test_training_reduces_loss_and_learns():
    x, y = separable_features(256, 4, 0)
    xv, yv = separable_features(64, 4, 1)
    data = TrainData(x, y, xv, yv, LABELS, noise=None)
    torch.manual_seed(0)
    model = BnnKws(tiny_config(4))
    hist = train_model(model, data, TrainOptions(epochs=6, batch_size=32, lr=5e-3, threads=1, augment=False),
                       log=None)
    losses = [h["loss"] for h in hist["history"]]
    assert losses[-1] < 0.7 * losses[0]
    assert hist["best_val_acc"] >= 0.7  # chance is 0.25
    res = evaluate(model, xv, yv, LABELS)
    assert res["accuracy"] == pytest.approx(hist["best_val_acc"])  # the kept weights are the best epoch's
    assert [o["layer"] for o in res["overflow"]] == ["conv0", "conv1", "conv2", "conv3"]


def test_collaborative_training_narrows_and_penalises():
    x, y = separable_features(128, 4, 2)
    data = TrainData(x, y, x[:32], y[:32], LABELS, noise=x[:8])
    model = BnnKws(tiny_config(4, bits=6, mode="saturate", act="pm1"))
    opt = TrainOptions(epochs=4, batch_size=32, threads=1, collab=True, start_bits=12, narrow_frac=0.5)
    hist = train_model(model, data, opt, log=None)
    assert [h["acc_bits"] for h in hist["history"]] == [12, 9, 6, 6]
    assert all(h["penalty"] >= 0 for h in hist["history"]) and hist["history"][0]["penalty"] >= 0
    assert model.accumulator.bits == 6 and model.accumulator.mode == "saturate"
    assert all(not c.want_excess and not c.mask_overflow_grad for c in model.binary_convs())
    assert bits_at(0, 8, TrainOptions(epochs=10, collab=False)) == 8


def test_float_baseline_trains():
    x, y = separable_features(64, 4, 3)
    data = TrainData(x, y, x[:16], y[:16], LABELS)
    model = build_model(float_config("tcresnet8", 4))
    hist = train_model(model, data, TrainOptions(epochs=2, batch_size=32, threads=1, augment=False), log=None)
    assert len(hist["history"]) == 2 and hist["history"][1]["loss"] < hist["history"][0]["loss"] * 1.5


def test_augment_keeps_int8_range_and_identity_when_off():
    x, _ = separable_features(8, 4, 4)
    t = torch.from_numpy(x)
    g = torch.Generator().manual_seed(0)
    same = augment(t, None, AugmentOptions(max_shift=0, level=0, noise_prob=0), g)
    assert torch.equal(same, t.float())
    out = augment(t, torch.from_numpy(x[:3]), AugmentOptions(noise_prob=1.0), g)
    assert out.shape == t.shape and out.min() >= -128 and out.max() <= 127
    assert torch.equal(out, out.round())
    # mixing never lowers band energy: noise adds power
    mixed = augment(t, torch.from_numpy(x[:1]), AugmentOptions(max_shift=0, level=0, noise_prob=1.0,
                                                               noise_gain=(0.0, 0.0)), g)
    assert bool((mixed >= t.float()).all())


# --------------------------------------------------------------------------------------
# A tiny Speech Commands folder (tones), for the cache and the commands
# --------------------------------------------------------------------------------------
def make_dataset(root, per_word: int = 10) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    freqs = {"yes": 500.0, "no": 1500.0, "cat": 3000.0}
    val, test = [], []
    for word, f in freqs.items():
        for j in range(per_word):
            env = np.exp(-((t - 0.5) ** 2) / 0.02)
            clip = 8000 * env * np.sin(2 * np.pi * f * (1 + 0.02 * rng.standard_normal()) * t)
            clip += 200 * rng.standard_normal(16000)
            name = f"{word}/spk{j}_nohash_0.wav"
            write_wav(root / name, np.clip(clip, -32768, 32767).astype(np.int16))
            (val if j % 5 == 3 else test if j % 5 == 4 else []).append(name)
    write_wav(root / "_background_noise_" / "noise.wav", (300 * rng.standard_normal(48000)).astype(np.int16))
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("sc")
    make_dataset(root)
    return root


def test_feature_cache_is_reused_without_audio(dataset, tmp_path, monkeypatch):
    spec = DataSpec(str(dataset), ["yes", "no"], silence_fraction=0.2, unknown_fraction=0.5)
    x, y = load_split(spec, "train", cache_dir=tmp_path, progress=False)
    assert x.dtype == np.int8 and x.shape[1:] == (49, 40) and len(x) == len(y) > 0
    assert set(np.unique(y)) <= {0, 1, 2, 3}
    folder = cache_folder(spec, default_params(), tmp_path)
    assert (folder / "train.x.npy").is_file()
    assert json.loads((folder / "meta.json").read_text())["labels"] == LABELS

    import bnnkws.generator.data.dataset

    def no_audio(*a, **k):
        raise AssertionError("cache hit must not read audio")

    monkeypatch.setattr(bnnkws.generator.data.dataset, "load_arrays", no_audio)
    x2, y2 = load_split(spec, "train", cache_dir=tmp_path, progress=False)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    other = DataSpec(str(dataset), ["yes", "no"], silence_fraction=0.3, unknown_fraction=0.5)
    assert cache_folder(other, default_params(), tmp_path) != folder


def _commands() -> argparse.ArgumentParser:
    from bnnkws.tools.commands import bench, train

    p = argparse.ArgumentParser(prog="bnnkws")
    sub = p.add_subparsers(dest="command")
    train.register(sub)
    bench.register(sub)
    return p


def test_train_and_eval_commands(dataset, tmp_path, capsys):
    p = _commands()
    ck = tmp_path / "m.pt"
    args = p.parse_args(["train", "--data", str(dataset), "--keywords", "yes", "no", "--out", str(ck),
                         "--cache", str(tmp_path / "cache"), "--epochs", "3", "--acc-bits", "8",
                         "--threads", "1", "--device", "cpu", "--batch-size", "16"])
    assert args.func(args) == 0
    model, data = load_checkpoint(ck)
    assert data["labels"] == LABELS and data["accumulator"]["bits"] == 8
    assert data["train"]["seed"] == 0 and data["train"]["command"].startswith("bnnkws ")
    assert "validation" in data["metrics"] and "test" in data["metrics"]
    out = tmp_path / "eval.json"
    args = p.parse_args(["eval", str(ck), "--data", str(dataset), "--cache", str(tmp_path / "cache"),
                         "--json", str(out), "--acc-bits", "6", "--acc-mode", "saturate"])
    assert args.func(args) == 0
    res = json.loads(out.read_text())
    assert res["accumulator"]["bits"] == 6 and res["accumulator"]["mode"] == "saturate"
    assert len(res["overflow"]) == 5 and 0 <= res["accuracy"] <= 1
    assert "accuracy" in capsys.readouterr().out


def test_init_fine_tunes_from_a_checkpoint(dataset, tmp_path):
    """--init starts from the checkpoint's weights (a learning rate of ~0 keeps every
    deployed sign), does not widen the accumulators again, and a checkpoint of another
    architecture is refused in one line."""
    import torch

    from bnnkws.generator.base.errors import BnnkwsError

    p = _commands()
    common = ["--data", str(dataset), "--keywords", "yes", "no", "--cache", str(tmp_path / "cache"),
              "--threads", "1", "--device", "cpu", "--batch-size", "16", "--acc-bits", "8"]
    first = tmp_path / "first.pt"
    args = p.parse_args(["train", *common, "--epochs", "2", "--out", str(first)])
    assert args.func(args) == 0
    tuned = tmp_path / "tuned.pt"
    args = p.parse_args(["train", *common, "--epochs", "1", "--lr", "1e-12", "--init", str(first),
                         "--out", str(tuned)])
    assert args.func(args) == 0
    a, _ = load_checkpoint(first)
    b, data = load_checkpoint(tuned)
    assert data["train"]["options"]["start_bits"] == 8  # the model's width, not 16
    import hashlib

    assert data["train"]["init"]["sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in sa.items():
        if v.is_floating_point() and "weight" in k:
            assert torch.equal(torch.sign(v), torch.sign(sb[k])), k
    fresh = tmp_path / "fresh.pt"
    args = p.parse_args(["train", *common, "--epochs", "1", "--lr", "1e-12", "--out", str(fresh)])
    assert args.func(args) == 0
    c, _ = load_checkpoint(fresh)
    assert any(not torch.equal(torch.sign(v), torch.sign(c.state_dict()[k]))
               for k, v in sa.items() if v.is_floating_point() and "weight" in k)
    args = p.parse_args(["train", *common, "--epochs", "1", "--preset", "compact", "--init", str(first),
                         "--out", str(tmp_path / "x.pt")])
    with pytest.raises(BnnkwsError, match="architecture differs"):
        args.func(args)
    other = [c if c != "no" else "cat" for c in common]  # same class count, other words
    args = p.parse_args(["train", *other, "--epochs", "1", "--init", str(first), "--out", str(tmp_path / "y.pt")])
    with pytest.raises(BnnkwsError, match="labels .* differ"):
        args.func(args)


def test_ablation_plan_dedupes_and_report_renders(tmp_path):
    jobs, cells = ablation.plan((8, 32), ("wrap", "saturate"), (0,))
    names = [j.name for j in jobs]
    assert len(names) == len(set(names))
    naive = [j for j in jobs if j.name.startswith("dense-fbn-plain-32w")][0]
    # the naive row and the 32-bit cells of "+ overflow sim" share one training
    assert {(8, "wrap"), (8, "saturate"), (32, "wrap"), (32, "saturate")} <= set(naive.deploy)
    assert cells[("collab", 32, "wrap", 0)][0] == cells[("struct", 32, "wrap", 0)][0]
    assert cells[("collab", 8, "wrap", 0)][0] != cells[("struct", 8, "wrap", 0)][0]
    # fake results: every job 0.5 accuracy
    for j in jobs:
        test = {f"{b}{m[0]}": {"bits": b, "mode": m, "accuracy": 0.5, "n": 10, "overflow_fraction": 0.1,
                               "overflow": []} for b, m in (j.deploy or [(32, "wrap")])}
        cost = {"binary_params": 1, "model_bytes": 2, "binary_ops": 3, "int8_additions": 4, "macs": 5}
        ablation._write_json(tmp_path / f"{j.name}.json", {"job": vars(j), "wall_s": 1.0, "test": test,
                                                             "cost": cost})
    md, png = tmp_path / "A.md", tmp_path / "a.png"
    ablation.write_report(tmp_path, md, png, {"epochs": 1}, (8, 32), ("wrap", "saturate"), (0,))
    text = md.read_text()
    assert "| naive: train 32-bit, deploy N-bit | 50.0 | 50.0 |" in text
    assert png.stat().st_size > 1000


def test_distillation_pulls_the_student_towards_its_teacher(tmp_path):
    """--teacher: the KL term makes the student agree with the teacher, here a teacher that
    learned a permuted labelling (so agreeing with it is not the same as learning the data);
    a teacher with other labels is refused in one line."""
    from bnnkws.generator.base.errors import DatasetError
    from bnnkws.generator.training.checkpoint import save_checkpoint

    x, y = separable_features(256, 4, 3)
    xv, yv = separable_features(64, 4, 4)
    torch.manual_seed(1)
    teacher = BnnKws(tiny_config(4))
    train_model(teacher, TrainData(x, (y + 1) % 4, xv, (yv + 1) % 4, LABELS, noise=None),
                TrainOptions(epochs=6, batch_size=32, lr=5e-3, threads=1, augment=False), log=None)
    t_path = tmp_path / "teacher.pt"
    save_checkpoint(t_path, teacher, LABELS)
    t_pred = evaluate(teacher, xv, (yv + 1) % 4, LABELS, overflow=False)
    assert t_pred["accuracy"] >= 0.7

    def agreement(weight: float) -> float:
        torch.manual_seed(2)
        student = BnnKws(tiny_config(4))
        opt = TrainOptions(epochs=6, batch_size=32, lr=5e-3, threads=1, augment=False,
                           teacher=str(t_path) if weight else None, teacher_weight=weight)
        hist = train_model(student, TrainData(x, y, xv, yv, LABELS, noise=None), opt, log=None)
        if weight:
            assert all(h["teacher"] > 0 for h in hist["history"])
        # fraction of validation clips where the student predicts what the teacher predicts
        return evaluate(student, xv, (yv + 1) % 4, LABELS, overflow=False)["accuracy"]

    assert agreement(0.0) < 0.3 and agreement(20.0) > 0.6
    other = tmp_path / "other.pt"
    save_checkpoint(other, teacher, ["_silence_", "_unknown_", "up", "down"])
    with pytest.raises(DatasetError, match="labels .* differ"):
        train_model(BnnKws(tiny_config(4)), TrainData(x, y, xv, yv, LABELS, noise=None),
                    TrainOptions(epochs=1, batch_size=32, threads=1, augment=False, teacher=str(other)),
                    log=None)
