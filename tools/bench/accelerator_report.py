"""Accelerator benchmark, the writing half: docs/ACCELERATOR.md and docs/accelerator.png from
the computed :class:`~bnnkws.tools.bench.accelerator.Report` (tools/bench/accelerator.py)."""

from __future__ import annotations

import statistics
from dataclasses import asdict
from pathlib import Path

from bnnkws.tools.bench.accelerator import (
    HEADLINE_BITS,
    MAX_LOSS,
    Entry,
    Report,
    Versus,
    saving,
)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _m(v: float) -> str:
    return f"{v / 1e6:.2f}"


def _k(v: float) -> str:
    return f"{v / 1e3:.1f}"


def _sv(v: float) -> str:
    """A saving as 'x% less' / 'x% more'."""
    return f"{100 * v:.1f}% less" if v >= 0 else f"{-100 * v:.1f}% more"


def _sp(v: float) -> str:
    return f"{100 * v:+.1f}%"


def _yes(ok: bool | None) -> str:
    return "–" if ok is None else ("**holds**" if ok else "**misses**")


def _acc(v: Versus) -> str:
    if v.acc_diff is None:
        return "not measured"
    p = f", p = {v.p_value:.2g}" if v.p_value is not None else ""
    return f"{100 * v.acc_diff:+.1f} points{p}"


