"""data-bridge: a Python web runtime with a Rust core.

Two halves share one Tokio runtime: :mod:`data_bridge.pyloop`, an asyncio event
loop, and an HTTP server with a FastAPI-style API (:class:`App`, :func:`serve`).
"""

from __future__ import annotations

from data_bridge._native import __version__
from data_bridge.app import App
from data_bridge.exceptions import HTTPException
from data_bridge.requests import Request
from data_bridge.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from data_bridge.server import serve, start

__all__ = [
    "App",
    "HTMLResponse",
    "HTTPException",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Request",
    "Response",
    "StreamingResponse",
    "__version__",
    "serve",
    "start",
]
