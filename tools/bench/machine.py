"""The machine a benchmark ran on, as every report states it."""

from __future__ import annotations

import platform
from pathlib import Path


def machine() -> str:
    """CPU model name (from /proc/cpuinfo where there is one), OS and architecture."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {platform.system()} {platform.machine()}"
