"""Exception handlers that replace the answers to invalid input and ``HTTPException``."""

from tests.compat.apps.outputs import build_overrides as build
from tests.compat.corpus import Call

__all__ = ["REQUESTS", "build"]

REQUESTS = [
    Call("GET", "/count?n=1&m=2"),
    Call("GET", "/count?n=x&m=y"),
    Call("GET", "/count"),
    Call("GET", "/fail"),
]
