"""Accelerator benchmark, the computing half: which results it reads, every row's cost on the
modelled accelerators (tools/bench/accelerator_model.py: bit-operations, cycles, compute-logic
area, clock, latency, energy proxy, memory), accuracy from the ablation's saved results
(generator/training/ablation.py), Cortex-M4 instructions (tools/bench/mcu.py), ours against
each baseline and the sensitivity to the accelerator's assumptions. The page and the plot
are written by tools/bench/accelerator_report.py.

Rows:

* ``base``: the dense preset, 32-bit accumulators, standard batch norm (a multiplier per
  output): the conventional BNN accelerator (``dense-fbn-plain-32w``).
* ``base-thr``: the same network with BN + sign folded into one threshold per channel
  (FINN style), 32-bit accumulators. Same trained network and accuracy as ``base``.
* ``safe``: the structured network with 32-bit training (``structured-sbn-plain-32w``),
  each layer at the least accumulator width its certificate proves can never overflow
  (generator/integer/certificate.py; as A2Q would guarantee), thresholds: the strongest
  non-overflowing baseline. Never overflowing, it computes exactly what the 32-bit
  deployment computes, so its accuracy is that job's.
* ``struct32``: the structured preset with shift-BN at 32 bits.
* ``ours-N{n}{w|s}``: the full method (structured + collaborative training) at N bits.
* the ten literature methods (generator/training/kws_zoo.py), int8 on the int8 MAC machine
  with as many MAC units as the BNN array has PEs (equal PE count; equal area in the
  sensitivity table); accuracy float and int8-simulated.

Costs depend only on layer shapes and widths, so they come from the trainer's presets; where
a checkpoint of the job is present its exported integer model is costed too and must
give the same numbers.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from bnnkws.generator.base.errors import BnnkwsError
from bnnkws.generator.integer.intmodel import ConvLayer, IntegerModel
from bnnkws.tools.bench.accelerator_model import (
    AcceleratorConfig,
    MacLayer,
    ModelCost,
    baseline_config,
    mac_hardware,
    mac_model_cost,
    model_cost,
)

PAPER_COMPUTATION = 0.491  # "more than 49.1% less on-chip computation"
PAPER_SPEED = 0.21  # "at least 21.0% more speed": latency_other / latency_ours - 1 >= 0.21
MAX_LOSS = 0.01  # "without significant accuracy loss": at most 1 point
BITS = (6, 8, 10, 12, 16)
HEADLINE_BITS = 8
N_CLASSES = 10  # silence, unknown and the 8 keywords of the ablation


# --------------------------------------------------------------------------------------
# Which ablation results the comparison reads
# --------------------------------------------------------------------------------------
def needed_jobs(bits=BITS, modes=("wrap",), seeds=(0,)) -> tuple[list, dict]:
    """(ablation jobs, cells) for the rows here: the 32-bit dense float-BN BNN, the 32-bit
    structured SBN BNN, the full method at each N and mode, and the float baselines."""
    from bnnkws.generator.training import ablation

    rows = tuple(r for r in ablation.ROWS if r.key in ("ovf", "struct", "collab"))
    jobs, cells = ablation.plan(
        tuple(sorted(set(bits) | {32})),
        tuple(modes),
        tuple(seeds),
        rows,
        baselines=ablation.ZOO,
        components=False,
    )
    keep = {}
    for (key, b, m, s), cell in cells.items():
        if key == "collab" or key.startswith("baseline:") or (b == 32 and m == "wrap"):
            keep[(key, b, m, s)] = cell
    names = {c[0] for c in keep.values()}
    return [j for j in jobs if j.name in names], keep


def accuracy(res: dict, cells: dict, key: str, bits: int, mode: str, seeds=(0,)) -> float | None:
    from bnnkws.generator.training.ablation import cell_value

    return cell_value(res, cells, key, bits, mode, seeds)[0]


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------
def preset_model(preset: str, bits: int, mode: str, n_classes: int = N_CLASSES) -> IntegerModel:
    from bnnkws.tools.bench.mcu import preset_model as mcu_preset

    return mcu_preset(preset, bits, mode, n_classes)


def checkpoint_model(path: Path, bits: int, mode: str) -> IntegerModel:
    """The integer model of a trained BNN checkpoint deployed at (bits, mode)."""
    from bnnkws.generator.export.to_integer import to_integer_model
    from bnnkws.generator.training.checkpoint import load_checkpoint

    model, _ = load_checkpoint(path)
    model.set_accumulator(bits=bits, mode=mode)
    return to_integer_model(model)


def mac_layers(model) -> tuple[list[MacLayer], int]:
    """The int8 view of a float network (generator/training/kws_zoo.py mac_layers) as MAC
    layers, and the number of input values."""
    from bnnkws.generator.training.kws_zoo import mac_layers as zoo_layers

    cfg = model.config
    return [MacLayer(**d) for d in zoo_layers(model)], cfg["n_frames"] * cfg["n_mels"]


def safe_width_model(model: IntegerModel) -> IntegerModel:
    """`model` with every conv layer at the least accumulator width its certificate proves
    overflow-free for every input (wrap: no overflow, so the mode never acts)."""
    from bnnkws.generator.integer.certificate import model_certificate

    certs = iter(model_certificate(model))
    layers = []
    for layer in model.layers:
        if isinstance(layer, ConvLayer):
            layer = replace(layer, acc_bits=max(4, next(certs).min_bits), acc_mode="wrap")
        layers.append(layer)
    return replace(model, layers=layers)


def float_model(kind: str, n_classes: int = N_CLASSES):
    import torch

    from bnnkws.generator.training.model import build_model, float_config

    torch.manual_seed(0)
    return build_model(float_config(kind, n_classes))


# --------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------
@dataclass
class Entry:
    key: str
    label: str
    family: str  # bnn | int8
    cost: ModelCost
    accuracy: float | None = None
    job: str | None = None  # ablation job of the accuracy
    bits: int | None = None
    mode: str | None = None
    model: IntegerModel | None = field(default=None, repr=False)
    checked: bool = False  # cost equal to the trained checkpoint's integer model
    mcu: int | None = None  # Cortex-M4 instructions per inference
    short: str = ""  # column heading
    detail: str = ""  # what a model file is (file name, preset)
    float_acc: float | None = None  # int8 rows: the float model's accuracy
    published: tuple[float, str] | None = None  # int8 rows: (accuracy %, where)
    params: int | None = None
    macs: int | None = None

    @property
    def bn(self) -> str:
        units = {layer.output_unit for layer in self.cost.layers if layer.output_unit}
        if self.family == "int8":
            return "requant. multiplier"
        if "multiplier" in units:
            return "multiplier (standard BN)"
        return "comparator (thresholds) + shifter (scores)"


def _costed(
    model: IntegerModel,
    cfg: AcceleratorConfig,
    results: Path | None,
    job: str | None,
    bits: int,
    mode: str,
) -> tuple[ModelCost, bool]:
    cost = model_cost(model, cfg)
    ckpt = results / "checkpoints" / f"{job}.pt" if results is not None and job else None
    if ckpt is None or not ckpt.is_file():
        return cost, False
    trained = model_cost(checkpoint_model(ckpt, bits, mode), cfg)
    if trained.summary() != cost.summary():
        raise ValueError(f"{ckpt}: its integer model costs differently from the trainer preset's")
    return cost, True


LABELS = {  # key: (row label, column heading)
    "base": ("BNN dense, 32-bit acc., standard BN", "base"),
    "base-thr": ("BNN dense, 32-bit acc., BN folded to thresholds (FINN)", "base, thresholds"),
    "safe": ("BNN structured, per-layer minimal safe widths (certificate)", "minimal safe"),
    "struct32": ("BNN structured, 32-bit acc., SBN thresholds", "structured 32-bit"),
}


def build_entries(
    res: dict,
    cells: dict,
    cfg: AcceleratorConfig,
    bits=BITS,
    modes=("wrap",),
    results: Path | None = None,
    n_classes: int = N_CLASSES,
    methods: tuple[str, ...] | None = None,
) -> list[Entry]:
    """Every row of the comparison, accuracy where the results hold it."""
    from bnnkws.generator.training import ablation, kws_zoo

    entries: list[Entry] = []

    def job(cell: str, b: int, m: str) -> str | None:
        found = cells.get((cell, b, m, 0))
        return found[0] if found else None

    def bnn(key: str, cell: str, model: IntegerModel, c: AcceleratorConfig, b: int, m: str) -> None:
        label, short = LABELS.get(key) or (f"ours (full method), N={b} {m}", f"ours N={b} {m}")
        cost, ok = _costed(model, c, results, job(cell, b, m), b, m)
        acc = accuracy(res, cells, cell, b, m)
        entries.append(
            Entry(key, label, "bnn", cost, acc, job(cell, b, m), b, m, model, ok, short=short)
        )

    dense = preset_model("dense", 32, "wrap", n_classes)
    bnn("base", "ovf", dense, baseline_config(cfg), 32, "wrap")
    bnn("base-thr", "ovf", dense, replace(cfg, acc_bits=32, bn_unit="comparator"), 32, "wrap")
    structured = preset_model("structured", 32, "wrap", n_classes)
    s32 = job("struct", 32, "wrap")
    ckpt = results / "checkpoints" / f"{s32}.pt" if results is not None and s32 else None
    trained = ckpt is not None and ckpt.is_file()
    safe = safe_width_model(checkpoint_model(ckpt, 32, "wrap") if trained else structured)
    entries.append(
        Entry(
            "safe",
            LABELS["safe"][0],
            "bnn",
            model_cost(safe, cfg),
            accuracy(res, cells, "struct", 32, "wrap"),
            s32,
            max(la.acc_bits for la in safe.layers if isinstance(la, ConvLayer)),
            "wrap",
            safe,
            trained,
            short=LABELS["safe"][1],
            detail="trained checkpoint" if trained else "untrained preset",
        )
    )
    bnn("struct32", "struct", structured, replace(cfg, acc_bits=32), 32, "wrap")
    for m in modes:
        for b in sorted(bits):
            bnn(
                f"ours-N{b}{m[0]}", "collab", preset_model("structured", b, m, n_classes), cfg, b, m
            )
    for kind in methods if methods is not None else ablation.ZOO:
        model = float_model(kind, n_classes)
        layers, n_in = mac_layers(model)
        cell = f"baseline:{kind}"
        name, acc, where = kws_zoo.PUBLISHED[kind]
        found = res.get(job(cell, 32, "wrap") or "", {}).get("test", {})
        entries.append(
            Entry(
                kind,
                f"{name}, int8",
                "int8",
                mac_model_cost(layers, n_in, cfg),
                (found.get("int8") or {}).get("accuracy"),
                job(cell, 32, "wrap"),
                short=name,
                float_acc=(found.get("32w") or {}).get("accuracy"),
                published=(acc, where),
                params=kws_zoo.count_params(model),
                macs=sum(la.macs for la in layers),
            )
        )
    return entries


def file_entry(path: Path, cfg: AcceleratorConfig) -> Entry:
    """A row for a model file (blob or checkpoint), e.g. the shipped default model, with the
    test accuracy its own metrics record (a checkpoint's ``metrics["test"]``), if any."""
    from bnnkws.generator.export.loading import load_any

    model = load_any(path).model
    test = (model.meta.get("metrics") or {}).get("test")
    acc = test.get("accuracy") if isinstance(test, dict) else None
    preset = model.meta.get("preset")
    detail = f"`{Path(path).name}`" + (f", {preset} preset" if preset else "")
    cost = model_cost(model, cfg)
    label = f"default model ({detail}, its own training)"
    return Entry(
        "default", label, "bnn", cost, acc, model=model, short="default model", detail=detail
    )


def headline_bits(entries: list[Entry], mode: str, base_acc: float | None) -> int:
    """N = 8, or the smallest N whose accuracy is within 1 point of the 32-bit baseline when
    N = 8 is not; 8 when nothing is measured or nothing is within 1 point."""
    ours = {e.bits: e.accuracy for e in entries if e.key.startswith("ours-") and e.mode == mode}
    if base_acc is None or ours.get(HEADLINE_BITS) is None:
        return HEADLINE_BITS
    ok = sorted(b for b, a in ours.items() if a is not None and a >= base_acc - MAX_LOSS - 1e-12)
    if HEADLINE_BITS in ok or not ok:
        return HEADLINE_BITS
    return ok[0]


def saving(new: float, old: float) -> float:
    """Fraction saved going from old to new (0.3 = 30% less)."""
    return 1.0 - new / old if old else 0.0


def speedup(ours: ModelCost, other: ModelCost) -> float:
    """How much faster ours is: latency_other / latency_ours - 1 (0.21 = 21% more speed)."""
    return other.latency_us() / ours.latency_us() - 1.0


@dataclass
class Versus:
    """Ours against one other row: savings are fractions of the other's figure."""

    other: Entry
    area: float  # compute-logic area saved
    bitops: float  # bit-operations saved
    speed: float  # speedup()
    acc_diff: float | None  # ours - other (the other's deployed accuracy), None if unmeasured
    p_value: float | None = None  # two-proportion z-test of the difference

    @property
    def meets(self) -> dict[str, bool | None]:
        return {
            "area": self.area > PAPER_COMPUTATION,
            "bitops": self.bitops > PAPER_COMPUTATION,
            "speed": self.speed >= PAPER_SPEED,
            "accuracy": None if self.acc_diff is None else self.acc_diff >= -MAX_LOSS - 1e-12,
        }


def two_proportion_p(a: float, b: float, n: int) -> float:
    """Two-sided p-value of a difference of two accuracies each measured on n clips."""
    pooled = (a + b) / 2
    se = math.sqrt(max(2 * pooled * (1 - pooled) / max(n, 1), 1e-300))
    z = abs(a - b) / se
    return math.erfc(z / math.sqrt(2))


def versus(ours: Entry, other: Entry, n_test: int | None = None) -> Versus:
    acc = None
    p = None
    if ours.accuracy is not None and other.accuracy is not None:
        acc = ours.accuracy - other.accuracy
        p = two_proportion_p(ours.accuracy, other.accuracy, n_test) if n_test else None
    return Versus(
        other,
        saving(ours.cost.hw.compute_ge, other.cost.hw.compute_ge),
        saving(ours.cost.bitops, other.cost.bitops),
        speedup(ours.cost, other.cost),
        acc,
        p,
    )


def equal_area_config(
    ours: ModelCost, cfg: AcceleratorConfig, layers: list[MacLayer]
) -> AcceleratorConfig:
    """The int8 MAC machine with as many MAC units (each with its requantisation unit) as fit
    in the compute-logic area of ours' array (at least one)."""
    one = mac_hardware(layers, replace(cfg, pe_rows=1, output_units=None))
    units = max(1, int(ours.hw.compute_ge // one.compute_ge))
    return replace(cfg, pe_rows=units, output_units=None)


SENSITIVITY = (
    ("none (the parameters above)", {}),
    ("prefix (Sklansky) adders instead of ripple", {"adder": "prefix"}),
    ("no pipeline register (popcount and accumulate in one cycle)", {"pipeline": False}),
    ("full adder 4.5 GE (the low end of the textbook range)", {"fa": 4.5}),
    ("64-element lanes", {"lane": 64}),
    ("32 PEs / MAC units", {"pe_rows": 32}),
    ("one output unit shared by the array", {"output_units": 1}),
    ("output unit overlapped with the next accumulation", {"overlap_output": True}),
    (
        "int8 machine with the area of ours' array (equal area: as many MAC units as fit)",
        {"equal_area": True},
    ),
)


@dataclass
class SensitivityRow:
    label: str
    vs: dict[str, Versus]  # key of the other row -> ours against it


def sensitivity(
    ours: Entry, others: list[Entry], cfg: AcceleratorConfig, n_classes: int = N_CLASSES
) -> list[SensitivityRow]:
    """Ours against each of `others` when one assumption of the accelerators changes; every
    row costs every model again under the changed assumption (the int8 rows with equal PE
    count, except the equal-area row)."""
    rows = []
    mac_cache: dict[str, tuple[list[MacLayer], int]] = {}
    for label, change in SENSITIVITY:
        change = dict(change)
        equal_area = change.pop("equal_area", False)
        if "fa" in change:
            change = {"lib": replace(cfg.lib, fa=change.pop("fa"))}
        c = replace(cfg, **change)
        mine = replace(ours, cost=model_cost(ours.model, c))
        vs = {}
        for e in others:
            if e.family == "int8":
                if e.key not in mac_cache:
                    mac_cache[e.key] = mac_layers(float_model(e.key, n_classes))
                layers, n_in = mac_cache[e.key]
                cc = equal_area_config(mine.cost, c, layers) if equal_area else c
                cost = mac_model_cost(layers, n_in, cc)
            else:
                if equal_area:
                    continue
                cc = baseline_config(c) if e.key == "base" else c
                if e.key == "base-thr":
                    cc = replace(c, acc_bits=32, bn_unit="comparator")
                elif e.key == "struct32":
                    cc = replace(c, acc_bits=32)
                cost = model_cost(e.model, cc)
            vs[e.key] = versus(mine, replace(e, cost=cost))
        rows.append(SensitivityRow(label, vs))
    return rows


# --------------------------------------------------------------------------------------
# Cortex-M4
# --------------------------------------------------------------------------------------
def measure_mcu(entries: list[Entry], keys: list[str], build_root: Path, log=print) -> str:
    """Cortex-M4 instructions per inference (QEMU, tools/bench/mcu.py) of the BNN rows in
    `keys`, into Entry.mcu. Returns "" or why nothing was measured."""
    import shutil

    if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
        return "qemu-system-arm or arm-none-eabi-gcc not installed: Cortex-M4 figures not measured"
    from bnnkws.generator.export import blob
    from bnnkws.tools.bench.mcu import McuCase, measure

    done: dict[str, int] = {}
    for e in entries:
        if e.key not in keys or e.model is None:
            continue
        h = blob.model_hash(blob.to_bytes(e.model))
        if h not in done:
            log(f"bench accelerator: {e.key} on the emulated Cortex-M4 ...")
            try:
                # every window computed whole (FULL_WINDOW), as the accelerator model counts an
                # inference; 3 s of audio: the measurement's warm-up takes 2
                r = measure(McuCase(e.key, e.label, e.model), build_root, 3.0)
                done[h] = r.full_window or r.instructions
            except (BnnkwsError, RuntimeError, OSError) as exc:  # the page says so, the rest stands
                for other in entries:
                    other.mcu = None
                first = str(exc).strip().splitlines()[0][:300]
                return f"Cortex-M4 figures not measured: {e.key} failed ({type(exc).__name__}: {first})"
        e.mcu = done[h]
    return ""


# --------------------------------------------------------------------------------------
# The result the page is written from
# --------------------------------------------------------------------------------------
@dataclass
class Report:
    entries: list[Entry]
    config: AcceleratorConfig
    modes: tuple[str, ...]
    command: str
    quick: bool = False
    results: str = ""
    training: str = ""  # how the accuracies were trained, from the results
    missing: list[str] = field(default_factory=list)  # jobs without results
    mcu_note: str = ""
    sensitivity: list[SensitivityRow] = field(default_factory=list)
    n_test: int | None = None  # test clips of the accuracies

    def get(self, key: str) -> Entry | None:
        return next((e for e in self.entries if e.key == key), None)

    @property
    def base(self) -> Entry:
        e = self.get("base")
        assert e is not None
        return e

    def headline(self, mode: str) -> Entry:
        b = headline_bits(self.entries, mode, self.base.accuracy)
        e = self.get(f"ours-N{b}{mode[0]}")
        assert e is not None
        return e

    @property
    def methods(self) -> list[Entry]:
        return [e for e in self.entries if e.family == "int8"]

    def versus(self, ours: Entry, key: str) -> Versus:
        other = self.get(key)
        assert other is not None
        return versus(ours, other, self.n_test)


def count_test_clips(res: dict) -> int | None:
    """Test clips of the saved results (the same split for every job)."""
    return next(
        (t["n"] for r in res.values() for t in r.get("test", {}).values() if "n" in t), None
    )


def training_note(res: dict, jobs: list[str]) -> str:
    """How the results used were trained (epochs, training clips, device), from their settings."""
    seen = set()
    for name in jobs:
        r = res.get(name)
        if r is None:
            continue
        s = r.get("settings", {})
        n = r.get("history") and r["history"][-1].get("epoch")
        clips = f"{s['subset']} training clips" if s.get("subset") else "all training clips"
        seen.add(f"{s.get('epochs', n)} epochs, {clips}, {s.get('device', '?')}")
    root = next((r["settings"]["data"]["root"] for r in res.values() if "settings" in r), None)
    if root and os.path.isabs(root):  # no machine paths in the page
        root = os.path.relpath(root)
    where = f"data `{root}`" if root else "no data"
    return f"{where}; trainings: " + "; ".join(sorted(seen)) if seen else "no results"
