"""``RequestIDMiddleware``: a request id on every request and response, assigned by
the server in Rust.

The id is the request's own ``header_name`` header when it is 1 to 128 visible ASCII
characters, else a new one (32 hex digits) added to the request, so the handler sees
it in ``request.headers``; the response carries it in the same header. It is the id
the access log records. The id is assigned before any other layer runs, wherever this
middleware is added.
"""

from __future__ import annotations

from typing import Any

from data_bridge._native import RequestIdOptions
from data_bridge.middleware.native import NativeMiddleware

__all__ = ["RequestIDMiddleware"]


class RequestIDMiddleware(NativeMiddleware):
    """Assigns request ids in ``header_name``."""

    def __init__(self, app: Any = None, header_name: str = "X-Request-ID") -> None:
        self.header_name = header_name
        super().__init__(app, RequestIdOptions(header_name=header_name.lower()))
