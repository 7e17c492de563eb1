"""`bnnkws train` and `bnnkws eval`: train a keyword spotter on a Speech Commands folder, measure it.

Training reads int8 features from the feature cache (computed once per dataset and
front-end; see bnnkws.generator.training.train). Multi-GPU: launch the same command under
``torchrun --nproc_per_node=K -m bnnkws.tools.cli train ...``; each process takes its share of
every epoch's batches and DistributedDataParallel averages the gradients; rank 0 writes
the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from bnnkws.generator.base.errors import BnnkwsError, DatasetError
from bnnkws.generator.base.fileio import write_atomic
from bnnkws.generator.data.dataset import detect_layout
from bnnkws.generator.data.keywords import DEFAULT_KEYWORDS
from bnnkws.tools.cli import command_line


# --------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------
def add_data_args(p: argparse.ArgumentParser, keywords: bool = True) -> None:
    p.add_argument("--data", type=Path, required=True, help="Speech Commands folder (training layout)")
    if keywords:
        p.add_argument("--keywords", nargs="+", default=list(DEFAULT_KEYWORDS), metavar="WORD",
                       help=f"keywords (default: {' '.join(DEFAULT_KEYWORDS)})")
        p.add_argument("--silence-fraction", type=float, default=0.1,
                       help="silence clips per keyword clip in each split (default 0.1)")
        p.add_argument("--unknown-fraction", type=float, default=0.1,
                       help="unknown-word clips per keyword clip in each split (default 0.1)")
        p.add_argument("--data-seed", type=int, default=0, help="seed of the split balancing (default 0)")
        p.add_argument("--recipe", choices=("plain", "mix"), default="plain",
                       help="plain: the loader's balanced clean clips; mix: what a deployed spotter hears "
                            "(held-out unknown words, background at random SNR, cut words, splices, "
                            "silence at any level; generator/data/mixing.py). Default plain")
        p.add_argument("--extra-unknown", type=Path, nargs="+", default=[], metavar="DIR",
                       help="mix: more other-word data (training layout; its keyword folders are ignored), "
                            "e.g. `bnnkws data synth` output with a broad vocabulary")
        p.add_argument("--snr-db", default=None, metavar="LO,HI",
                       help="mix: background mixed in at an SNR uniform in LO..HI dB (default 0,24)")
        p.add_argument("--place", choices=("shift", "inside"), default=None,
                       help="mix: where a training word sits in its window: shift (+-100 ms around the "
                            "clip's position; default) or inside (anywhere its spoken part fits, as the "
                            "windows of a stream see it)")
        p.add_argument("--holdout", nargs="+", default=None, metavar="WORD",
                       help="mix: other words never trained on, measured as unknown (default happy)")
        for name, default, what in (("copies", 2, "augmented copies of each training clip"),
                                    ("unknown-ratio", 2.0, "unknown examples per keyword class"),
                                    ("silence-ratio", 1.0, "silence examples per keyword class"),
                                    ("cut-ratio", 0.3, "cut-keyword examples (as unknown) per keyword class"),
                                    ("splice-ratio", 0.2, "spliced-word examples (as unknown) per keyword class"),
                                    ("noise-prob", 0.85, "share of examples with background mixed in")):
            p.add_argument(f"--{name}", type=type(default), default=None,
                           help=f"mix: {what} (default {default})")
    p.add_argument("--cache", type=Path, default=None,
                   help="feature cache folder (default $BNNKWS_CACHE or ~/.cache/bnnkws/features)")


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=("bnn", "dscnn", "tcresnet8"), default="bnn",
                   help="bnn (default), or a float baseline: dscnn (MLPerf Tiny KWS shape), tcresnet8")
    p.add_argument("--preset", choices=("structured", "dense", "compact", "wide"), default="structured",
                   help="BNN architecture (default structured; see docs/ABLATION.md)")
    p.add_argument("--acc-bits", type=int, default=8, help="accumulator bits of the binary layers, 4..32 (default 8)")
    p.add_argument("--acc-mode", choices=("wrap", "saturate"), default="wrap", help="overflow mode (default wrap)")
    p.add_argument("--tile", type=int, default=32, help="saturate: elements per exact partial sum (default 32)")
    p.add_argument("--first-acc-bits", type=int, default=16,
                   help="accumulator bits of the int8 first layer (default 16: never overflows)")
    p.add_argument("--bn", choices=("shift", "float"), default="shift",
                   help="shift: power-of-two scales trained with AP2 (default); float: plain batch-norm")


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=60, help="epochs (default 60)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (AdamW, warm-up then cosine; default 3e-3)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the small kernels gain little from more, and "
                   "on a shared machine extra threads spin against other processes)")
    p.add_argument("--no-augment", action="store_true", help="no time shift / level / noise augmentation")
    p.add_argument("--collab", action=argparse.BooleanOptionalAction, default=True,
                   help="overflow-heuristic collaborative training (default on; BNN only)")
    p.add_argument("--penalty", type=float, default=1.0, help="collab: overflow penalty weight")
    p.add_argument("--partner", type=float, default=0.5, help="collab: wide-partner loss weight (0: none)")
    p.add_argument("--start-bits", type=int, default=None,
                   help="collab: accumulator width the schedule starts at (default 16; with --init the "
                   "model's own width: a fine-tune does not widen again)")
    p.add_argument("--init", type=Path, default=None, metavar="CKPT",
                   help="start from this checkpoint's weights (same architecture and labels: a fine-tune, "
                   "e.g. of models/default.pt on a new recipe) instead of a random initialisation")
    p.add_argument("--narrow-frac", type=float, default=0.4, help="collab: fraction of epochs spent narrowing")
    p.add_argument("--teacher", type=Path, default=None, metavar="CKPT",
                   help="distil from this trained model (same labels; e.g. the TC-ResNet8 baseline "
                   "trained on the same data): a KL term on the softened outputs")
    p.add_argument("--teacher-weight", type=float, default=1.0, help="--teacher: weight of the KL term (default 1)")
    p.add_argument("--teacher-t", type=float, default=2.0, help="--teacher: softening temperature (default 2)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `train` and `eval`."""
    p = sub.add_parser(
        "train",
        help="train a keyword spotter (BNN with N-bit accumulators, or a float baseline)",
        description="Train on the train split, select on the validation split (in the deployed "
        "integer arithmetic), measure on the test split, write a checkpoint.",
    )
    add_data_args(p)
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write (.pt)")
    add_model_args(p)
    add_train_args(p)
    p.set_defaults(func=run_train)

    e = sub.add_parser(
        "eval",
        help="evaluate a checkpoint on a split of a dataset (accuracy, overflow, cost)",
        description="Accuracy, per-class accuracy, confusion, per-layer overflow statistics and "
        "model cost of CKPT on one split, in the deployed integer arithmetic.",
    )
    e.add_argument("checkpoint", type=Path, help="checkpoint written by bnnkws train")
    add_data_args(e, keywords=False)
    e.add_argument("--split", choices=("train", "validation", "test"), default="test")
    e.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    e.add_argument("--acc-bits", type=int, default=None, help="deploy with this accumulator width instead")
    e.add_argument("--acc-mode", choices=("wrap", "saturate"), default=None, help="deploy with this mode instead")
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=run_eval)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BnnkwsError(f"--device {name}: CUDA is not available here")
    return name


