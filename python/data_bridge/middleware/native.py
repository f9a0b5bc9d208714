"""The base of the built-in middleware, which the server runs in Rust.

An instance holds its options as the typed native struct of its layer
(``_native.CorsOptions``, ...; building it checks them, so a bad option fails when the
middleware is added): ``App.route_table()`` hands them to the native route table
(``RouteTable.add_middleware(options)``), outermost first, and the server runs the
layers without the GIL. Each module has the name of its Rust layer
(``crates/data-bridge-api/src/middleware/<name>.rs``; ``gzip`` and ``brotli`` share
``compress``). ``app.add_middleware`` also accepts Starlette's own classes of the same
names and uses the built-in equivalent.
"""

from __future__ import annotations

import importlib
from typing import Any

from data_bridge._native import (
    CompressOptions,
    CorsOptions,
    HttpsRedirectOptions,
    RequestIdOptions,
    TrustedHostOptions,
)

__all__ = ["NativeMiddleware", "NativeOptions", "native_class"]

#: The options of one built-in layer.
NativeOptions = (
    CorsOptions | CompressOptions | TrustedHostOptions | HttpsRedirectOptions | RequestIdOptions
)

# Starlette's classes (``fastapi.middleware.*`` re-exports them) and their equivalents.
STARLETTE_EQUIVALENTS = {
    "starlette.middleware.cors.CORSMiddleware": "cors.CORSMiddleware",
    "starlette.middleware.gzip.GZipMiddleware": "gzip.GZipMiddleware",
    "starlette.middleware.trustedhost.TrustedHostMiddleware": "trustedhost.TrustedHostMiddleware",
    "starlette.middleware.httpsredirect.HTTPSRedirectMiddleware": (
        "httpsredirect.HTTPSRedirectMiddleware"
    ),
}


class NativeMiddleware:
    """A middleware layer run by the server in Rust. ``app`` is accepted (and ignored)
    so that the classes can be built as Starlette's are, ``cls(app, **options)``."""

    def __init__(self, app: Any, options: NativeOptions) -> None:
        self.app = app
        self.options = options

    def __repr__(self) -> str:
        shown = {k: v for k, v in vars(self).items() if k not in ("app", "options")}
        return f"{type(self).__name__}(**{shown!r})"


def native_class(cls: type[Any]) -> type[NativeMiddleware] | None:
    """The built-in class to use for ``cls``: itself if it is one, the equivalent of a
    Starlette class, else ``None`` (a Python middleware)."""
    if isinstance(cls, type) and issubclass(cls, NativeMiddleware):
        return cls
    target = STARLETTE_EQUIVALENTS.get(f"{getattr(cls, '__module__', '')}.{cls.__qualname__}")
    if target is None:
        return None
    module, name = target.rsplit(".", 1)
    found: type[NativeMiddleware] = getattr(
        importlib.import_module(f"data_bridge.middleware.{module}"), name
    )
    return found
