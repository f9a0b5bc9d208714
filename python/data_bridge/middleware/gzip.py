"""``GZipMiddleware``: Starlette's response compression, run by the server in Rust.

A response is gzip-compressed when the request's ``Accept-Encoding`` mentions
``gzip``, its body is at least ``minimum_size`` bytes (a streamed body of unknown
length always qualifies and is compressed chunk by chunk), it has no
``Content-Encoding`` yet, is not a ``206`` and its content type is not excluded. It
then carries ``Content-Encoding: gzip``, ``Vary: Accept-Encoding`` and the compressed
length. A qualifying response to a client that does not accept gzip only gets the
``Vary`` header, as in Starlette.
"""

from __future__ import annotations

from typing import Any

from data_bridge.middleware.native import NativeMiddleware

__all__ = ["DEFAULT_EXCLUDED_CONTENT_TYPES", "GZipMiddleware"]

DEFAULT_EXCLUDED_CONTENT_TYPES = (
    "application/grpc",
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "audio/*",
    "font/woff",
    "font/woff2",
    "image/avif",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/event-stream",
    "video/*",
)


class GZipMiddleware(NativeMiddleware):
    """gzip compression, with the options of Starlette's class (bodies of at least
    ``thread_minimum_size`` bytes are compressed off the connection's task)."""

    kind = "compress"

    def __init__(
        self,
        app: Any = None,
        minimum_size: int = 500,
        compresslevel: int = 9,
        thread_minimum_size: int = 128 * 1024,
        *,
        exclude_content_types: tuple[str, ...] = DEFAULT_EXCLUDED_CONTENT_TYPES,
    ) -> None:
        super().__init__(app)
        self.minimum_size = int(minimum_size)
        self.compresslevel = int(compresslevel)
        self.thread_minimum_size = int(thread_minimum_size)
        self.exclude_content_types = tuple(exclude_content_types)

    def native_options(self) -> dict[str, Any]:
        return {
            "encodings": ["gzip"],
            "minimum_size": self.minimum_size,
            "gzip_level": self.compresslevel,
            "brotli_quality": 0,
            "thread_minimum_size": self.thread_minimum_size,
            "exclude_content_types": list(self.exclude_content_types),
        }
