"""Response compression run by the server in Rust (``compress.rs``): what
:class:`~data_bridge.middleware.gzip.GZipMiddleware` and
:class:`~data_bridge.middleware.brotli.BrotliMiddleware` share.

A response qualifies when its body is at least ``minimum_size`` bytes (a streamed body
of unknown length always qualifies and is compressed chunk by chunk), it has no
``Content-Encoding`` yet, is not a ``206`` and its content type is not excluded. It
then carries ``Vary: Accept-Encoding`` and, when the client accepts a coding the
layer uses, ``Content-Encoding`` and the compressed length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from data_bridge._native import CompressOptions
from data_bridge.middleware.native import NativeMiddleware

__all__ = ["DEFAULT_EXCLUDED_CONTENT_TYPES", "CompressMiddleware"]

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


class CompressMiddleware(NativeMiddleware):
    """The base of the compression classes: ``encodings`` (``"br"``, ``"gzip"``),
    preferred first, at ``compresslevel`` (gzip, 0-9) and ``quality`` (Brotli, 0-11);
    bodies of at least ``thread_minimum_size`` bytes are compressed off the
    connection's task."""

    def __init__(
        self,
        app: Any,
        *,
        encodings: Sequence[str],
        minimum_size: int,
        compresslevel: int,
        quality: int,
        thread_minimum_size: int,
        exclude_content_types: Sequence[str],
    ) -> None:
        self.minimum_size = int(minimum_size)
        self.compresslevel = int(compresslevel)
        self.thread_minimum_size = int(thread_minimum_size)
        self.exclude_content_types = tuple(exclude_content_types)
        options = CompressOptions(
            encodings=list(encodings),
            minimum_size=self.minimum_size,
            gzip_level=self.compresslevel,
            brotli_quality=int(quality),
            thread_minimum_size=self.thread_minimum_size,
            exclude_content_types=list(self.exclude_content_types),
        )
        super().__init__(app, options)
