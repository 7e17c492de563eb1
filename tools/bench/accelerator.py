"""Accelerator benchmark: on-chip computation, cycles and memory of our BNN against the
baselines on the modelled accelerator (tools/bench/accelerator_model.py), with accuracy from the
training ablation (generator/training/ablation.py) and Cortex-M4 instructions from the firmware
benchmark (tools/bench/mcu.py), written as docs/ACCELERATOR.md and docs/accelerator.png.

Rows, from the conventional BNN to ours, one change at a time:

* ``base``: the dense preset, 32-bit accumulators, standard batch norm (a multiplier per
  output): the conventional BNN accelerator. Accuracy: ablation job
  ``dense-fbn-plain-32w`` (float BN, trained and deployed at 32 bits).
* ``base-thr``: the same network with BN + sign folded into one threshold per channel
  (FINN-style), still 32-bit accumulators: what a designer gets without our method.
  Same trained network and accuracy as ``base``.
* ``struct32``: the structured preset ({0,1} activations, class-grouped last layer) with
  shift-BN, 32-bit accumulators (``structured-sbn-plain-32w``).
* ``ours-N{n}{w|s}``: the full method (structured + collaborative training) at N bits,
  wrap or saturate (``structured-sbn-collab-{n}{w|s}``).
* ``dscnn``, ``tcresnet8``: the float baselines (DS-CNN as in MLPerf Tiny, TC-ResNet8),
  costed as int8 networks on an int8 MAC accelerator with as many MAC units as the BNN
  array has PEs; accuracy of the float model.

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
from bnnkws.generator.integer.intmodel import IntegerModel
from bnnkws.tools.bench.accelerator_model import (
    AcceleratorConfig,
    MacLayer,
    ModelCost,
    baseline_config,
    mac_model_cost,
    model_cost,
)

PAPER_COMPUTATION = 0.491  # "more than 49.1% less on-chip computation"
PAPER_SPEED = 0.21  # "at least 21.0% more speed": here, fewer cycles
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
    """The int8 view of a float baseline (DS-CNN, TC-ResNet8): its conv and linear layers as
    MAC layers (batch norm and ReLU folded into the requantisation, as TFLite does), the
    global average pool and the residual additions as plain additions. Returns the layers
    and the number of input values."""
    import torch
    from torch import nn

    from bnnkws.generator.training.model import _TCBlock

    out: list[MacLayer] = []

    def hook(mod, inp, res):
        name, n_in, n_out = type(mod).__name__, inp[0].numel(), res.numel()
        io = {"in_values": n_in, "out_values": n_out}
        if isinstance(mod, nn.Conv1d | nn.Conv2d):
            k = math.prod(mod.kernel_size) * (mod.in_channels // mod.groups)
            kind = "dwconv" if 1 < mod.groups == mod.in_channels else "conv"
            out.append(
                MacLayer(name, kind, n_out * k, n_out, mod.weight.numel(), mod.out_channels, **io)
            )
        elif isinstance(mod, nn.Linear):
            macs = mod.in_features * mod.out_features
            out.append(
                MacLayer(name, "fc", macs, n_out, mod.weight.numel(), mod.out_features, **io)
            )
        elif isinstance(mod, _TCBlock):  # y + skip: one addition and one requantisation per value
            out.append(
                MacLayer(
                    "residual", "add", 0, n_out, adds=n_out, in_values=2 * n_out, out_values=n_out
                )
            )
        elif mod is model.blocks:  # global average pool: sums, then one scaling per channel
            c = res.shape[1]
            out.append(
                MacLayer("avgpool", "avgpool", 0, c, adds=n_out, in_values=n_out, out_values=c)
            )

    hooks = [m.register_forward_hook(hook) for m in model.modules()]
    was = model.training
    model.eval()
    cfg = model.config
    try:
        with torch.no_grad():
            model(torch.zeros(1, cfg["n_frames"], cfg["n_mels"]))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return out, cfg["n_frames"] * cfg["n_mels"]  # layers in execution order


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
    "base-thr": ("BNN dense, 32-bit acc., BN folded to thresholds", "base, thresholds"),
    "struct32": ("BNN structured, 32-bit acc., SBN thresholds", "structured 32-bit"),
    "dscnn": ("DS-CNN (MLPerf Tiny shape), int8", "DS-CNN int8"),
    "tcresnet8": ("TC-ResNet8, int8", "TC-ResNet8 int8"),
}


def build_entries(
    res: dict,
    cells: dict,
    cfg: AcceleratorConfig,
    bits=BITS,
    modes=("wrap",),
    results: Path | None = None,
    n_classes: int = N_CLASSES,
) -> list[Entry]:
    """Every row of the comparison, accuracy where the results hold it."""
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
    bnn("struct32", "struct", structured, replace(cfg, acc_bits=32), 32, "wrap")
    for m in modes:
        for b in sorted(bits):
            bnn(
                f"ours-N{b}{m[0]}", "collab", preset_model("structured", b, m, n_classes), cfg, b, m
            )
    for kind in ("dscnn", "tcresnet8"):
        layers, n_in = mac_layers(float_model(kind, n_classes))
        cell = f"baseline:{kind}"
        acc = accuracy(res, cells, cell, 32, "wrap")
        cost = mac_model_cost(layers, n_in, cfg)
        label, short = LABELS[kind]
        entries.append(Entry(kind, label, "int8", cost, acc, job(cell, 32, "wrap"), short=short))
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


def sensitivity(
    ours: IntegerModel, base: IntegerModel, cfg: AcceleratorConfig
) -> list[tuple[str, float, float]]:
    """(assumption, computation saving, cycle saving) of ours against the 32-bit multiplier-BN
    baseline when one assumption of the accelerator changes."""
    changes = (
        ("none (the parameters above)", {}),
        ("output unit overlapped with the next accumulation", {"overlap_output": True}),
        (f"one output unit shared by the {cfg.pe_rows} PEs", {"output_units": 1}),
        ("single-cycle (pipelined) BN multiplier", {"mult_cycles": 1}),
        (f"{2 * cfg.lane}-element lanes", {"lane": 2 * cfg.lane}),
        (f"{2 * cfg.pe_rows} PEs", {"pe_rows": 2 * cfg.pe_rows}),
    )
    out = []
    for label, change in changes:
        c = replace(cfg, **change)
        a, b = model_cost(ours, c), model_cost(base, baseline_config(c))
        out.append((label, saving(a.bitops, b.bitops), saving(a.cycles, b.cycles)))
    return out


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
                done[h] = measure(McuCase(e.key, e.label, e.model), build_root, 1.5).instructions
            except (BnnkwsError, RuntimeError, OSError) as exc:  # the page says so, the rest stands
                for other in entries:
                    other.mcu = None
                first = str(exc).strip().splitlines()[0][:300]
                return f"Cortex-M4 figures not measured: {e.key} failed ({type(exc).__name__}: {first})"
        e.mcu = done[h]
    return ""


# --------------------------------------------------------------------------------------
# Report
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
    sensitivity: list[tuple[str, float, float]] = field(default_factory=list)

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


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _m(v: int) -> str:
    return f"{v / 1e6:.2f}"


def _k(v: int) -> str:
    return f"{v / 1e3:.1f}"


def _rel(new: float, old: float, same: bool = False) -> str:
    return "–" if same else f"{-100 * saving(new, old):+.1f}%"


def _verdict(ok: bool, short: str) -> str:
    return "**met**" if ok else f"**not met** ({short})"


def targets_table(r: Report) -> list[str]:
    base = r.base
    L = [
        "| target (against the 32-bit BNN with standard BN) | required | "
        + " | ".join(f"ours N={r.headline(m).bits} {m}" for m in r.modes)
        + " |",
        "|---|---|" + "---|" * len(r.modes),
    ]
    comp, cyc, acc = [], [], []
    for m in r.modes:
        e = r.headline(m)
        s = saving(e.cost.bitops, base.cost.bitops)
        comp.append(
            f"{100 * s:.1f}% less: "
            + _verdict(s >= PAPER_COMPUTATION, f"{100 * (PAPER_COMPUTATION - s):.1f} points short")
        )
        s = saving(e.cost.cycles, base.cost.cycles)
        cyc.append(
            f"{100 * s:.1f}% fewer: "
            + _verdict(s >= PAPER_SPEED, f"{100 * (PAPER_SPEED - s):.1f} points short")
        )
        if e.accuracy is None or base.accuracy is None:
            acc.append("not measured")
        else:
            d = e.accuracy - base.accuracy
            acc.append(
                f"{100 * d:+.1f} points: "
                + _verdict(d >= -MAX_LOSS, f"{100 * (-d - MAX_LOSS):.1f} points over")
            )
    L.append(
        "| on-chip computation (bit-operations) | at least 49.1% less | " + " | ".join(comp) + " |"
    )
    L.append("| cycles per inference | at least 21% fewer | " + " | ".join(cyc) + " |")
    L.append("| test accuracy | at most 1 point lower | " + " | ".join(acc) + " |")
    return L


def comparison_table(r: Report) -> list[str]:
    base = r.base
    L = [
        "| model | BN / output unit | test acc. (%) | on-chip computation (M bit-ops) | vs base | "
        "cycles | vs base | latency at "
        + f"{r.config.clock_mhz:g} MHz (us) | parameter memory (kbit) | "
        "memory accesses | Cortex-M4 instr. |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in r.entries:
        c = e.cost
        L.append(
            f"| {e.label} | {e.bn} | {_pct(e.accuracy)} | {_m(c.bitops)} | "
            f"{_rel(c.bitops, base.cost.bitops, e is base)} | {c.cycles:,} | "
            f"{_rel(c.cycles, base.cost.cycles, e is base)} | {c.latency_us():,.1f} | "
            f"{_k(c.param_memory_bits)} | {c.mem_accesses:,} | {f'{e.mcu:,}' if e.mcu else '–'} |"
        )
    return L


BREAKDOWN = (
    ("bitops_products", "XNOR/AND gates (int8: 8x8 multipliers)"),
    ("bitops_popcount", "popcount trees and lane correction"),
    ("bitops_accumulate", "accumulator adders"),
    ("bitops_output", "output units (BN, thresholds, requantisation)"),
    ("bitops_other", "pooling ORs, plain additions"),
)


def breakdown_table(r: Report, keys: list[str]) -> list[str]:
    """Bit-operations, cycles and memory by part, one column per row of `keys`."""
    es = [e for e in (r.get(k) for k in keys) if e is not None]

    def head(what: str) -> list[str]:
        return [
            f"| {what} | " + " | ".join(e.short or e.label for e in es) + " |",
            "|---|" + "---:|" * len(es),
        ]

    def row(label: str, value) -> str:
        return f"| {label} | " + " | ".join(value(e.cost) for e in es) + " |"

    def total(attr: str):
        return lambda c: f"{c.total(attr):,}"

    L = head("bit-operations (M)")
    L += [row(label, lambda c, a=attr: _m(c.total(a))) for attr, label in BREAKDOWN]
    L.append(row("**total**", lambda c: f"**{_m(c.bitops)}**"))
    acc_out = ("bitops_accumulate", "bitops_output")
    L.append(
        row("accumulators + output units only", lambda c: _m(sum(c.total(a) for a in acc_out)))
    )
    L += [""] + head("cycles")
    L += [
        row("lane steps (XNOR-popcount-accumulate)", total("compute_cycles")),
        row("output units", total("output_cycles")),
        row("weight and parameter fetch", total("fetch_cycles")),
        row("pooling", total("other_cycles")),
        row("**total**", lambda c: f"**{c.cycles:,}**"),
    ]
    L += [""] + head("on-chip memory")
    L += [
        row("weights (bits)", total("weight_bits")),
        row("BN / threshold parameters (bits)", total("param_bits")),
        row("activation buffers (bits, ping-pong)", lambda c: f"{c.act_buffer_bits:,}"),
        row("accumulator registers (bits)", lambda c: f"{c.register_bits:,}"),
        row("memory accesses: weights + parameters", total("param_accesses")),
        row("memory accesses: activations", total("act_accesses")),
    ]
    return L


def per_layer_table(base: Entry, ours: Entry) -> list[str]:
    L = [
        "| layer | kind base / ours | lane steps base / ours | N base / ours | bit-ops base (M) | "
        "bit-ops ours (M) | cycles base | cycles ours |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for a, b in zip(base.cost.layers, ours.cost.layers, strict=True):
        n = f"{a.acc_bits} / {b.acc_bits}" if a.acc_bits else "–"
        kind = a.kind if a.kind == b.kind else f"{a.kind} / {b.kind}"
        L.append(
            f"| {a.name} | {kind} | {a.lane_steps:,} / {b.lane_steps:,} | {n} | {_m(a.bitops)} | "
            f"{_m(b.bitops)} | {a.cycles:,} | {b.cycles:,} |"
        )
    return L


def config_table(cfg: AcceleratorConfig) -> list[str]:
    rows = [
        (
            "PEs (output channels in parallel)",
            f"{cfg.pe_rows}",
            "int8 machine: as many 8x8 MAC units",
        ),
        ("lane: fan-in elements per PE per cycle", f"{cfg.lane}", "XNOR/AND + popcount tree width"),
        (
            "accumulator",
            "N bits per layer from the integer model (first layer 16); baselines 32",
            "wrap: N-bit adder; saturate: adder + clamp (2N)",
        ),
        ("int8 first layer", "bit-serial, 8 bit-planes per lane", "same for every BNN row"),
        ("output unit (ours)", "comparator per PE (thresholds), shifter for the scores", "1 cycle"),
        (
            "output unit (standard BN)",
            f"multiplier, {cfg.gamma_bits}-bit gamma, {cfg.mult_cycles} cycles",
            "iterative, 4 gamma bits per cycle",
        ),
        (
            "output units",
            "one per PE" if cfg.output_units is None else f"{cfg.output_units} shared",
            "overlapped with accumulation" if cfg.overlap_output else "run after the accumulation",
        ),
        (
            "on-chip memory access width",
            f"{cfg.mem_width} bits",
            "weights/parameters fetched once per layer",
        ),
        ("clock", f"{cfg.clock_mhz:g} MHz", "for latency only"),
    ]
    return ["| parameter | value | note |", "|---|---|---|"] + [
        f"| {a} | {b} | {c} |" for a, b, c in rows
    ]


def mcu_table(r: Report) -> list[str]:
    from bnnkws.tools.bench.mcu import PEER

    L = [
        "| model | accelerator cycles | accelerator bit-ops (M) | Cortex-M4 instructions / inference | "
        "M4 vs base |",
        "|---|---:|---:|---:|---:|",
    ]
    base = r.base.mcu
    for e in r.entries:
        if e.mcu is None:
            continue
        rel = _rel(e.mcu, base, e is r.base) if base else "–"
        L.append(f"| {e.label} | {e.cost.cycles:,} | {_m(e.cost.bitops)} | {e.mcu:,} | {rel} |")
    d = r.get("dscnn")
    if d is not None:
        L.append(
            f"| ARM CMSIS-NN int8 DS-CNN, MLPerf Tiny input 49x10 (peer figure, DESIGN.md) | – | – | "
            f"{PEER['instructions']:,} | – |"
        )
    return L


def mcu_note(r: Report) -> str:
    """What the Cortex-M4 figures say, from the measured rows: the architecture step (dense to
    structured, both 32-bit), the accumulator step (structured 32-bit to ours, same layers)
    and saturate over wrap."""

    def step(a: str, b: str) -> float | None:
        x, y = r.get(a), r.get(b)
        return saving(y.mcu, x.mcu) if x and y and x.mcu and y.mcu else None

    n = r.headline("wrap").bits if "wrap" in r.modes else HEADLINE_BITS
    parts = [
        "The firmware has no multiplier BN: it runs the standard-BN baseline as the same integer "
        "model with thresholds, so that row is the threshold program."
    ]
    for a, b, what in (
        ("base", "struct32", "the architecture alone (dense to structured, both 32-bit)"),
        ("struct32", f"ours-N{n}w", f"the accumulator alone (32 to {n} bits wrap, same layers)"),
        (f"ours-N{n}w", f"ours-N{n}s", f"saturate instead of wrap at N={n}"),
    ):
        v = step(a, b)
        if v is not None:
            parts.append(
                f"On the Cortex-M4, {what} changes the instruction count by {-100 * v:+.1f}%."
            )
    parts.append(
        "A 32-bit core has no narrow adders to save: what N changes there is what the kernels can "
        "do with it (firmware/bconv_*.c), not the width of an adder. The CMSIS-NN DS-CNN figure is "
        "for the MLPerf Tiny input (49 x 10 MFCC, 2.66 M MACs), not for the 49 x 40 DS-CNN costed "
        "above."
    )
    return " ".join(parts)


def format_doc(r: Report) -> str:
    base = r.base
    ours = [r.headline(m) for m in r.modes]
    title = "# Accelerator model: on-chip computation, cycles and memory against baselines"
    L = [
        title + (" (quick smoke run)" if r.quick else ""),
        "",
        f"Produced by `{r.command}` (tools/bench/accelerator.py, tools/bench/accelerator_model.py); do not edit by "
        "hand. Benchmark of a model, not a measurement of silicon: the numbers are what the analytic "
        "accelerator model below counts.",
        "",
    ]
    trained = any(e.job and e.accuracy is not None for e in r.entries)
    if r.quick:
        L += [
            "**Quick run:** "
            + (
                "accuracies come from smoke trainings (a few epochs on a subset) and mean nothing; "
                if trained
                else "no trainings, so no accuracies beyond a model file's own; "
            )
            + "the costs are exact for the architectures.",
            "",
        ]
    L += [
        "## Result against the paper's claim",
        "",
        "The paper reports more than 49.1% less on-chip computation and at least 21.0% more speed "
        "than 10 keyword-spotting methods without significant accuracy loss. Our target: the full "
        "method at N=8 (or the smallest N within 1 point of the 32-bit accuracy) against the "
        "32-bit-accumulator BNN with standard BN, on real speech.",
        "",
    ]
    L += targets_table(r) + [""]
    L += _shortfall(r) + [""]
    L += [
        "## All models",
        "",
        f"Accuracy: test split, {r.training or 'no results'}. Bit-operations, cycles, memory: one 1 s window "
        "(49 x 40 int8 features) on the accelerator below; int8 rows on the int8 MAC machine. "
        "'vs base' is relative to the first row.",
        "",
    ]
    L += comparison_table(r) + [""]
    L += [
        "Accuracy notes: the BNN accuracies are those of the deployed integer models (the ablation "
        "evaluates in the integer arithmetic), so the standard-BN baseline is measured with its hidden "
        "BN folded into exact thresholds and its score scales rounded to powers of two at export; an "
        "exact multiplier would change only that last rounding. The int8 rows carry the accuracy of "
        "the float model: their int8 quantisation is costed, not trained or measured."
        + (
            " The default model's accuracy is its own checkpoint's (a separate training: "
            "models/MODEL_CARD.md), not the ablation's."
            if r.get("default") is not None
            else ""
        ),
        "",
    ]
    if r.missing:
        L += [
            "Rows without accuracy lack these ablation results in `"
            + r.results
            + "`: "
            + ", ".join(f"`{j}`" for j in r.missing)
            + " (see 'Reproduce').",
            "",
        ]
    checked = [e.key for e in r.entries if e.checked]
    if checked:
        L += [
            f"Costs checked against the trained checkpoints' integer models: {', '.join(checked)}.",
            "",
        ]
    L += ["![accuracy against on-chip computation](accelerator.png)", ""]
    L += [
        "## Where the work goes",
        "",
        "Conventional BNN, the same network with thresholds, the structured 32-bit BNN and ours:",
        "",
    ]
    L += breakdown_table(r, ["base", "base-thr", "struct32"] + [e.key for e in ours]) + [""]
    L += [f"### Per layer: base against ours N={ours[0].bits} {ours[0].mode}", ""]
    L += per_layer_table(base, ours[0]) + [""]
    L += [
        "## The accelerator",
        "",
        "Parameters (`AcceleratorConfig` defaults, a small BNN accelerator; "
        "chosen before measuring and not tuned to the target):",
        "",
    ]
    L += config_table(r.config) + [""]
    L += ACCOUNTING + [""]
    if r.sensitivity:
        L += [
            f"### How the result depends on the assumptions (ours N={ours[0].bits} {ours[0].mode} against base)",
            "",
            "| assumption changed | computation saving | cycle saving |",
            "|---|---:|---:|",
        ]
        L += [f"| {a} | {100 * s:.1f}% | {100 * c:.1f}% |" for a, s, c in r.sensitivity] + [""]
        L += [_sensitivity_note(r.sensitivity), ""]
    L += ["## The same models on the Cortex-M4 (firmware)", ""]
    if any(e.mcu for e in r.entries):
        L += [
            "Instructions per inference of the firmware's kernels (firmware/bconv_*.c) on the emulated "
            "Cortex-M4 (QEMU `-icount shift=0`, tools/bench/mcu.py), beside the accelerator figures of the "
            "same integer model:",
            "",
        ]
        L += mcu_table(r) + [""]
        L += [mcu_note(r), ""]
    else:
        L += [r.mcu_note or "Not measured (`--no-mcu`).", ""]
    L += REPRODUCE + [""]
    return "\n".join(L)


def _sensitivity_note(rows: list[tuple[str, float, float]]) -> str:
    def which(col: int, target: float) -> str:
        met = [row[0] for row in rows if row[col] >= target]
        return "is met with: " + "; ".join(met) if met else "is met under none of them"

    always = all(row[1] > 0 and row[2] > 0 for row in rows)
    first = (
        "Ours needs less computation and fewer cycles under every one of these; " if always else ""
    )
    return (
        first + "the size of the saving moves with what the output units and the fetch weigh "
        f"against the lane steps. The 49.1% computation target {which(1, PAPER_COMPUTATION)}; the "
        f"21% cycle target {which(2, PAPER_SPEED)}. These rows show how much the conclusion depends "
        "on the assumptions; the result above is reported for the parameters in the table."
    )


def _against(a: float | None, b: float | None, form: str) -> str:
    """form filled with "test accuracy a% against b%", or "" when either is unknown."""
    if a is None or b is None:
        return ""
    return form.format(f"test accuracy {_pct(a)}% against {_pct(b)}%")


def _shortfall(r: Report) -> list[str]:
    base = r.base
    L = []
    for m in r.modes:
        e = r.headline(m)
        s_b, s_c = saving(e.cost.bitops, base.cost.bitops), saving(e.cost.cycles, base.cost.cycles)
        part_b = base.cost.total("bitops_accumulate") + base.cost.total("bitops_output")
        part_o = e.cost.total("bitops_accumulate") + e.cost.total("bitops_output")
        fixed = base.cost.total("bitops_products") + base.cost.total("bitops_popcount")
        L.append(
            f"- **{e.label}.** Computation {100 * s_b:.1f}% less, cycles {100 * s_c:.1f}% fewer. What "
            f"N and the BN unit change, the accumulators and output units, drops {100 * saving(part_o, part_b):.0f}% "
            f"({_m(part_b)} M to {_m(part_o)} M bit-ops); the XNOR gates and popcount trees, "
            f"{_m(fixed)} M bit-ops ({100 * fixed / base.cost.bitops:.0f}% of the baseline), are the same "
            "binary work in both and no accumulator width changes them."
        )
    c_base, c_ours = base.cost, r.headline(r.modes[0]).cost
    lane = c_ours.total("compute_cycles")
    L.append(
        f"- **Cycles** are set by the lane steps ({lane:,} of {c_ours.cycles:,} cycles for ours), which "
        "depend on the fan-in and the lane width, not on N; N and the BN unit only shorten the output "
        f"stage ({c_base.total('output_cycles'):,} to {c_ours.total('output_cycles'):,} cycles) and the "
        f"parameter fetch ({c_base.total('fetch_cycles'):,} to {c_ours.total('fetch_cycles'):,}). The "
        f"bit-serial int8 first layer alone takes {c_ours.layers[0].compute_cycles:,} cycles, the same "
        "in every BNN. Narrow accumulators would buy speed through what this model does not assume: "
        "more PEs in the area they save, or a BN multiplier that cannot keep up with the lane steps "
        "(the sensitivity table below shows both)."
    )
    struct = r.get("struct32")
    if struct is not None and struct.accuracy is not None and base.accuracy is not None:
        ok = [
            f"N={e.bits} {e.mode}"
            for e in r.entries
            if e.key.startswith("ours-")
            and e.accuracy is not None
            and e.accuracy >= struct.accuracy - MAX_LOSS - 1e-12
        ]
        L.append(
            f"- **Which 32-bit accuracy.** The target compares with the conventional BNN "
            f"({_pct(base.accuracy)}%). Our own structured network with 32-bit accumulators reaches "
            f"{_pct(struct.accuracy)}%; within 1 point of that: "
            + (", ".join(ok) if ok else "none of our rows")
            + ". The two references differ in structure and batch-norm kind, not in the accumulator."
        )
    d = r.get("default")
    if d is not None:
        acc = _against(d.accuracy, base.accuracy, ", {}")
        L.append(
            f"- **The shipped default model** ({d.detail}) is a different network from the ablation's "
            f"rows: {100 * saving(d.cost.bitops, base.cost.bitops):.1f}% less computation and "
            f"{100 * saving(d.cost.cycles, base.cost.cycles):.1f}% fewer cycles than the baseline{acc}. "
            "Its savings come mostly from its size, so it is not the headline comparison."
        )
    ours = r.headline(r.modes[0])
    parts = []
    for e in r.entries:
        if e.family != "int8":
            continue
        gap = _against(ours.accuracy, e.accuracy, " ({})")
        parts.append(
            f"{100 * saving(ours.cost.bitops, e.cost.bitops):.1f}% less computation and "
            f"{100 * saving(ours.cost.cycles, e.cost.cycles):.1f}% fewer cycles than {e.short}{gap}"
        )
    L.append(
        "- **Where we differ from the paper:** its baselines are 10 published methods with their own "
        "hardware figures; ours are one conventional BNN and two int8 CNNs on one analytic model. "
        f"Against the int8 CNNs, {ours.short} needs " + "; ".join(parts) + "."
    )
    return L


ACCOUNTING = [
    "Counting rules (tools/bench/accelerator_model.py): one bit-operation per XNOR/AND gate, per adder bit "
    "(a popcount tree over w inputs adds pairs level by level: 57 for w = 32), per multiplier "
    "partial-product bit (a x b), per barrel-shifter multiplexer bit and per OR. Per lane step a PE "
    "does lane XNORs, a popcount tree, a 7-bit correction (L - 2d, or 2a - popcount(x) with popcount(x) "
    "from a tree shared by the PEs reading the same input) and one N-bit accumulator add (2N when "
    "saturating). Standard BN per output: subtract mu (N), multiply by gamma (N x 16), add beta; "
    "threshold: an (N+1)-bit compare; scores: subtract, 5-stage barrel shift, add. The int8 MAC "
    "machine counts 64 per 8x8 product plus 32 per accumulate, and one 32 x 16 requantisation "
    "multiply per output value. Cycles: lane steps per PE block and output step, plus the output "
    "unit, plus fetching weights and parameters once per layer (no overlap).",
    "",
    "The firmware's kernels count the same elements, 32-element words, saturating adds, thresholds, "
    "shift-BN outputs and pooling ORs as this model (host library built with `BK_COUNT_OPS`, "
    "tests/test_accelerator.py).",
]


REPRODUCE = [
    "## Reproduce",
    "",
    "```",
    "bnnkws bench accuracy --data DATA --device cuda --jobs 4      # the ablation: runs/ablation/*.json",
    "bnnkws bench accelerator --results runs/ablation                # this page and the plot",
    "bnnkws bench accelerator --quick                                 # CI: smoke trainings (with --data) or costs only",
    "```",
    "",
    "`bench accelerator` reads the ablation's per-job results (`<results>/<job>.json`, checkpoints in "
    "`<results>/checkpoints/`); with `--data` it trains the jobs it needs that are missing (same "
    "settings and names as `bench accuracy`): `dense-fbn-plain-32w-s0`, `structured-sbn-plain-32w-s0`, "
    "`structured-sbn-collab-{6,8,10,12,16}{w,s}-s0`, `dscnn-s0`, `tcresnet8-s0`.",
]


MARKERS = {  # key: (marker, colour)
    "base": ("s", "black"),
    "base-thr": ("D", "dimgray"),
    "struct32": ("^", "tab:green"),
    "default": ("*", "goldenrod"),
    "dscnn": ("P", "tab:red"),
    "tcresnet8": ("X", "tab:purple"),
}


def plot(r: Report, path: Path) -> None:
    """Accuracy against on-chip computation: every model on a log axis (left), the BNNs on a
    linear one (right); our N sweep as lines, the other rows as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    measured = [e for e in r.entries if e.accuracy is not None]
    mega = FuncFormatter(lambda v, _: f"{v / 1e6:g}")
    if len(measured) < 2:  # nothing to compare: one point per row, the first row on top
        es = r.entries
        fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.28 * len(es)))
        ax.plot([e.cost.bitops for e in es], range(len(es)), "o")
        ax.set_yticks(range(len(es)))
        ax.set_yticklabels([e.label for e in es], fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(mega)
        ax.set_xlabel("M bit-operations per inference (log scale)")
        ax.grid(True, alpha=0.3)
        ax.set_title("on-chip computation (no accuracy results to compare)")
        _save(fig, path)
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), width_ratios=(1, 1.3))
    for ax, zoom in zip(axes, (False, True), strict=True):
        for m, colour in zip(r.modes, ("tab:blue", "tab:orange"), strict=False):
            es = [e for e in measured if e.key.startswith("ours-") and e.mode == m]
            if not es:
                continue
            xs, ys = [e.cost.bitops for e in es], [100 * e.accuracy for e in es]
            ax.plot(xs, ys, "-o", color=colour, label=f"ours, {m}", markersize=4)
            if zoom:
                for e, x, y in zip(es, xs, ys, strict=True):
                    ax.annotate(
                        f"N={e.bits}",
                        (x, y),
                        textcoords="offset points",
                        xytext=(3, 3),
                        fontsize=6,
                        color=colour,
                    )
        for key, (mk, colour) in MARKERS.items():
            e = r.get(key)
            if e is None or e.accuracy is None or (zoom and e.family != "bnn"):
                continue
            ax.plot(
                [e.cost.bitops],
                [100 * e.accuracy],
                mk,
                color=colour,
                markersize=8,
                label=e.short or e.label,
            )
        ax.xaxis.set_major_formatter(mega)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("M bit-operations per inference" + ("" if zoom else " (log scale)"))
        ax.set_ylabel("test accuracy (%)")
    axes[0].set_xscale("log")
    axes[0].xaxis.set_major_formatter(mega)
    axes[0].set_title("all models")
    axes[1].set_title("the BNNs")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("accuracy against on-chip computation" + (" (quick run)" if r.quick else ""))
    _save(fig, path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
