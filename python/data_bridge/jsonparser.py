"""Parsing a request body as JSON, for body parameters and ``Request.json()``.

pydantic-core's parser reads the body. When it refuses one, the stdlib's parser either
accepts it (it also reads UTF-16 and UTF-32) or names the error and its position as
FastAPI reports them. Every refusal is a ``json.JSONDecodeError``: invalid bytes,
integers too long to convert and nesting too deep are invalid JSON like any other
malformed body, never a server error.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic_core

__all__ = ["loads"]

# How pydantic-core words its refusal of nesting past its limit (about 200 levels).
# The limit is kept: the stdlib's parser would take a few hundred levels more (and then
# raise RecursionError), but pydantic-core could not serialize such a value back, as a
# validation error's ``input`` does.
_TOO_DEEP = "recursion limit exceeded"


def loads(raw: bytes) -> Any:
    """``raw`` parsed as JSON; ``json.JSONDecodeError`` when it is not JSON, or is
    nested deeper than pydantic-core parses."""
    try:
        return pydantic_core.from_json(raw)
    except ValueError as exc:
        if str(exc).startswith(_TOO_DEEP):
            raise _too_deep(raw) from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise
    except UnicodeDecodeError as exc:
        doc = raw.decode(exc.encoding, "replace")
        pos = len(raw[: exc.start].decode(exc.encoding, "replace"))
        raise json.JSONDecodeError(f"Invalid {exc.encoding}: {exc.reason}", doc, pos) from None
    except RecursionError:
        raise _too_deep(raw) from None
    except ValueError:
        # ``int()`` refuses numbers of more than ``sys.get_int_max_str_digits()`` digits.
        raise json.JSONDecodeError("Number too long", _text(raw), 0) from None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _too_deep(raw: bytes) -> json.JSONDecodeError:
    return json.JSONDecodeError("Nesting too deep", _text(raw), 0)
