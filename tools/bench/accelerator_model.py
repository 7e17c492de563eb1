"""An analytic model of a BNN accelerator running an integer model, and of an int8 MAC
accelerator running a float baseline quantised to int8: cycles, on-chip computation
(bit-operations), parameter memory and memory accesses, per layer and in total; and (v2)
the hardware that runs them: compute-logic area in gate equivalents per PE and per array,
pipeline-stage delays with ripple or prefix adders, hence the clock (fmax) and latency =
cycles / fmax, and an energy proxy (:func:`bnn_hardware`, :func:`mac_hardware`,
:class:`CellLibrary` for the cell assumptions and their sources).

The BNN machine (parameters in :class:`AcceleratorConfig`, defaults in docs/ACCELERATOR.md):

* an array of ``pe_rows`` processing elements (PEs), one output channel each, that
  loops over output time steps with the channel block fixed (output stationary);
* each PE consumes ``lane`` fan-in elements per cycle (a *lane step*): an XNOR (AND for
  {0,1} inputs) per element, a popcount adder tree over the lane, a small subtractor that
  turns the count into the lane's exact partial sum (``L - 2 d`` for {-1,+1} inputs,
  ``2 a - popcount(x)`` for {0,1} and int8 bit-planes, popcount(x) coming from a tree
  shared by the PEs that see the same input), and an N-bit accumulator adder
  (``acc_bits``): a plain adder for ``wrap``, adder + overflow detection + clamp
  multiplexer (counted as 2N) for ``saturate``;
* ``saturate`` follows the integer model's tiles (docs/INTEGER_MODEL.md): each tile's
  partial sum is exact before the saturating add. A tile that fits one lane step is added
  directly; a longer one (tile > lane, or an int8 tile over 8 bit-planes) is summed in an
  exact partial register first, then added with saturation once;
* int8 inputs (first layer) are processed bit-serially, one bit-plane per pass (8
  passes), each plane's partial shifted into the accumulator (the sign plane subtracted);
* after the last lane step of an output, the PE's output unit applies batch norm: a
  ``multiplier`` (standard BN: ``(acc - mu) * gamma + beta`` with a ``gamma_bits`` wide
  gamma, iterative, ``mult_cycles`` per output), a ``shifter`` (shift-BN: subtract,
  barrel shift, add; 1 cycle) or a ``comparator`` (threshold folded from shift-BN + sign;
  1 cycle). A scores layer (``shiftbn`` output) needs the shifter even when hidden layers
  use the comparator. By default every PE has its output unit and it runs after the
  accumulation (``overlap_output`` lets it run while the PE accumulates the next step;
  ``output_units`` shares fewer units between the PEs);
* weights and per-channel parameters come from on-chip SRAM ``mem_width`` bits wide; a
  channel block's weights and parameters are fetched once per layer and stay in the PE
  registers while the block sweeps over time; fetching does not overlap computing.
  Activations are read one lane (one bit-plane of it for int8) per lane step and input
  group, and written ``mem_width`` bits at a time.

Bit-operations (on-chip computation) count one per gate-level bit operation: one per
XNOR/AND, one per full/half-adder bit of an adder (an adder tree over w one-bit inputs
costs :func:`popcount_tree_bitops`), ``a * b`` for an a x b bit multiplier (the usual
BOPs convention: a binary product costs 1, an 8 x 8 product 64), one per multiplexer bit
of a barrel shifter stage, one per OR in pooling.

The int8 MAC machine (:func:`mac_model_cost`) is what a float baseline costs once
quantised to int8 as MLPerf Tiny deploys it: ``pe_rows`` MAC units, one 8 x 8 multiply
(64) and one 32-bit accumulate (32) per MAC, per output one requantisation (the same
iterative ``gamma_bits`` multiplier as standard BN, plus subtract/add), int8 weights and
per-channel bias, scale and shift.

The firmware's kernels count what they execute under ``BK_COUNT_OPS`` (firmware/bnn.h);
tests/bench/test_accelerator.py relates it to this model at ``lane`` 32: the same products
and weight words where a kernel works through every tile, fewer saturating adds where it
sums a prefix that cannot saturate exactly, and 32-output column words in the column kernel.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from bnnkws.generator.integer.intmodel import ConvLayer, IntegerModel, PoolLayer

BN_UNITS = ("multiplier", "shifter", "comparator")
INT8_BITS = 8  # weights and activations of the int8 MAC machine
MAC_ACC_BITS = 32


# --------------------------------------------------------------------------------------
# Hardware: area in gate equivalents, critical path, clock, latency, energy proxy (v2)
# --------------------------------------------------------------------------------------
ADDERS = ("ripple", "prefix")


@dataclass(frozen=True)
class CellLibrary:
    """Area of each cell in gate equivalents (GE; 1 GE = one two-input NAND) and its delay
    in gate delays (1 = one NAND2 delay at a fan-out of about 4).

    Defaults (fixed before any model was costed) follow the transistor-count rule: GE =
    static-CMOS transistors / 4, with the textbook transistor counts of Weste & Harris,
    "CMOS VLSI Design" (4th ed., ch. 9-11): NAND2 4T; AND2/OR2 6T (1.5 GE); XOR2/XNOR2
    12T with the input inverters (3 GE); MUX2 12T (3 GE); the 28-transistor mirror full
    adder (7 GE, the top of the usual 4.5-7 GE range); a half adder as XOR2 + AND2 (4.5 GE);
    a static master-slave D flip-flop 24T (6 GE). Delays: AND/OR 2 (NAND + inverter), XOR 2,
    MUX 2, full adder carry-in to carry-out 2 and inputs to sum 4 (two XOR levels), a
    flip-flop's clock-to-output plus setup 6. ``gate_ps`` only scales the clock; every
    comparison here is a ratio of two designs under the same library.
    """

    and2: float = 1.5
    or2: float = 1.5
    xor2: float = 3.0  # XOR2 and XNOR2
    mux2: float = 3.0
    ha: float = 4.5
    fa: float = 7.0
    dff: float = 6.0
    ao21: float = 2.0  # prefix-adder carry cell (AOI21 6T + inverter 2T)
    d_and: float = 2.0
    d_xor: float = 2.0
    d_mux: float = 2.0
    d_fa_carry: float = 2.0
    d_fa_sum: float = 4.0
    d_ao21: float = 2.0
    d_dff: float = 6.0
    gate_ps: float = 25.0  # one gate delay in picoseconds (about a 40-65 nm process)


@dataclass(frozen=True)
class AcceleratorConfig:
    """Hardware parameters. Widths in bits, latencies in cycles."""

    pe_rows: int = 16  # output channels computed in parallel (int8 machine: MAC units)
    lane: int = 32  # fan-in elements per PE per cycle (popcount width)
    bn_unit: str = "comparator"  # multiplier | shifter | comparator
    gamma_bits: int = 16  # multiplier: width of gamma (int8 machine: of the requant scale)
    mult_cycles: int = 4  # multiplier: cycles per output (iterative, 4 bits of gamma per cycle)
    shift_bits: int = 5  # shifter: shift amount field (0..31), one mux stage per bit
    mem_width: int = 64  # bits per on-chip memory access
    acc_bits: int | None = None  # override every layer's accumulator width (baselines)
    overlap_output: bool = False  # output unit runs while the PE accumulates the next step
    output_units: int | None = None  # output units shared by the array (None: one per PE)
    clock_mhz: float = 100.0  # v1 nominal clock; v2 latencies use the modelled fmax
    adder: str = "ripple"  # carry-propagate adders: ripple | prefix (Sklansky)
    pipeline: bool = True  # a register between popcount and accumulator
    lib: CellLibrary = field(default_factory=lambda: CellLibrary())

    def __post_init__(self) -> None:
        if self.bn_unit not in BN_UNITS:
            raise ValueError(f"bn_unit {self.bn_unit!r}, expected one of {BN_UNITS}")
        if self.pe_rows < 1 or self.lane < 1 or self.mem_width < 1 or self.mult_cycles < 1:
            raise ValueError("pe_rows, lane, mem_width and mult_cycles must be >= 1")
        if self.acc_bits is not None and not 4 <= self.acc_bits <= 32:
            raise ValueError(f"acc_bits {self.acc_bits} outside 4..32")
        if self.adder not in ADDERS:
            raise ValueError(f"adder {self.adder!r}, expected one of {ADDERS}")
        if self.output_units is not None and self.output_units < 1:
            raise ValueError(f"output_units {self.output_units} must be >= 1")

    @property
    def units(self) -> int:
        return self.output_units or self.pe_rows


def baseline_config(cfg: AcceleratorConfig) -> AcceleratorConfig:
    """The conventional BNN accelerator: 32-bit accumulators and a multiplier BN."""
    return replace(cfg, acc_bits=32, bn_unit="multiplier")


def popcount_tree_bitops(width: int) -> int:
    """Adder bit-operations of a popcount adder tree over `width` one-bit inputs.

    Level k (k = 1..ceil(log2 width)) adds pairs of (k-1)-bit counts into k-bit counts;
    an odd count passes to the next level unchanged.
    """
    total, n, k = 0, width, 1
    while n > 1:
        adders = n // 2
        total += adders * k
        n = adders + (n % 2)
        k += 1
    return total


def _bits_for(v: int) -> int:
    """Bits of a two's-complement register that holds -v..v."""
    return max(1, v).bit_length() + 1


