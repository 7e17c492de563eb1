"""An analytic model of a BNN accelerator running an integer model: cycles, on-chip
computation (adder bit-operations), parameter memory and memory accesses.

The machine modelled (docs/ACCELERATOR.md):

* an array of ``pe_rows`` processing elements (PEs), one output channel each, that
  loops over output time steps with the channel block fixed (output stationary);
* each PE consumes ``lane`` fan-in elements per cycle: an XNOR (or AND for {0,1}
  inputs, or one bit-plane of an int8 input) and a popcount adder tree over the lane,
  whose result is added into the PE's N-bit accumulator (``acc_bits``) — wrapping
  (a plain adder) or saturating (adder + overflow detection + clamp multiplexer);
* int8 inputs (first layer) are processed bit-serially, one bit-plane per pass
  (8 passes), each plane's popcount shifted into the accumulator;
* after the last tile the output unit applies batch norm: a ``multiplier`` (standard
  BN: (acc - mu) * gamma with a ``gamma_bits`` wide gamma, ``mult_cycles`` per output),
  a ``shifter`` (shift-BN: barrel shift + add, 1 cycle) or a ``comparator`` (folded
  threshold, 1 cycle);
* weights and per-channel parameters come from on-chip SRAM ``mem_width`` bits wide;
  a channel block's weights and parameters are fetched once per layer and stay in the
  PE registers while the block sweeps over time (no overlap of fetch and compute).

Operation counts here (tiles, lane additions, outputs) are the same quantities the
firmware's accelerator-emulating kernels perform; ``tests/test_accelerator.py`` checks
them against an independent count over the integer model's fan-in vectors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from bnnkws.generator.intmodel import ConvLayer, IntegerModel, PoolLayer

BN_UNITS = ("multiplier", "shifter", "comparator")


@dataclass(frozen=True)
class AcceleratorConfig:
    """Hardware parameters. Widths in bits, latencies in cycles."""

    pe_rows: int = 16  # output channels computed in parallel
    lane: int = 32  # fan-in elements per PE per cycle (popcount width)
    bn_unit: str = "comparator"  # multiplier | shifter | comparator
    gamma_bits: int = 16  # multiplier BN: width of gamma
    mult_cycles: int = 4  # multiplier BN: cycles per output (iterative 16x4 multiplier)
    shift_bits: int = 5  # shifter BN: shift amount field (0..31)
    mem_width: int = 64  # bits per on-chip memory access
    acc_bits: int | None = None  # override every layer's accumulator width (baselines)
    clock_mhz: float = 100.0

    def __post_init__(self) -> None:
        if self.bn_unit not in BN_UNITS:
            raise ValueError(f"bn_unit {self.bn_unit!r}, expected one of {BN_UNITS}")
        if self.pe_rows < 1 or self.lane < 1 or self.mem_width < 1:
            raise ValueError("pe_rows, lane and mem_width must be >= 1")


def popcount_tree_bitops(width: int) -> int:
    """Full-adder bit-operations of a popcount adder tree over `width` one-bit inputs.

    Level k (k = 1..ceil(log2 width)) adds pairs of (k-1)-bit counts into k-bit counts:
    ceil(width / 2^k) adders of k bits (a ragged last pair still costs an adder).
    """
    total, n, k = 0, width, 1
    while n > 1:
        adders = n // 2
        total += adders * k
        n = adders + (n % 2)
        k += 1
    return total


def param_bits_per_channel(layer: ConvLayer, cfg: AcceleratorConfig, acc_bits: int) -> int:
    """Bits of per-channel output parameters the output unit needs.

    comparator: threshold (acc_bits + 1, since it may lie just outside the range) and flip;
    shifter: mu and beta (acc_bits each), shift, sign; multiplier: mu (acc_bits),
    gamma (gamma_bits), beta (acc_bits). A scores layer always needs the full affine map.
    """
    if cfg.bn_unit == "comparator" and layer.output == "threshold":
        return acc_bits + 2
    if cfg.bn_unit in ("comparator", "shifter"):
        return 2 * acc_bits + cfg.shift_bits + 1
    return 2 * acc_bits + cfg.gamma_bits


@dataclass
class LayerCost:
    name: str
    kind: str
    outputs: int  # output values (T_out * c_out)
    binary_ops: int  # element operations: XNOR/AND, counting each int8 bit-plane
    lane_steps: int  # lane-wide popcount + accumulate steps over all outputs
    acc_bits: int
    cycles: int
    compute_cycles: int
    output_cycles: int
    fetch_cycles: int
    bitops_xnor: int
    bitops_popcount: int
    bitops_accumulate: int
    bitops_output: int
    weight_bits: int
    param_bits: int
    mem_accesses: int

    @property
    def bitops(self) -> int:
        """On-chip computation: adder/logic bit-operations of this layer."""
        return self.bitops_xnor + self.bitops_popcount + self.bitops_accumulate + self.bitops_output


def layer_cost(layer: ConvLayer | PoolLayer, t_in: int, cfg: AcceleratorConfig) -> LayerCost:
    """Cost of one layer with `t_in` input time steps."""
    t_out = layer.out_len(t_in)
    if isinstance(layer, PoolLayer):
        # OR pooling: one OR per input bit kept by the pooling window, one cycle per step
        return LayerCost(layer.name, "pool_or", 0, 0, 0, 0, t_out, t_out, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    n = cfg.acc_bits or layer.acc_bits
    planes = 8 if layer.input == "int8" else 1
    outputs = t_out * layer.c_out
    tiles = math.ceil(layer.fan_in / cfg.lane)
    lane_steps = outputs * tiles * planes
    binary_ops = outputs * layer.fan_in * planes
    # per lane step: XNOR of the lane, popcount tree, N-bit (saturating: + clamp) add
    last = layer.fan_in - (tiles - 1) * cfg.lane
    tree = (tiles - 1) * popcount_tree_bitops(cfg.lane) + popcount_tree_bitops(last)
    bitops_popcount = outputs * planes * tree
    add_cost = n * (2 if layer.acc_mode == "saturate" else 1)
    bitops_accumulate = lane_steps * add_cost
    if cfg.bn_unit == "multiplier":
        out_cost, out_cycles = n * cfg.gamma_bits + n, cfg.mult_cycles
    elif cfg.bn_unit == "shifter" or layer.output == "shiftbn":
        out_cost, out_cycles = n * cfg.shift_bits + n, 1
    else:
        out_cost, out_cycles = n + 1, 1
    blocks = math.ceil(layer.c_out / cfg.pe_rows)
    compute_cycles = blocks * t_out * tiles * planes
    output_cycles = blocks * t_out * out_cycles
    weight_bits = layer.c_out * layer.fan_in
    param_bits = layer.c_out * param_bits_per_channel(layer, cfg, n)
    mem_accesses = math.ceil(weight_bits / cfg.mem_width) + math.ceil(param_bits / cfg.mem_width)
    return LayerCost(
        name=layer.name,
        kind=f"conv_{layer.input}",
        outputs=outputs,
        binary_ops=binary_ops,
        lane_steps=lane_steps,
        acc_bits=n,
        cycles=compute_cycles + output_cycles + mem_accesses,
        compute_cycles=compute_cycles,
        output_cycles=output_cycles,
        fetch_cycles=mem_accesses,
        bitops_xnor=binary_ops,
        bitops_popcount=bitops_popcount,
        bitops_accumulate=bitops_accumulate,
        bitops_output=outputs * out_cost,
        weight_bits=weight_bits,
        param_bits=param_bits,
        mem_accesses=mem_accesses,
    )


@dataclass
class ModelCost:
    config: AcceleratorConfig
    layers: list[LayerCost]

    def total(self, attr: str) -> int:
        return sum(getattr(layer, attr) for layer in self.layers)

    @property
    def cycles(self) -> int:
        return self.total("cycles")

    @property
    def bitops(self) -> int:
        return sum(layer.bitops for layer in self.layers)

    @property
    def memory_bits(self) -> int:
        return self.total("weight_bits") + self.total("param_bits")

    def latency_us(self) -> float:
        return self.cycles / self.config.clock_mhz

    def summary(self) -> dict:
        return {
            "config": asdict(self.config),
            "cycles": self.cycles,
            "bitops": self.bitops,
            "binary_ops": self.total("binary_ops"),
            "lane_steps": self.total("lane_steps"),
            "weight_bits": self.total("weight_bits"),
            "param_bits": self.total("param_bits"),
            "mem_accesses": self.total("mem_accesses"),
            "latency_us": self.latency_us(),
        }


def model_cost(model: IntegerModel, cfg: AcceleratorConfig | None = None) -> ModelCost:
    """Per-layer and total cost of running `model` once (one 1 s window) on `cfg`."""
    cfg = cfg or AcceleratorConfig()
    t = model.n_frames
    layers = []
    for layer in model.layers:
        layers.append(layer_cost(layer, t, cfg))
        t = layer.out_len(t)
    return ModelCost(cfg, layers)


def baseline_config(cfg: AcceleratorConfig) -> AcceleratorConfig:
    """The conventional BNN accelerator: 32-bit accumulators and a multiplier BN."""
    return replace(cfg, acc_bits=32, bn_unit="multiplier")
