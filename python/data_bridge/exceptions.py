"""Exceptions a handler raises to answer with an HTTP error."""

from __future__ import annotations

import http
from typing import Any

__all__ = [
    "HTTPException",
    "RequestValidationError",
    "ResponseValidationError",
    "ValidationException",
    "WebSocketException",
]


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


class ValidationException(ValueError):
    """Validation errors in FastAPI's shape (``type``, ``loc``, ``msg``, ``input``...)."""

    def __init__(self, errors: list[dict[str, Any]], *, body: Any = None) -> None:
        super().__init__(errors)
        self._errors = errors
        self.body = body

    def errors(self) -> list[dict[str, Any]]:
        return self._errors


class RequestValidationError(ValidationException):
    """The request's parameters or body failed validation; answered with 422 and
    ``{"detail": errors}`` unless an exception handler is registered for it."""


class ResponseValidationError(ValidationException):
    """A handler's return value does not match its ``response_model`` (a server
    error: the client gets 500)."""

    def __str__(self) -> str:
        return f"{len(self._errors)} validation errors for the response:\n" + "\n".join(
            f"  {e}" for e in self._errors
        )


class WebSocketException(Exception):
    """Ends a WebSocket connection with ``code`` and ``reason``; raised before
    ``accept()`` it refuses the handshake (the client gets HTTP 403)."""

    def __init__(self, code: int, reason: str | None = None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason or ""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(code={self.code!r}, reason={self.reason!r})"
