"""data-bridge: a Python web runtime with a Rust core.

Two halves share one Tokio runtime: :mod:`data_bridge.pyloop`, an asyncio event
loop, and an HTTP server with a FastAPI-style API (:class:`App`, :func:`serve`).

The layers import downward only: ``pyloop`` (the loop) < the web API (``app`` and the
modules it uses) < ``serve`` (the runtime that runs an app) and ``testclient``. The
public names below are loaded on first use, so ``import data_bridge.pyloop`` loads
the loop alone, without the web API or pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from data_bridge._native import __version__

if TYPE_CHECKING:
    from data_bridge import status
    from data_bridge.app import App
    from data_bridge.background import BackgroundTasks
    from data_bridge.datastructures import UploadFile
    from data_bridge.dependencies import Depends
    from data_bridge.exceptions import (
        HTTPException,
        RequestValidationError,
        ResponseValidationError,
    )
    from data_bridge.params import Body, Cookie, File, Form, Header, Path, Query
    from data_bridge.requests import Request
    from data_bridge.responses import (
        FileResponse,
        HTMLResponse,
        JSONResponse,
        PlainTextResponse,
        RedirectResponse,
        Response,
        StreamingResponse,
    )
    from data_bridge.routing import APIRouter
    from data_bridge.security import Security
    from data_bridge.serve.server import serve, start, stop
    from data_bridge.websockets import WebSocket, WebSocketDisconnect

#: Where each public name lives; ``None`` for a name that is a module of the package.
_SOURCES: dict[str, str | None] = {
    "APIRouter": "data_bridge.routing",
    "App": "data_bridge.app",
    "BackgroundTasks": "data_bridge.background",
    "Body": "data_bridge.params",
    "Cookie": "data_bridge.params",
    "Depends": "data_bridge.dependencies",
    "File": "data_bridge.params",
    "FileResponse": "data_bridge.responses",
    "Form": "data_bridge.params",
    "HTMLResponse": "data_bridge.responses",
    "HTTPException": "data_bridge.exceptions",
    "Header": "data_bridge.params",
    "JSONResponse": "data_bridge.responses",
    "Path": "data_bridge.params",
    "PlainTextResponse": "data_bridge.responses",
    "Query": "data_bridge.params",
    "RedirectResponse": "data_bridge.responses",
    "Request": "data_bridge.requests",
    "RequestValidationError": "data_bridge.exceptions",
    "Response": "data_bridge.responses",
    "ResponseValidationError": "data_bridge.exceptions",
    "Security": "data_bridge.security",
    "StreamingResponse": "data_bridge.responses",
    "UploadFile": "data_bridge.datastructures",
    "WebSocket": "data_bridge.websockets",
    "WebSocketDisconnect": "data_bridge.websockets",
    # The package, callable as the function (see data_bridge.serve).
    "serve": None,
    "start": "data_bridge.serve.server",
    "status": None,
    "stop": "data_bridge.serve.server",
}

__all__ = [
    "APIRouter",
    "App",
    "BackgroundTasks",
    "Body",
    "Cookie",
    "Depends",
    "File",
    "FileResponse",
    "Form",
    "HTMLResponse",
    "HTTPException",
    "Header",
    "JSONResponse",
    "Path",
    "PlainTextResponse",
    "Query",
    "RedirectResponse",
    "Request",
    "RequestValidationError",
    "Response",
    "ResponseValidationError",
    "Security",
    "StreamingResponse",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
    "__version__",
    "serve",
    "start",
    "status",
    "stop",
]


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    source = _SOURCES[name]
    if source is None:
        # Importing a module of the package binds it here.
        return importlib.import_module(f"{__name__}.{name}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