def output_unit(layer: ConvLayer, cfg: AcceleratorConfig, n: int) -> tuple[str, int, int, int]:
    """(unit, bit-operations per output, cycles per output, parameter bits per channel).

    comparator: an (N+1)-bit compare with thr (it may lie just outside the N-bit range);
      thr (N+1) and flip (1).
    shifter: subtract mu (N), barrel shift (N per stage), add beta (N), 1 cycle;
      mu, beta (N each), shift, sign.
    multiplier: subtract mu (N), N x gamma multiply, add beta (N + gamma), ``mult_cycles``;
      mu (N), gamma, beta (N).
    A scores layer (shiftbn output) needs at least the shifter.
    """
    unit = cfg.bn_unit
    if unit == "comparator" and layer.output == "shiftbn":
        unit = "shifter"
    if unit == "comparator":
        return unit, n + 1, 1, n + 2
    if unit == "shifter":
        return unit, n * (cfg.shift_bits + 2), 1, 2 * n + cfg.shift_bits + 1
    g = cfg.gamma_bits
    return unit, n * g + 2 * n + g, cfg.mult_cycles, 2 * n + g


@dataclass
class LayerCost:
    name: str
    kind: str  # conv_int8 | conv_pm1 | conv_01 | pool_or | mac_* (int8 machine)
    outputs: int = 0  # output values (T_out * c_out)
    output_unit: str = ""  # comparator | shifter | multiplier (requantisation: multiplier)
    elements: int = 0  # fan-in products (XNOR/AND, int8 add/sub, or int8 MACs)
    planes: int = 1  # bit-planes per element (8 for int8 inputs)
    words: int = 0  # lane-wide chunks of fan-in over all outputs (per plane)
    lane_steps: int = 0  # words * planes: popcount + accumulate steps
    sat_adds: int = 0  # saturating accumulator additions
    pool_ors: int = 0  # lane-wide ORs of OR pooling
    acc_bits: int = 0
    compute_cycles: int = 0
    output_cycles: int = 0
    fetch_cycles: int = 0
    other_cycles: int = 0  # pooling, plain additions
    bitops_products: int = 0  # XNOR/AND gates, or 8x8 multipliers
    bitops_popcount: int = 0  # popcount trees (own and shared) and lane correction
    bitops_accumulate: int = 0  # accumulator (and partial register) adders
    bitops_output: int = 0  # batch norm / threshold / requantisation
    bitops_other: int = 0  # pooling ORs, plain additions
    weight_bits: int = 0
    param_bits: int = 0  # per-channel output parameters
    param_accesses: int = 0  # memory words of weights and parameters fetched
    act_accesses: int = 0  # memory words of activations read and written
    out_bits: int = 0  # bits of this layer's output activation (its buffer)
    pe_busy: int = 0  # PE-cycles of work (lane steps; MACs and additions on the int8 machine)
    unit_busy: int = 0  # output-unit cycles of work (outputs x cycles per output)

    @property
    def cycles(self) -> int:
        return self.compute_cycles + self.output_cycles + self.fetch_cycles + self.other_cycles

    @property
    def bitops(self) -> int:
        """On-chip computation of this layer, in bit-operations."""
        return (
            self.bitops_products
            + self.bitops_popcount
            + self.bitops_accumulate
            + self.bitops_output
            + self.bitops_other
        )

    @property
    def mem_accesses(self) -> int:
        return self.param_accesses + self.act_accesses


