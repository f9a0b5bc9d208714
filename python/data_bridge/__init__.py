"""data-bridge: a Python web runtime with a Rust core.

Two halves share one Tokio runtime: :mod:`data_bridge.pyloop`, an asyncio event
loop, and an HTTP server whose Python API follows FastAPI's.
"""

from __future__ import annotations

from data_bridge._native import __version__

__all__ = ["__version__"]
