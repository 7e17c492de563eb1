"""The accuracy ablation: which part of the method buys what, at which accumulator width.

Matrix: rows (cumulative) x N in {6, 8, 10, 12, 16, 32} x {wrap, saturate}:

    naive           dense BNN, float BN, trained with 32-bit accumulators, deployed at N bits
    + overflow sim  the same trained with the N-bit arithmetic in its forward
    + SBN           shift batch-norm (AP2 scales) instead of float batch-norm
    + structure     the structured preset ({0,1} activations, per-class grouped last layer)
    + collaborative narrowing schedule, overflow penalty, masked STE, wide partner

plus an extra row (collaborative training on the dense preset, no structure) and a
component study at N = 8 wrap on the dense preset, where plain training fails, and the
float baselines (DS-CNN, TC-ResNet8). Each training is a *job*; identical trainings
(e.g. every row at N = 32, where wrap and saturate never trigger) are run once. A job's
result is written as ``<results>/<job>.json`` as soon as it finishes and skipped when
present, so an interrupted run resumes. :func:`write_report` turns the results into
docs/ABLATION.md and docs/ablation.png.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from bnnkws.generator.base.fileio import write_atomic

BITS = (6, 8, 10, 12, 16, 32)
MODES = ("wrap", "saturate")


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    preset: str
    ap2: bool
    collab: bool
    train_wide: bool = False  # naive: train at 32 bits, deploy at N


ROWS = (
    Row("naive", "naive: train 32-bit, deploy N-bit", "dense", False, False, True),
    Row("ovf", "+ overflow simulation in training", "dense", False, False),
    Row("sbn", "+ shift batch-norm (AP2)", "dense", True, False),
    Row("struct", "+ overflow-reducing structure", "structured", True, False),
    Row("collab", "+ collaborative training (full method)", "structured", True, True),
)
EXTRA_ROWS = (Row("collab_dense", "SBN + collaborative, no structure", "dense", True, True),)
# component study: collaborative training with one part removed (dense preset, N=8 wrap)
COMPONENTS = {
    "all": {},
    "no_penalty": {"penalty": 0.0},
    "no_mask": {"mask_overflow_grad": False},
    "no_schedule": {"start_bits": 0},
    "no_partner": {"partner": 0.0},
}
BASELINES = ("dscnn", "tcresnet8")
# the ten literature methods of the accelerator comparison (generator/training/kws_zoo.py);
# jobs named like the baselines' ("<kind>-s<seed>"), trained by `bench accelerator`
ZOO = ("dnn", "cnn", "lstm", "gru", "crnn", "dscnn", "tcresnet8", "tcresnet14", "matchboxnet",
       "bcresnet1")


@dataclass
class Job:
    """One training and the deployments it is evaluated at."""

    name: str
    model: str  # bnn, dscnn, tcresnet8
    seed: int
    preset: str = "dense"
    ap2: bool = True
    collab: bool = False
    train_bits: int = 32
    train_mode: str = "wrap"
    deploy: list[tuple[int, str]] = field(default_factory=list)
    overrides: dict = field(default_factory=dict)


@dataclass
class Settings:
    data: dict  # DataSpec fields
    cache: str | None
    epochs: int
    batch_size: int = 128
    lr: float = 3e-3
    device: str = "cpu"
    threads: int = 1
    tile: int = 32
    subset: int | None = None  # quick: train on this many examples
    save_checkpoints: bool = True


def _job_name(model: str, seed: int, preset: str = "", ap2: bool = True, collab: bool = False,
              bits: int = 32, mode: str = "wrap", tag: str = "") -> str:
    if model != "bnn":
        return f"{model}-s{seed}"
    parts = [preset, "sbn" if ap2 else "fbn", "collab" if collab else "plain", f"{bits}{mode[0]}"]
    return "-".join(parts) + (f"-{tag}" if tag else "") + f"-s{seed}"


def plan(bits: tuple[int, ...] = BITS, modes: tuple[str, ...] = MODES, seeds: tuple[int, ...] = (0,),
         rows: tuple[Row, ...] = ROWS + EXTRA_ROWS, baselines: bool | tuple[str, ...] = True,
         components: bool = True) -> tuple[list[Job], dict]:
    """(jobs, cells): cells maps (row key, bits, mode, seed) -> (job name, deploy bits, deploy mode)."""
    jobs: dict[str, Job] = {}
    cells: dict = {}

    def job(name: str, **kw) -> Job:
        if name not in jobs:
            jobs[name] = Job(name=name, **kw)
        return jobs[name]

    for seed in seeds:
        for row in rows:
            for b in bits:
                for m in modes:
                    tb, tm = (32, "wrap") if row.train_wide or b >= 32 else (b, m)
                    collab = row.collab and tb < 32
                    name = _job_name("bnn", seed, row.preset, row.ap2, collab, tb, tm)
                    j = job(name, model="bnn", seed=seed, preset=row.preset, ap2=row.ap2, collab=collab,
                            train_bits=tb, train_mode=tm)
                    if (b, m) not in j.deploy:
                        j.deploy.append((b, m))
                    cells[(row.key, b, m, seed)] = (name, b, m)
        if components:
            for comp, over in COMPONENTS.items():
                name = _job_name("bnn", seed, "dense", True, True, 8, "wrap", "" if comp == "all" else comp)
                j = job(name, model="bnn", seed=seed, preset="dense", ap2=True, collab=True, train_bits=8,
                        train_mode="wrap", overrides=dict(over))
                if (8, "wrap") not in j.deploy:
                    j.deploy.append((8, "wrap"))
                cells[(f"component:{comp}", 8, "wrap", seed)] = (name, 8, "wrap")
        if baselines:
            for kind in BASELINES if baselines is True else baselines:
                name = _job_name(kind, seed)
                job(name, model=kind, seed=seed)
                cells[(f"baseline:{kind}", 32, "wrap", seed)] = (name, 32, "wrap")
    return list(jobs.values()), cells


def run_job(job: Job, settings: Settings, results: str) -> dict:
    """Train one job, evaluate every deployment on the test split, write <results>/<name>.json."""
    import torch

    from bnnkws.generator.training.checkpoint import save_checkpoint
    from bnnkws.generator.training.model import bnn_config, float_config
    from bnnkws.generator.training.run import subset, train_run
    from bnnkws.generator.training.train import (
        DataSpec,
        TrainOptions,
        evaluate,
        load_split,
        load_train_data,
    )

    torch.set_num_threads(max(1, settings.threads))
    spec = DataSpec(**settings.data)
    cache = Path(settings.cache) if settings.cache else None
    data = load_train_data(spec, cache_dir=cache, progress=False)
    xs, ys = load_split(spec, "test", cache_dir=cache, progress=False)
    if settings.subset:
        data = subset(data, settings.subset, job.seed)
    n_classes = len(data.labels)
    if job.model == "bnn":
        cfg = bnn_config(job.preset, n_classes, job.train_bits, job.train_mode, settings.tile, ap2=job.ap2)
    else:
        cfg = float_config(job.model, n_classes)
    over = dict(job.overrides)
    if over.get("start_bits") == 0:
        over["start_bits"] = job.train_bits
    opt = TrainOptions(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr, seed=job.seed,
                       device=settings.device, threads=settings.threads, collab=job.collab, **over)
    run = train_run(cfg, data, opt, log=None)
    model, hist, wall = run.model, run.hist, run.wall_s
    out = {"job": asdict(job), "settings": asdict(settings), "wall_s": round(wall, 1),
           "best_val_acc": hist["best_val_acc"], "best_epoch": hist["best_epoch"],
           "cost": model.cost(), "test": {}, "history": hist["history"]}
    if job.model == "bnn":
        for b, m in job.deploy:
            model.set_accumulator(bits=b, mode=m)
            r = evaluate(model, xs, ys, data.labels)
            binary = r["overflow"][1:]
            out["test"][f"{b}{m[0]}"] = {
                "bits": b, "mode": m, "accuracy": r["accuracy"], "n": r["n"],
                "overflow_fraction": float(np.mean([o["overflow_fraction"] for o in binary])),
                "overflow": r["overflow"],
            }
        model.set_accumulator(bits=job.train_bits, mode=job.train_mode)
    else:
        from bnnkws.generator.training import kws_zoo

        r = evaluate(model, xs, ys, data.labels)
        out["test"]["32w"] = {"bits": 32, "mode": "wrap", "accuracy": r["accuracy"], "n": r["n"]}
        # int8 simulated (post-training; kws_zoo.int8_evaluate), calibrated on training features
        calib = data.x_train[np.random.default_rng(job.seed).permutation(len(data.y_train))[:512]]
        out["test"]["int8"] = {"bits": 8, "mode": "int8", "n": r["n"],
                               "accuracy": kws_zoo.int8_evaluate(model, xs, ys, calib)}
        out["params"] = kws_zoo.count_params(model)
    folder = Path(results)
    if settings.save_checkpoints:
        model.labels = data.labels
        save_checkpoint(folder / "checkpoints" / f"{job.name}.pt", model, data.labels,
                        metrics={"test": out["test"]}, train={"seed": job.seed, "data": spec.describe(),
                                                             "options": opt.to_dict(), "job": asdict(job)})
    _write_json(folder / f"{job.name}.json", out)
    return out


def _write_json(path: Path, obj: dict) -> None:
    write_atomic(path, json.dumps(obj, indent=1) + "\n")


def _worker(job: Job, settings: Settings, results: str, device: str) -> tuple[str, float]:
    s = Settings(**{**asdict(settings), "device": device})
    out = run_job(job, s, results)
    return job.name, out["wall_s"]


def run_all(jobs: list[Job], settings: Settings, results: Path, n_jobs: int = 1,
            log: Callable[[str], None] = print) -> dict:
    """Run the jobs whose result file is missing, ``n_jobs`` processes at a time.

    With device "cuda" the processes share the GPUs round-robin.
    Returns {"ran": [...], "skipped": [...], "elapsed_s": ...}.
    """
    results.mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if not (results / f"{j.name}.json").is_file()]
    skipped = [j.name for j in jobs if j not in todo]
    # longest first: saturate and collaborative jobs cost more
    todo.sort(key=lambda j: (j.train_mode == "saturate") + j.collab + (j.model != "bnn"), reverse=True)
    devices = [settings.device]
    if settings.device == "cuda":
        import torch

        devices = [f"cuda:{i}" for i in range(max(torch.cuda.device_count(), 1))]
    t0 = time.time()
    ran = []
    if skipped:
        log(f"{len(skipped)} job(s) already done in {results}, {len(todo)} to run")
    if n_jobs <= 1:
        for i, j in enumerate(todo):
            name, wall = _worker(j, settings, str(results), devices[i % len(devices)])
            ran.append(name)
            log(f"[{len(ran)}/{len(todo)}] {name}: {wall:.0f} s")
    else:
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=get_context("spawn")) as pool:
            futs = {pool.submit(_worker, j, settings, str(results), devices[i % len(devices)]): j
                    for i, j in enumerate(todo)}
            for f in as_completed(futs):
                name, wall = f.result()
                ran.append(name)
                log(f"[{len(ran)}/{len(todo)}] {name}: {wall:.0f} s")
    return {"ran": ran, "skipped": skipped, "elapsed_s": round(time.time() - t0, 1)}


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def load_results(results: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(Path(results).glob("*.json")):
        if p.name.startswith(".") or p.name == "run.json":
            continue
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out[d["job"]["name"]] = d
    return out


def cell_value(res: dict[str, dict], cells: dict, key: str, b: int, m: str, seeds) -> tuple[float | None, float | None]:
    """Mean test accuracy and mean binary-layer overflow fraction of a cell over the seeds present."""
    accs, ovf = [], []
    for s in seeds:
        c = cells.get((key, b, m, s))
        if c is None or c[0] not in res:
            continue
        t = res[c[0]]["test"].get(f"{c[1]}{c[2][0]}")
        if t is None:
            continue
        accs.append(t["accuracy"])
        if "overflow_fraction" in t:
            ovf.append(t["overflow_fraction"])
    return (float(np.mean(accs)) if accs else None, float(np.mean(ovf)) if ovf else None)


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def write_report(results: Path, md_path: Path, png_path: Path | None, meta: dict,
                 bits=BITS, modes=MODES, seeds=(0,), rows=ROWS + EXTRA_ROWS) -> None:
    """Markdown tables (accuracy, overflow, cost, components, baselines) and the plot."""
    res = load_results(results)
    _, cells = plan(tuple(bits), tuple(modes), tuple(seeds), tuple(rows))
    walls = [r["wall_s"] for r in res.values()]
    L = [f"# Accuracy ablation{' (quick smoke run)' if meta.get('quick') else ''}", "",
         "Produced by `" + meta.get("command", "bnnkws bench accuracy") + "`; do not edit by hand.", ""]
    if meta.get("report_command"):
        L += [f"Tables and plot rewritten from the saved results by `{meta['report_command']}`.", ""]
    L += _preamble(meta, res, seeds, walls)
    L += _methods()
    L += _findings(res, cells, seeds)
    L += ["![accuracy against accumulator width](ablation.png)", ""]
    for m in modes:
        L += [f"## Test accuracy (%), {m} accumulators", "",
              "| method | " + " | ".join(f"N={b}" for b in bits) + " |",
              "|---|" + "---:|" * len(bits)]
        for row in rows:
            vals = [_fmt(cell_value(res, cells, row.key, b, m, seeds)[0]) for b in bits]
            L.append(f"| {row.label} | " + " | ".join(vals) + " |")
        L.append("")
    for m in modes:
        L += [f"## Outputs of binary layers that overflow (%), {m}", "",
              "Fraction of binary-layer outputs (mean over layers) whose N-bit accumulator differs "
              "from the exact sum, on the test split.", "",
              "| method | " + " | ".join(f"N={b}" for b in bits) + " |",
              "|---|" + "---:|" * len(bits)]
        for row in rows:
            vals = [_fmt(cell_value(res, cells, row.key, b, m, seeds)[1], pct=True) for b in bits]
            L.append(f"| {row.label} | " + " | ".join(vals) + " |")
        L.append("")
    comp = [(k, cell_value(res, cells, f"component:{k}", 8, "wrap", seeds)[0]) for k in COMPONENTS]
    if any(v is not None for _, v in comp):
        names = {"all": "collaborative, all parts", "no_penalty": "without the overflow penalty",
                 "no_mask": "without the masked straight-through estimate",
                 "no_schedule": "without the narrowing schedule", "no_partner": "without the wide partner"}
        plain = cell_value(res, cells, "sbn", 8, "wrap", seeds)[0]
        L += ["## Collaborative training, part by part (dense preset, N=8, wrap)", "",
              "The dense preset at N=8 wrap is where plain overflow-aware training does not converge.", "",
              "| training | test accuracy (%) |", "|---|---:|", f"| plain (overflow simulation + SBN) | {_fmt(plain)} |"]
        L += [f"| {names[k]} | {_fmt(v)} |" for k, v in comp]
        L.append("")
    L += _cost_table(res, seeds)
    L += _per_layer(res, cells, seeds)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(md_path, "\n".join(L) + "\n")
    if png_path is not None:
        plot(res, cells, png_path, bits, modes, seeds, rows)


def _preamble(meta: dict, res: dict, seeds, walls: list[float]) -> list[str]:
    d = meta.get("data", {})
    L = ["## Setup", ""]
    L.append(f"- Data: `{d.get('root', '?')}` ({meta.get('data_note', 'Speech Commands layout')}); labels "
             f"{', '.join(meta.get('labels', []))}; {meta.get('n_train', '?')} training, "
             f"{meta.get('n_validation', '?')} validation, {meta.get('n_test', '?')} test clips "
             f"(silence/unknown fractions {d.get('silence_fraction')}/{d.get('unknown_fraction')}, "
             f"split seed {d.get('seed')}).")
    L.append("- Features: the integer front-end (int8, 49 x 40), cached; training augments them "
             "(time shift, level, background noise).")
    L.append(f"- Training: {meta.get('epochs')} epochs, batch {meta.get('batch_size')}, AdamW warm-up + cosine "
             f"lr {meta.get('lr')}, seeds {', '.join(str(s) for s in seeds)}; model selection on the "
             f"validation split in the deployed integer arithmetic; accuracy on the test split.")
    L.append(f"- Accumulators: binary layers N bits; the int8 first layer 16 bits (its fan-in 120 x 128 "
             f"never leaves 16 bits); saturate accumulates tiles of {meta.get('tile', 32)} exact products.")
    L.append(f"- Compute: {len(res)} trainings, {sum(walls) / 60:.1f} min of training in all "
             f"(mean {np.mean(walls) if walls else 0:.0f} s each), {meta.get('elapsed_s', 0) / 60:.1f} min "
             f"wall for the last invocation on {meta.get('device_desc', meta.get('device', '?'))} with "
             f"{meta.get('jobs', 1)} parallel job(s); torch {meta.get('torch', '?')}, "
             f"Python {meta.get('python', platform.python_version())}.")
    L.append("")
    return L


def _methods() -> list[str]:
    return [
        "## What is compared", "",
        "Every BNN here is the deployed integer network of docs/INTEGER_MODEL.md: int8 log-mel "
        "features (49 frames x 40 bands) -> first layer int8 x binary weights (16-bit accumulator) -> "
        "three binary 1-D temporal convolutions at N bits (kernel 3; 128, 128 and 12 per class "
        "channels; OR pooling by 2 after the first) -> last binary layer at N bits whose kernel "
        "covers the 7 remaining frames, shift-BN to int32 scores. Temporal 1-D convolutions "
        "(TC-ResNet style) keep the fan-in at kernel x channels (384) instead of the "
        "kernel x kernel x channels of 2-D convolutions, and stride 2 in the first layer halves "
        "all later work; the cost stays under 2M binary ops per 1-s window.", "",
        "- **naive**: the `dense` preset ({-1,+1} activations, ungrouped last layer of fan-in "
        "840, float batch-norm) trained with exact (32-bit) sums, then deployed with N-bit "
        "accumulators.",
        "- **+ overflow simulation**: the same network trained with the N-bit wrap/saturate "
        "arithmetic in its forward pass (saturate in the accelerator's tile order), "
        "straight-through backward.",
        "- **+ shift batch-norm**: power-of-two scales (AP2) trained with a straight-through "
        "estimate; the hidden layers fold into one integer threshold, the last layer is a shift "
        "and an add (without SBN the export rounds the float scales to powers of two once).",
        "- **+ structure**: the `structured` preset: {0,1} activations (a sum counts only active "
        "inputs) and a last layer grouped per class (fan-in 84 instead of 840, so scores cannot "
        "overflow at N >= 8). Same channels, same work per inference as `dense`.",
        "- **+ collaborative**: accumulators narrowed from 16 bits to N over the first 40 % of "
        "the epochs, an overflow penalty on sums beyond the final N-bit range, no task-loss "
        "gradient through overflowed outputs (masked STE), and a 32-bit partner sharing the "
        "weights that is trained on the labels and distils into the N-bit model.",
        "- The extra row applies collaborative training to the `dense` preset: the method "
        "without the structural help.", "",
    ]


def _findings(res: dict, cells: dict, seeds) -> list[str]:
    """Headline comparisons, computed from the tables below."""

    def v(key: str, b: int, m: str) -> float | None:
        return cell_value(res, cells, key, b, m, seeds)[0]

    out = []
    pairs = [
        ("naive deployment at N=8 wrap vs the same network at 32 bits", v("naive", 8, "wrap"), v("naive", 32, "wrap")),
        ("overflow simulation alone (dense, N=8 wrap) vs naive", v("ovf", 8, "wrap"), v("naive", 8, "wrap")),
        ("naive deployment at N=6 saturate vs the same network at 32 bits", v("naive", 6, "saturate"),
         v("naive", 32, "saturate")),
        ("collaborative training on the dense preset at N=8 wrap vs plain overflow-aware training",
         v("collab_dense", 8, "wrap"), v("sbn", 8, "wrap")),
        ("full method at N=8 wrap vs the same BNN with 32-bit accumulators", v("collab", 8, "wrap"),
         v("struct", 32, "wrap")),
        ("full method at N=6 wrap vs structure alone", v("collab", 6, "wrap"), v("struct", 6, "wrap")),
        ("full method at N=6 saturate vs structure alone", v("collab", 6, "saturate"), v("struct", 6, "saturate")),
    ]
    for text, a, b in pairs:
        if a is not None and b is not None:
            out.append(f"- {text}: {100 * a:.1f} % vs {100 * b:.1f} % ({100 * (a - b):+.1f} points).")
    bnn = [(t["accuracy"], r["job"]["name"], k) for r in res.values() if r["job"]["model"] == "bnn"
           for k, t in r["test"].items()]
    ds = cell_value(res, cells, "baseline:dscnn", 32, "wrap", seeds)[0]
    if bnn and ds is not None:
        best = max(bnn)
        out.append(f"- best BNN cell ({best[1]}, deployed {best[2]}): {100 * best[0]:.1f} % vs float DS-CNN "
                   f"{100 * ds:.1f} % ({100 * (best[0] - ds):+.1f} points).")
    n = next((t["n"] for r in res.values() for t in r["test"].values() if "n" in t), None)
    if n:
        se = 100 * (0.9 * 0.1 / n) ** 0.5
        out.append(f"- One seed per cell and {n} test clips: one clip is {100 / n:.2f} points and the standard "
                   f"error of an accuracy near 90 % is about {se:.1f} points, so differences of 1-2 points "
                   "between neighbouring cells are noise; the collapses (to 7-25 %) are not.")
    return (["## Findings", ""] + out + [""]) if out else []


def _cost_table(res: dict, seeds) -> list[str]:
    L = ["## Model size and work per inference", "",
         "| model | binary params | model bytes | binary ops | int8 additions | float MACs | test acc (%) |",
         "|---|---:|---:|---:|---:|---:|---:|"]
    seen = set()
    for r in res.values():
        j = r["job"]
        key = (j["model"], j["preset"]) if j["model"] == "bnn" else (j["model"], "")
        if key in seen:
            continue
        seen.add(key)
        c = r["cost"]
        if j["model"] == "bnn":
            accs = [x["test"].get("32w", {}).get("accuracy") for x in res.values()
                    if x["job"]["model"] == "bnn" and x["job"]["preset"] == j["preset"]
                    and x["job"]["train_bits"] == 32 and x["job"]["ap2"] and x["job"]["seed"] in seeds]
            accs = [a for a in accs if a is not None]
            L.append(f"| BNN {j['preset']} (32-bit acc.) | {c['binary_params']} | {c['model_bytes']} | "
                     f"{c['binary_ops']} | {c['int8_additions']} | 0 | {_fmt(np.mean(accs) if accs else None)} |")
        else:
            accs = [x["test"]["32w"]["accuracy"] for x in res.values() if x["job"]["model"] == j["model"]]
            L.append(f"| {j['model']} (float) | – | {c['model_bytes']} | – | – | {c['macs']} | "
                     f"{_fmt(float(np.mean(accs)))} |")
    L += ["", "Binary ops count one XNOR/AND-popcount element; int8 additions the first layer's "
          "adds/subtracts; model bytes are packed weights plus per-channel thresholds or shift-BN "
          "parameters (float models: 4 bytes per parameter).", ""]
    return L


def _per_layer(res: dict, cells: dict, seeds) -> list[str]:
    """Per-layer overflow of the full method and of the plain dense model at N = 8."""
    L = ["## Per-layer overflow (test split)", "",
         "| method | mode | layer | fan-in | overflow (%) | mean error (LSB) | mean excess (LSB) |",
         "|---|---|---|---:|---:|---:|---:|"]
    for key, label, b in (("ovf", "dense, overflow sim", 8), ("collab", "full method", 8),
                          ("collab", "full method", 6)):
        for m in MODES:
            c = cells.get((key, b, m, seeds[0]))
            if c is None or c[0] not in res:
                continue
            t = res[c[0]]["test"].get(f"{b}{m[0]}")
            for o in (t or {}).get("overflow", []):
                L.append(f"| {label}, N={b} | {m} | {o['layer']} | {o['fan_in']} | {100 * o['overflow_fraction']:.2f} | "
                         f"{o['mean_overflow_error']:.1f} | {o['mean_excess']:.3f} |")
    L.append("")
    return L


def plot(res: dict, cells: dict, path: Path, bits, modes, seeds, rows) -> None:
    """Accuracy against N, one panel per overflow mode, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4.2), sharey=True, squeeze=False)
    base = {k: cell_value(res, cells, f"baseline:{k}", 32, "wrap", seeds)[0] for k in BASELINES}
    for ax, m in zip(axes[0], modes, strict=True):
        for row in rows:
            ys = [cell_value(res, cells, row.key, b, m, seeds)[0] for b in bits]
            xs = [b for b, y in zip(bits, ys, strict=True) if y is not None]
            ys = [100 * y for y in ys if y is not None]
            if xs:
                ax.plot(xs, ys, marker="o", label=row.label)
        for k, v in base.items():
            if v is not None:
                ax.axhline(100 * v, linestyle="--", linewidth=1, color="gray" if k == "dscnn" else "silver",
                           label=f"{k} (float)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(bits))
        ax.set_xticklabels([str(b) for b in bits])
        ax.set_xlabel("accumulator bits N")
        ax.set_title(f"{m}")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
