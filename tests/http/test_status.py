"""``data_bridge.status`` has Starlette's constants, with the same values."""

from __future__ import annotations

import starlette.status

from data_bridge import status


def test_same_names_and_values_as_starlette() -> None:
    names = [n for n in starlette.status.__all__ if n.startswith(("HTTP_", "WS_"))]
    assert status.__all__ == names
    assert {n: getattr(status, n) for n in names} == {
        n: getattr(starlette.status, n) for n in names
    }
    assert status.HTTP_404_NOT_FOUND == 404
