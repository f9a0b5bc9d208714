"""The runtime that runs an app: ``serve()``/``start()``/``stop()`` in this process
(:mod:`.server`) and the ``data-bridge serve`` command (:mod:`.cli`) with its settings
(:mod:`.config`, defaults in :mod:`.defaults`), app loading (:mod:`.importer`), listening socket (:mod:`.listener`),
certificates (:mod:`.tls`), worker processes (:mod:`.supervisor`, :mod:`.worker`,
:mod:`.shared_metrics`), source reloading (:mod:`.reload`) and logging (:mod:`.logs`).

This is the top layer of the package: it imports the web API (:mod:`data_bridge.app`
and its modules) and the loop (:mod:`data_bridge.pyloop`), never the other way round.

``data_bridge.serve`` names both this package and the function scripts call,
``data_bridge.serve(app, port=8000)``. Python binds the package to that name as soon
as any of its modules is imported, so the package itself is callable and runs
:func:`data_bridge.serve.server.serve`; whichever object a caller holds, the call is
the same.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from data_bridge.serve.server import serve, start, stop

__all__ = ["serve", "start", "stop"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: `data-bridge --help` and the supervisor need none of it.
    if name in __all__:
        from data_bridge.serve import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _CallablePackage(types.ModuleType):
    """This package's type: calling it is calling :func:`~data_bridge.serve.server.serve`."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        from data_bridge.serve.server import serve

        serve(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
