"""Cortex-M benchmark on the emulated boards: instructions per inference (per layer), per
front-end hop, per second of streamed audio, flash and RAM, real-time margin; one column
per core (tools/device/firmware.py BOARDS).

Counting. QEMU runs with ``-icount shift=0``: every instruction takes exactly 1 ns of
virtual time, and the firmware's tick counter runs at the board's BOARD_TICK_HZ
(firmware/board/board_cfg.h; INFO reports it): 25 MHz on the MPS2 images, so one tick is
40 instructions there (6 on the 168 MHz STM32F405, 62.5 on the 16 MHz nRF51). The
firmware reads it around each layer, each completed front-end hop and the detector, and
reports the figures in STATS. The host sends one frame at a time (stop-and-wait), so no
receive interrupt lands inside a measured interval. "Busy per second of audio" is
everything the core did while streaming (UART interrupts, CRC, parsing, front-end,
network, detector, replies): elapsed minus the time asleep in WFI, over the audio's
duration.

Streaming inference. The firmware computes only the time steps a window adds
(firmware/bnn_stream.c); the first windows after a start still fill the rings, so the
network's instructions per inference are the mean over the steady state (after the window
is full and one more second of audio), and the per-layer counts are the last inference's.
The same run then sets CONFIG flag FULL_WINDOW and streams another second: every layer
over the whole window, the cost without streaming (and the like-for-like figure against
CMSIS-NN, which recomputes the window too).

Always-on load: what a microphone-fed device runs all day, per second of audio: the
front-end every hop plus the network and the detector every `stride` hops (from the
measured parts: mean front-end hop, mean steady-state inference, last detector call). Serial ingest:
the rest of the busy time (UART interrupts, CRC, frame parsing, replies), which a device
with its own microphone does not pay; reported per second of 16 kHz PCM and per byte.

Real-time margin: at about one instruction per cycle, a load of L instructions per
second leaves 1 - L / f of a core clocked at f (the board's core clock, PART_HZ: the
MPS2 FPGA's 25 MHz, the STM32F405's 168 MHz, ...). A Cortex-M0 needs more cycles per
instruction (2-3 for loads, branches), a Cortex-M7 fewer (dual issue): the margin is an
estimate there.
"""

from __future__ import annotations

import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bnnkws.generator.base.errors import BnnkwsError, BuildError
from bnnkws.generator.integer.intmodel import ConvLayer, IntegerModel

