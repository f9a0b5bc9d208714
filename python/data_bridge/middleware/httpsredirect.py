"""``HTTPSRedirectMiddleware``: Starlette's redirect to ``https``, run by the server in
Rust. A request that came over plain ``http`` (behind a trusted proxy: whose
``X-Forwarded-Proto`` says ``http``) gets ``307`` to the same URL with ``https``
(``wss`` for a WebSocket upgrade), a default port dropped; a request without a host
gets ``400`` ``Invalid host header``."""

from __future__ import annotations

from typing import Any

from data_bridge._native import HttpsRedirectOptions
from data_bridge.middleware.native import NativeMiddleware

__all__ = ["HTTPSRedirectMiddleware"]


class HTTPSRedirectMiddleware(NativeMiddleware):
    """Redirects every plain-HTTP request to HTTPS."""

    def __init__(self, app: Any = None) -> None:
        super().__init__(app, HttpsRedirectOptions())
