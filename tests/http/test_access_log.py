"""The access log: one line per request on stderr, written by a native thread, in text
or JSON, with the request id echoed in ``x-request-id``."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from data_bridge import App, Request
from tests.waiting import wait_until

from .conftest import run_server


def make_app() -> App:
    app = App()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/rid")
    def rid(request: Request) -> str | None:
        return request.headers.get("x-request-id")

    return app


def access_lines(capfd: pytest.CaptureFixture[str], count: int) -> list[str]:
    """The access lines written so far, once there are ``count`` of them."""
    seen: list[str] = []

    def enough() -> bool:
        seen.extend(line for line in capfd.readouterr().err.splitlines() if line)
        return len([line for line in seen if "HTTP/" in line or '"path"' in line]) >= count

    assert wait_until(enough, timeout=5.0), seen
    return seen


def test_text_lines(capfd: pytest.CaptureFixture[str]) -> None:
    with run_server(make_app(), access_log=True) as url:
        response = httpx.get(f"{url}/items/7?x=1")
        httpx.get(f"{url}/nowhere")
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    lines = access_lines(capfd, 2)
    first = next(line for line in lines if "/items/7" in line)
    assert re.search(
        r' INFO    \[\d+\] 127\.0\.0\.1:\d+ - "GET /items/7\?x=1 HTTP/1\.1" 200 13 '
        rf"\d+\.\d{{6}}s {request_id}$",
        first,
    ), first
    assert any('"GET /nowhere HTTP/1.1" 404' in line for line in lines)


def test_json_lines_and_incoming_request_id(capfd: pytest.CaptureFixture[str]) -> None:
    with run_server(make_app(), access_log=True, log_format="json") as url:
        response = httpx.get(f"{url}/rid", headers={"x-request-id": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    assert response.json() == "trace-42"
    entry = json.loads(next(line for line in access_lines(capfd, 1) if "/rid" in line))
    assert entry["request_id"] == "trace-42"
    assert entry["status"] == 200
    assert entry["method"] == "GET"
    assert entry["path"] == "/rid"
    assert entry["bytes"] == len(response.content)
    assert entry["logger"] == "data_bridge.access"
    assert entry["client"].startswith("127.0.0.1:")
    assert {"time", "level", "message", "pid", "duration", "http_version"} <= entry.keys()


def test_the_handler_sees_a_generated_id() -> None:
    with run_server(make_app(), access_log=True) as url:
        response = httpx.get(f"{url}/rid", headers={"x-request-id": "has space"})
    assert response.json() == response.headers["x-request-id"] != "has space"


def test_off_by_default(capfd: pytest.CaptureFixture[str]) -> None:
    with run_server(make_app()) as url:
        response = httpx.get(f"{url}/items/1")
    time.sleep(0.1)
    assert "x-request-id" not in response.headers
    assert "/items/1" not in capfd.readouterr().err
