"""The checkout's folders, in one place.

bnnkws runs from a source checkout (editable install): the firmware C, the MicroPython
reference and the shipped models are read from the checkout, and builds go to build/.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "firmware"
REFERENCE_DIR = ROOT / "reference"
MODELS_DIR = ROOT / "models"
DOCS_DIR = ROOT / "docs"


def project_root() -> Path:
    """The checkout root (the folder with SConstruct)."""
    return ROOT


def build_dir() -> Path:
    """$BNNKWS_BUILD_DIR, else build/ in the checkout."""
    env = os.environ.get("BNNKWS_BUILD_DIR")
    return Path(env).resolve() if env else ROOT / "build"


def shipped_model() -> Path | None:
    """The default model shipped in models/: default.bkim or default.pt, else the only
    blob or checkpoint there."""
    if not MODELS_DIR.is_dir():
        return None
    for name in ("default.bkim", "default.pt"):
        if (MODELS_DIR / name).is_file():
            return MODELS_DIR / name
    found = sorted(MODELS_DIR.glob("*.bkim")) or sorted(MODELS_DIR.glob("*.pt"))
    return found[0] if len(found) == 1 else None