def _ranges(layer: ConvLayer) -> list[int]:
    """Lengths of the exact-sum ranges of one output: the whole fan-in (wrap) or the tiles."""
    if layer.acc_mode == "wrap":
        return [layer.fan_in]
    full, rest = divmod(layer.fan_in, layer.tile)
    return [layer.tile] * full + ([rest] if rest else [])


def _tree_over(length: int, lane: int) -> tuple[int, int]:
    """(lane words, popcount-tree bit-operations) of a range of `length` elements."""
    full, rest = divmod(length, lane)
    return full + (1 if rest else 0), full * popcount_tree_bitops(lane) + popcount_tree_bitops(rest)


def _block_groups(layer: ConvLayer, pe_rows: int) -> int:
    """Sum over PE blocks of the distinct input groups its outputs read."""
    og = layer.c_out // layer.groups
    total = 0
    for first in range(0, layer.c_out, pe_rows):
        last = min(first + pe_rows, layer.c_out) - 1
        total += last // og - first // og + 1
    return total


def conv_cost(layer: ConvLayer, t_in: int, cfg: AcceleratorConfig, out_extra: int = 0) -> LayerCost:
    """Cost of one binary-weight conv layer with `t_in` input time steps; `out_extra`
    cycles are added per output when the output unit is slower than the clock."""
    n = cfg.acc_bits or layer.acc_bits
    lane = cfg.lane
    planes = INT8_BITS if layer.input == "int8" else 1
    t_out = layer.out_len(t_in)
    outputs = t_out * layer.c_out
    ranges = _ranges(layer)
    per_range = [_tree_over(r, lane) for r in ranges]
    words = sum(w for w, _ in per_range)  # per output, per plane
    tree = sum(b for _, b in per_range)
    steps = words * planes
    correction = _bits_for(lane)  # L - 2d or 2a - ones, per lane step
    shared_trees = (
        _block_groups(layer, cfg.pe_rows) * t_out * planes * tree if layer.input != "pm1" else 0
    )
    if layer.acc_mode == "wrap":
        acc_per_out = steps * n
    else:
        vmax = 128 if layer.input == "int8" else 1
        acc_per_out = 0
        for r, (w, _) in zip(ranges, per_range, strict=True):
            k = w * planes
            acc_per_out += 2 * n + (k * _bits_for(vmax * r) if k > 1 else 0)
    unit, out_ops, out_cyc, par_bits = output_unit(layer, cfg, n)
    out_cyc += out_extra
    blocks = math.ceil(layer.c_out / cfg.pe_rows)
    per_step_out = math.ceil(min(cfg.pe_rows, layer.c_out) / cfg.units) * out_cyc
    if cfg.overlap_output:
        output_cycles = blocks * t_out * max(0, per_step_out - steps) + blocks * per_step_out
    else:
        output_cycles = blocks * t_out * per_step_out
    weight_bits = layer.c_out * layer.fan_in
    param_bits = layer.c_out * par_bits
    fetch = math.ceil(weight_bits / cfg.mem_width) + math.ceil(param_bits / cfg.mem_width)
    out_val_bits = 1 if layer.output == "threshold" else 32
    reads = _block_groups(layer, cfg.pe_rows) * t_out * steps * math.ceil(lane / cfg.mem_width)
    writes = t_out * math.ceil(layer.c_out * out_val_bits / cfg.mem_width)
    return LayerCost(
        name=layer.name,
        kind=f"conv_{layer.input}",
        outputs=outputs,
        output_unit=unit,
        elements=outputs * layer.fan_in,
        planes=planes,
        words=outputs * words,
        lane_steps=outputs * steps,
        sat_adds=outputs * len(ranges) if layer.acc_mode == "saturate" else 0,
        acc_bits=n,
        compute_cycles=blocks * t_out * steps,
        output_cycles=output_cycles,
        fetch_cycles=fetch,
        pe_busy=outputs * steps,
        unit_busy=outputs * out_cyc,
        bitops_products=outputs * layer.fan_in * planes,
        bitops_popcount=outputs * planes * (tree + words * correction) + shared_trees,
        bitops_accumulate=outputs * acc_per_out,
        bitops_output=outputs * out_ops,
        weight_bits=weight_bits,
        param_bits=param_bits,
        param_accesses=fetch,
        act_accesses=reads + writes,
        out_bits=t_out * layer.c_out * out_val_bits,
    )


