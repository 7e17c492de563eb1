"""More Cortex-M cores and a real part under QEMU (firmware/board/board_cfg.h): Cortex-M7
(mps2-an500), Cortex-M33 (mps2-an505), Cortex-M55 (mps3-an547), the STM32F405 of the
Netduino Plus 2 (netduinoplus2: USART1, PLL clock tree, SysTick) and the nRF51 Cortex-M0
of the BBC micro:bit (microbit: no DSP, no CLZ; UART0 and TIMER0 of the nRF51). Each is built by the same build as the
MPS2 Cortex-M4 (`bnnkws build --target T`), started, streamed to, and its scores and
detections compared with the host library bit for bit; its timer says how many
instructions things take. Bad input: an unknown target, a model too large for a part,
a QEMU without the machine: one line each.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import bnn_models
import numpy as np
import pytest
from bnn_models import random_integer_model

from bnnkws.generator.base.errors import BuildError, DeviceError
from bnnkws.generator.codegen.emit_c import emit_c
from bnnkws.tools.device import protocol as P
from bnnkws.tools.device.detector import Detector, DetectorConfig

pytestmark = pytest.mark.qemu

# target -> its tick clock (board_cfg.h BOARD_TICK_HZ): the INFO the firmware reports
CORES = {
    "mps2-an500": 25_000_000,
    "mps2-an505": 20_000_000,
    "mps3-an547": 32_000_000,
    "netduinoplus2": 168_000_000,
    "microbit": 16_000_000,
}


@pytest.fixture(scope="module", autouse=True)
def toolchain() -> None:
    missing = [t for t in ("qemu-system-arm", "arm-none-eabi-gcc") if not shutil.which(t)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run tools/bootstrap.sh setup")


@pytest.fixture(scope="module")
def model():
    return random_integer_model(11, arch="small", n_classes=4)


@pytest.fixture(scope="module")
def build_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cores")


@pytest.fixture(scope="module")
def model_dir(model, build_root) -> Path:
    return emit_c(model, build_root / "model")


@pytest.fixture(scope="module")
def expected(model):
    """The host library's scores for every window of the clip, by last frame."""
    from bnnkws.tools.bench.mcu import bench_audio
    from bnnkws.tools.host.hostlib import CFrontend, CNet

    audio = bench_audio(1.3, seed=6)
    feats = CFrontend(model.frontend).features(audio)
    frames = list(range(48, feats.shape[0]))
    scores, _ = CNet.build(model).scores(np.stack([feats[f - 48 : f + 1] for f in frames]))
    return audio, dict(zip(frames, scores.tolist(), strict=True))


def stream(elf: Path, target: str, audio: np.ndarray, det: DetectorConfig):
    from bnnkws.tools.device.qemu import Emulator
    from bnnkws.tools.device.serial_link import open_link

    with Emulator(elf, machine=target) as emu:
        link = open_link(emu.port)
        try:
            link.configure(P.Config(2, det))
            results, detections = [], []
            link.listener = lambda t, o: (results if t == P.MsgType.RESULT else detections).append(
                o
            )
            link.stream_audio(audio)
            link.listener = None
            stats, info = link.get_stats(), link.info
            link.shutdown()
            assert emu.wait(10) == 0
        finally:
            link.close()
    return info, stats, results, detections


@pytest.fixture(scope="module")
def m4(model_dir, model, expected, build_root):
    """The MPS2 Cortex-M4 build: the reference for the instruction counts."""
    from bnnkws.tools.device.firmware import build_firmware

    fw = build_firmware(model_dir, "mps2-an386", build_root / "scons")
    det = DetectorConfig.for_labels(model.labels, threshold=0.0)
    return stream(fw.elf, "mps2-an386", expected[0], det)[1]


@pytest.mark.parametrize("target", list(CORES))
def test_core_streams_the_host_librarys_scores_and_detections(
    target, model, model_dir, expected, build_root, m4
):
    from bnnkws.tools.bench.mcu import flash_parts
    from bnnkws.tools.device.firmware import build_firmware

    fw = build_firmware(model_dir, target, build_root / "scons")
    parts = flash_parts(fw.map.read_text())  # every flash byte of the map in one part
    assert sum(parts.values()) == fw.flash and parts["weights"] > 0 and parts["kernels"] > 0
    audio, host = expected
    det = DetectorConfig.for_labels(model.labels, threshold=0.0)  # fires once warm
    info, stats, results, detections = stream(fw.elf, target, audio, det)

    assert info.board == target and info.tick_hz == CORES[target]
    assert [r.frame for r in results] == list(range(48, max(host) + 1, 2))
    for r in results:
        assert list(r.scores) == host[r.frame], (target, r.frame)
    mirror = Detector(det)
    want = [d for r in results if (d := mirror.push(r.scores, r.frame)) is not None]
    assert want and [(d.frame, d.label, d.posterior) for d in detections] == [
        (d.frame, d.label, d.posterior) for d in want
    ]
    assert stats.stack_used + 256 < stats.stack_size and stats.rx_overruns == 0
    # the timer keeps the core's time: the same Cortex-M4 code (netduinoplus2) costs what
    # it costs on the MPS2 Cortex-M4, within a few timer ticks and the board's own UART
    # interrupts that land inside an inference (streaming inferences are short: ~15k
    # instructions here, so those add a few percent); other cores within 3x
    ours = stats.instructions(stats.infer_ticks_min)
    ref = m4.instructions(m4.infer_ticks_min)
    if target == "netduinoplus2":
        assert abs(ours - ref) <= 0.02 * ref + 1000, (ours, ref)
    else:
        assert ref / 3 < ours < 3 * ref, (target, ours, ref)


