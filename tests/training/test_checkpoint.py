"""Checkpoints round-trip, load without unpickling code, and reject bad files by name."""

import pickle

import numpy as np
import pytest
import torch

from bnnkws.generator.base.errors import FormatError
from bnnkws.generator.export.to_integer import to_integer_model
from bnnkws.generator.frontend import FrontendConfig, make_params
from bnnkws.generator.training.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from bnnkws.generator.training.model import DSCNN, BnnKws, bnn_config, float_config

LABELS = ["_silence_", "_unknown_", "yes", "no"]


def _trained_like(model: BnnKws) -> BnnKws:
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randint(-128, 128, (8, 49, 40)).float())
        for layer in model.conv_layers():
            layer.bn.beta.normal_()
    return model.eval()


@pytest.fixture
def bnn_ckpt(tmp_path):
    torch.manual_seed(0)
    model = _trained_like(BnnKws(bnn_config("structured", len(LABELS), 6, "saturate", tile=16)))
    fe = make_params(FrontendConfig(out_offset=1400))  # not the default: must travel
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, LABELS, fe, metrics={"test": {"accuracy": np.float64(0.5)}},
                    train={"seed": 3, "command": "bnnkws train ...", "n": np.int64(7)})
    return path, model, fe


def test_round_trip_restores_model_and_metadata(bnn_ckpt):
    path, model, fe = bnn_ckpt
    loaded, ck = load_checkpoint(path)
    assert isinstance(loaded, BnnKws) and not loaded.training
    assert ck["format"] == CHECKPOINT_FORMAT and ck["labels"] == LABELS
    assert ck["frontend"] == fe.to_bytes() and loaded.frontend_bytes == fe.to_bytes()
    assert ck["accumulator"] == {"bits": 6, "mode": "saturate", "tile": 16, "first_bits": 16}
    assert ck["metrics"]["test"]["accuracy"] == 0.5 and ck["train"]["seed"] == 3
    binary = {f"{n}.weight" for n, m in model.named_modules() if type(m).__name__ == "BinaryConv1d"}
    assert binary
    for k, v in model.state_dict().items():
        got = loaded.state_dict()[k]
        if k in binary:  # latent binary weights travel in float16: their signs exactly
            assert torch.equal(v >= 0, got >= 0), k
            assert torch.allclose(v, got, rtol=1e-3, atol=1e-7), k
        else:  # batch-norm statistics and the rest: exact
            assert torch.equal(v, got), k
    x = np.random.default_rng(0).integers(-128, 128, (4, 49, 40)).astype(np.int8)
    a = model.integer_forward(torch.from_numpy(x))
    b = loaded.integer_forward(torch.from_numpy(x))
    assert torch.equal(a, b)
    im = to_integer_model(loaded)
    assert im.labels == LABELS and im.frontend.out_offset == 1400
    np.testing.assert_array_equal(im.forward(x), a.numpy())


def test_plain_weights_only_load_accepts_it(bnn_ckpt):
    data = torch.load(bnn_ckpt[0], weights_only=True)
    assert data["version"] == 1 and isinstance(data["config"], dict)


def test_float_baseline_round_trip(tmp_path):
    torch.manual_seed(1)
    model = DSCNN(float_config("dscnn", len(LABELS))).eval()
    save_checkpoint(tmp_path / "f.pt", model, LABELS)
    loaded, ck = load_checkpoint(tmp_path / "f.pt")
    x = torch.randint(-128, 128, (2, 49, 40)).float()
    assert torch.equal(model(x), loaded(x))
    assert ck["accumulator"] == {}
    with pytest.raises(ValueError, match="float model"):
        to_integer_model(loaded)


def test_missing_corrupt_truncated_foreign_files_raise_format_error(tmp_path, bnn_ckpt):
    path = bnn_ckpt[0]
    cases = {}
    cases["missing.pt"] = None
    cases["random.pt"] = np.random.default_rng(0).bytes(5000)
    cases["truncated.pt"] = path.read_bytes()[: path.stat().st_size // 2]
    cases["empty.pt"] = b""
    for name, data in cases.items():
        p = tmp_path / name
        if data is not None:
            p.write_bytes(data)
        with pytest.raises(FormatError, match=name):
            load_checkpoint(p)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(FormatError, match="foreign.pt.*not a bnnkws checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(FormatError, match="list.pt"):
        load_checkpoint(tmp_path / "list.pt")


def test_wrong_version_or_fields_raise(tmp_path, bnn_ckpt):
    data = read_checkpoint(bnn_ckpt[0])
    bad = dict(data, version=99)
    torch.save(bad, tmp_path / "v99.pt")
    with pytest.raises(FormatError, match="v99.pt.*version 99"):
        load_checkpoint(tmp_path / "v99.pt")
    bad = dict(data, labels=["a", "b"])
    torch.save(bad, tmp_path / "labels.pt")
    with pytest.raises(FormatError, match="labels.pt.*2 labels"):
        load_checkpoint(tmp_path / "labels.pt")
    bad = dict(data, frontend=b"XXXX" + data["frontend"][4:])
    torch.save(bad, tmp_path / "fe.pt")
    with pytest.raises(FormatError, match="fe.pt.*magic"):
        load_checkpoint(tmp_path / "fe.pt")
    bad = dict(data)
    del bad["state_dict"]
    torch.save(bad, tmp_path / "nostate.pt")
    with pytest.raises(FormatError, match="nostate.pt.*state_dict"):
        load_checkpoint(tmp_path / "nostate.pt")


class _Payload:
    """Unpickling this would run code: weights_only loading must refuse it."""

    ran = False

    def __reduce__(self):
        return (_mark, ())


def _mark():
    _Payload.ran = True
    return {}


def test_pickled_code_is_never_run(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "x": _Payload()}, p)
    with pytest.raises(FormatError, match="evil.pt"):
        load_checkpoint(p)
    assert not _Payload.ran
    with open(tmp_path / "raw.pt", "wb") as f:
        pickle.dump(_Payload(), f, protocol=2)
    with pytest.raises(FormatError, match="raw.pt"):
        load_checkpoint(tmp_path / "raw.pt")
    assert not _Payload.ran


def test_latent_weights_keep_their_signs_in_float16(tmp_path):
    """Values float16 rounds to zero keep their side of the v >= 0 rule; the exported integer
    model is the one of the float32 weights, bit for bit."""
    from bnnkws.generator.export import blob as blobmod
    from bnnkws.generator.training.checkpoint import half_keeping_sign

    w = torch.tensor([-1e-12, -0.0, 0.0, 1e-12, -3e-8, 0.5, -0.5, -1.0])
    h = half_keeping_sign(w)
    assert h.dtype == torch.float16
    assert torch.equal(h.float() >= 0, w >= 0)
    torch.manual_seed(1)
    model = _trained_like(BnnKws(bnn_config("compact", len(LABELS))))
    with torch.no_grad():  # some latent weights at the edge of float16's range
        conv = model.conv_layers()[1].conv
        conv.weight[:, :, 0] = -1e-9
        conv.weight[:, :, 1] = 1e-9
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, LABELS)
    loaded, _ = load_checkpoint(path)
    model.labels = LABELS  # as the checkpoint gives them to the loaded model
    assert blobmod.to_bytes(to_integer_model(loaded)) == blobmod.to_bytes(to_integer_model(model))