def pool_cost(layer: PoolLayer, t_in: int, channels: int, cfg: AcceleratorConfig) -> LayerCost:
    """OR pooling: (kernel - 1) ORs per kept bit; every input row read and OR-ed into a
    register ``mem_width`` bits at a time (one cycle per access), each output row written."""
    t_out = layer.out_len(t_in)
    row = math.ceil(channels / cfg.mem_width)
    reads, writes = t_out * layer.kernel * row, t_out * row
    return LayerCost(
        name=layer.name,
        kind="pool_or",
        pool_ors=t_out * (layer.kernel - 1) * math.ceil(channels / cfg.lane),
        other_cycles=reads + writes,
        bitops_other=t_out * (layer.kernel - 1) * channels,
        act_accesses=reads + writes,
        out_bits=t_out * channels,
    )


@dataclass
class ModelCost:
    """Per-layer costs and the on-chip storage of one inference (one 1 s window)."""

    config: AcceleratorConfig
    layers: list[LayerCost]
    input_bits: int  # the features (int8 [T][F])
    register_bits: int = 0  # accumulator registers of the array
    meta: dict = field(default_factory=dict)
    hw: Hardware | None = None  # the array's area and clock (v2)

    def total(self, attr: str) -> int:
        return sum(getattr(layer, attr) for layer in self.layers)

    @property
    def cycles(self) -> int:
        return self.total("cycles")

    @property
    def bitops(self) -> int:
        return self.total("bitops")

    @property
    def param_memory_bits(self) -> int:
        """On-chip parameter memory: weights plus per-channel BN/threshold parameters."""
        return self.total("weight_bits") + self.total("param_bits")

    @property
    def act_buffer_bits(self) -> int:
        """Activation memory: two ping-pong buffers, each as large as the largest
        activation (the features included)."""
        most = max([self.input_bits] + [layer.out_bits for layer in self.layers])
        return 2 * most

    @property
    def mem_accesses(self) -> int:
        return self.total("mem_accesses")

    def latency_us(self) -> float:
        """Cycles at the array's modelled fmax (without hardware: at ``clock_mhz``)."""
        return self.cycles / (self.hw.fmax_mhz if self.hw else self.config.clock_mhz)

    @property
    def energy_logic(self) -> float:
        """Energy proxy of the logic: GE x cycles of the units that work (idle PEs and
        output units clock-gated): PE-cycles x PE area + unit-cycles x output-unit area +
        shared trees x the cycles of the layers that use them."""
        if self.hw is None:
            return 0.0
        hw = self.hw
        return (
            self.total("pe_busy") * hw.pe.total
            + self.total("unit_busy") * hw.output.total
            + self.total("compute_cycles") * hw.shared.total
        )

    @property
    def mem_bits_moved(self) -> int:
        """Energy proxy of the memory: bits read and written (accesses x access width)."""
        return self.mem_accesses * self.config.mem_width

    def summary(self) -> dict:
        return {
            "config": asdict(self.config),
            "cycles": self.cycles,
            "bitops": self.bitops,
            "bitops_accumulate": self.total("bitops_accumulate"),
            "bitops_output": self.total("bitops_output"),
            "elements": self.total("elements"),
            "lane_steps": self.total("lane_steps"),
            "weight_bits": self.total("weight_bits"),
            "param_bits": self.total("param_bits"),
            "param_memory_bits": self.param_memory_bits,
            "act_buffer_bits": self.act_buffer_bits,
            "register_bits": self.register_bits,
            "mem_accesses": self.mem_accesses,
            "latency_us": self.latency_us(),
            "energy_logic": self.energy_logic,
            "mem_bits_moved": self.mem_bits_moved,
            "hardware": self.hw.summary() if self.hw else None,
        }