def model_config(args: argparse.Namespace, n_classes: int) -> dict:
    from bnnkws.generator.training.model import bnn_config, float_config

    if args.model != "bnn":
        return float_config(args.model, n_classes)
    if not 4 <= args.acc_bits <= 32 or not 4 <= args.first_acc_bits <= 32:
        raise BnnkwsError("--acc-bits and --first-acc-bits must lie in 4..32")
    return bnn_config(args.preset, n_classes, args.acc_bits, args.acc_mode, args.tile,
                      ap2=args.bn == "shift", first_acc_bits=args.first_acc_bits)


def data_spec(args: argparse.Namespace):
    """The DataSpec of the command line (the mix options only where given)."""
    from bnnkws.generator.data.mixing import MixOptions
    from bnnkws.generator.training.train import DataSpec

    mix = None
    if args.recipe == "mix":
        over = {k: getattr(args, k) for k in ("copies", "unknown_ratio", "silence_ratio", "cut_ratio",
                                               "splice_ratio", "noise_prob") if getattr(args, k) is not None}
        if args.holdout is not None:
            over["holdout"] = tuple(args.holdout)
        if args.place is not None:
            over["place"] = args.place
        if args.snr_db is not None:
            try:
                lo, hi = (float(v) for v in args.snr_db.split(","))
            except ValueError:
                raise BnnkwsError(f"--snr-db {args.snr_db!r}: expected LO,HI in dB, e.g. 6,30") from None
            if lo > hi:
                raise BnnkwsError(f"--snr-db {args.snr_db}: LO above HI")
            over["snr_db"] = (lo, hi)
        mix = MixOptions(**over).to_dict()
    elif args.extra_unknown or args.holdout or args.snr_db or args.place:
        raise BnnkwsError("--extra-unknown, --holdout, --snr-db and --place need --recipe mix")
    return DataSpec(str(args.data), list(args.keywords), args.silence_fraction, args.unknown_fraction,
                    args.data_seed, args.recipe, [str(e) for e in args.extra_unknown], mix)


