"""Firmware images for the emulated boards: build one for a model, read its footprint.

``build_firmware`` turns a generated model folder (generator/codegen/emit_c.py) into
``<build>/<target>/firmware.elf`` (the build runner tools/host/build.py, whose SCons rules
for boards are firmware/SConscript.board), which also writes ``firmware.map`` and
``firmware.size.json``: flash = .text (code + read-only data,
the vector table and the model's weights included) + the .data load image; RAM = .data +
.bss + the reserved stack. Both come from the linker's own map, so they are what the
board must provide.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from bnnkws.generator.base.errors import BuildError
from bnnkws.generator.base.paths import FIRMWARE_DIR, build_dir
from bnnkws.generator.codegen.emit_c import emit_c
from bnnkws.generator.export.loading import load_any
from bnnkws.tools.host import build

# targets of firmware/SConscript.board (its BOARDS), each also a QEMU machine of that name
BOARDS = {
    "mps2-an386": "Cortex-M4F (Armv7E-M: DSP instructions, single-precision FPU)",
    "mps2-an385": "Cortex-M3 (Armv7-M: no DSP instructions, no FPU)",
    "mps2-an500": "Cortex-M7 (Armv7E-M: DSP instructions, double-precision FPU)",
    "mps2-an505": "Cortex-M33 (Armv8-M Mainline: DSP instructions, FPU; Secure state)",
    "mps3-an547": "Cortex-M55 (Armv8.1-M: DSP and MVE vector instructions, FPU; Secure state)",
    "netduinoplus2": "STM32F405RG, Cortex-M4F at 168 MHz (Netduino Plus 2: USART1, PLL clock tree)",
    "microbit": "nRF51822, Cortex-M0 (Armv6-M: no DSP, no CLZ, no bit-field instructions)",
}
DEFAULT_BOARD = "mps2-an386"


@dataclass(frozen=True)
class Firmware:
    target: str
    elf: Path
    map: Path
    flash: int  # bytes
    ram: int  # bytes
    sizes: dict

    def size_line(self) -> str:
        s = self.sizes
        return (
            f"{self.target}: flash {s['flash']} B (code+rodata {s['text']}, data {s['data']}), "
            f"RAM {s['ram']} B (data {s['data']}, bss {s['bss']}, stack {s['stack']}) "
            f"[from {self.map.name}]"
        )


def default_build_root() -> Path:
    return build_dir()


def load(target: str, build_root: Path | None = None) -> Firmware:
    """The firmware last built for `target` (BuildError when there is none)."""
    root = Path(build_root or default_build_root())
    out = root / target
    elf, size_json = out / "firmware.elf", out / "firmware.size.json"
    if not elf.is_file() or not size_json.is_file():
        raise BuildError(
            f"{out}: no firmware built for {target}: run bnnkws build --target {target} --model MODEL"
        )
    sizes = json.loads(size_json.read_text())
    return Firmware(target, elf, out / "firmware.map", sizes["flash"], sizes["ram"], sizes)


def build_firmware(
    model_dir: Path,
    target: str = DEFAULT_BOARD,
    build_root: Path | None = None,
    defines: dict[str, str] | None = None,
    opt: str = "speed",
) -> Firmware:
    """Build `target` with the generated model in `model_dir` (opt: "speed", or "size" for
    kernels at -Os); returns the image."""
    if target not in BOARDS:
        raise BuildError(f"target {target!r}: expected one of {', '.join(BOARDS)}")
    root = Path(build_root or default_build_root())
    cc = os.environ.get("ARM_PREFIX", "arm-none-eabi-") + "gcc"  # as firmware/SConscript.board
    if not shutil.which(cc):
        raise BuildError(
            f"{cc} not found: install Debian's gcc-arm-none-eabi and libnewlib-arm-none-eabi "
            "(tools/bootstrap.sh does)"
        )
    try:
        build.board_firmware(model_dir, target, root, defines, opt)
    except BuildError as exc:
        raise _too_large(exc, target) from None
    return load(target, root)


OVERFLOW_RE = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")


def part_memory(target: str) -> dict[str, int]:
    """{region: bytes} of the target's linker script (firmware/board/<target>.ld)."""
    text = (FIRMWARE_DIR / "board" / f"{target}.ld").read_text()
    return {
        name: int(n) * {"K": 1024, "M": 1 << 20, "": 1}[unit]
        for name, n, unit in re.findall(r"(\w+)\s*\([rwx]+\)\s*:.*LENGTH\s*=\s*(\d+)([KM]?)", text)
    }


def _too_large(exc: BuildError, target: str) -> BuildError:
    """A link that overflowed the part's flash or RAM as one line; other errors unchanged."""
    found = OVERFLOW_RE.findall(str(exc))
    if not found:
        return exc
    size = part_memory(target)
    parts = [
        f"{region} by {int(n):,} B (the part has {size.get(region, 0):,} B)"
        for region, n in dict(found).items()
    ]
    ram = "RAM" in dict(found)
    return BuildError(
        f"model too large for {target}: it overflows {' and '.join(parts)}; use a smaller "
        f"model (fewer channels or layers)"
        + (", build without streaming inference (--no-streaming: no state for past outputs)" if ram else "")
        + f" or a target with more memory ({', '.join(BOARDS)})"
    )


def build_for_model(
    model_path: Path, target: str = DEFAULT_BOARD, build_root: Path | None = None
) -> tuple[Firmware, object]:
    """Blob or checkpoint -> generated C -> firmware; returns (firmware, LoadedModel)."""
    loaded = load_any(model_path)
    return build_firmware(emit_c(loaded.model), target, build_root), loaded
