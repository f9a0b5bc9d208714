"""What every benchmark app shares: the POST body model and the port to bind."""

from __future__ import annotations

import os

from pydantic import BaseModel

HELLO = {"message": "Hello, World!"}
TEXT = "Hello, World!"


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def port() -> int:
    """The port the runner picked, passed in ``BENCH_PORT``."""
    return int(os.environ.get("BENCH_PORT", "8000"))