CORE_HZ = 25_000_000  # MPS2 FPGA core clock
# core clock of each target (the margin's f): MPS2/MPS3 FPGA images, STM32F405 after its
# PLL set-up (firmware/board/board.c), nRF51 16 MHz
PART_HZ = {
    "mps2-an386": 25_000_000,
    "mps2-an385": 25_000_000,
    "mps2-an500": 25_000_000,
    "mps2-an505": 20_000_000,
    "mps3-an547": 32_000_000,
    "netduinoplus2": 168_000_000,
    "microbit": 16_000_000,
}
# what a target's figures mean beyond the counts (added to its section of the report)
TARGET_NOTES = {
    "microbit": "Counts are instructions; a Cortex-M0 takes 1 to 3 cycles per instruction, so "
    "the margin at 16 MHz is optimistic.",
}
# the default model before issue 12 (docs/BENCH_MCU.md of then, mps2-an386)
BEFORE = {"busy": 12_600_000, "always_on": 8_750_000, "flash": 32_256, "ram": 10_848}
ALWAYS_ON_TARGET = 2_000_000
PEER = {  # ARM CMSIS-NN v7 int8 kernels running the MLPerf Tiny KWS DS-CNN, -O2, counted on the same emulator
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
    stride: int = 5  # hops between inferences (firmware/app/app.h BK_APP_STRIDE)
    opt: str = "speed"  # kernels at -O2 (speed) or -Os (size)


@dataclass
class McuResult:
    case: str
    description: str
    target: str
    model_hash: str
    flash: int
    ram: int
    ram_parts: dict
    instructions: int  # per inference, streaming: mean over the steady state
    layers: list[tuple[str, str, int]]  # (name, what, instructions) streaming, last inference
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
    tick_hz: int = 25_000_000
    ingest_per_audio_s: int = 0  # busy instructions outside front-end/network/detector, per s
    flash_by_part: dict = field(default_factory=dict)  # flash_parts of the image
    notes: list[str] = field(default_factory=list)
    full_window: int = 0  # per inference with every window recomputed (FULL_WINDOW), mean
    full_layers: list = field(default_factory=list)  # (name, what, instructions), full window
    instructions_min: int = 0  # least streaming inference of the steady state
    opt: str = "speed"  # how the kernels were built (McuCase.opt)
    stream_bytes: int = 0  # RAM of the streaming state (BK_MODEL_STREAM_WORDS)

    @property
    def core_hz(self) -> int:
        return PART_HZ.get(self.target, CORE_HZ)

    @property
    def tick_instructions(self) -> float:
        """Instructions per timer tick: the resolution of every count."""
        return 1e9 / self.tick_hz

    @property
    def load_per_s(self) -> float:
        """Instructions per second of audio, from the parts: front-end every hop,
        network + detector every stride hops."""
        hops = 1.0 / self.hop_s
        return (
            self.frontend_per_hop * hops + (self.instructions + self.detector) * hops / self.stride
        )

    @property
    def always_on_per_s(self) -> float:
        """Front-end + network + detector per second of audio (no serial ingest)."""
        return self.load_per_s

    @property
    def margin(self) -> float:
        return 1.0 - self.busy_per_audio_s / self.core_hz


FLASH_PARTS = (
    "kernels",
    "front-end code",
    "front-end tables",
    "weights",
    "thresholds, layer table",
    "detector",
    "link, app",
    "board",
    "libgcc",
    "padding",
)
_MAP_INPUT = re.compile(r"^ (\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$")


def _flash_part(section: str, obj: str) -> str:
    """Which part of the image an input section belongs to (FLASH_PARTS)."""
    name, folder = Path(obj).name, Path(obj).parent.name
    if "libgcc" in obj or "libc" in obj:
        return "libgcc"
    if folder == "model":  # generated data: each array its own section (-fdata-sections)
        if ".fe_" in section or section.endswith("bk_model_frontend"):
            return "front-end tables"
        return "weights" if section.endswith("_weights") else "thresholds, layer table"
    if folder == "board":
        return "board"
    if folder == "app" or name in ("protocol.o", "crc32.o"):
        return "link, app"
    if name == "frontend.o":
        return "front-end code"
    if name == "detector.o":
        return "detector"
    return "kernels"


def flash_parts(map_text: str) -> dict[str, int]:
    """Flash bytes per part of the image (FLASH_PARTS), from a GNU ld map: the input
    sections placed in .text, .ARM.exidx and the .data load image."""
    parts = dict.fromkeys(FLASH_PARTS, 0)
    body = map_text.split("Linker script and memory map", 1)[-1]
    out, pending = "", None
    for line in body.splitlines():
        if line[:1] == ".":  # an output section
            out = line.split()[0]
            continue
        if out not in (".text", ".ARM.exidx", ".data"):
            continue
        if line.startswith(" *fill*"):
            parts["padding"] += int(line.split()[2], 16)
            continue
        if line.startswith(" .") and len(line.split()) == 1:  # name alone; numbers follow
            pending = line.strip()
            continue
        m = _MAP_INPUT.match(line)
        if m and not line.startswith(" *"):
            section = m.group(1) or pending or ""
            pending = None
            size = int(m.group(3), 16)
            if size and section.startswith("."):
                parts[_flash_part(section, m.group(4).strip())] += size
    return parts


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


def measure(case: McuCase, build_root: Path, audio_s: float = 4.0) -> McuResult:
    """Build, emulate, stream `audio_s` of audio stop-and-wait, read STATS; then one more
    second with every window recomputed whole (FULL_WINDOW).

    The busy time and the streaming figures are taken over the audio after the window is
    full and one more second (the rings are filled, inferences run at the stride: the
    steady state)."""
    from bnnkws.generator.codegen.emit_c import emit_c, stream_state_words
    from bnnkws.generator.export import blob as blobmod
    from bnnkws.generator.export.detector_config import DetectorConfig
    from bnnkws.tools.device import protocol as P
    from bnnkws.tools.device.firmware import build_firmware
    from bnnkws.tools.device.qemu import Emulator
    from bnnkws.tools.device.serial_link import open_link

    model = case.model
    model_dir = emit_c(model)
    notes = [TARGET_NOTES[case.target]] if case.target in TARGET_NOTES else []
    streaming = True
    try:
        fw = build_firmware(model_dir, case.target, build_root / case.name, opt=case.opt)
    except BuildError as exc:
        if "overflows RAM" not in str(exc):
            raise
        # the streaming state does not fit this part's RAM: the full-window firmware
        fw = build_firmware(
            model_dir, case.target, build_root / case.name, {"BK_APP_STREAMING": "0"}, case.opt
        )
        streaming = False
        notes.append(
            f"The streaming state ({4 * stream_state_words(model):,} B) does not fit this part's "
            "RAM with the rest: built without streaming inference (`bnnkws build --no-streaming`), "
            "so every inference recomputes the whole window."
        )
    audio = bench_audio(audio_s + 1.0)
    det = DetectorConfig.of_model(model)
    flags = P.SEND_RESULT | P.SEND_DETECTION
    with Emulator(fw.elf, machine=case.target) as emu, open_link(emu.port, max_window=1) as link:
        info = link.info
        link.configure(P.Config(case.stride, det, flags))
        link.reset_stream()
        first = info.n_frames * info.hop + info.frame_len - info.hop  # fills the window
        warm = first + info.sample_rate  # and one more second: the rings are filled
        end = int(audio_s * info.sample_rate)
        if end <= warm:
            raise BnnkwsError(
                f"{case.name}: {audio_s} s of audio leaves no steady state (the warm-up takes "
                f"{warm / info.sample_rate:.1f} s)"
            )
        t0 = time.monotonic()
        link.stream_audio(audio[:warm])
        before = link.get_stats()
        link.stream_audio(audio[warm:end])
        wall = time.monotonic() - t0
        st = link.get_stats()
        link.configure(P.Config(case.stride, det, flags | P.FULL_WINDOW))
        link.stream_audio(audio[end:])
        full = link.get_stats()
        link.shutdown()
    steady_s = (end - warm) / info.sample_rate
    infers = st.inferences - before.inferences
    if infers < 1 or full.inferences == st.inferences:
        raise RuntimeError(f"{case.name}: no inference ran in the steady state of {audio_s} s")
    instr = st.instructions

    def per_layer(stats) -> list[tuple[str, str, int]]:
        return [
            (layer.name, _layer_what(layer), instr(t))
            for layer, t in zip(model.layers, stats.layer_ticks, strict=True)
        ]

    busy = instr(st.busy_since(before))
    hops = st.hops - before.hops
    network = instr(st.infer_ticks_total - before.infer_ticks_total)
    parts = (
        instr(st.frontend_ticks_total - before.frontend_ticks_total)
        + network
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
        instructions=round(network / infers),
        layers=per_layer(st),
        frontend_per_hop=instr(st.frontend_ticks_total) // max(1, st.hops),
        frontend_max_hop=instr(st.frontend_ticks_max),
        detector=instr(st.detector_ticks_last),
        stride=case.stride,
        hop_s=info.hop / info.sample_rate,
        busy_per_audio_s=round(busy / steady_s),
        link_per_byte=round((busy - parts) / max(1, rx)),
        audio_s=audio.size / info.sample_rate,
        wall_s=wall,
        inferences=full.inferences,
        tick_hz=info.tick_hz,
        ingest_per_audio_s=round((busy - parts) / steady_s),
        flash_by_part=flash_parts(fw.map.read_text()),
        notes=notes,
        full_window=round(
            instr(full.infer_ticks_total - st.infer_ticks_total) / (full.inferences - st.inferences)
        ),
        full_layers=per_layer(full),
        instructions_min=instr(st.infer_ticks_min),
        opt=case.opt,
        stream_bytes=4 * stream_state_words(model) if streaming else 0,
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


def _vs_peer(r: McuResult) -> str:
    """CMSIS-NN's DS-CNN recomputes the whole window: the like-for-like ratio is ours
    over the full window; streaming's is the ratio a deployed spotter gets."""
    peer = PEER["instructions"]
    return (
        f"{peer / max(1, r.full_window):.1f}x fewer full window, "
        f"{peer / max(1, r.instructions):.1f}x fewer streaming"
    )


def format_report(results: list[McuResult]) -> str:
    lines = []
    for r in results:
        ok = "streaming meets" if r.instructions <= TARGET_INSTRUCTIONS else "misses"
        lines += [
            f"{r.case} on {r.target}: model {r.model_hash[:16]} ({r.description})",
            f"  instructions per inference at stride {r.stride}: {r.instructions:,} streaming, "
            f"{r.full_window:,} full window ({ok} the {TARGET_INSTRUCTIONS:,} target; "
            f"CMSIS-NN DS-CNN {PEER['instructions']:,}: {_vs_peer(r)})",
        ]
        full = {name: n for name, _, n in r.full_layers}
        lines += [
            f"    {name:<10} {what:<48} {n:>10,} {full.get(name, 0):>10,}" for name, what, n in r.layers
        ]
        lines += [
            f"  front-end per hop: {r.frontend_per_hop:,} (max {r.frontend_max_hop:,}); detector {r.detector:,}",
            f"  flash {r.flash:,} B, RAM {r.ram:,} B (data {r.ram_parts['data']}, bss {r.ram_parts['bss']}, "
            f"stack {r.ram_parts['stack']}); a third of CMSIS-NN's: {PEER['flash'] // 3:,} / {PEER['ram'] // 3:,} B",
            f"  always-on: {r.always_on_per_s / 1e6:.2f} M instructions/s of audio (front-end, network, "
            f"detector; stride {r.stride}); serial ingest {r.ingest_per_audio_s / 1e6:.2f} M/s "
            f"({r.link_per_byte} per received byte); {r.busy_per_audio_s / 1e6:.2f} M/s measured busy "
            f"while streaming; real-time margin at {r.core_hz / 1e6:.0f} MHz: {100 * r.margin:.0f}%",
        ]
    return "\n".join(lines)


def _core_table(rows: list[McuResult]) -> list[str]:
    """One column per core: the same model on every core built."""
    from bnnkws.tools.device.qemu import MACHINES

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join(cell(r) for r in rows) + " |"

    return [
        "| | " + " | ".join(f"`{r.target}`" for r in rows) + " |",
        "|---|" + "---|" * len(rows),
        row("core", lambda r: MACHINES.get(r.target, r.target)),
        row("instructions / inference, streaming", lambda r: f"{r.instructions:,}"),
        row("instructions / inference, full window", lambda r: f"{r.full_window:,}"),
        row("front-end / hop", lambda r: f"{r.frontend_per_hop:,}"),
        row("detector / inference", lambda r: f"{r.detector:,}"),
        row("**always-on M instr / s audio**", lambda r: f"**{r.always_on_per_s / 1e6:.2f}**"),
        row(
            "serial ingest M instr / s (per byte)",
            lambda r: f"{r.ingest_per_audio_s / 1e6:.2f} ({r.link_per_byte})",
        ),
        row("busy M instr / s audio", lambda r: f"{r.busy_per_audio_s / 1e6:.2f}"),
        row("flash B", lambda r: f"{r.flash:,}"),
        *[
            row(f"&nbsp;&nbsp;{part}", lambda r, part=part: f"{r.flash_by_part.get(part, 0):,}")
            for part in FLASH_PARTS
            if any(r.flash_by_part.get(part) for r in rows)
        ],
        row("RAM B", lambda r: f"{r.ram:,}"),
        row(
            "margin at core clock", lambda r: f"{100 * r.margin:.0f}% at {r.core_hz / 1e6:.0f} MHz"
        ),
        row("timer tick (instructions)", lambda r: f"{r.tick_instructions:.3g}"),
    ]


def _closing(
    rows: list[McuResult],
    strides: list[McuResult] | None = None,
    sized: list[McuResult] | None = None,
) -> list[str]:
    """The default model against issue 12's starting point and targets."""
    from bnnkws.tools.device.qemu import MACHINES

    if not rows:
        return []
    ref = next((r for r in rows if r.target == "mps2-an386"), rows[0])
    b = BEFORE
    works = ", ".join(f"`{r.target}` ({MACHINES.get(r.target, r.target)})" for r in rows)
    low = min(rows, key=lambda r: r.always_on_per_s)
    high = max(rows, key=lambda r: r.always_on_per_s)
    return [
        "## Against issue 12",
        "",
        f"Default model on `{ref.target}`: always-on {ref.always_on_per_s / 1e6:.2f} M instructions "
        f"per second of audio (front-end, network, detector at stride {ref.stride}; "
        f"{b['always_on'] / 1e6:.2f} M before, target {ALWAYS_ON_TARGET / 1e6:.0f} M: "
        f"{'met' if ref.always_on_per_s <= ALWAYS_ON_TARGET else 'missed'}); busy while "
        f"streaming PCM over the UART {ref.busy_per_audio_s / 1e6:.2f} M/s against "
        f"{b['busy'] / 1e6:.1f} M/s before, of which the serial ingest is "
        f"{ref.ingest_per_audio_s / 1e6:.2f} M/s ({ref.link_per_byte} instructions per received "
        f"byte); flash {ref.flash:,} B against {b['flash']:,} B before (target "
        f"{PEER['flash'] // 3:,} B: {'met' if ref.flash <= PEER['flash'] // 3 else 'missed'}); "
        f"RAM {ref.ram:,} B against {b['ram']:,} B before (target {PEER['ram'] // 3:,} B: "
        f"{'met' if ref.ram <= PEER['ram'] // 3 else 'missed'})."
        + (
            " Flash by part, largest first: "
            + ", ".join(
                f"{k} {v:,} B"
                for k, v in sorted(ref.flash_by_part.items(), key=lambda kv: -kv[1])
                if v
            )
            + f" ({ref.flash - PEER['flash'] // 3:,} B over the target)."
            if ref.flash_by_part and ref.flash > PEER["flash"] // 3
            else ""
        ),
        "",
        f"Across the cores the always-on load ranges from {low.always_on_per_s / 1e6:.2f} M "
        f"(`{low.target}`) to {high.always_on_per_s / 1e6:.2f} M (`{high.target}`) instructions "
        "per second of audio. QEMU machines measured here (each also streamed to and "
        f"matched with the host library bit for bit by tests/device/test_cores.py): {works}.",
        "",
        f"Streaming inference (firmware/bnn_stream.c): {ref.instructions:,} instructions per "
        f"inference at stride {ref.stride} against {ref.full_window:,} with every window "
        f"recomputed ({ref.full_window / max(1, ref.instructions):.1f}x fewer, the same scores "
        f"bit for bit); its state (each hidden layer's past outputs, and the column layers' "
        f"prepared thresholds and weight counts, sized for any stride) takes {ref.stream_bytes:,} B "
        f"of the {ref.ram:,} B of RAM: without it the RAM would be {ref.ram - ref.stream_bytes:,} B "
        f"(target {PEER['ram'] // 3:,} B), at {ref.full_window - ref.instructions:,} more "
        f"instructions per inference."
        + "".join(
            f" At stride {r.stride} ({1000 * r.stride * r.hop_s:.0f} ms): {r.instructions:,} per "
            f"inference against {r.full_window:,} ({r.full_window / max(1, r.instructions):.1f}x), "
            f"always-on {r.always_on_per_s / 1e6:.2f} M/s, of which the front-end "
            f"{r.frontend_per_hop / r.hop_s / 1e6:.2f} M/s."
            for r in strides or []
        )
        + "".join(
            f" Kernels and front-end built for size (`bnnkws build --opt size`, -Os): flash "
            f"{r.flash:,} B against {ref.flash:,} B ({ref.flash - r.flash:,} B less; kernels "
            f"{r.flash_by_part.get('kernels', 0):,} B against {ref.flash_by_part.get('kernels', 0):,} B, "
            f"front-end code {r.flash_by_part.get('front-end code', 0):,} B against "
            f"{ref.flash_by_part.get('front-end code', 0):,} B) for {r.instructions:,} instructions per "
            f"inference against {ref.instructions:,} and {r.frontend_per_hop:,} per hop against "
            f"{ref.frontend_per_hop:,}: always-on {r.always_on_per_s / 1e6:.2f} M/s against "
            f"{ref.always_on_per_s / 1e6:.2f} M/s."
            for r in sized or []
        ),
        "",
    ]


def format_doc(results: list[McuResult], command: str) -> str:
    first = results[0] if results else None
    cores = [
        r
        for r in results
        if first
        and r.model_hash == first.model_hash
        and r.description == first.description
        and r.stride == first.stride
        and r.opt == first.opt
    ]
    strides = [
        r
        for r in results
        if first and r.model_hash == first.model_hash and r.stride != first.stride
    ]
    sized = [
        r
        for r in results
        if first and r.model_hash == first.model_hash and r.opt != first.opt
    ]
    out = [
        "# Cortex-M benchmark (emulated cores)",
        "",
        f"Produced by `{command}` (tools/bench/mcu.py) on {platform.machine()} with "
        "QEMU `-icount shift=0`: counts are instructions, exact up to one tick of the "
        "board's timer (40 instructions on the MPS2 images; per core below; repeated runs "
        "agree within one tick on any machine; only the wall time depends on the host).",
        "",
        "How each number is taken is in the docstring of tools/bench/mcu.py and in "
        "docs/FIRMWARE.md. Reference: ARM CMSIS-NN int8 DS-CNN on the MPS2 Cortex-M4 emulator, "
        f"{PEER['instructions']:,} instructions per inference, {PEER['flash']:,} B flash, "
        f"{PEER['ram']:,} B RAM. Targets: at most {TARGET_INSTRUCTIONS:,} instructions per "
        f"inference, flash below {PEER['flash'] // 3:,} B and RAM below {PEER['ram'] // 3:,} B; "
        f"always-on at most {ALWAYS_ON_TARGET / 1e6:.0f} M instructions per second of audio.",
        "",
    ]
    if len(cores) > 1:
        out += [f"## Cores ({first.case}: {first.description})", "", *_core_table(cores), ""]
    out += _closing(cores, strides, sized)
    out += [
        "## Summary",
        "",
        "| case | target | stride | instructions / inference, streaming | full window | vs CMSIS-NN | front-end / hop | always-on M instr / s audio | serial ingest M instr / s | flash B | RAM B | busy M instr / s audio | margin |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        out.append(
            f"| {r.case} | {r.target} | {r.stride} | {r.instructions:,} | {r.full_window:,} | {_vs_peer(r)} | "
            f"{r.frontend_per_hop:,} | {r.always_on_per_s / 1e6:.2f} | {r.ingest_per_audio_s / 1e6:.2f} | "
            f"{r.flash:,} | {r.ram:,} | {r.busy_per_audio_s / 1e6:.2f} | "
            f"{100 * r.margin:.0f}% at {r.core_hz / 1e6:.0f} MHz |"
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
            "| layer | what | instructions, streaming | full window |",
            "|---|---|---|---|",
        ]
        full = {name: n for name, _, n in r.full_layers}
        out += [f"| {name} | {what} | {n:,} | {full.get(name, 0):,} |" for name, what, n in r.layers]
        out += [
            f"| **network** | per inference, mean of the steady state (streaming: least {r.instructions_min:,}) "
            f"| **{r.instructions:,}** | **{r.full_window:,}** |",
            f"| detector | per inference | {r.detector:,} | |",
            f"| front-end | per hop (20 ms), mean; max {r.frontend_max_hop:,} | {r.frontend_per_hop:,} | |",
            "",
            f"Flash {r.flash:,} B; RAM {r.ram:,} B = data {r.ram_parts['data']:,} + bss "
            f"{r.ram_parts['bss']:,} + stack {r.ram_parts['stack']:,}."
            + (
                " Flash by part: "
                + ", ".join(f"{k} {v:,}" for k, v in r.flash_by_part.items() if v)
                + " B."
                if r.flash_by_part
                else ""
            ),
            "",
            f"Always-on (front-end, network, detector): {r.always_on_per_s / 1e6:.2f} M instructions "
            f"per second of audio. Measured busy time while streaming PCM (UART interrupts, CRC, "
            f"parser, replies included): {r.busy_per_audio_s / 1e6:.2f} M per second, of which the "
            f"serial ingest is {r.ingest_per_audio_s / 1e6:.2f} M ({r.link_per_byte} instructions per "
            f"received byte); a real-time margin of {100 * r.margin:.0f}% at {r.core_hz / 1e6:.0f} MHz.",
        ]
        out += [f"- {n}" for n in r.notes]
    return "\n".join(out) + "\n"
