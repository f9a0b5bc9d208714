"""``/metrics`` under a supervisor answers for the whole server: every worker's
counters summed, whichever worker answers, and never going backwards when workers are
killed and replaced."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import wait_until

from .conftest import Cli, free_port, get_raw


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, body = get_raw(port, "/metrics")
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def served(port: int, route: str = "/pid") -> float:
    key = frozenset({"method": "GET", "route": route, "status": "200"}.items())
    return scrape(port).get(("data_bridge_requests_total", key), 0.0)


def histogram_count(port: int, route: str = "/pid") -> float:
    key = frozenset({"route": route}.items())
    return scrape(port).get(("data_bridge_request_duration_seconds_count", key), 0.0)


def start(cli: Callable[..., Cli]) -> tuple[Cli, int]:
    port = free_port()
    server = cli("serve", "cliapp:app", "--port", str(port), "--workers", "2", "--metrics")
    server.wait_ready(port)
    server.wait_workers(2)
    return server, port


def send(port: int, count: int) -> set[int]:
    """``count`` requests from several threads (so both workers accept some); returns
    the PIDs that answered."""

    def one(_: int) -> int:
        status, body = get_raw(port, "/pid")
        assert status == 200
        return int(body)

    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(one, range(count)))


def scraped_by(server: Cli) -> set[int]:
    """Workers whose access log shows a ``/metrics`` scrape."""
    return {
        int(line.split("[", 1)[1].split("]", 1)[0])
        for line in server.stderr().splitlines()
        if '"GET /metrics HTTP/1.1" 200' in line
    }


def test_every_worker_reports_the_whole_server(cli: Callable[..., Cli]) -> None:
    server, port = start(cli)
    workers = server.workers()
    # The kernel picks the accepting worker: send until both have answered some.
    sent, pids = 0, set()
    while (sent < 200 or pids != workers) and sent < 2000:
        pids |= send(port, 50)
        sent += 50
    assert pids == workers
    # Scrapes land on either worker; every one sees every request.
    with ThreadPoolExecutor(8) as pool:
        for _ in range(20):
            assert list(pool.map(lambda _: served(port), range(16))) == [sent] * 16
            if wait_until(lambda: scraped_by(server) == workers, timeout=0.5):
                break
    assert scraped_by(server) == workers, server.stderr()
    assert histogram_count(port) == sent
    gauges = scrape(port)
    assert gauges[("data_bridge_requests_in_flight", frozenset())] == 1.0  # this scrape
    assert gauges[("data_bridge_python_queue_depth", frozenset())] >= 0.0


def test_counts_survive_killed_workers(cli: Callable[..., Cli]) -> None:
    server, port = start(cli)
    send(port, 100)
    assert served(port) == 100.0
    first = server.workers()
    os.kill(min(first), signal.SIGKILL)
    assert wait_until(lambda: len(server.workers() - first) == 1, timeout=15)
    server.wait_workers(2)
    assert [served(port) for _ in range(6)] == [100.0] * 6
    send(port, 50)
    second = server.workers()
    # Now the replacement dies too: its counts and its predecessor's stay.
    os.kill(max(second - first), signal.SIGKILL)
    assert wait_until(lambda: len(server.workers() - second) == 1, timeout=15)
    server.wait_workers(2)
    assert [served(port) for _ in range(6)] == [150.0] * 6
    assert histogram_count(port) == 150.0
    # A dead worker's in-flight scrape does not linger.
    assert scrape(port)[("data_bridge_requests_in_flight", frozenset())] == 1.0
