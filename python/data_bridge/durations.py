"""Durations in seconds, checked where they enter: ``App(timeout=...)``, a route's
``timeout=``, ``graceful_timeout`` of :func:`~data_bridge.serve` and
:func:`~data_bridge.stop`, and ``data-bridge serve --timeout`` / ``--graceful-timeout``
(and their environment variables, see :mod:`data_bridge.serve.config`).

The server holds durations as Rust ``Duration`` values, which cannot be NaN, infinite,
negative or astronomically large; one check here keeps every such value out.
"""

from __future__ import annotations

from data_bridge._native import MAX_SECONDS

__all__ = ["MAX_SECONDS", "check_seconds"]

# MAX_SECONDS, the longest duration accepted anywhere, is the server's own (one year):
# anything longer is a mistake (a unit mix-up, or "forever", which ``None`` already
# says where it is allowed).


def check_seconds(value: float, name: str | None = None, *, positive: bool = False) -> float:
    """``value`` as a float if it is a finite number of seconds from 0 (above 0 with
    ``positive``) to :data:`MAX_SECONDS`; otherwise ``ValueError`` (``TypeError`` for a
    value that is not a number), whose message starts with ``name`` if given."""
    prefix = f"{name}: " if name else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{prefix}expected a number of seconds, got {value!r}")
    # Written so that NaN fails every comparison and a huge int is never made a float.
    if not (0 <= value <= MAX_SECONDS) or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(
            f"{prefix}expected a number of seconds {bound} and at most {MAX_SECONDS} "
            f"(a year), got {value!r}"
        )
    return float(value)