def _portable(d: dict) -> dict:
    """A data description for a checkpoint: folders relative to the working directory, as
    command_line writes them, so no machine path travels in a shipped model."""
    d = dict(d)
    d["root"] = os.path.relpath(d["root"])
    if d.get("extra"):
        d["extra"] = [os.path.relpath(e) for e in d["extra"]]
    return d


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _init_state(path: Path, cfg: dict, labels: list[str], start_bits: int | None) -> tuple[dict, int]:
    """(state dict, schedule start width) of --init CKPT, checked against the model to train."""
    from bnnkws.generator.training.checkpoint import read_checkpoint

    ck = read_checkpoint(path)
    if ck["config"] != cfg:
        diff = sorted(k for k in set(ck["config"]) | set(cfg) if ck["config"].get(k) != cfg.get(k))
        raise BnnkwsError(f"--init {path}: its architecture differs from the one to train "
                          f"({', '.join(diff[:6])}); give the same --model/--preset/--acc-bits options")
    if list(ck["labels"]) != list(labels):
        raise BnnkwsError(f"--init {path}: labels {', '.join(ck['labels'])} differ from the data's "
                          f"{', '.join(labels)}")
    bits = (cfg.get("acc") or {}).get("bits", 16)
    return ck["state_dict"], start_bits if start_bits is not None else int(bits)


def run_train(args: argparse.Namespace) -> int:
    import torch

    from bnnkws.generator.frontend import default_params
    from bnnkws.generator.training.checkpoint import save_checkpoint
    from bnnkws.generator.training.run import train_run
    from bnnkws.generator.training.train import (
        TrainOptions,
        evaluate,
        load_split,
        load_train_data,
    )

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = resolve_device(args.device)
    if distributed:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        backend = "nccl" if device.startswith("cuda") else "gloo"
        torch.distributed.init_process_group(backend)
        if device.startswith("cuda"):
            device = f"cuda:{local}"
            torch.cuda.set_device(local)
    rank = torch.distributed.get_rank() if distributed else 0
    say = print if rank == 0 else (lambda *a, **k: None)

    spec = data_spec(args)
    frontend = default_params()
    t0 = time.time()
    if distributed and rank != 0:
        torch.distributed.barrier()  # rank 0 fills the feature cache first
    data = load_train_data(spec, frontend, args.cache, progress=rank == 0)
    if distributed and rank == 0:
        torch.distributed.barrier()
    say(f"data: {len(data.y_train)} train / {len(data.y_val)} validation examples, "
        f"{len(data.labels)} labels, features {time.time() - t0:.1f} s")
    if len(data.y_train) == 0 or len(data.y_val) == 0:
        raise DatasetError(f"{args.data}: the train or validation split is empty")
    cfg = model_config(args, len(data.labels))
    init, start_bits = None, args.start_bits if args.start_bits is not None else 16
    if args.init is not None:
        init, start_bits = _init_state(args.init, cfg, data.labels, args.start_bits)
    opt = TrainOptions(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=device,
                       threads=args.threads, augment=not args.no_augment,
                       collab=args.collab and args.model == "bnn", penalty=args.penalty, partner=args.partner,
                       start_bits=start_bits, narrow_frac=args.narrow_frac,
                       teacher=str(args.teacher) if args.teacher else None,
                       teacher_weight=args.teacher_weight, teacher_t=args.teacher_t)
    run = train_run(cfg, data, opt, log=say, init=init)
    model, hist = run.model, run.hist
    if rank != 0:
        torch.distributed.destroy_process_group()
        return 0
    metrics = {"validation": evaluate(model, data.x_val, data.y_val, data.labels),
               "best_epoch": hist["best_epoch"], "train_wall_s": hist["wall_s"]}
    try:
        xs, ys = load_split(spec, "test", frontend, args.cache, progress=False)
        if len(ys):
            metrics["test"] = evaluate(model, xs, ys, data.labels)
    except DatasetError as exc:
        say(f"no test split: {exc}")
    metrics["cost"] = model.cost()
    train_info = {
        "command": command_line(),
        "argv": shlex.split(command_line())[1:],
        "seed": args.seed,
        "data": {**_portable(spec.describe()), "n_train": int(len(data.y_train)), "n_validation": int(len(data.y_val)),
                 "n_test": int(metrics["test"]["n"]) if "test" in metrics else 0},
        "options": opt.to_dict(),
        # a fine-tune names the checkpoint it started from by content: the file may change later
        "init": ({"path": os.path.relpath(args.init), "sha256": _sha256(args.init)} if args.init else None),
        "history": hist["history"],
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "wall_s": round(time.time() - t0, 1),
    }
    save_checkpoint(args.out, model, data.labels, frontend, metrics, train_info)
    line = f"validation {metrics['validation']['accuracy']:.4f}"
    if "test" in metrics:
        line += f", test {metrics['test']['accuracy']:.4f} ({metrics['test']['n']} clips)"
    say(f"{args.out}: {line}; {train_info['wall_s']:.0f} s")
    if distributed:
        torch.distributed.destroy_process_group()
    return 0


