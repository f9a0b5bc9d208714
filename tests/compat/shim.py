"""One import surface for the compatibility corpus: ``load("fastapi")`` or
``load("data_bridge")`` returns a namespace with the same names from either package,
so each corpus app is written once, as ``build(api)``."""

from __future__ import annotations

import functools
import importlib
import types

NAMES = [
    "APIRouter",
    "BackgroundTasks",
    "Body",
    "Cookie",
    "Depends",
    "File",
    "Form",
    "HTMLResponse",
    "HTTPException",
    "Header",
    "JSONResponse",
    "Path",
    "PlainTextResponse",
    "Query",
    "RedirectResponse",
    "Request",
    "RequestValidationError",
    "Response",
    "Security",
    "StreamingResponse",
    "UploadFile",
]

# Built-in middleware: ``fastapi.middleware.<module>`` or ``data_bridge.middleware.<module>``.
MIDDLEWARE = {
    "CORSMiddleware": "cors",
    "GZipMiddleware": "gzip",
    "HTTPSRedirectMiddleware": "httpsredirect",
    "TrustedHostMiddleware": "trustedhost",
}

FLAVORS = ("fastapi", "data_bridge")

# Both frameworks name an app differently by default; the corpus compares documents.
TITLE = "Corpus"


def _add_middleware(api: types.SimpleNamespace, package: str) -> None:
    for name, module in MIDDLEWARE.items():
        setattr(api, name, getattr(importlib.import_module(f"{package}.{module}"), name))


def load(flavor: str) -> types.SimpleNamespace:
    """The names the corpus apps use, from ``flavor``; ``App`` is the application class,
    ``BaseHTTPMiddleware`` the base of middleware classes, and the built-in middleware
    classes come from the flavour's ``middleware`` package."""
    if flavor == "fastapi":
        import fastapi
        import fastapi.responses
        import fastapi.security
        from starlette.middleware.base import BaseHTTPMiddleware

        app = functools.partial(fastapi.FastAPI, title=TITLE)
        api = types.SimpleNamespace(App=app, BaseHTTPMiddleware=BaseHTTPMiddleware, flavor=flavor)
        api.security = fastapi.security
        for name in NAMES:
            source = fastapi.responses if name.endswith("Response") else fastapi
            if name == "RequestValidationError":
                source = fastapi.exceptions
            setattr(api, name, getattr(source, name))
        _add_middleware(api, "fastapi.middleware")
        return api
    if flavor == "data_bridge":
        import data_bridge
        import data_bridge.security
        from data_bridge.middleware import BaseHTTPMiddleware

        app = functools.partial(data_bridge.App, title=TITLE)
        api = types.SimpleNamespace(App=app, BaseHTTPMiddleware=BaseHTTPMiddleware, flavor=flavor)
        api.security = data_bridge.security
        for name in NAMES:
            setattr(api, name, getattr(data_bridge, name))
        _add_middleware(api, "data_bridge.middleware")
        return api
    raise ValueError(f"unknown flavor {flavor!r}")
