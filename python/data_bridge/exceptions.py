"""Exceptions a handler raises to answer with an HTTP error."""

from __future__ import annotations

import http
from typing import Any

__all__ = ["HTTPException"]


class HTTPException(Exception):
    """Answers the request with ``status_code`` and ``{"detail": detail}``.

    ``detail`` defaults to the status's reason phrase; ``headers`` are added to the
    response (e.g. ``WWW-Authenticate``).
    """

    def __init__(
        self, status_code: int, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        if detail is None:
            detail = http.HTTPStatus(status_code).phrase
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(status_code={self.status_code!r}, detail={self.detail!r})"
        )
