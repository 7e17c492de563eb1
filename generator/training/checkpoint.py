"""Checkpoints: a trained model with everything needed to evaluate and export it.

A checkpoint is a ``torch.save`` of a plain dict (tensors, numbers, strings, bytes,
lists, dicts) and is read with ``torch.load(weights_only=True)``: loading never runs
pickled code. Fields:

    format      "bnnkws-checkpoint"          version     CHECKPOINT_VERSION (int)
    bnnkws_version                          config      model config (kind, layers, acc, ...)
    state_dict  tensors                     labels      ["_silence_", "_unknown_", *keywords]
    frontend    FrontendParams.to_bytes()   accumulator binary-layer and first-layer widths, mode, tile
    metrics     accuracies, overflow, cost  train       command, seed, data, options, history
    detector    (optional) calibrated detector configuration and how it was chosen:
                {"thr", "smooth", "temp_shift", "refractory", "calibration": {...}}
                (generator/export/detector_config.py; written by `bnnkws bench streaming
                --calibrate` through :func:`set_detector`)

A file that is not a zip/pickle torch file, is truncated, or holds something else
raises FormatError naming the file.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bnnkws import __version__
from bnnkws.generator.base.errors import FormatError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.frontend import FrontendParams, default_params
from bnnkws.generator.training.model import BnnKws, build_model

CHECKPOINT_FORMAT = "bnnkws-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED = ("format", "version", "config", "state_dict", "labels", "frontend")


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    labels: list[str],
    frontend: FrontendParams | None = None,
    metrics: dict | None = None,
    train: dict | None = None,
    detector: dict | None = None,
) -> None:
    """Write ``model`` and its metadata to ``path`` atomically (temporary file, then rename)."""
    frontend = frontend or default_params()
    config = dict(model.config)
    acc: dict[str, Any] = {}
    if isinstance(model, BnnKws):
        a = model.accumulator
        acc = {"bits": a.bits, "mode": a.mode, "tile": a.tile,
               "first_bits": model.conv_layers()[0].conv.acc.bits}
    data = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "bnnkws_version": __version__,
        "config": _plain(config),
        "state_dict": compact_state_dict(model),
        "labels": list(labels),
        "frontend": frontend.to_bytes(),
        "accumulator": acc,
        "metrics": _plain(metrics or {}),
        "train": _plain(train or {}),
    }
    if detector is not None:
        data["detector"] = _plain(detector)
    buf = io.BytesIO()
    torch.save(data, buf)
    write_atomic(path, buf.getvalue())


def half_keeping_sign(w: torch.Tensor) -> torch.Tensor:
    """float16 copy of latent binary weights whose sign (v >= 0, binary_layers.py) is that
    of every float32 value: a negative value that would round to -0 (read as +1) becomes
    the smallest negative float16 instead."""
    h = w.detach().cpu().to(torch.float16)
    tiny = torch.tensor(2.0**-24, dtype=torch.float16)
    return torch.where((w.detach().cpu() < 0) & (h >= 0), -tiny, h)


def compact_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict to store: a BNN's latent binary weights in float16 (only their signs
    are deployed; half the bytes of a shipped model), everything else (batch-norm
    statistics, which the integer thresholds are folded from) as trained."""
    from bnnkws.generator.training.binary_layers import BinaryConv1d

    binary = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, BinaryConv1d)}
    return {
        k: (half_keeping_sign(v) if k in binary and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }


def _plain(obj: Any) -> Any:
    """Metadata as JSON types only (numpy scalars -> numbers, anything else -> str), so that
    ``torch.load(weights_only=True)`` accepts it."""

    def default(o: Any) -> Any:
        if hasattr(o, "tolist"):
            return o.tolist()
        return str(o)

    return json.loads(json.dumps(obj, default=default))


def set_detector(path: str | os.PathLike, detector: dict | None) -> None:
    """Store (or with None remove) the calibrated detector configuration of a checkpoint,
    everything else unchanged; written atomically."""
    data = read_checkpoint(path)
    if detector is None:
        data.pop("detector", None)
    else:
        data["detector"] = _plain(detector)
    buf = io.BytesIO()
    torch.save(data, buf)
    write_atomic(path, buf.getvalue())


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict, validated; FormatError for a corrupt, truncated or foreign file."""
    p = Path(path)
    if not p.is_file():
        raise FormatError(f"{p}: no such checkpoint file")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError,
            KeyError, AttributeError, TypeError, OSError, UnicodeDecodeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"{p}: not a readable bnnkws checkpoint (corrupt, truncated or foreign: {msg[:200]})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise FormatError(f"{p}: not a bnnkws checkpoint (no format marker {CHECKPOINT_FORMAT!r})")
    if data.get("version") != CHECKPOINT_VERSION:
        raise FormatError(f"{p}: checkpoint version {data.get('version')!r}, expected {CHECKPOINT_VERSION}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise FormatError(f"{p}: checkpoint lacks field(s) {', '.join(missing)}")
    if not isinstance(data["labels"], list) or not all(isinstance(s, str) for s in data["labels"]):
        raise FormatError(f"{p}: field labels is not a list of strings")
    if not isinstance(data["frontend"], bytes):
        raise FormatError(f"{p}: field frontend is not bytes")
    if "detector" in data and not isinstance(data["detector"], dict):
        raise FormatError(f"{p}: field detector is not a dict")
    return data


def load_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """(model in eval mode, checkpoint dict). FormatError names the file on any problem."""
    data = read_checkpoint(path)
    p = Path(path)
    FrontendParams.from_bytes(data["frontend"], where=f"{p}: front-end section")
    try:
        model = build_model(data["config"])
        model.load_state_dict(data["state_dict"])
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()[0]
        raise FormatError(f"{p}: config and weights do not make a model ({msg[:200]})") from None
    n_classes = data["config"].get("n_classes")
    if n_classes != len(data["labels"]):
        raise FormatError(f"{p}: {len(data['labels'])} labels but the model has {n_classes} outputs")
    model.labels = list(data["labels"])
    model.frontend_bytes = data["frontend"]
    model.eval()
    return model, data