# --------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------
def run_eval(args: argparse.Namespace) -> int:
    from bnnkws.generator.frontend import FrontendParams
    from bnnkws.generator.training.checkpoint import load_checkpoint
    from bnnkws.generator.training.model import BnnKws
    from bnnkws.generator.training.train import DataSpec, evaluate, load_split

    model, ck = load_checkpoint(args.checkpoint)
    labels = ck["labels"]
    d = (ck.get("train") or {}).get("data") or {}
    spec = DataSpec.from_dict({"keywords": labels[2:], **d}, root=str(args.data))
    if detect_layout(args.data) == "test":  # the official test layout is used as it is
        spec = DataSpec(str(args.data), labels[2:])
    frontend = FrontendParams.from_bytes(ck["frontend"], where=f"{args.checkpoint}: front-end section")
    if isinstance(model, BnnKws) and (args.acc_bits or args.acc_mode):
        model.set_accumulator(bits=args.acc_bits, mode=args.acc_mode)
    elif args.acc_bits or args.acc_mode:
        raise BnnkwsError(f"{args.checkpoint}: a float model has no accumulators to change")
    x, y = load_split(spec, args.split, frontend, args.cache, progress=False)
    if len(y) == 0:
        raise DatasetError(f"{args.data}: split {args.split} is empty")
    res = evaluate(model, x, y, labels, device=resolve_device(args.device))
    res["cost"] = model.cost()
    res["checkpoint"] = str(args.checkpoint)
    res["split"] = args.split
    res["data"] = str(Path(args.data).resolve())
    if isinstance(model, BnnKws):
        a = model.accumulator
        res["accumulator"] = {"bits": a.bits, "mode": a.mode, "tile": a.tile,
                              "first_bits": model.conv_layers()[0].conv.acc.bits}
    print(format_eval(res, labels))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.json, json.dumps(res, indent=1) + "\n")
    return 0


def format_eval(res: dict, labels: list[str]) -> str:
    lines = [f"{res['checkpoint']} on {res['split']} ({res['n']} clips): accuracy {res['accuracy']:.4f}"]
    if "accumulator" in res:
        a = res["accumulator"]
        lines.append(f"accumulators: binary layers {a['bits']} bits {a['mode']} (tile {a['tile']}), "
                     f"first layer {a['first_bits']} bits")
    lines.append("per class: " + ", ".join(
        f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in res["per_class"].items()))
    if "overflow" in res:
        lines.append(f"{'layer':8s} {'fan-in':>6s} {'bits':>4s} {'overflow':>9s} {'mean err':>9s} {'excess':>8s}")
        for o in res["overflow"]:
            lines.append(f"{o['layer']:8s} {o['fan_in']:6d} {o['acc_bits']:4d} {o.get('overflow_fraction', 0):9.4%} "
                         f"{o.get('mean_overflow_error', 0):9.2f} {o.get('mean_excess', 0):8.3f}")
    c = res.get("cost", {})
    lines.append("cost: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m bnnkws.tools.commands.train train|eval ...``: these two commands alone, for
    machines where the full CLI cannot start (it imports soundfile through other commands)."""
    from bnnkws.tools.cli import main as cli_main

    return cli_main(argv, ["bnnkws.tools.commands.train"])

if __name__ == "__main__":
    sys.exit(main())
