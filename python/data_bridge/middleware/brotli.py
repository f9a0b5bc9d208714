"""``BrotliMiddleware``: Brotli compression (``Content-Encoding: br``) for clients that
accept it, with gzip as the fallback, run by the server in Rust. It has no Starlette
counterpart; it qualifies responses exactly as :class:`GZipMiddleware` does (see
:mod:`data_bridge.middleware.compress`)."""

from __future__ import annotations

from typing import Any

from data_bridge.middleware.compress import DEFAULT_EXCLUDED_CONTENT_TYPES, CompressMiddleware

__all__ = ["BrotliMiddleware"]


class BrotliMiddleware(CompressMiddleware):
    """Brotli at ``quality`` (0-11) when ``Accept-Encoding`` lists ``br`` with a
    non-zero quality; else, with ``gzip_fallback``, gzip at ``compresslevel`` when it
    mentions ``gzip``."""

    def __init__(
        self,
        app: Any = None,
        quality: int = 4,
        minimum_size: int = 500,
        gzip_fallback: bool = True,
        compresslevel: int = 9,
        thread_minimum_size: int = 128 * 1024,
        *,
        exclude_content_types: tuple[str, ...] = DEFAULT_EXCLUDED_CONTENT_TYPES,
    ) -> None:
        if not 0 <= quality <= 11:
            raise ValueError(f"quality must be between 0 and 11, not {quality}")
        self.quality = int(quality)
        self.gzip_fallback = bool(gzip_fallback)
        super().__init__(
            app,
            encodings=["br", "gzip"] if self.gzip_fallback else ["br"],
            minimum_size=minimum_size,
            compresslevel=compresslevel,
            quality=self.quality,
            thread_minimum_size=thread_minimum_size,
            exclude_content_types=exclude_content_types,
        )
