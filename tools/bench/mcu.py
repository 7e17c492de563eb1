"""Cortex-M benchmark on the emulated board: instructions per inference (per layer), per
front-end hop, per second of streamed audio, flash and RAM, real-time margin.

Counting. QEMU runs with ``-icount shift=0``: every instruction takes exactly 1 ns of
virtual time, and TIMER0 counts the 25 MHz peripheral clock, so one timer tick is 40
instructions (a resolution of 40; DESIGN.md section 5). The firmware reads TIMER0 around
each layer, each completed front-end hop and the detector, and reports the figures in
STATS. The host sends one frame at a time (stop-and-wait), so no receive interrupt
lands inside a measured interval. "Busy per second of audio" is everything the core did
while streaming (UART interrupts, CRC, parsing, front-end, network, detector, replies):
elapsed minus the time asleep in WFI, over the audio's duration.

Real-time margin: the MPS2 FPGA clocks its Cortex-M at 25 MHz; at about one instruction
per cycle (Cortex-M4 integer code), a load of L instructions per second leaves
1 - L / 25e6 of the core free. The same load on a 100 MHz part is a quarter of that.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bnnkws.generator.integer.intmodel import ConvLayer, IntegerModel

CORE_HZ = 25_000_000  # MPS2 FPGA core clock
PEER = {  # DESIGN.md section 5: CMSIS-NN int8 DS-CNN on the same emulator
    "instructions": 7_700_000,
    "flash": 53_600,
    "ram": 36_800,
}
TARGET_INSTRUCTIONS = 770_000


@dataclass
class McuCase:
    name: str
    description: str
    model: IntegerModel
    target: str = "mps2-an386"


@dataclass
class McuResult:
    case: str
    description: str
    target: str
    model_hash: str
    flash: int
    ram: int
    ram_parts: dict
    instructions: int  # per inference (min over the run)
    layers: list[tuple[str, str, int]]  # (name, what, instructions)
    frontend_per_hop: int
    frontend_max_hop: int
    detector: int
    stride: int
    hop_s: float
    busy_per_audio_s: int  # instructions per second of streamed audio, all included
    link_per_byte: int  # busy instructions not in the front-end/network/detector, per byte received
    audio_s: float
    wall_s: float
    inferences: int
    notes: list[str] = field(default_factory=list)

    @property
    def load_per_s(self) -> float:
        """Instructions per second of audio, from the parts: front-end every hop,
        network + detector every stride hops."""
        hops = 1.0 / self.hop_s
        return (
            self.frontend_per_hop * hops + (self.instructions + self.detector) * hops / self.stride
        )

    @property
    def margin(self) -> float:
        return 1.0 - self.busy_per_audio_s / CORE_HZ


def _layer_what(layer) -> str:
    if not isinstance(layer, ConvLayer):
        return f"OR pool k={layer.kernel}"
    g = f", groups {layer.groups}" if layer.groups > 1 else ""
    return (
        f"{layer.input} conv {layer.c_in}->{layer.c_out} k={layer.kernel} s={layer.stride}{g}, "
        f"{layer.acc_bits}-bit {layer.acc_mode}"
    )


def bench_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Deterministic speech-like input: noise plus a gliding harmonic tone."""
    rng = np.random.default_rng(seed)
    n = int(16000 * seconds)
    t = np.arange(n) / 16000.0
    f0 = 140 + 60 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000.0
    voice = sum(np.sin(k * phase) / k for k in range(1, 8)) * (
        0.5 + 0.5 * np.sin(2 * np.pi * 2.0 * t)
    )
    x = 4000 * voice + 300 * rng.standard_normal(n)
    return np.clip(x, -32768, 32767).astype(np.int16)