def model_cost(model: IntegerModel, cfg: AcceleratorConfig | None = None) -> ModelCost:
    """Per-layer and total cost of running `model` once (one window) on the BNN machine."""
    cfg = cfg or AcceleratorConfig()
    hw = bnn_hardware(model, cfg)
    t, c = model.n_frames, model.frontend.n_mels
    layers: list[LayerCost] = []
    widest = 0
    for layer in model.layers:
        if isinstance(layer, ConvLayer):
            layers.append(conv_cost(layer, t, cfg, hw.output_extra_cycles))
            widest = max(widest, cfg.acc_bits or layer.acc_bits)
            c = layer.c_out
        else:
            layers.append(pool_cost(layer, t, c, cfg))
        t = layer.out_len(t)
    return ModelCost(
        cfg,
        layers,
        model.n_frames * model.frontend.n_mels * INT8_BITS,
        cfg.pe_rows * widest,
        hw=hw,
    )


# --------------------------------------------------------------------------------------
# The int8 MAC machine (float baselines quantised to int8)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MacLayer:
    """One layer of an int8 network, as the MAC machine sees it.

    macs: multiply-accumulates; adds: plain 32-bit additions (average pooling sums,
    residual additions); outputs: values requantised to int8 (one scale multiply each);
    weights: int8 weights; channels: per-channel (bias, scale, shift) sets;
    in_values, out_values: activation sizes (int8 values) for the buffers.
    """

    name: str
    kind: str
    macs: int
    outputs: int
    weights: int = 0
    channels: int = 0
    adds: int = 0
    in_values: int = 0
    out_values: int = 0


