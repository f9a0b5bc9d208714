"""``CORSMiddleware``: Starlette's CORS policy, run by the server in Rust.

A preflight request (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)
is answered without reaching the app: ``200 OK`` with the ``access-control-allow-*``
headers, or ``400`` ``Disallowed CORS origin, method, headers`` naming what is not
allowed. Other responses get ``access-control-allow-origin`` (``*``, or the request's
``Origin`` when credentials are allowed or origins are listed),
``access-control-allow-credentials``, ``access-control-expose-headers`` and
``Vary: Origin``. ``allow_origin_regex`` must match the whole origin; it uses Rust's
``regex`` syntax (no look-around or back-references).

Unlike Starlette, ``allow_origins=["*"]`` with ``allow_credentials=True`` is refused
with ``ValueError``: it would let every origin make credentialed requests.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from data_bridge._native import CorsOptions
from data_bridge.middleware.native import NativeMiddleware

__all__ = ["ALL_METHODS", "SAFELISTED_HEADERS", "CORSMiddleware"]

ALL_METHODS = tuple(CorsOptions.ALL_METHODS)
SAFELISTED_HEADERS = set(CorsOptions.SAFELISTED_HEADERS)


class CORSMiddleware(NativeMiddleware):
    """Cross-origin resource sharing, with the options of Starlette's class."""

    def __init__(
        self,
        app: Any = None,
        allow_origins: Collection[str] = (),
        allow_methods: Collection[str] = ("GET",),
        allow_headers: Collection[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        allow_private_network: bool = False,
        expose_headers: Collection[str] = (),
        max_age: int = 600,
    ) -> None:
        if allow_credentials and "*" in allow_origins:
            # Every origin would be echoed back with credentials allowed, ``null``
            # included: any page could read a signed-in user's responses.
            raise ValueError(
                'CORSMiddleware: allow_origins=["*"] cannot be used with '
                "allow_credentials=True (every site could make credentialed requests); "
                "list the allowed origins explicitly or use allow_origin_regex"
            )
        if allow_origin_regex is not None:
            re.compile(allow_origin_regex)
        self.allow_origins = list(allow_origins)
        self.allow_methods = list(allow_methods)
        self.allow_headers = list(allow_headers)
        self.allow_credentials = bool(allow_credentials)
        self.allow_origin_regex = allow_origin_regex
        self.allow_private_network = bool(allow_private_network)
        self.expose_headers = list(expose_headers)
        self.max_age = int(max_age)
        options = CorsOptions(
            allow_origins=self.allow_origins,
            allow_methods=self.allow_methods,
            allow_headers=self.allow_headers,
            allow_credentials=self.allow_credentials,
            allow_origin_regex=self.allow_origin_regex,
            allow_private_network=self.allow_private_network,
            expose_headers=self.expose_headers,
            max_age=self.max_age,
        )
        super().__init__(app, options)