def measure(case: McuCase, build_root: Path, audio_s: float = 3.0) -> McuResult:
    """Build, emulate, stream `audio_s` of audio stop-and-wait, read STATS.

    The busy time is taken over the audio after the first second (the window is full and
    inferences run at the stride, the steady state)."""
    from bnnkws.generator.codegen.emit_c import emit_c
    from bnnkws.generator.export import blob as blobmod
    from bnnkws.tools.device.firmware import build_firmware
    from bnnkws.tools.device.qemu import Emulator
    from bnnkws.tools.device.serial_link import open_link

    model = case.model
    model_dir = emit_c(model)
    fw = build_firmware(model_dir, case.target, build_root / case.name)
    audio = bench_audio(audio_s)
    with Emulator(fw.elf, machine=case.target) as emu, open_link(emu.port, max_window=1) as link:
        info = link.info
        link.reset_stream()
        first = info.n_frames * info.hop + info.frame_len - info.hop  # fills the window
        t0 = time.monotonic()
        link.stream_audio(audio[:first])
        before = link.get_stats()
        link.stream_audio(audio[first:])
        wall = time.monotonic() - t0
        st = link.get_stats()
        link.shutdown()
    steady_s = (audio.size - first) / info.sample_rate
    if st.inferences == 0:
        raise RuntimeError(f"{case.name}: no inference ran on {audio_s} s of audio")
    instr = st.instructions
    layers = [
        (layer.name, _layer_what(layer), instr(t))
        for layer, t in zip(model.layers, st.layer_ticks, strict=True)
    ]
    busy = instr(st.busy_since(before))
    hops = st.hops - before.hops
    infers = st.inferences - before.inferences
    parts = (
        instr(st.frontend_ticks_total - before.frontend_ticks_total)
        + instr(st.infer_ticks_total - before.infer_ticks_total)
        + infers * instr(st.detector_ticks_last)
    )
    rx = st.rx_bytes - before.rx_bytes
    assert hops > 0
    s = fw.sizes
    return McuResult(
        case=case.name,
        description=case.description,
        target=case.target,
        model_hash=blobmod.model_hash(blobmod.to_bytes(model)),
        flash=fw.flash,
        ram=fw.ram,
        ram_parts={k: s[k] for k in ("data", "bss", "stack")},
        instructions=instr(st.infer_ticks_min),
        layers=layers,
        frontend_per_hop=instr(st.frontend_ticks_total) // max(1, st.hops),
        frontend_max_hop=instr(st.frontend_ticks_max),
        detector=instr(st.detector_ticks_last),
        stride=info.stride,
        hop_s=info.hop / info.sample_rate,
        busy_per_audio_s=round(busy / steady_s),
        link_per_byte=round((busy - parts) / max(1, rx)),
        audio_s=audio.size / info.sample_rate,
        wall_s=wall,
        inferences=st.inferences,
    )


def preset_model(preset: str, bits: int, mode: str = "wrap", n_classes: int = 12) -> IntegerModel:
    """An untrained trainer preset (the cost of a trained one: same shapes and widths)."""
    import torch

    from bnnkws.generator.export.to_integer import to_integer_model
    from bnnkws.generator.training.model import BnnKws, bnn_config

    torch.manual_seed(0)
    tm = BnnKws(bnn_config(preset, n_classes=n_classes, acc_bits=bits, acc_mode=mode))
    tm.eval()
    return to_integer_model(tm)


