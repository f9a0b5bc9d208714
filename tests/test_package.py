"""The package imports and reports the native module's version."""

from __future__ import annotations

import tomllib
from pathlib import Path

import data_bridge
from data_bridge import _native


def test_version_comes_from_native_module() -> None:
    assert data_bridge.__version__ == _native.__version__
    cargo = tomllib.loads((Path(__file__).parents[1] / "Cargo.toml").read_text())
    assert data_bridge.__version__ == cargo["workspace"]["package"]["version"]


def test_native_module_exports_the_loop_core() -> None:
    assert {"LoopCore", "Handle", "TimerHandle", "StreamTransport"} <= set(dir(_native))
