"""The base of the built-in middleware, which the server runs in Rust.

An instance only holds its options: ``App.route_table()`` hands them to the native
route table (``RouteTable.add_middleware(kind, options)``), outermost first, and the
server runs the layers without the GIL. ``app.add_middleware`` also accepts Starlette's
own classes of the same names and uses the built-in equivalent.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

__all__ = ["NativeMiddleware", "native_class"]

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

    kind: ClassVar[str]

    def __init__(self, app: Any = None) -> None:
        self.app = app

    def native_options(self) -> dict[str, Any]:
        """The options as the native layer reads them."""
        raise NotImplementedError  # pragma: no cover

    def __repr__(self) -> str:
        return f"{type(self).__name__}(**{self.native_options()!r})"


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
