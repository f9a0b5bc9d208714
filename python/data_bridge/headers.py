"""HTTP headers, case-insensitive and multi-valued: ``Headers``, the request's (read
only), and ``MutableHeaders``, a view over a response's ``raw_headers`` list, so
``response.headers["X-Token"] = "..."`` changes what is sent."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["Headers", "MutableHeaders"]


def _enc(text: str) -> bytes:
    return text.encode("latin-1")


class Headers:
    """Case-insensitive, multi-valued request headers."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self._pairs:
            if k == name:
                return v
        return default

    def getlist(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self._pairs if k == name]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def keys(self) -> list[str]:
        return [k for k, _ in self._pairs]

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._pairs!r})"


class MutableHeaders:
    """Reads and writes ``raw`` (``[(lower-case name, value), ...]`` as bytes) in place."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw

    def get(self, name: str, default: str | None = None) -> str | None:
        key = _enc(name.lower())
        for k, v in self.raw:
            if k == key:
                return v.decode("latin-1")
        return default

    def getlist(self, name: str) -> list[str]:
        key = _enc(name.lower())
        return [v.decode("latin-1") for k, v in self.raw if k == key]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        """Replaces every header called ``name`` with one ``value``."""
        key = _enc(name.lower())
        kept = [(k, v) for k, v in self.raw if k != key]
        kept.append((key, _enc(value)))
        self.raw[:] = kept

    def __delitem__(self, name: str) -> None:
        key = _enc(name.lower())
        self.raw[:] = [(k, v) for k, v in self.raw if k != key]

    def append(self, name: str, value: str) -> None:
        """Adds a header without replacing others of the same name."""
        self.raw.append((_enc(name.lower()), _enc(value)))

    def setdefault(self, name: str, value: str) -> str:
        current = self.get(name)
        if current is None:
            self.append(name, value)
            return value
        return current

    def update(self, other: dict[str, str]) -> None:
        for k, v in other.items():
            self[k] = v

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def keys(self) -> list[str]:
        return [k.decode("latin-1") for k, _ in self.raw]

    def items(self) -> list[tuple[str, str]]:
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.raw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MutableHeaders):
            return self.raw == other.raw
        if isinstance(other, dict):
            return dict(self.items()) == {k.lower(): v for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MutableHeaders({self.items()!r})"
