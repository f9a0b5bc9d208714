"""Prometheus ``/metrics`` served from Rust: request counters by route template and
status, latency histogram, gauges; parsed with ``prometheus_client``'s parser."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from data_bridge import App

from .conftest import run_server


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_match_the_requests_sent() -> None:
    app = App(metrics=True)

    @app.get("/items/{item_id}")
    def item(item_id: int) -> int:
        return item_id

    @app.post("/items")
    async def create() -> str:
        return "ok"

    with run_server(app) as url, httpx.Client(base_url=url) as client:
        for i in range(5):
            assert client.get(f"/items/{i}").status_code == 200
        assert client.get("/items/abc").status_code == 422
        assert client.post("/items").status_code == 200
        assert client.delete("/items").status_code == 405
        for path in ("/a", "/b", "/c"):
            assert client.get(path).status_code == 404
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)
    total = "data_bridge_requests_total"
    assert value(found, total, method="GET", route="/items/{item_id}", status="200") == 5
    assert value(found, total, method="GET", route="/items/{item_id}", status="422") == 1
    assert value(found, total, method="POST", route="/items", status="200") == 1
    assert value(found, total, method="DELETE", route="/items", status="405") == 1
    assert value(found, total, method="GET", route="<unmatched>", status="404") == 3
    hist = "data_bridge_request_duration_seconds"
    assert value(found, f"{hist}_count", route="/items/{item_id}") == 6
    assert value(found, f"{hist}_bucket", route="/items/{item_id}", le="+Inf") == 6
    assert value(found, f"{hist}_sum", route="/items/{item_id}") > 0
    # Only the scrape itself is in flight.
    assert value(found, "data_bridge_requests_in_flight") == 1
    assert value(found, "data_bridge_python_queue_depth") == 0
    assert value(found, "data_bridge_worker_restarts_total") == 0
    assert ("data_bridge_event_loop_lag_seconds", ()) in found


def test_queue_depth_and_loop_lag() -> None:
    app = App(metrics=True)
    release = threading.Event()

    @app.get("/wait")
    async def wait() -> str:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        return "done"

    @app.get("/hog")
    async def hog() -> str:
        # Keeps the loop thread busy, so the lag probe runs late.
        time.sleep(1.5)
        return "done"

    with run_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        waiter = threading.Thread(target=lambda: client.get("/wait"))
        waiter.start()
        try:
            with httpx.Client(base_url=url) as other:
                for _ in range(100):
                    found = samples(other.get("/metrics").text)
                    if value(found, "data_bridge_python_queue_depth") == 1:
                        break
                    threading.Event().wait(0.02)
                assert value(found, "data_bridge_python_queue_depth") == 1
                assert value(found, "data_bridge_requests_in_flight") == 2
        finally:
            release.set()
            waiter.join(10)
        assert client.get("/hog").text == '"done"'
        # The probe that came due while the loop was busy runs right after it; the lag
        # it measured is shown until the next probe, a second later.
        lags = []
        for _ in range(20):
            found = samples(client.get("/metrics").text)
            lags.append(value(found, "data_bridge_event_loop_lag_seconds"))
            if lags[-1] >= 0.3:
                break
            threading.Event().wait(0.05)
        assert lags[-1] >= 0.3, lags


def test_off_by_default() -> None:
    with run_server(App()) as url:
        assert httpx.get(f"{url}/metrics").status_code == 404
