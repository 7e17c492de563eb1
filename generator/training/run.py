"""One training run, used by `bnnkws train` (tools/commands/train.py), the ablation
(generator/training/ablation.py) and every other trainer: seed, build the model from its
config, train on prepared data, keep the best validation epoch, return it on the CPU with
its labels."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bnnkws.generator.base.errors import DatasetError
from bnnkws.generator.training.model import build_model
from bnnkws.generator.training.train import TrainData, TrainOptions, train_model


@dataclass
class Run:
    model: nn.Module
    hist: dict
    wall_s: float


def subset(data: TrainData, n: int, seed: int) -> TrainData:
    """The same data with a random ``n`` of its training examples (smoke runs)."""
    pick = np.random.default_rng(seed).permutation(len(data.y_train))[:n]
    data.x_train, data.y_train = data.x_train[pick], data.y_train[pick]
    return data


def train_run(config: dict, data: TrainData, opt: TrainOptions,
              log: Callable[[str], None] | None = print, init: dict | None = None) -> Run:
    """Train a new model of ``config`` on ``data`` with ``opt`` (seeded by ``opt.seed``);
    with ``init`` (a state dict of the same config) the training starts from those weights."""
    if len(data.y_train) == 0 or len(data.y_val) == 0:
        raise DatasetError("the train or validation split is empty")
    torch.manual_seed(opt.seed)
    model = build_model(config)
    if init is not None:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in init.items()})
    t0 = time.time()
    hist = train_model(model, data, opt, log=log)
    model.to("cpu")
    model.labels = data.labels
    return Run(model, hist, time.time() - t0)