def mac_layer_cost(layer: MacLayer, cfg: AcceleratorConfig, out_extra: int = 0) -> LayerCost:
    units = cfg.pe_rows
    g = cfg.gamma_bits
    acc = MAC_ACC_BITS
    requant_ops = acc * g + 2 * acc + g
    out_cyc = cfg.mult_cycles + out_extra
    per_round = math.ceil(min(units, max(layer.outputs, 1)) / cfg.units) * out_cyc
    rounds = math.ceil(layer.outputs / units)
    compute = math.ceil(layer.macs / units)
    if cfg.overlap_output and rounds:
        per_output_macs = max(1, compute // rounds)
        output_cycles = rounds * max(0, per_round - per_output_macs) + per_round
    else:
        output_cycles = rounds * per_round
    weight_bits = layer.weights * INT8_BITS
    param_bits = layer.channels * (acc + g + cfg.shift_bits)  # bias, scale, shift
    fetch = math.ceil(weight_bits / cfg.mem_width) + math.ceil(param_bits / cfg.mem_width)
    # every MAC reads one int8 activation; a mem_width word serves mem_width / 8 MACs
    per_word = max(1, cfg.mem_width // INT8_BITS)
    act = math.ceil((layer.macs + layer.adds) / per_word) + math.ceil(layer.out_values / per_word)
    return LayerCost(
        name=layer.name,
        kind=f"mac_{layer.kind}",
        outputs=layer.outputs,
        output_unit="multiplier" if layer.outputs else "",
        elements=layer.macs,
        acc_bits=acc,
        compute_cycles=compute,
        output_cycles=output_cycles,
        fetch_cycles=fetch,
        other_cycles=math.ceil(layer.adds / units),
        pe_busy=layer.macs + layer.adds,
        unit_busy=layer.outputs * out_cyc,
        bitops_products=layer.macs * INT8_BITS * INT8_BITS,
        bitops_accumulate=layer.macs * acc,
        bitops_output=layer.outputs * requant_ops,
        bitops_other=layer.adds * acc,
        weight_bits=weight_bits,
        param_bits=param_bits,
        param_accesses=fetch,
        act_accesses=act,
        out_bits=layer.out_values * INT8_BITS,
    )


def mac_model_cost(
    layers: list[MacLayer], input_values: int, cfg: AcceleratorConfig | None = None
) -> ModelCost:
    """Cost of an int8 network on the MAC machine (``pe_rows`` MAC units, 32-bit
    accumulators, requantisation by the ``gamma_bits`` multiplier); the BNN-specific
    fields of `cfg` (lane, bn_unit, acc_bits) do not apply."""
    cfg = cfg or AcceleratorConfig()
    hw = mac_hardware(layers, cfg)
    return ModelCost(
        cfg,
        [mac_layer_cost(m, cfg, hw.output_extra_cycles) for m in layers],
        input_values * INT8_BITS,
        cfg.pe_rows * MAC_ACC_BITS,
        hw=hw,
    )


def adder_area(bits: int, style: str, lib: CellLibrary) -> float:
    """A two-operand `bits`-wide carry-propagate adder: ripple = one full adder per bit;
    prefix (Sklansky) = propagate/generate per bit (XOR2 + AND2), bits/2 carry cells per
    level over ceil(log2 bits) levels, and a sum XOR per bit."""
    if bits <= 0:
        return 0.0
    if style == "ripple":
        return bits * lib.fa
    levels = math.ceil(math.log2(bits)) if bits > 1 else 0
    return bits * (lib.xor2 + lib.and2) + levels * (bits / 2) * lib.ao21 + bits * lib.xor2


def adder_delay(bits: int, style: str, lib: CellLibrary) -> float:
    """Worst-case delay of that adder: ripple = carry through every bit plus the last sum;
    prefix = propagate/generate, ceil(log2 bits) carry levels, sum XOR."""
    if bits <= 0:
        return 0.0
    if style == "ripple":
        return (bits - 1) * lib.d_fa_carry + lib.d_fa_sum
    levels = math.ceil(math.log2(bits)) if bits > 1 else 0
    return lib.d_xor + levels * lib.d_ao21 + lib.d_xor


def compress(heights: list[int]) -> tuple[int, int, int, int]:
    """Wallace reduction of bit columns (heights[i] bits of weight 2^i) to two rows:
    (full adders, half adders, stages, width of the final two-row adder). Each stage puts
    every three bits of a column into a full adder and a remaining pair into a half adder
    (only while the column is above two)."""
    h = list(heights)
    fas = has = stages = 0
    while any(x > 2 for x in h):
        nxt = [0] * (len(h) + 1)
        for i, x in enumerate(h):
            f, r = divmod(x, 3)
            half = 1 if r == 2 else 0
            fas, has = fas + f, has + half
            nxt[i] += f + half + (r - 2 * half)
            nxt[i + 1] += f + half
        while nxt and nxt[-1] == 0:
            nxt.pop()
        h = nxt
        stages += 1
    two = [i for i, x in enumerate(h) if x == 2]
    width = (len(h) - two[0]) if two else 0
    return fas, has, stages, width


def popcount_hw(width: int, style: str, lib: CellLibrary) -> tuple[float, float, int]:
    """(area GE, delay, output bits) of a popcount of `width` one-bit inputs: a compressor
    tree of full and half adders, then a carry-propagate adder over the two rows."""
    out = max(1, width).bit_length()
    if width <= 1:
        return 0.0, 0.0, out
    fas, has, stages, cpa = compress([width])
    return (
        fas * lib.fa + has * lib.ha + adder_area(cpa, style, lib),
        stages * lib.d_fa_sum + adder_delay(cpa, style, lib),
        out,
    )


def multiplier_hw(a: int, b: int, style: str, lib: CellLibrary) -> tuple[float, float]:
    """(area, delay) of an a x b array of AND partial products reduced by a Wallace tree
    and a final carry-propagate adder (signed forms add only inverters: not counted)."""
    heights = [min(i + 1, a, b, a + b - 1 - i) for i in range(a + b - 1)]
    fas, has, stages, cpa = compress(heights)
    area = a * b * lib.and2 + fas * lib.fa + has * lib.ha + adder_area(cpa, style, lib)
    return area, lib.d_and + stages * lib.d_fa_sum + adder_delay(cpa, style, lib)


@dataclass
class Block:
    """One hardware unit: area by part (GE) and the delays of the pipeline stages it sits in."""

    area: dict[str, float] = field(default_factory=dict)

    def add(self, part: str, ge: float, times: float = 1.0) -> None:
        self.area[part] = self.area.get(part, 0.0) + ge * times

    @property
    def total(self) -> float:
        return sum(self.area.values())


@dataclass
class Hardware:
    """The array that runs a model: per-PE and per-array area (GE), pipeline stage delays
    (gate delays), hence the clock; and the on-chip storage it holds."""

    pe: Block  # one PE's datapath (products, popcount, accumulator, pipeline registers)
    output: Block  # one output unit
    shared: Block  # per array: shared popcount trees
    pe_count: int
    unit_count: int
    stages: dict[str, float]  # stage -> logic delay (gate delays)
    lib: CellLibrary
    acc_width: int  # the accumulator register width (widest layer)
    buffer_bits: int = 0  # per-PE weight and parameter registers (all PEs)

    @property
    def area(self) -> dict[str, float]:
        """Compute-logic area of the array by part (GE)."""
        out: dict[str, float] = {}
        for blk, n in ((self.pe, self.pe_count), (self.output, self.unit_count), (self.shared, 1)):
            for k, v in blk.area.items():
                out[k] = out.get(k, 0.0) + n * v
        return out

    @property
    def compute_ge(self) -> float:
        return sum(self.area.values())

    @property
    def buffer_ge(self) -> float:
        """Weight/parameter registers of the PEs, as flip-flops."""
        return self.buffer_bits * self.lib.dff

    @property
    def datapath(self) -> dict[str, float]:
        """The stages every cycle goes through (all but the output unit)."""
        return {k: v for k, v in self.stages.items() if k != "output unit"}

    @property
    def critical_stage(self) -> str:
        d = self.datapath
        return max(d, key=lambda k: d[k])

    @property
    def period_gates(self) -> float:
        """Clock period: the slowest datapath stage plus the flip-flop overhead. The output
        unit, which works once per output, is a multicycle path: it takes
        :attr:`output_extra_cycles` more cycles per output when it is slower."""
        return max(self.datapath.values()) + self.lib.d_dff

    @property
    def output_extra_cycles(self) -> int:
        return max(
            0, math.ceil((self.stages["output unit"] + self.lib.d_dff) / self.period_gates) - 1
        )

    @property
    def fmax_mhz(self) -> float:
        return 1e6 / (self.period_gates * self.lib.gate_ps)

    def summary(self) -> dict:
        return {
            "area_ge": self.area,
            "compute_ge": self.compute_ge,
            "pe_ge": self.pe.total,
            "output_unit_ge": self.output.total,
            "buffer_ge": self.buffer_ge,
            "stages": self.stages,
            "critical_stage": self.critical_stage,
            "period_gates": self.period_gates,
            "output_extra_cycles": self.output_extra_cycles,
            "fmax_mhz": self.fmax_mhz,
            "acc_width": self.acc_width,
        }


def _output_unit_hw(unit: str, n: int, cfg: AcceleratorConfig, blk: Block) -> float:
    """Adds one output unit for accumulators of `n` bits to `blk`; returns its delay.

    comparator: an (n+1)-bit comparison (a subtractor's carry chain, costed as the adder)
    and the thr/flip registers; shifter: subtract mu, ``shift_bits`` multiplexer stages,
    add beta, registers for mu, beta, shift, sign; multiplier: subtract mu, an n x
    (gamma_bits / mult_cycles) partial-product step per cycle with an (n + gamma)-bit
    product register and final adder, add beta, registers for mu, gamma, beta."""
    lib, st = cfg.lib, cfg.adder
    if unit == "comparator":
        blk.add("output units", adder_area(n + 1, st, lib) + (n + 2) * lib.dff)
        return adder_delay(n + 1, st, lib)
    if unit == "shifter":
        s = cfg.shift_bits
        blk.add(
            "output units",
            2 * adder_area(n, st, lib) + s * n * lib.mux2 + (2 * n + s + 1) * lib.dff,
        )
        return 2 * adder_delay(n, st, lib) + s * lib.d_mux
    g = cfg.gamma_bits
    step = max(1, math.ceil(g / cfg.mult_cycles))
    heights = [min(i + 1, n, step, n + step - 1 - i) for i in range(n + step - 1)]
    heights = [h + (2 if i < n + g else 0) for i, h in enumerate(heights)]  # + carry-save acc
    fas, has, stages, _ = compress(heights)
    blk.add(
        "output units",
        n * step * lib.and2
        + fas * lib.fa
        + has * lib.ha
        + 2 * (n + g) * lib.dff  # carry-save product registers
        + adder_area(n + g, st, lib)  # final product adder
        + 2 * adder_area(n, st, lib)  # subtract mu, add beta
        + (2 * n + g) * lib.dff,  # mu, gamma, beta
    )
    # per cycle: one carry-save step; the final adder is its own (last) cycle
    return max(lib.d_and + stages * lib.d_fa_sum, adder_delay(n + g, st, lib))


def _max_block_groups(layer: ConvLayer, pe_rows: int) -> int:
    og = layer.c_out // layer.groups
    most = 0
    for first in range(0, layer.c_out, pe_rows):
        last = min(first + pe_rows, layer.c_out) - 1
        most = max(most, last // og - first // og + 1)
    return most


def bnn_hardware(model: IntegerModel, cfg: AcceleratorConfig) -> Hardware:
    """The BNN array that runs `model`: ``pe_rows`` PEs, each with lane XNOR/AND gates, a
    popcount compressor tree, the lane correction adder ((L - 2d) or (2a - popcount(x))),
    for int8 inputs a plane shifter and sign negation, a pipeline register, and an
    accumulator as wide as the model's widest layer (one array runs every layer) with the
    saturate logic (overflow detection and a clamp multiplexer) when a layer saturates and
    an exact partial register for tiles longer than one step; output units of each kind
    the layers use, as wide as the widest layer using it; popcount trees shared by the PEs
    reading the same {0,1} or int8 input. Pipeline: popcount | accumulate | output unit
    (``pipeline=False``: popcount and accumulate in one cycle)."""
    lib, st, lane = cfg.lib, cfg.adder, cfg.lane
    convs = [la for la in model.layers if isinstance(la, ConvLayer)]
    widths = [cfg.acc_bits or la.acc_bits for la in convs]
    width = max(widths)
    kinds = {la.input for la in convs}
    pe, out, shared = Block(), Block(), Block()
    if "pm1" in kinds:
        pe.add("products (XNOR/AND)", lane * lib.xor2)
    if kinds - {"pm1"}:
        pe.add("products (XNOR/AND)", lane * lib.and2)
    tree_ge, tree_d, c = popcount_hw(lane, st, lib)
    pe.add("popcount trees", tree_ge + adder_area(c + 1, st, lib))
    stage1 = lib.d_xor + tree_d + adder_delay(c + 1, st, lib)
    part = c + 1
    if "int8" in kinds:  # bit-plane weight 2^p (3 multiplexer stages), sign plane negated
        pe.add("int8 plane shift", 3 * (part + 7) * lib.mux2 + (part + 7) * lib.xor2)
        stage1 += 3 * lib.d_mux + lib.d_xor
        part += 7
    stages: dict[str, float] = {}
    acc_d = adder_delay(width, st, lib)
    pe.add("accumulator", adder_area(width, st, lib) + width * lib.dff)
    if any(la.acc_mode == "saturate" for la in convs):
        pe.add("accumulator", width * lib.mux2 + 2 * lib.xor2)
        acc_d += lib.d_xor + lib.d_mux
        long_tiles = [
            _bits_for((128 if la.input == "int8" else 1) * la.tile)
            for la in convs
            if la.acc_mode == "saturate" and (la.input == "int8" or min(la.tile, la.fan_in) > lane)
        ]
        if long_tiles:
            p = max(long_tiles)
            pe.add("accumulator", adder_area(p, st, lib) + p * lib.dff)
            stages["partial sum"] = adder_delay(p, st, lib)
    if cfg.pipeline:
        pe.add("pipeline registers", part * lib.dff)
        stages["popcount"] = stage1
        stages["accumulate"] = acc_d
    else:
        stages["popcount + accumulate"] = stage1 + acc_d
    trees = max([_max_block_groups(la, cfg.pe_rows) for la in convs if la.input != "pm1"] or [0])
    shared.add("popcount trees", trees * tree_ge)
    units: dict[str, int] = {}
    for la, n in zip(convs, widths, strict=True):
        unit = output_unit(la, cfg, n)[0]
        units[unit] = max(units.get(unit, 0), n)
    stages["output unit"] = max(_output_unit_hw(u, n, cfg, out) for u, n in units.items())
    per_pe = max(
        la.c_out and (la.fan_in + output_unit(la, cfg, n)[3])
        for la, n in zip(convs, widths, strict=True)
    )
    return Hardware(
        pe, out, shared, cfg.pe_rows, cfg.units, stages, lib, width, cfg.pe_rows * per_pe
    )


def mac_hardware(layers: list[MacLayer], cfg: AcceleratorConfig) -> Hardware:
    """The int8 MAC array: ``pe_rows`` units, each an 8 x 8 multiplier (Wallace tree), a
    16-bit pipeline register, operand registers and a 32-bit accumulator; requantisation
    units (the ``gamma_bits`` multiplier of standard BN on 32-bit values). Pipeline:
    multiply | accumulate | requantise."""
    lib, st = cfg.lib, cfg.adder
    pe, out = Block(), Block()
    m_ge, m_d = multiplier_hw(INT8_BITS, INT8_BITS, st, lib)
    pe.add("products (XNOR/AND)", m_ge)
    pe.add("pipeline registers", (2 * INT8_BITS + 2 * INT8_BITS) * lib.dff)
    pe.add("accumulator", adder_area(MAC_ACC_BITS, st, lib) + MAC_ACC_BITS * lib.dff)
    stages = {
        "multiply": m_d,
        "accumulate": adder_delay(MAC_ACC_BITS, st, lib),
        "output unit": _output_unit_hw("multiplier", MAC_ACC_BITS, cfg, out),
    }
    per_unit = max(
        [
            (la.macs // la.outputs) * INT8_BITS + MAC_ACC_BITS + cfg.gamma_bits + cfg.shift_bits
            for la in layers
            if la.outputs and la.macs
        ]
        or [0]
    )
    return Hardware(
        pe, out, Block(), cfg.pe_rows, cfg.units, stages, lib, MAC_ACC_BITS, cfg.pe_rows * per_unit
    )
