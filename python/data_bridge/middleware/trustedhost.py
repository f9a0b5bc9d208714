"""``TrustedHostMiddleware``: Starlette's host check, run by the server in Rust.

A request whose host (``X-Forwarded-Host`` from a trusted proxy, else ``Host``; the
port is ignored) matches none of ``allowed_hosts`` (exact names, ``*.example.com``
for any subdomain, ``*`` for any host) gets ``400`` ``Invalid host header``, or, with
``www_redirect`` and its ``www.`` form listed, a ``307`` redirect to that form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from data_bridge._native import TrustedHostOptions
from data_bridge.middleware.native import NativeMiddleware

__all__ = ["ENFORCE_DOMAIN_WILDCARD", "TrustedHostMiddleware"]

ENFORCE_DOMAIN_WILDCARD = TrustedHostOptions.ENFORCE_DOMAIN_WILDCARD


class TrustedHostMiddleware(NativeMiddleware):
    """Refuses requests for hosts not in ``allowed_hosts`` (default: any host)."""

    def __init__(
        self,
        app: Any = None,
        allowed_hosts: Sequence[str] | None = None,
        www_redirect: bool = True,
    ) -> None:
        self.allowed_hosts = ["*"] if allowed_hosts is None else list(allowed_hosts)
        self.www_redirect = bool(www_redirect)
        # Building the options checks the patterns (ENFORCE_DOMAIN_WILDCARD).
        options = TrustedHostOptions(
            allowed_hosts=self.allowed_hosts, www_redirect=self.www_redirect
        )
        super().__init__(app, options)
