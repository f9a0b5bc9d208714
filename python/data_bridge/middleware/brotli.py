"""``BrotliMiddleware``: Brotli compression (``Content-Encoding: br``) for clients that
accept it, with gzip as the fallback, run by the server in Rust. It has no Starlette
counterpart; it qualifies responses exactly as :class:`GZipMiddleware` does."""

from __future__ import annotations

from typing import Any

from data_bridge.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES
from data_bridge.middleware.native import NativeMiddleware

__all__ = ["BrotliMiddleware"]


class BrotliMiddleware(NativeMiddleware):
    """Brotli at ``quality`` (0-11) when ``Accept-Encoding`` lists ``br`` with a
    non-zero quality; else, with ``gzip_fallback``, gzip at ``compresslevel`` when it
    mentions ``gzip``."""

    kind = "compress"

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
        super().__init__(app)
        if not 0 <= quality <= 11:
            raise ValueError(f"quality must be between 0 and 11, not {quality}")
        self.quality = int(quality)
        self.minimum_size = int(minimum_size)
        self.gzip_fallback = bool(gzip_fallback)
        self.compresslevel = int(compresslevel)
        self.thread_minimum_size = int(thread_minimum_size)
        self.exclude_content_types = tuple(exclude_content_types)

    def native_options(self) -> dict[str, Any]:
        return {
            "encodings": ["br", "gzip"] if self.gzip_fallback else ["br"],
            "minimum_size": self.minimum_size,
            "gzip_level": self.compresslevel,
            "brotli_quality": self.quality,
            "thread_minimum_size": self.thread_minimum_size,
            "exclude_content_types": list(self.exclude_content_types),
        }
