"""End to end: a trained tiny BNN checkpoint -> export -> blob -> C and MicroPython; torch ==
C == MicroPython per layer at several accumulator widths in both modes; the CLI commands
(export, inspect, build, verify) and their exit codes; a difference is caught and named."""

import numpy as np
import pytest
import torch
from bnn_models import random_integer_model

from bnnkws.generator.data.audio_io import write_wav
from bnnkws.generator.export import blob
from bnnkws.generator.export.loading import LoadedModel, load_any
from bnnkws.generator.training.checkpoint import save_checkpoint
from bnnkws.generator.training.model import BnnKws, bnn_config
from bnnkws.tools.cli import main
from bnnkws.tools.host.hostlib import CNet
from bnnkws.tools.host.verify import verify_model, with_accumulator

LABELS = ["_silence_", "_unknown_", "yes", "no"]


def tiny_config(act: str, bits: int, mode: str) -> dict:
    cfg = bnn_config("structured", n_classes=4, acc_bits=bits, acc_mode=mode, tile=32)
    cfg["act"] = act
    cfg["first"]["c_out"] = 32
    for blk in cfg["blocks"]:
        blk["c_out"], blk["groups"] = 32, 4
    return cfg


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny BNN trained for a few steps (batch-norm statistics and weights moved)."""
    torch.manual_seed(0)
    model = BnnKws(tiny_config("pm1", 8, "saturate"))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-128, 128, (48, 49, 40), generator=g).float()
    y = torch.randint(0, 4, (48,), generator=g)
    model.train()
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, LABELS)
    return path


@pytest.fixture(scope="module")
def loaded(checkpoint):
    return load_any(checkpoint)


def assert_all_ok(res):
    assert res.ok, res.first.message()
    for stage in res.stages[1:]:  # layers, scores, argmax
        assert res.status[stage]["C"] == "ok"
        assert res.status[stage]["micropython"] == "ok"


@pytest.mark.parametrize(
    ("bits", "mode"),
    [(4, "wrap"), (4, "saturate"), (6, "saturate"), (8, "wrap"), (12, "saturate"), (32, "wrap")],
)
def test_trained_model_agrees_everywhere(loaded, bits, mode):
    variant = with_accumulator(loaded, bits, mode)
    assert all(
        la.acc_bits == bits and la.acc_mode == mode
        for la in variant.model.layers
        if hasattr(la, "acc_bits")
    )
    res = verify_model(variant, n_inputs=4, seed=bits)
    assert_all_ok(res)
    assert all(
        res.status[s]["torch"] == "ok" for s in res.stages[1 : 1 + len(variant.model.layers)]
    )


def test_export_equals_torch_integer_forward(loaded):
    x = np.random.default_rng(1).integers(-128, 128, (5, 49, 40)).astype(np.int8)
    ref = loaded.model.forward(x, all_layers=True)
    outs = loaded.torch_model.integer_forward(torch.from_numpy(x), all_layers=True)
    assert all(np.array_equal(o.numpy(), r) for o, r in zip(outs, ref, strict=True))


@pytest.mark.parametrize("mode", ["wrap", "saturate"])
def test_random_weights_blob_agrees(tmp_path, mode):
    m = random_integer_model(9, 5, mode, 7, "01", "small")
    path = tmp_path / "r.bkim"
    blob.save(m, path)
    res = verify_model(load_any(path), n_inputs=4)
    assert_all_ok(res)
    assert all("torch" not in res.status.get(s, {}) for s in res.stages)  # a blob has no torch model


def test_a_c_difference_is_caught_and_named(loaded, monkeypatch):
    real = CNet.forward_all
    calls = []

    def broken(self, feats):  # the third input's layer 3 gets one wrong bit
        outs = real(self, feats)
        calls.append(1)
        if len(calls) == 3:
            outs[3] = outs[3].copy()
            outs[3][1, 5] ^= 1
        return outs

    monkeypatch.setattr(CNet, "forward_all", broken)
    res = verify_model(loaded, n_inputs=3, micropython=False)
    assert not res.ok
    d = res.first
    assert (d.impl, d.input, d.index) == ("C", 2, (1, 5))
    assert d.stage.startswith("layer 3 (")
    assert (
        "C differs from the integer model at layer 3" in d.message()
        and "index [1, 5]" in d.message()
    )


def test_a_torch_difference_is_caught(loaded):
    import copy

    tm = copy.deepcopy(loaded.torch_model)
    with torch.no_grad():
        w = tm.layers[0].conv.weight
        w[0] = -w[0]  # flip one output channel's binary weights in torch only
    res = verify_model(
        LoadedModel(loaded.model, loaded.blob, loaded.source, tm), n_inputs=3, micropython=False
    )
    assert not res.ok and res.first.impl == "torch" and res.first.stage.startswith("layer 0 (")


@pytest.mark.parametrize("preset", ["structured", "wide"])
def test_full_size_presets_export_and_agree(tmp_path, preset):
    """The shipped shapes at their real width (10 classes, 8-bit wrap): checkpoint -> blob
    -> C, and the C library agrees with the integer model and torch layer by layer."""
    torch.manual_seed(3)
    model = BnnKws(bnn_config(preset, 10, 8, "wrap"))
    g = torch.Generator().manual_seed(3)
    for layer in model.conv_layers():  # batch-norm statistics in a realistic range
        bn, fan = layer.bn, layer.conv.fan_in
        scale = 60.0 if layer.conv.input_kind == "int8" else 1.0
        with torch.no_grad():
            bn.running_mean.copy_(torch.randn(bn.channels, generator=g) * scale * fan**0.5 * 0.3)
            bn.running_var.copy_((torch.rand(bn.channels, generator=g) + 0.5) * scale**2 * fan)
    model.eval()
    path = tmp_path / f"{preset}.pt"
    save_checkpoint(path, model, ["_silence_", "_unknown_", *[f"w{i}" for i in range(8)]])
    loaded = load_any(path)
    assert loaded.model.layers[0].c_out == (256 if preset == "wide" else 128)
    res = verify_model(loaded, n_inputs=3, seed=5, micropython=False)
    assert res.ok, res.first.message()
    assert all(res.status[s]["C"] == "ok" for s in res.stages[1:])


# --------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------
def test_cli_export_inspect_build_verify(checkpoint, tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["export", str(checkpoint), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    data = (out / "model.bkim").read_bytes()
    assert blob.model_hash(data) in text and "needs" in (out / "certificate.txt").read_text()
    assert main(["inspect", str(out / "model.bkim")]) == 0
    text = capsys.readouterr().out
    for expected in (
        "format version 1",
        "CRC32",
        "model hash " + blob.model_hash(data),
        "MODL",
        "LAYR",
        "labels (4): _silence_, _unknown_, yes, no",
        "accumulator certificate",
        "conv0",
        "pool",
    ):
        assert expected in text
    assert main(["build", "--target", "host", "--model", str(out / "model.bkim")]) == 0
    assert "libbnnkws.so" in capsys.readouterr().out
    assert main(["verify", str(checkpoint), "--inputs", "3"]) == 0
    text = capsys.readouterr().out
    assert "verify: PASS" in text and "layer 0 (conv0" in text


def test_cli_verify_with_clips_and_sweep(checkpoint, tmp_path, capsys):
    data = tmp_path / "sc"
    rng = np.random.default_rng(2)
    for word in ("yes", "no"):
        (data / word).mkdir(parents=True)
        write_wav(
            data / word / "a_nohash_0.wav", (rng.standard_normal(16000) * 2000).astype(np.int16)
        )
    assert (
        main(["verify", str(checkpoint), "--inputs", "2", "--data", str(data), "--clips", "2"]) == 0
    )
    text = capsys.readouterr().out
    assert "2 random inputs + 2 clips" in text
    row = [line for line in text.splitlines() if line.startswith("front-end")][0]
    assert row.split()[1:] == ["-", "ok", "ok"]
    assert (
        main(
            [
                "verify",
                str(checkpoint),
                "--inputs",
                "2",
                "--acc-bits",
                "5,9",
                "--modes",
                "saturate",
                "--no-micropython",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "N= 5 saturate" in text and "N= 9 saturate" in text


def test_cli_verify_fails_with_exit_1(checkpoint, monkeypatch, capsys):
    real = CNet.scores

    def off_by_one(self, feats):
        s, c = real(self, feats)
        s = s.copy()
        s[0, 2] += 1
        return s, c

    monkeypatch.setattr(CNet, "scores", off_by_one)
    assert main(["verify", str(checkpoint), "--inputs", "2", "--no-micropython"]) == 1
    text = capsys.readouterr().out
    assert (
        "FAIL: C differs from the integer model at scores (bk_model_run), input 0, index [2]"
        in text
    )


def test_cli_rejects_corrupt_blob(checkpoint, tmp_path, capsys):
    p = tmp_path / "bad.bkim"
    main(["export", str(checkpoint), "--out", str(tmp_path)])
    data = bytearray((tmp_path / "model.bkim").read_bytes())
    data[100] ^= 0xFF
    p.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["inspect", str(p)]) == 2
    assert "bad.bkim: CRC32 mismatch" in capsys.readouterr().err
    assert main(["verify", str(p)]) == 2