def format_report(results: list[McuResult]) -> str:
    lines = []
    for r in results:
        ok = "meets" if r.instructions <= TARGET_INSTRUCTIONS else "misses"
        lines += [
            f"{r.case} on {r.target}: model {r.model_hash[:16]} ({r.description})",
            f"  instructions per inference: {r.instructions:,} ({ok} the {TARGET_INSTRUCTIONS:,} target; "
            f"CMSIS-NN DS-CNN {PEER['instructions']:,}: {PEER['instructions'] / max(1, r.instructions):.1f}x)",
        ]
        lines += [f"    {name:<10} {what:<48} {n:>10,}" for name, what, n in r.layers]
        lines += [
            f"  front-end per hop: {r.frontend_per_hop:,} (max {r.frontend_max_hop:,}); detector {r.detector:,}",
            f"  flash {r.flash:,} B, RAM {r.ram:,} B (data {r.ram_parts['data']}, bss {r.ram_parts['bss']}, "
            f"stack {r.ram_parts['stack']}); a third of CMSIS-NN's: {PEER['flash'] // 3:,} / {PEER['ram'] // 3:,} B",
            f"  load: {r.load_per_s / 1e6:.2f} M instructions/s from the parts (stride {r.stride}); "
            f"{r.busy_per_audio_s / 1e6:.2f} M/s measured busy while streaming, link included "
            f"({r.link_per_byte} per received byte); "
            f"real-time margin at {CORE_HZ / 1e6:.0f} MHz: {100 * r.margin:.0f}%",
        ]
    return "\n".join(lines)


def format_doc(results: list[McuResult], command: str) -> str:
    out = [
        "# Cortex-M benchmark (emulated MPS2)",
        "",
        f"Produced by `{command}` (tools/bench/mcu.py) on {platform.machine()} with "
        "QEMU `-icount shift=0`: counts are instructions, exact up to the 40-instruction "
        "timer tick (repeated runs agree within one tick on any machine; only the wall time "
        "depends on the host).",
        "",
        "How each number is taken is in the docstring of tools/bench/mcu.py and in "
        "docs/FIRMWARE.md. Reference (DESIGN.md): ARM CMSIS-NN int8 DS-CNN on this emulator, "
        f"{PEER['instructions']:,} instructions per inference, {PEER['flash']:,} B flash, "
        f"{PEER['ram']:,} B RAM. Targets: at most {TARGET_INSTRUCTIONS:,} instructions per "
        f"inference, flash below {PEER['flash'] // 3:,} B and RAM below {PEER['ram'] // 3:,} B.",
        "",
        "## Summary",
        "",
        "| case | target | instructions / inference | vs CMSIS-NN | front-end / hop | flash B | RAM B | busy M instr / s audio | margin at 25 MHz |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        out.append(
            f"| {r.case} | {r.target} | {r.instructions:,} | {PEER['instructions'] / max(1, r.instructions):.1f}x fewer | "
            f"{r.frontend_per_hop:,} | {r.flash:,} | {r.ram:,} | {r.busy_per_audio_s / 1e6:.2f} | {100 * r.margin:.0f}% |"
        )
    for r in results:
        out += [
            "",
            f"## {r.case} ({r.target})",
            "",
            f"Model {r.model_hash[:16]}: {r.description}. Stride {r.stride} hops "
            f"({1000 * r.stride * r.hop_s:.0f} ms), {r.inferences} inferences over "
            f"{r.audio_s:.2f} s of audio streamed in {r.wall_s:.1f} s wall.",
            "",
            "| layer | what | instructions |",
            "|---|---|---|",
        ]
        out += [f"| {name} | {what} | {n:,} |" for name, what, n in r.layers]
        out += [
            f"| **network** | min over the run | **{r.instructions:,}** |",
            f"| detector | per inference | {r.detector:,} |",
            f"| front-end | per hop (20 ms), mean; max {r.frontend_max_hop:,} | {r.frontend_per_hop:,} |",
            "",
            f"Flash {r.flash:,} B; RAM {r.ram:,} B = data {r.ram_parts['data']:,} + bss "
            f"{r.ram_parts['bss']:,} + stack {r.ram_parts['stack']:,}.",
            "",
            f"Load from the parts: {r.load_per_s / 1e6:.2f} M instructions per second of audio; "
            f"measured busy time while streaming (UART interrupts, CRC, parser, replies included): "
            f"{r.busy_per_audio_s / 1e6:.2f} M per second ({r.link_per_byte} instructions per "
            f"received byte outside the front-end and the network), a real-time margin of "
            f"{100 * r.margin:.0f}% at 25 MHz.",
        ]
        out += [f"- {n}" for n in r.notes]
    return "\n".join(out) + "\n"