def test_unknown_target_and_too_large_model_get_one_line(build_root, monkeypatch):
    from bnnkws.tools.device.firmware import build_firmware

    with pytest.raises(BuildError, match="expected one of") as e:
        build_firmware(build_root, "stm32f7-nope", build_root / "scons")
    assert "\n" not in str(e.value)
    # a first layer with a fan-in of 9 x 40: 11 KiB of chunk tables, more than the
    # micro:bit's 16 KiB of RAM holds with the rest
    monkeypatch.setitem(bnn_models.ARCHS, "wide", [("conv", 256, 9, 1, 1), ("pool", 0)])
    big = emit_c(random_integer_model(3, arch="wide"), build_root / "wide")
    with pytest.raises(
        BuildError, match=r"too large for microbit: it overflows RAM by [\d,]+ B"
    ) as e:
        build_firmware(big, "microbit", build_root / "scons")
    assert "\n" not in str(e.value) and "16,384 B" in str(e.value)
    assert "--no-streaming" in str(e.value)  # RAM: dropping the streaming state may help


def test_a_qemu_without_the_machine_gets_one_line(tmp_path, monkeypatch):
    from bnnkws.tools.device import qemu

    fake = tmp_path / "qemu-system-arm"  # an old QEMU: no such machine
    fake.write_text(
        '#!/bin/sh\necho "qemu-system-arm: -M $4: unsupported machine type" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    elf = tmp_path / "fw.elf"
    elf.write_bytes(b"\x7fELF")
    monkeypatch.setattr(qemu, "qemu_binary", lambda: str(fake))
    with pytest.raises(DeviceError, match="no machine 'mps3-an547'.*QEMU 7.0") as e:
        qemu.Emulator(elf, machine="mps3-an547").start()
    assert "\n" not in str(e.value)


def test_bench_doc_has_one_column_per_core_and_the_always_on_load():
    from bnnkws.tools.bench.mcu import McuResult, format_doc

    def result(target: str, infer: int, fe: int, busy: int, tick_hz: int) -> McuResult:
        return McuResult(
            case="default" if target == "mps2-an386" else f"default-{target}",
            description="default.pt",
            target=target,
            model_hash="ab" * 32,
            flash=30_000,
            ram=10_000,
            ram_parts={"data": 0, "bss": 8_464, "stack": 1_536},
            instructions=infer,
            layers=[("conv0", "int8 conv", infer)],
            frontend_per_hop=fe,
            frontend_max_hop=fe,
            detector=1_000,
            stride=5,
            hop_s=0.02,
            busy_per_audio_s=busy,
            link_per_byte=100,
            audio_s=3.0,
            wall_s=5.0,
            inferences=21,
            tick_hz=tick_hz,
            ingest_per_audio_s=3_200_000,
            flash_by_part={"kernels": 20_000, "weights": 6_000, "libgcc": 4_000},
        )

    rows = [
        result("mps2-an386", 300_000, 40_000, 6_000_000, 25_000_000),
        result("microbit", 600_000, 80_000, 11_000_000, 16_000_000),
    ]
    doc = format_doc(rows, "bnnkws bench mcu --doc X")
    # always-on = 50 hops x front-end + 10 inferences x (network + detector)
    assert rows[0].always_on_per_s == 50 * 40_000 + 10 * 301_000
    lines = doc.splitlines()
    assert "| | `mps2-an386` | `microbit` |" in lines
    assert "| **always-on M instr / s audio** | **5.01** | **10.01** |" in lines
    assert "| serial ingest M instr / s (per byte) | 3.20 (100) | 3.20 (100) |" in lines
    assert "| margin at core clock | 76% at 25 MHz | 31% at 16 MHz |" in lines
    assert "| timer tick (instructions) | 40 | 62.5 |" in lines
    assert "always-on 5.01 M instructions per second of audio" in doc and "8.75 M before" in doc
    assert "flash 30,000 B against 32,256 B before (target 17,866 B: missed)" in doc
    assert "largest first: kernels 20,000 B, weights 6,000 B, libgcc 4,000 B (12,134 B over" in doc
    assert "| &nbsp;&nbsp;weights | 6,000 | 6,000 |" in lines
