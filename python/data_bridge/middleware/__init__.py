"""Middleware: Python classes and functions in the style of Starlette's
``BaseHTTPMiddleware`` (:mod:`.base`), and the built-in middleware that runs in Rust
(:mod:`.native`): :class:`CORSMiddleware`, :class:`GZipMiddleware`,
:class:`BrotliMiddleware`, :class:`TrustedHostMiddleware`,
:class:`HTTPSRedirectMiddleware` and :class:`RequestIDMiddleware`, each also importable
from its own module as in Starlette (``data_bridge.middleware.cors`` ...).

All are added with ``app.add_middleware(cls, **options)``; the last added is the
outermost. The built-in layers always wrap the whole Python stack: they run around
every request, native routes and the server's own 404/405 included, and keep the
app's native fast paths.
"""

from __future__ import annotations

from data_bridge.middleware.base import BaseHTTPMiddleware, CallNext, Middleware, build_stack
from data_bridge.middleware.brotli import BrotliMiddleware
from data_bridge.middleware.cors import CORSMiddleware
from data_bridge.middleware.gzip import GZipMiddleware
from data_bridge.middleware.httpsredirect import HTTPSRedirectMiddleware
from data_bridge.middleware.native import NativeMiddleware
from data_bridge.middleware.requestid import RequestIDMiddleware
from data_bridge.middleware.trustedhost import TrustedHostMiddleware

__all__ = [
    "BaseHTTPMiddleware",
    "BrotliMiddleware",
    "CORSMiddleware",
    "CallNext",
    "GZipMiddleware",
    "HTTPSRedirectMiddleware",
    "Middleware",
    "NativeMiddleware",
    "RequestIDMiddleware",
    "TrustedHostMiddleware",
    "build_stack",
]
