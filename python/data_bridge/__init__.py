"""data-bridge: a Python web runtime with a Rust core.

Two halves share one Tokio runtime: :mod:`data_bridge.pyloop`, an asyncio event
loop, and an HTTP server with a FastAPI-style API (:class:`App`, :func:`serve`).
"""

from __future__ import annotations

from data_bridge import status
from data_bridge._native import __version__
from data_bridge.app import App
from data_bridge.background import BackgroundTasks
from data_bridge.datastructures import UploadFile
from data_bridge.dependencies import Depends
from data_bridge.exceptions import HTTPException, RequestValidationError, ResponseValidationError
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
from data_bridge.server import serve, start, stop
from data_bridge.websockets import WebSocket, WebSocketDisconnect

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
