"""``GZipMiddleware``: Starlette's response compression, run by the server in Rust.

A response is gzip-compressed when the request's ``Accept-Encoding`` mentions
``gzip`` and the response qualifies (see :mod:`data_bridge.middleware.compress`). A
qualifying response to a client that does not accept gzip only gets the ``Vary``
header, as in Starlette.
"""

from __future__ import annotations

from typing import Any

from data_bridge.middleware.compress import DEFAULT_EXCLUDED_CONTENT_TYPES, CompressMiddleware

__all__ = ["DEFAULT_EXCLUDED_CONTENT_TYPES", "GZipMiddleware"]


class GZipMiddleware(CompressMiddleware):
    """gzip compression, with the options of Starlette's class (bodies of at least
    ``thread_minimum_size`` bytes are compressed off the connection's task)."""

    def __init__(
        self,
        app: Any = None,
        minimum_size: int = 500,
        compresslevel: int = 9,
        thread_minimum_size: int = 128 * 1024,
        *,
        exclude_content_types: tuple[str, ...] = DEFAULT_EXCLUDED_CONTENT_TYPES,
    ) -> None:
        super().__init__(
            app,
            encodings=["gzip"],
            minimum_size=minimum_size,
            compresslevel=compresslevel,
            quality=0,
            thread_minimum_size=thread_minimum_size,
            exclude_content_types=exclude_content_types,
        )
