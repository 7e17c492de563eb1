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
from dataclasses import dataclass
from pathlib import Path

from bnnkws.generator.base.errors import BuildError
from bnnkws.generator.base.paths import build_dir
from bnnkws.tools.host import build

BOARDS = {
    "mps2-an386": "Cortex-M4F (Armv7E-M: DSP instructions, single-precision FPU)",
    "mps2-an385": "Cortex-M3 (Armv7-M: no DSP instructions, no FPU)",
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
) -> Firmware:
    """Build `target` with the generated model in `model_dir`; returns the image."""
    if target not in BOARDS:
        raise BuildError(f"target {target!r}: expected one of {', '.join(BOARDS)}")
    root = Path(build_root or default_build_root())
    build.board_firmware(model_dir, target, root, defines)
    return load(target, root)


def build_for_model(
    model_path: Path, target: str = DEFAULT_BOARD, build_root: Path | None = None
) -> tuple[Firmware, object]:
    """Blob or checkpoint -> generated C -> firmware; returns (firmware, LoadedModel)."""
    from bnnkws.generator.codegen.emit_c import emit_c
    from bnnkws.generator.export.loading import load_any

    loaded = load_any(model_path)
    return build_firmware(emit_c(loaded.model), target, build_root), loaded
