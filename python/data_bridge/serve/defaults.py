"""The default of every serving setting, each written once.

The server's own settings (limits, time limits, proxies) and their defaults are the
native :class:`~data_bridge._native.ServerOptions` (``crates/data-bridge-api/src/
options.rs``): :data:`SERVER` holds them as ``ServerOptions()`` reports them. The few
settings only Python uses (where to bind, how long to drain) are the constants below.

:func:`data_bridge.start`, :func:`data_bridge.serve`, ``data-bridge serve``'s
:class:`~data_bridge.serve.config.Config` and its ``--help`` all read their defaults here.
"""

from __future__ import annotations

from data_bridge._native import ServerOptions

__all__ = ["BACKLOG", "GRACEFUL_TIMEOUT", "HOST", "LOG_FORMAT", "PORT", "SERVER"]

#: The server's settings when none is given.
SERVER = ServerOptions()

#: The address to bind.
HOST = "127.0.0.1"
#: The TCP port to bind.
PORT = 8000
#: The listen backlog.
BACKLOG = 2048
#: Seconds in-flight requests and background tasks get to finish on shutdown.
GRACEFUL_TIMEOUT = 30.0
#: How server log lines (and access log lines) are written: ``text`` or ``json``.
LOG_FORMAT = "text"
