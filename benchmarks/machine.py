"""What the benchmark reports say about the machine they ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def describe(extra: str) -> str:
    """Cores, CPU, kernel and Python, followed by ``extra`` (how the run was pinned)."""
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), Linux {platform.release()}, "
        f"CPython {platform.python_version()}{extra}"
    )
