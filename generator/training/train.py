"""Training: cached int8 features, augmentation, the training loop and collaborative training.

Feature cache. Features are the integer front-end's int8 [n, 49, 40] (computed once with
``frontend.features_batch``) and stored as ``.npy`` under
``<cache>/<dataset name>-<key>/`` where the key hashes the dataset's absolute path, the
split options (keywords, silence/unknown fractions, seed), the front-end parameters
(their ``to_bytes()``) and the cache version. A hit needs neither the audio nor
soundfile: the dataset loader and audio I/O are imported only on a miss, so training
from a carried cache runs where soundfile/cffi are missing.

Augmentation (on the fly, on int8 features, on the training device). Re-running the
front-end per epoch would cost more than the training, so augmentation works in the
feature domain with the front-end's own scale, q = 8 log2(E) + const (one step = 1/8
octave of band energy, see docs/FRONTEND.md):

* time shift by up to ``max_shift`` frames (20 ms each), vacated frames at -128 (no energy);
* level: q + u, u uniform in +-``level`` steps (16 steps = 6 dB of amplitude);
* background noise at a random SNR: band energies add, so
  q = 8 log2(2^(q_s/8) + 2^((q_n + d)/8)), with q_n a 1-s slice of a
  ``_background_noise_`` file through the same front-end (cached as well) and d a
  random gain. The cross term of the two spectra averages out over a mel band; the
  result is an augmented example, not a claim about the exact front-end output.

Collaborative training (overflow heuristics, see docs/ABLATION.md for what each buys):

* **narrowing schedule**: the binary layers' accumulators start ``start_bits`` wide and
  narrow linearly to N over the first ``narrow_frac`` of the epochs, so the network first
  learns, then adapts to the narrow arithmetic;
* **overflow penalty**: ``penalty * mean(relu(|s| - (2^(N-1)-1)))`` (in accumulator LSBs)
  summed over the binary layers, s the exact sums (for saturate: every tile prefix), N the
  *final* width from the first epoch on; it pulls pre-activations into the N-bit range,
  where wrap and saturate are exact, before the schedule narrows the accumulators to N;
* **masked straight-through estimate**: an output whose accumulator overflowed passes no
  task-loss gradient (the wrapped value lies at the wrong end of the range, so the identity
  gradient would push the exact sum further out; plain STE training at N = 8 wrap
  collapses exactly that way); the penalty alone brings such sums back;
* **wide partner**: the same weights with 32-bit accumulators (a second forward pass,
  batch statistics not recorded) is trained on the labels too, and distils into the
  N-bit model (KL at temperature ``distill_t``): the narrow model is guided towards
  what the overflow-free network predicts.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bnnkws.generator.base.errors import DatasetError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.data.keywords import DEFAULT_KEYWORDS
from bnnkws.generator.frontend import FrontendParams, default_params, features_batch
from bnnkws.generator.training.model import BnnKws

CACHE_VERSION = 1


# --------------------------------------------------------------------------------------
# Feature cache
# --------------------------------------------------------------------------------------
@dataclass
class DataSpec:
    """Which dataset and how its splits are balanced (the loader's options)."""

    root: str
    keywords: list[str] = field(default_factory=lambda: list(DEFAULT_KEYWORDS))
    silence_fraction: float = 0.1
    unknown_fraction: float | None = 0.1
    seed: int = 0
    # "plain": the loader's balanced splits (generator/data/dataset.py); "mix": what a
    # deployed spotter hears (generator/data/mixing.py: held-out unknown words, extra
    # other-word data, background at random SNR, cut words, splices, silence at any level)
    recipe: str = "plain"
    extra: list[str] = field(default_factory=list)
    mix: dict | None = None

    def labels(self) -> list[str]:
        return ["_silence_", "_unknown_", *self.keywords]

    def describe(self) -> dict:
        d = asdict(self)
        d["root"] = str(Path(self.root).resolve())
        d["extra"] = [str(Path(e).resolve()) for e in self.extra]
        if self.recipe == "plain":  # the key of caches made before recipes existed
            for k in ("recipe", "extra", "mix"):
                d.pop(k)
        return d

    @classmethod
    def from_dict(cls, d: dict, root: str | None = None) -> DataSpec:
        """The spec recorded in a checkpoint (``describe()``), optionally on another root."""
        return cls(root or d["root"], list(d["keywords"]), d.get("silence_fraction", 0.1),
                   d.get("unknown_fraction", 0.1), d.get("seed", 0), d.get("recipe", "plain"),
                   list(d.get("extra") or []), d.get("mix"))


def default_cache_dir() -> Path:
    """$BNNKWS_CACHE, else ~/.cache/bnnkws/features."""
    env = os.environ.get("BNNKWS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "bnnkws" / "features"


def frontend_hash(frontend: FrontendParams) -> str:
    return hashlib.sha256(frontend.to_bytes()).hexdigest()[:16]


def cache_folder(spec: DataSpec, frontend: FrontendParams, cache_dir: Path | None = None) -> Path:
    """Folder of one dataset's cached features (key: path, split options, front-end)."""
    key = json.dumps({"v": CACHE_VERSION, "fe": frontend_hash(frontend), **spec.describe()}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(spec.root).resolve()
    return Path(cache_dir or default_cache_dir()) / f"{root.name}-{digest}"


def _save_atomic(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    write_atomic(path, buf.getvalue())


def load_split(
    spec: DataSpec,
    split: str,
    frontend: FrontendParams | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """int8 features [n, 49, 40] and int64 labels [n] of one split, from the cache or computed."""
    frontend = frontend or default_params()
    folder = cache_folder(spec, frontend, cache_dir)
    fx, fy = folder / f"{split}.x.npy", folder / f"{split}.y.npy"
    if fx.is_file() and fy.is_file():
        return np.load(fx), np.load(fy)
    if spec.recipe == "mix":
        audio, labels = _mixed_split(spec, split, progress)
    else:
        from bnnkws.generator.data.dataset import (  # reads audio: soundfile only here
            load_arrays,
            load_dataset,
        )

        ds = load_dataset(spec.root, spec.keywords, split, spec.silence_fraction,
                          spec.unknown_fraction, spec.seed, allow_missing=False)
        audio, labels = load_arrays(ds, progress=progress)
    feats = features_batch(audio, frontend)
    _save_atomic(fy, labels.astype(np.int64))
    _save_atomic(fx, feats)
    meta = folder / "meta.json"
    if not meta.exists():
        meta.write_text(json.dumps({"data": spec.describe(), "frontend_sha256_16": frontend_hash(frontend),
                                    "labels": spec.labels(), "cache_version": CACHE_VERSION}, indent=1))
    return feats, labels.astype(np.int64)


def _mixed_split(spec: DataSpec, split: str, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from tqdm import tqdm

    from bnnkws.generator.data import mixing  # reads audio: soundfile only here

    bar = tqdm(desc=f"mix {split}", unit="clip", disable=not progress or not sys.stderr.isatty())

    def tick(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    with bar:
        m = mixing.build_split(spec.root, spec.keywords, split, spec.extra,
                               mixing.MixOptions.from_dict(spec.mix), spec.seed, tick)
    return m.audio, m.labels


def load_noise(
    spec: DataSpec,
    frontend: FrontendParams | None = None,
    cache_dir: Path | None = None,
    count: int = 600,
) -> np.ndarray | None:
    """int8 features of ``count`` random 1-s slices of the background-noise files (cached).

    None when the dataset has no ``_background_noise_`` folder.
    """
    frontend = frontend or default_params()
    path = cache_folder(spec, frontend, cache_dir) / f"noise{count}.x.npy"
    if path.is_file():
        return np.load(path)
    folder = Path(spec.root) / "_background_noise_"
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".wav", ".flac")) if folder.is_dir() else []
    if not files:
        return None
    from bnnkws.generator.data.audio_io import read_audio

    noises = [read_audio(p) for p in files]
    noises = [n for n in noises if n.size >= 16000]
    if not noises:
        return None
    rng = np.random.default_rng([spec.seed, 7])
    clips = np.zeros((count, 16000), dtype=np.int16)
    for i in range(count):
        n = noises[int(rng.integers(len(noises)))]
        off = int(rng.integers(n.size - 16000 + 1))
        clips[i] = n[off : off + 16000]
    feats = features_batch(clips, frontend)
    _save_atomic(path, feats)
    return feats


@dataclass
class TrainData:
    """Features and labels of the training and validation splits (+ noise for augmentation)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    labels: list[str]
    noise: np.ndarray | None = None


def load_train_data(spec: DataSpec, frontend: FrontendParams | None = None, cache_dir: Path | None = None,
                    progress: bool = True) -> TrainData:
    xt, yt = load_split(spec, "train", frontend, cache_dir, progress)
    xv, yv = load_split(spec, "validation", frontend, cache_dir, progress)
    # the mix recipe mixes background into the audio from the training part of each
    # recording only; the feature-domain noise would draw on the whole recordings
    noise = None if spec.recipe == "mix" else load_noise(spec, frontend, cache_dir)
    return TrainData(xt, yt, xv, yv, spec.labels(), noise)


# --------------------------------------------------------------------------------------
# Feature-domain augmentation
# --------------------------------------------------------------------------------------
@dataclass
class AugmentOptions:
    max_shift: int = 5  # frames (20 ms each)
    level: int = 12  # +- feature steps (1/8 octave of band energy each)
    noise_prob: float = 0.8
    noise_gain: tuple[float, float] = (-48.0, 8.0)  # feature steps added to the noise slice


def augment(x: torch.Tensor, noise: torch.Tensor | None, opt: AugmentOptions, gen: torch.Generator) -> torch.Tensor:
    """Augmented int8-valued features (float tensor [B, T, F], values in -128..127)."""
    b, t, _ = x.shape
    dev = x.device
    q = x.float()
    if opt.max_shift > 0:
        shift = torch.randint(-opt.max_shift, opt.max_shift + 1, (b, 1), generator=gen, device="cpu").to(dev)
        idx = torch.arange(t, device=dev)[None, :] - shift
        valid = (idx >= 0) & (idx < t)
        q = torch.gather(q, 1, idx.clamp(0, t - 1)[:, :, None].expand_as(q))
        q = torch.where(valid[:, :, None], q, torch.full_like(q, -128.0))
    if opt.level > 0:
        lvl = torch.randint(-opt.level, opt.level + 1, (b, 1, 1), generator=gen, device="cpu").to(dev)
        q = q + lvl
    if noise is not None and opt.noise_prob > 0:
        pick = torch.randint(0, noise.shape[0], (b,), generator=gen, device="cpu").to(dev)
        lo, hi = opt.noise_gain
        d = (torch.rand((b, 1, 1), generator=gen, device="cpu") * (hi - lo) + lo).to(dev)
        use = (torch.rand((b, 1, 1), generator=gen, device="cpu") < opt.noise_prob).to(dev)
        qn = noise[pick].float() + d
        hi_q = torch.maximum(q, qn)
        mixed = hi_q + 8.0 * torch.log2(1.0 + torch.exp2(-(q - qn).abs() / 8.0))
        q = torch.where(use, mixed, q)
    return torch.round(q).clamp(-128, 127)


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------
@dataclass
class TrainOptions:
    epochs: int = 40
    batch_size: int = 128
    lr: float = 3e-3  # peak; warm-up then cosine
    weight_decay: float = 0.0
    label_smoothing: float = 0.05
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    augment: bool = True
    # collaborative training (BNN only); all off = plain training at the configured N
    collab: bool = False
    start_bits: int = 16
    narrow_frac: float = 0.4
    penalty: float = 1.0
    partner: float = 0.5  # weight of the wide partner's loss and of its distillation
    mask_overflow_grad: bool = True  # no task-loss gradient through overflowed outputs
    distill_t: float = 2.0
    log_every: int = 1
    # knowledge distillation from a trained float model on the same data and labels (e.g. the
    # TC-ResNet8 baseline): loss += teacher_weight * T^2 KL(softmax(teacher / T) || softmax(model / T))
    teacher: str | None = None  # checkpoint path
    teacher_weight: float = 1.0
    teacher_t: float = 2.0

    def to_dict(self) -> dict:
        return asdict(self)


def _seed_all(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    return torch.Generator().manual_seed(seed)


def _dist_info() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _clip_latent(model: nn.Module) -> None:
    if isinstance(model, BnnKws):
        with torch.no_grad():
            for m in model.conv_layers():
                m.conv.weight.clamp_(-1.0, 1.0)


def bits_at(epoch: float, target: int, opt: TrainOptions) -> int:
    """Accumulator width of the binary layers at (fractional) epoch under collaborative training."""
    if not opt.collab or opt.start_bits <= target:
        return target
    span = max(opt.narrow_frac * opt.epochs, 1e-9)
    frac = min(1.0, epoch / span)
    return int(round(opt.start_bits - (opt.start_bits - target) * frac))


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 512, device: str = "cpu") -> np.ndarray:
    """Scores [n, classes] in eval mode (a BNN: exactly the deployed integer scores)."""
    was = model.training
    model.eval()
    xs = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    outs = []
    for i in range(0, xs.shape[0], batch_size):
        xb = xs[i : i + batch_size].to(device)  # a BNN: its exact int32 scores, argmax on integers
        outs.append((model.integer_forward(xb) if isinstance(model, BnnKws) else model(xb).float()).cpu())
    model.train(was)
    return torch.cat(outs).numpy() if outs else np.zeros((0, 0), dtype=np.float32)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, labels: list[str], device: str = "cpu",
             overflow: bool = True) -> dict:
    """Accuracy, per-class accuracy, confusion matrix and (BNN) per-layer overflow statistics.

    For a BNN the scores are the eval-mode forward, which is the integer arithmetic.
    """
    is_bnn = isinstance(model, BnnKws)
    if is_bnn and overflow:
        model.track_overflow(True)
    scores = predict(model, x, device=device)
    pred = np.argmax(scores, axis=1) if len(scores) else np.zeros(0, dtype=np.int64)
    y = np.asarray(y)
    k = len(labels)
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (y, pred), 1)
    per_class = {labels[i]: (float(conf[i, i] / conf[i].sum()) if conf[i].sum() else None) for i in range(k)}
    out = {
        "n": int(y.size),
        "accuracy": float((pred == y).mean()) if y.size else 0.0,
        "per_class": per_class,
        "confusion": conf.tolist(),
    }
    if is_bnn and overflow:
        out["overflow"] = model.overflow_report()
        model.track_overflow(False)
    return out


def train_model(
    model: nn.Module,
    data: TrainData,
    opt: TrainOptions,
    log: Callable[[str], None] | None = print,
) -> dict:
    """Train in place; keeps the weights of the best validation epoch (deployed arithmetic).

    Returns a history dict: per-epoch loss / validation accuracy, best epoch, wall time.
    Under torchrun (torch.distributed initialised) each rank takes every world-th batch
    and gradients are averaged by DistributedDataParallel.
    """
    rank, world = _dist_info()
    gen = _seed_all(opt.seed)
    torch.set_num_threads(max(1, opt.threads))
    dev = torch.device(opt.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    model.to(dev)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    is_bnn = isinstance(model, BnnKws)
    target_bits = model.accumulator.bits if is_bnn else 32
    xt = torch.from_numpy(np.asarray(data.x_train)).to(dev)
    yt = torch.from_numpy(np.asarray(data.y_train)).to(dev)
    noise = torch.from_numpy(data.noise).to(dev) if (opt.augment and data.noise is not None) else None
    aug = AugmentOptions()
    n = xt.shape[0]
    steps_per_epoch = max(1, math.ceil(n / (opt.batch_size * world)))
    params = list(model.parameters())
    optim = torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)
    total = opt.epochs * steps_per_epoch
    warm = max(1, total // 20)

    def lr_factor(step: int) -> float:  # linear warm-up over 5 %, then cosine to zero
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(total - warm, 1))))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_factor)
    teacher = load_teacher(opt.teacher, data.labels, dev) if opt.teacher else None
    history: list[dict] = []
    best = (-1.0, -1, None)
    t0 = time.time()
    for epoch in range(opt.epochs):
        model.train()
        if is_bnn:
            bits = bits_at(epoch, target_bits, opt)
            model.set_accumulator(bits=bits)
            for conv in model.binary_convs():
                conv.want_excess = opt.collab and opt.penalty > 0
                conv.excess_bits = target_bits  # the penalty aims at the final width from the start
                conv.mask_overflow_grad = opt.collab and opt.mask_overflow_grad
        perm = torch.randperm(n, generator=gen).to(dev)
        sums = {"loss": 0.0, "ce": 0.0, "penalty": 0.0, "partner": 0.0, "teacher": 0.0, "correct": 0, "seen": 0}
        for step in range(steps_per_epoch):
            idx = perm[(step * world + rank) * opt.batch_size : (step * world + rank + 1) * opt.batch_size]
            if idx.numel() == 0:
                continue
            xb, yb = xt[idx], yt[idx]
            xb = augment(xb, noise, aug, gen) if opt.augment else xb.float()
            logits = net(xb)
            ce = F.cross_entropy(logits, yb, label_smoothing=opt.label_smoothing)
            loss = ce
            if is_bnn and opt.collab and opt.penalty > 0:
                pen = sum(c.last_excess for c in model.binary_convs() if c.last_excess is not None)
                loss = loss + opt.penalty * pen
                sums["penalty"] += float(pen.detach())
            if is_bnn and opt.collab and opt.partner > 0 and bits < 32:
                wide = _partner_logits(model, xb)
                p_ce = F.cross_entropy(wide, yb, label_smoothing=opt.label_smoothing)
                kd = F.kl_div(F.log_softmax(logits / opt.distill_t, 1), F.softmax(wide.detach() / opt.distill_t, 1),
                              reduction="batchmean") * opt.distill_t**2
                loss = loss + opt.partner * (p_ce + kd)
                sums["partner"] += float(p_ce.detach())
            if teacher is not None and opt.teacher_weight > 0:
                with torch.no_grad():
                    t_logits = teacher(xb).float()
                tt = opt.teacher_t
                kd_t = F.kl_div(F.log_softmax(logits / tt, 1), F.softmax(t_logits / tt, 1),
                                reduction="batchmean") * tt**2
                loss = loss + opt.teacher_weight * kd_t
                sums["teacher"] += float(kd_t.detach()) * idx.numel()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
            _clip_latent(model)
            sums["loss"] += float(loss.detach()) * idx.numel()
            sums["ce"] += float(ce.detach()) * idx.numel()
            sums["correct"] += int((logits.argmax(1) == yb).sum())
            sums["seen"] += idx.numel()
        if is_bnn:
            for conv in model.binary_convs():
                conv.want_excess = conv.mask_overflow_grad = False
                conv.last_excess = None
        seen = max(sums["seen"], 1)
        val = evaluate(model, data.x_val, data.y_val, data.labels, device=opt.device, overflow=False)
        rec = {"epoch": epoch + 1, "loss": sums["loss"] / seen, "ce": sums["ce"] / seen,
               "train_acc": sums["correct"] / seen, "val_acc": val["accuracy"],
               "penalty": sums["penalty"] / steps_per_epoch, "teacher": sums["teacher"] / seen,
               "time_s": round(time.time() - t0, 1)}
        if is_bnn:
            rec["acc_bits"] = model.accumulator.bits
        history.append(rec)
        at_target = (not is_bnn) or model.accumulator.bits == target_bits
        if at_target and val["accuracy"] > best[0]:
            best = (val["accuracy"], epoch + 1, copy.deepcopy(model.state_dict()))
        if log and rank == 0 and ((epoch + 1) % max(opt.log_every, 1) == 0 or epoch + 1 == opt.epochs):
            extra = f" bits {rec['acc_bits']}" if is_bnn else ""
            log(f"epoch {epoch + 1:3d}/{opt.epochs} loss {rec['loss']:.4f} train {rec['train_acc']:.3f} "
                f"val {rec['val_acc']:.3f}{extra} ({rec['time_s']:.0f} s)")
    if best[2] is not None:
        model.load_state_dict(best[2])
    if is_bnn:
        model.set_accumulator(bits=target_bits)
    return {"history": history, "best_val_acc": best[0], "best_epoch": best[1], "wall_s": round(time.time() - t0, 1),
            "steps": total}


def load_teacher(path: str, labels: list[str], dev: torch.device) -> nn.Module:
    """A trained model to distil from: its checkpoint, in eval mode, frozen; its labels must
    be the student's (same classes, same order)."""
    from bnnkws.generator.training.checkpoint import load_checkpoint

    teacher, ckpt = load_checkpoint(path)
    if list(ckpt["labels"]) != list(labels):
        raise DatasetError(
            f"--teacher {path}: labels {', '.join(ckpt['labels'])} differ from the data's "
            f"{', '.join(labels)}"
        )
    teacher.eval().to(dev)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def _partner_logits(model: BnnKws, xb: torch.Tensor) -> torch.Tensor:
    """Forward of the wide partner: the same weights, 32-bit accumulators, batch statistics
    used but not recorded (the running statistics belong to the N-bit model)."""
    saved = [(conv.acc, conv.want_excess) for conv in model.binary_convs()]
    bns = [m.bn for m in model.conv_layers()]
    try:
        model.set_accumulator(bits=32)
        for conv in model.binary_convs():
            conv.want_excess = False
        for bn in bns:
            bn.update_stats = False
        return model(xb)
    finally:
        for conv, (acc, want) in zip(model.binary_convs(), saved, strict=True):
            conv.acc, conv.want_excess = acc, want
        for bn in bns:
            bn.update_stats = True
        model.config["acc"] = saved[0][0].to_dict()