# --------------------------------------------------------------------------------------
# The ten methods and the paper's claims
# --------------------------------------------------------------------------------------
def methods_table(r: Report) -> list[str]:
    L = [
        "| method | published acc. (%) | paper | our training: float (%) | int8 (%) | "
        "parameters | MACs (M) | compute area (kGE) | bit-ops (M) | cycles | fmax (MHz) | "
        "latency (us) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in r.methods:
        c = e.cost
        acc, where = e.published or (None, "")
        L.append(
            f"| {e.short} | {acc if acc is not None else '–'} | {where} | {_pct(e.float_acc)} | "
            f"{_pct(e.accuracy)} | {e.params:,} | {(e.macs or 0) / 1e6:.2f} | "
            f"{_k(c.hw.compute_ge)} | {_m(c.bitops)} | {c.cycles:,} | {c.hw.fmax_mhz:.0f} | "
            f"{c.latency_us():,.1f} |"
        )
    return L


def claims_table(r: Report, ours: Entry) -> list[str]:
    L = [
        f"| {ours.short} against | compute area | bit-operations | speed-up (latency) | "
        "accuracy (ours - int8 method) | >49.1% less computation (area / bit-ops) | "
        ">=21% more speed | no significant accuracy loss |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for e in r.methods:
        v = r.versus(ours, e.key)
        m = v.meets
        L.append(
            f"| {e.short} | {_sv(v.area)} | {_sv(v.bitops)} | {_sp(v.speed)} | {_acc(v)} | "
            f"{_yes(m['area'])} / {_yes(m['bitops'])} | {_yes(m['speed'])} | "
            f"{_yes(m['accuracy'])} |"
        )
    return L


def verdicts(r: Report, ours: Entry) -> list[str]:
    vs = [r.versus(ours, e.key) for e in r.methods]
    if not vs:
        return ["No literature method was costed."]
    n = len(vs)

    def count(key: str) -> int:
        return sum(1 for v in vs if v.meets[key])

    measured = [v for v in vs if v.acc_diff is not None]
    worst_area = min(vs, key=lambda v: v.area)
    worst_ops = min(vs, key=lambda v: v.bitops)
    worst_speed = min(vs, key=lambda v: v.speed)
    L = [
        f"- **More than 49.1% less on-chip computation than the {n} methods:** compute-logic "
        f"area {count('area')} of {n} ("
        + ("holds" if count("area") == n else "misses")
        + f"; smallest saving {_sv(worst_area.area)} against {worst_area.other.short}); "
        f"bit-operations {count('bitops')} of {n} ("
        + ("holds" if count("bitops") == n else "misses")
        + f"; smallest {_sv(worst_ops.bitops)} against {worst_ops.other.short}).",
        f"- **At least 21.0% more speed:** {count('speed')} of {n} ("
        + ("holds" if count("speed") == n else "misses")
        + f"; smallest speed-up {_sp(worst_speed.speed)} against {worst_speed.other.short}).",
    ]
    why = []
    for v in vs:
        if not v.meets["bitops"] or not v.meets["area"]:
            why.append(
                f"{v.other.short} does {(v.other.macs or 0) / 1e6:.2f} M int8 MACs "
                f"({_m(v.other.cost.bitops)} M bit-ops) against ours' {_m(ours.cost.bitops)} M "
                "bit-ops of binary work (mostly the int8 first layer and the popcount trees), "
                f"and its array is {_k(v.other.cost.hw.compute_ge)} kGE against ours' "
                f"{_k(ours.cost.hw.compute_ge)} kGE"
            )
        if not v.meets["speed"]:
            why.append(
                f"{v.other.short} takes {v.other.cost.cycles:,} cycles at "
                f"{v.other.cost.hw.fmax_mhz:.0f} MHz against ours' {ours.cost.cycles:,} at "
                f"{ours.cost.hw.fmax_mhz:.0f} MHz"
            )
    if why:
        L.append("- Why the misses on computation or speed: " + "; ".join(why) + ".")
    if measured:
        ok = sum(1 for v in measured if v.meets["accuracy"])
        sig = [v for v in measured if v.acc_diff < -MAX_LOSS and (v.p_value or 0) < 0.05]
        L.append(
            f"- **Without significant accuracy loss (at most 1 point below the method's int8 "
            f"accuracy):** {ok} of {len(measured)} measured ("
            + ("holds" if ok == len(measured) == n else "misses")
            + "); losses larger than 1 point that are also significant at 5% (two-proportion "
            f"test on {r.n_test or '?'} test clips): "
            + (", ".join(f"{v.other.short} ({100 * v.acc_diff:+.1f})" for v in sig) or "none")
            + ". Every method was trained with the same short budget as ours (the epochs above), "
            "so the gaps are those of this budget on this data, not the papers' converged figures."
        )
    else:
        L.append("- **Without significant accuracy loss:** not measured (no results).")
    return L


def closing_note(r: Report, ours: Entry) -> list[str]:
    vs = [r.versus(ours, e.key) for e in r.methods]
    parts = []
    for v in vs:
        acc = (
            f"accuracy {_pct(ours.accuracy)}% against {_pct(v.other.accuracy)}% int8"
            if v.acc_diff is not None
            else "accuracy not measured"
        )
        parts.append(
            f"{v.other.short}: area {_sv(v.area)}, bit-ops {_sv(v.bitops)}, "
            f"speed {_sp(v.speed)}, {acc}"
        )
    holds = bool(vs) and all(v.meets["area"] and v.meets["bitops"] and v.meets["speed"] for v in vs)
    measured = [v for v in vs if v.acc_diff is not None]
    short = [v.other.short for v in measured if not v.meets["accuracy"]]
    return [
        "## Closing note",
        "",
        f"Per method, {ours.short} against it: " + "; ".join(parts) + ".",
        "",
        "Do the paper's claims hold here? Computation and speed: "
        + (
            "yes, against all ten."
            if holds
            else "no, not against all ten (the tables above say which miss and by how much)."
        )
        + " Accuracy: "
        + (
            "not measured (no saved results)."
            if not measured
            else "no loss beyond 1 point against any measured method"
            + ("" if len(measured) == len(vs) else f" ({len(measured)} of {len(vs)} measured)")
            + "."
            if not short
            else "no: ours is more than 1 point below "
            + ", ".join(short)
            + ", so 'without significant accuracy loss' does not hold against all ten on this "
            "data and training budget."
        ),
    ]


# --------------------------------------------------------------------------------------
# The BNN baselines
# --------------------------------------------------------------------------------------
def bnn_table(r: Report) -> list[str]:
    L = [
        "| model | output unit | test acc. (%) | compute area (kGE) | accumulator width (array) | "
        "bit-ops (M) | cycles | fmax (MHz) | latency (us) | energy proxy (M GE-cycles) | "
        "memory moved (kbit) | parameter memory (kbit) | Cortex-M4 instr. |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in r.entries:
        if e.family != "bnn":
            continue
        c = e.cost
        L.append(
            f"| {e.label} | {e.bn} | {_pct(e.accuracy)} | {_k(c.hw.compute_ge)} | "
            f"{c.hw.acc_width} | {_m(c.bitops)} | {c.cycles:,} | {c.hw.fmax_mhz:.0f} | "
            f"{c.latency_us():,.1f} | {c.energy_logic / 1e6:,.1f} | {_k(c.mem_bits_moved)} | "
            f"{_k(c.param_memory_bits)} | {f'{e.mcu:,}' if e.mcu else '–'} |"
        )
    return L


def bnn_versus_table(r: Report, ours: Entry) -> list[str]:
    L = [
        f"| {ours.short} against | compute area | bit-operations | speed-up | energy proxy | accuracy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in ("base", "base-thr", "safe", "struct32"):
        e = r.get(key)
        if e is None:
            continue
        v = r.versus(ours, key)
        en = saving(ours.cost.energy_logic, e.cost.energy_logic)
        L.append(
            f"| {e.label} | {_sv(v.area)} | {_sv(v.bitops)} | {_sp(v.speed)} | {_sv(en)} | "
            f"{_acc(v)} |"
        )
    return L


AREA_PARTS = (
    "products (XNOR/AND)",
    "popcount trees",
    "int8 plane shift",
    "pipeline registers",
    "accumulator",
    "output units",
)


def hardware_tables(r: Report, keys: list[str]) -> list[str]:
    es = [e for e in (r.get(k) for k in keys) if e is not None]
    head = "| " + " | ".join(e.short or e.label for e in es) + " |"
    L = ["| compute-logic area (GE, whole array) " + head, "|---|" + "---:|" * len(es)]
    for part in AREA_PARTS:
        label = "8x8 multipliers (int8)" if part == "products (XNOR/AND)" else part
        label = "products: XNOR/AND gates, " + label if part == "products (XNOR/AND)" else label
        L.append(
            f"| {label} | " + " | ".join(f"{e.cost.hw.area.get(part, 0):,.0f}" for e in es) + " |"
        )
    L.append("| **total** | " + " | ".join(f"**{e.cost.hw.compute_ge:,.0f}**" for e in es) + " |")
    L.append(
        "| weight/parameter registers of the PEs (flip-flops; not in the total) | "
        + " | ".join(f"{e.cost.hw.buffer_ge:,.0f}" for e in es)
        + " |"
    )
    L += ["", "| critical path (gate delays) " + head, "|---|" + "---:|" * len(es)]
    stages = []
    for e in es:
        for k in e.cost.hw.stages:
            if k not in stages:
                stages.append(k)
    for st in stages:
        L.append(
            f"| {st} | "
            + " | ".join(
                f"{e.cost.hw.stages[st]:.0f}" if st in e.cost.hw.stages else "–" for e in es
            )
            + " |"
        )
    L.append(
        "| clock period (slowest datapath stage + flip-flop) | "
        + " | ".join(f"{e.cost.hw.period_gates:.0f} ({e.cost.hw.critical_stage})" for e in es)
        + " |"
    )
    L.append("| fmax (MHz) | " + " | ".join(f"{e.cost.hw.fmax_mhz:.0f}" for e in es) + " |")
    L.append(
        "| extra cycles per output (multicycle output unit) | "
        + " | ".join(str(e.cost.hw.output_extra_cycles) for e in es)
        + " |"
    )
    return L


BREAKDOWN = (
    ("bitops_products", "XNOR/AND gates (int8: 8x8 multipliers)"),
    ("bitops_popcount", "popcount trees and lane correction"),
    ("bitops_accumulate", "accumulator adders"),
    ("bitops_output", "output units (BN, thresholds, requantisation)"),
    ("bitops_other", "pooling ORs, plain additions"),
)


def work_tables(r: Report, keys: list[str]) -> list[str]:
    es = [e for e in (r.get(k) for k in keys) if e is not None]

    def head(what: str) -> list[str]:
        return [
            f"| {what} | " + " | ".join(e.short or e.label for e in es) + " |",
            "|---|" + "---:|" * len(es),
        ]

    def row(label: str, value) -> str:
        return f"| {label} | " + " | ".join(value(e.cost) for e in es) + " |"

    L = head("bit-operations (M)")
    L += [row(label, lambda c, a=attr: _m(c.total(a))) for attr, label in BREAKDOWN]
    L.append(row("**total**", lambda c: f"**{_m(c.bitops)}**"))
    L += [""] + head("cycles")
    L += [
        row("lane steps / MACs", lambda c: f"{c.total('compute_cycles'):,}"),
        row("output units", lambda c: f"{c.total('output_cycles'):,}"),
        row("weight and parameter fetch", lambda c: f"{c.total('fetch_cycles'):,}"),
        row("pooling, additions", lambda c: f"{c.total('other_cycles'):,}"),
        row("**total**", lambda c: f"**{c.cycles:,}**"),
    ]
    L += [""] + head("on-chip memory (bits)")
    L += [
        row("weights", lambda c: f"{c.total('weight_bits'):,}"),
        row("BN / threshold / requantisation parameters", lambda c: f"{c.total('param_bits'):,}"),
        row("activation buffers (ping-pong)", lambda c: f"{c.act_buffer_bits:,}"),
        row("weight/parameter registers of the PEs", lambda c: f"{c.hw.buffer_bits:,}"),
    ]
    return L


# --------------------------------------------------------------------------------------
# Sensitivity, parameters
# --------------------------------------------------------------------------------------
def sensitivity_table(r: Report) -> list[str]:
    L = [
        "| assumption changed | vs base: area / bit-ops / speed | vs minimal safe: area / bit-ops / "
        "speed | vs the ten: smallest area saving | smallest bit-op saving | smallest speed-up | "
        "methods where computation and speed both hold |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in r.sensitivity:

        def three(key: str, vs=row.vs) -> str:
            v = vs.get(key)
            return "–" if v is None else f"{_sv(v.area)} / {_sv(v.bitops)} / {_sp(v.speed)}"

        ms = [v for k, v in row.vs.items() if v.other.family == "int8"]
        both = sum(1 for v in ms if v.meets["area"] and v.meets["bitops"] and v.meets["speed"])
        L.append(
            f"| {row.label} | {three('base')} | {three('safe')} | "
            + (
                f"{_sv(min(v.area for v in ms))} | {_sv(min(v.bitops for v in ms))} | "
                f"{_sp(min(v.speed for v in ms))} | {both} of {len(ms)} |"
                if ms
                else "– | – | – | – |"
            )
        )
    return L


def config_table(r: Report) -> list[str]:
    cfg = r.config
    lib = asdict(cfg.lib)
    rows = [
        ("PEs (output channels in parallel)", f"{cfg.pe_rows}", "int8 machine: as many MAC units"),
        ("lane: fan-in elements per PE per cycle", f"{cfg.lane}", "XNOR/AND + popcount tree width"),
        (
            "accumulator",
            "as wide as the widest layer the array runs (ours: the int8 first layer's 16 bits)",
            "wrap: adder + register; saturate: + overflow detection and clamp multiplexers",
        ),
        ("adders", cfg.adder, "ripple: 1 full adder per bit; prefix: Sklansky"),
        (
            "pipeline",
            "popcount, accumulate, output unit" if cfg.pipeline else "popcount + accumulate",
            "registers between the stages",
        ),
        ("output unit (ours)", "comparator per PE, shifter for the scores", "1 cycle"),
        (
            "output unit (standard BN, requantisation)",
            f"multiplier, {cfg.gamma_bits}-bit gamma, {cfg.mult_cycles} cycles",
            "iterative; slower than the clock: multicycle",
        ),
        ("on-chip memory access width", f"{cfg.mem_width} bits", "weights fetched once per layer"),
        (
            "cell library (GE / gate delays)",
            ", ".join(f"{k} {v:g}" for k, v in lib.items()),
            "transistor count / 4 (Weste & Harris); tools/bench/accelerator_model.py CellLibrary",
        ),
    ]
    return ["| parameter | value | note |", "|---|---|---|"] + [
        f"| {a} | {b} | {c} |" for a, b, c in rows
    ]


def mcu_note(r: Report) -> str:
    """What the Cortex-M4 figures say: the architecture step (dense to structured, both
    32-bit), the accumulator step (structured 32-bit to ours, same layers), saturate over wrap."""

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
        "do with it (firmware/bconv_*.c), not the width of an adder."
    )
    return " ".join(parts)


# --------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------
def format_doc(r: Report) -> str:
    ours = [r.headline(m) for m in r.modes]
    head = ours[0]
    L = [
        "# Accelerator model: our BNN against ten KWS methods and the BNN baselines"
        + (" (quick smoke run)" if r.quick else ""),
        "",
        f"Produced by `{r.command}` (tools/bench/accelerator.py computes, "
        "tools/bench/accelerator_report.py writes, tools/bench/accelerator_model.py models); do not "
        "edit by hand. A model of hardware, not a measurement of silicon: area, clock and "
        "operations are what the analytic model below counts under its stated cell library.",
        "",
    ]
    trained = any(e.accuracy is not None for e in r.entries if e.job)
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
        "## The paper's claims, against ten KWS methods",
        "",
        "The paper reports more than 49.1% less on-chip computation and at least 21.0% more speed "
        "than 10 keyword-spotting methods without significant accuracy loss. Here: "
        f"**{head.label}** (N = 8, or the smallest N within 1 point of the 32-bit BNN) on the BNN "
        "accelerator, against each method quantised to int8 on an int8 MAC accelerator with as "
        f"many MAC units as the BNN array has PEs ({r.config.pe_rows}; equal area in the "
        "sensitivity table), both under the same cell library, adders and memory model. "
        "On-chip computation is stated twice: compute-logic area (gate equivalents of the array) "
        "and bit-operations per inference; speed is latency = cycles / fmax "
        "(speed-up = latency of the method / latency of ours - 1); accuracy is test accuracy, "
        "ours (deployed integer model) minus the method's int8 accuracy.",
        "",
    ]
    L += claims_table(r, head) + [""]
    L += ["Verdict per claim:", ""] + verdicts(r, head) + [""]
    L += [
        "### The ten methods",
        "",
        f"Accuracy: test split, {r.training or 'no results'}. int8: post-training quantisation "
        "simulated (weights symmetric per output channel, activations asymmetric per tensor, "
        "ranges from 512 training clips; biases, residual additions and recurrent states in float: "
        "generator/training/kws_zoo.py). Published accuracies are the papers' on the full Google "
        "Speech Commands 12-class task with their own features and long trainings; ours use this "
        "project's 49 x 40 int8 log-mel features, its data and labels and the epochs stated, so the "
        "two columns are different measurements. Why these ten: generator/training/kws_zoo.py. "
        "Parameters and MACs are for our 49 x 40 input: the Hello Edge models (DNN to DS-CNN) were "
        "sized for 49 x 10 MFCCs, so the layers that see the whole input (DNN, CNN, CRNN, DS-CNN) "
        "are larger here than published, which favours ours in the computation and speed columns.",
        "",
    ]
    L += methods_table(r) + [""]
    if r.missing:
        L += [
            "Rows without accuracy lack these results in `"
            + r.results
            + "`: "
            + ", ".join(f"`{j}`" for j in r.missing)
            + " (see 'Reproduce').",
            "",
        ]
    L += ["![accuracy against compute area](accelerator.png)", ""]
    L += [
        "## The BNN baselines",
        "",
        "The conventional BNN (32-bit accumulators, multiplier batch norm), the same with thresholds "
        "(FINN style), and the strongest non-overflowing baseline: the structured network at each "
        "layer's minimal safe width from its certificate (no input can overflow it, so it computes "
        "exactly what its 32-bit deployment computes; the 32-bit structured row's accuracy). "
        "The array is one design for all layers, so its accumulators are as wide as the widest "
        "layer: the int8 first layer's 16 bits in ours and in the safe baseline.",
        "",
    ]
    L += bnn_table(r) + [""]
    L += bnn_versus_table(r, head) + [""]
    safe = r.get("safe")
    if safe is not None:
        widths = [la.acc_bits for la in safe.model.layers if hasattr(la, "acc_bits")]
        L += [
            f"Minimal safe widths per conv layer ({safe.detail}): {', '.join(map(str, widths))} bits.",
            "",
        ]
    L += _findings(r, head) + [""]
    L += ["## Where the area, the clock and the work go", ""]
    mac = r.methods[0].key if r.methods else None
    keys = ["base", "base-thr", "safe"] + [e.key for e in ours] + ([mac] if mac else [])
    L += hardware_tables(r, keys) + [""]
    if mac:
        L += [
            f"The int8 column is the MAC array every method runs on ({r.methods[0].short}'s weight "
            "registers shown; its logic is the same for all ten).",
            "",
        ]
    L += work_tables(r, keys) + [""]
    if r.sensitivity:
        L += [
            f"## How the result depends on the assumptions ({head.short})",
            "",
            "Each row changes one assumption for every model and costs all of them again.",
            "",
        ]
        L += sensitivity_table(r) + [""]
    L += ["## The accelerator model", ""]
    L += config_table(r) + [""]
    L += ACCOUNTING + [""]
    L += ["## The same models on the Cortex-M4 (firmware)", ""]
    if any(e.mcu for e in r.entries):
        L += [
            "Instructions per inference of the firmware's kernels on the emulated Cortex-M4 (QEMU "
            "`-icount shift=0`, tools/bench/mcu.py), every window computed whole (the firmware's "
            "FULL_WINDOW mode, as the accelerator model counts an inference; streaming inference "
            "computes less, docs/BENCH_MCU.md): the BNN rows' last column above.",
            "",
            mcu_note(r),
            "",
        ]
    else:
        L += [r.mcu_note or "Not measured (`--no-mcu`).", ""]
    L += closing_note(r, head) + [""]
    L += REPRODUCE + [""]
    return "\n".join(L)


def _findings(r: Report, ours: Entry) -> list[str]:
    base, thr, safe = r.get("base"), r.get("base-thr"), r.get("safe")
    L = []
    if base and thr:
        a = r.versus(ours, "base")
        b = r.versus(ours, "base-thr")
        L.append(
            f"- Against the conventional BNN ours needs {_sv(a.area)} area and {_sv(a.bitops)} "
            f"bit-operations; against the same network with thresholds {_sv(b.area)} and "
            f"{_sv(b.bitops)}: the multiplier batch norm alone accounts for "
            f"{_sv(saving(thr.cost.hw.compute_ge, base.cost.hw.compute_ge))} of the area."
        )
    if safe:
        v = r.versus(ours, "safe")
        L.append(
            f"- Against the minimal-safe-width baseline (what overflow-aware training itself buys): "
            f"area {_sv(v.area)}, bit-operations {_sv(v.bitops)}, speed {_sp(v.speed)}. The "
            f"arrays' accumulators are {ours.cost.hw.acc_width} bits (ours) and "
            f"{safe.cost.hw.acc_width} bits (safe), both set by the int8 first layer, so ours' "
            "narrower hidden layers save only their per-layer work, not hardware."
        )
    lat = ours.cost
    L.append(
        f"- Clock: ours runs at {lat.hw.fmax_mhz:.0f} MHz (critical stage: {lat.hw.critical_stage}); "
        f"the conventional BNN at {base.cost.hw.fmax_mhz:.0f} MHz ({base.cost.hw.critical_stage}); "
        "with prefix adders the popcount tree sets both clocks (sensitivity table)."
        if base
        else ""
    )
    if r.methods:
        sp = [r.versus(ours, e.key).speed for e in r.methods]
        L.append(
            f"- Against the ten methods the median speed-up is {_sp(statistics.median(sp))}: most of it "
            "comes from doing binary instead of int8 work, not from the accumulator width."
        )
    return [x for x in L if x]


ACCOUNTING = [
    "Counting rules (tools/bench/accelerator_model.py). Bit-operations: one per XNOR/AND gate, per "
    "adder bit (a popcount tree over w inputs adds pairs level by level: 57 for w = 32), per "
    "multiplier partial-product bit (a x b), per barrel-shifter multiplexer bit and per OR; the "
    "int8 MAC machine counts 64 per 8x8 product plus 32 per accumulate, one 32 x 16 "
    "requantisation multiply per output. Area: per PE the lane's XNOR/AND gates, a popcount "
    "compressor tree (Wallace reduction of full and half adders plus a final adder), the lane "
    "correction adder, the int8 plane shifter, a pipeline register, the accumulator (adder and "
    "register as wide as the widest layer; saturate adds overflow detection and clamp "
    "multiplexers, and an exact partial register for long tiles), and one output unit per PE "
    "(comparator with its threshold register, shifter, or iterative multiplier with its "
    "registers); popcount trees shared by PEs that read the same {0,1} or int8 input. The int8 "
    "MAC unit: an 8x8 Wallace multiplier, operand and product registers, a 32-bit accumulator, a "
    "requantisation multiplier. Not modelled: control, address generation, SRAM macros (reported "
    "in bits), wiring. Clock: the slowest of the popcount and accumulate stages plus a flip-flop; "
    "an output unit slower than that takes extra cycles per output. Energy proxy: GE x cycles "
    "of the units at work (idle units clock-gated), and memory bits moved.",
    "",
    "The firmware's kernels count the elements, 32-element words, saturating adds, thresholds, "
    "shift-BN outputs and pooling ORs they execute (host library built with `BK_COUNT_OPS`); "
    "tests/bench/test_accelerator.py compares them with this model.",
]


REPRODUCE = [
    "## Reproduce",
    "",
    "```",
    "bnnkws bench accelerator --data DATA --results runs/accelerator-cpu --bits 8 --epochs 20   # trains the missing jobs, writes this page",
    "bnnkws bench accelerator --results runs/accelerator-cpu --bits 8                           # this page from the saved results",
    "bnnkws bench accelerator --quick                                                           # CI: costs only, or smoke trainings with --data",
    "```",
    "",
    "`bench accelerator` reads per-job results as the ablation saves them (`<results>/<job>.json`, "
    "checkpoints in `<results>/checkpoints/`); with `--data` it trains the jobs it needs that are "
    "missing with the ablation's runner (generator/training/ablation.py): the BNN jobs "
    "`dense-fbn-plain-32w-s0`, `structured-sbn-plain-32w-s0`, `structured-sbn-collab-<N><w|s>-s0` "
    "and the ten methods `<method>-s0` (float and int8 accuracy in one job).",
]


MARKERS = {  # key: (marker, colour)
    "base": ("s", "black"),
    "base-thr": ("D", "dimgray"),
    "safe": ("v", "tab:brown"),
    "struct32": ("^", "tab:green"),
    "default": ("*", "goldenrod"),
}


def plot(r: Report, path: Path) -> None:
    """Accuracy against compute-logic area (log) for every row with an accuracy; the ten
    methods as labelled points, our N sweep as lines; without accuracies, area per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [e for e in r.entries if e.accuracy is not None]
    if len(measured) < 2:
        es = r.entries
        fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.28 * len(es)))
        ax.plot([e.cost.hw.compute_ge / 1e3 for e in es], range(len(es)), "o")
        ax.set_yticks(range(len(es)))
        ax.set_yticklabels([e.label for e in es], fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("compute-logic area (kGE, log scale)")
        ax.grid(True, alpha=0.3)
        ax.set_title("compute area (no accuracy results to compare)")
        _save(fig, path)
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, (attr, xlabel) in zip(
        axes,
        (("area", "compute-logic area (kGE, log scale)"), ("latency", "latency (us, log scale)")),
        strict=True,
    ):

        def x(e: Entry, attr=attr) -> float:
            return e.cost.hw.compute_ge / 1e3 if attr == "area" else e.cost.latency_us()

        for m, colour in zip(r.modes, ("tab:blue", "tab:orange"), strict=False):
            es = [e for e in measured if e.key.startswith("ours-") and e.mode == m]
            if es:
                ax.plot(
                    [x(e) for e in es],
                    [100 * e.accuracy for e in es],
                    "-o",
                    color=colour,
                    label=f"ours, {m}",
                    markersize=5,
                )
        for key, (mk, colour) in MARKERS.items():
            e = r.get(key)
            if e is not None and e.accuracy is not None:
                ax.plot([x(e)], [100 * e.accuracy], mk, color=colour, markersize=8, label=e.short)
        for e in r.methods:
            if e.accuracy is None:
                continue
            ax.plot([x(e)], [100 * e.accuracy], "x", color="tab:red", markersize=7)
            ax.annotate(
                e.short,
                (x(e), 100 * e.accuracy),
                textcoords="offset points",
                xytext=(3, 3),
                fontsize=6,
                color="tab:red",
            )
        ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=7, loc="center left")
    fig.suptitle(
        "accuracy against compute area and latency; int8 methods as red crosses"
        + (" (quick run)" if r.quick else "")
    )
    _save(fig, path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
