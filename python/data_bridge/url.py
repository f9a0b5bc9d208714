"""``URL``: a request's URL as a ``str`` that also exposes its parts, as Starlette's
``request.url`` does (``scheme``, ``hostname``, ``port``, ``netloc``, ``path``,
``query``)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

__all__ = ["URL"]


class URL(str):
    """``scheme://host[:port]/path[?query]``; compares and prints as the string."""

    __slots__ = ()

    @classmethod
    def build(cls, scheme: str, netloc: str, path: str, query: str) -> URL:
        return cls(f"{scheme}://{netloc}{path}" + (f"?{query}" if query else ""))

    @property
    def _parts(self) -> SplitResult:
        return urlsplit(self)

    @property
    def scheme(self) -> str:
        return self._parts.scheme

    @property
    def netloc(self) -> str:
        return self._parts.netloc

    @property
    def hostname(self) -> str | None:
        return self._parts.hostname

    @property
    def port(self) -> int | None:
        try:
            return self._parts.port
        except ValueError:
            return None

    @property
    def path(self) -> str:
        return self._parts.path

    @property
    def query(self) -> str:
        return self._parts.query
