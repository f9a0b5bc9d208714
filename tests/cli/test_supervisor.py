"""``data-bridge serve`` with a supervisor: worker processes sharing the port, restarts
with back-off, graceful stop, rolling replacement on SIGHUP, scaling with
SIGTTIN/SIGTTOU and recycling after ``--max-requests``; all against real processes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.waiting import wait_until

from .conftest import Cli, Load, free_port, get_raw, http


def start(cli: Callable[..., Cli], *args: str, workers: int = 2) -> tuple[Cli, int]:
    port = free_port()
    server = cli("serve", "cliapp:app", "--port", str(port), "--workers", str(workers), *args)
    server.wait_ready(port)
    server.wait_workers(workers)
    return server, port


def pids_seen(port: int, want: int, timeout: float = 10.0) -> set[int]:
    """PIDs answering ``/pid`` on fresh connections until ``want`` distinct ones are seen."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        status, body = get_raw(port, "/pid")
        assert status == 200
        seen.add(int(body))
    return seen


def test_two_workers_answer_from_two_pids(cli: Callable[..., Cli]) -> None:
    server, port = start(cli, workers=2)
    seen = pids_seen(port, 2)
    assert seen == server.workers()
    assert server.pid not in seen


def test_killed_worker_is_replaced(cli: Callable[..., Cli]) -> None:
    server, port = start(cli, workers=2)
    before = server.workers()
    victim = min(before)
    with Load(port) as load:
        assert wait_until(lambda: len(load.ok) > 5, timeout=10)
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(server.workers() - before) == 1, timeout=15)
        fresh = (server.workers() - before).pop()
        assert wait_until(lambda: fresh in load.pids(), timeout=15), server.stderr()
    assert victim not in server.workers()
    # Only connections the killed worker had accepted may fail; the port never closes.
    assert not [f for f in load.failures if "Refused" in f], load.failures
    assert len(load.failures) <= 5, load.failures


def test_crash_loop_is_throttled(cli: Callable[..., Cli], app_dir: Path) -> None:
    server, _ = start(cli, workers=2)
    boots = app_dir / "boots.log"
    (app_dir / "fail-startup").write_text("")
    os.kill(min(server.workers()), signal.SIGKILL)
    time.sleep(4.0)
    restarts = len(boots.read_text().split()) - 2
    # Back-off 0.1, 0.2, 0.4, 0.8, 1.6 s... (plus boot time): a handful, not dozens.
    assert 2 <= restarts <= 7, (restarts, server.stderr())
    assert "restarting in" in server.stderr()
    assert server.proc.poll() is None
    # Fixed app: the next attempt succeeds and the service is back.
    (app_dir / "fail-startup").unlink()
    assert wait_until(
        lambda: " ready" in server.stderr().rsplit("restarting in", 1)[1], timeout=20
    ), server.stderr()
    assert len(server.workers()) == 2


def test_sigterm_under_load_loses_no_completed_request(cli: Callable[..., Cli]) -> None:
    grace = 3.0
    server, port = start(cli, "--graceful-timeout", str(grace), workers=2)
    workers = server.workers()
    with ThreadPoolExecutor(1) as pool, Load(port) as load:
        assert wait_until(lambda: len(load.ok) > 10, timeout=10)

        def slow() -> tuple[int, bytes]:
            return get_raw(port, "/slow?seconds=1")

        in_flight = pool.submit(slow)
        time.sleep(0.3)
        began = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(grace + 5) == 0, server.stderr()
        took = time.monotonic() - began
        load.stop()
        assert in_flight.result(5) == (200, b'{"slept":1.0}')
    assert took < grace + 1.5
    # Every response that arrived was complete (get_raw checks the length) and 200.
    assert all(body.isdigit() for body in load.ok)
    assert not [f for f in load.failures if "status" in f or "truncated" in f], load.failures
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)


def test_sighup_replaces_workers_without_refusing(cli: Callable[..., Cli]) -> None:
    server, port = start(cli, workers=2)
    before = server.workers()
    with Load(port) as load:
        assert wait_until(lambda: len(load.ok) > 10, timeout=10)
        server.signal(signal.SIGHUP)

        def replaced() -> bool:
            now = server.workers()
            return len(now) == 2 and not now & before

        assert wait_until(replaced, timeout=30), server.stderr()
        after = server.workers()
        assert wait_until(lambda: after <= load.pids(), timeout=10)
        load.stop()
    assert load.failures == []
    assert len(load.ok) > 20


def test_max_requests_recycles(cli: Callable[..., Cli]) -> None:
    server, port = start(cli, "--max-requests", "20", "--max-requests-jitter", "5", workers=1)
    first = server.workers()
    seen: set[int] = set()
    count = 0
    deadline = time.monotonic() + 30
    while len(seen) < 3 and time.monotonic() < deadline:
        status, body = get_raw(port, "/pid")
        assert status == 200
        seen.add(int(body))
        count += 1
        time.sleep(0.01)
    assert len(seen) >= 3, (count, seen, server.stderr())
    assert first < seen
    assert "recycling" in server.stderr()


def test_sigttin_and_sigttou_scale(cli: Callable[..., Cli]) -> None:
    server, port = start(cli, workers=2)
    server.signal(signal.SIGTTIN)
    assert len(server.wait_workers(3)) == 3
    assert len(pids_seen(port, 3)) == 3
    # One at a time: the kernel merges a signal sent again before it was handled.
    server.signal(signal.SIGTTOU)
    server.wait_workers(2)
    server.signal(signal.SIGTTOU)
    server.wait_workers(1)
    server.signal(signal.SIGTTOU)
    time.sleep(1.0)
    assert len(server.workers()) == 1
    with http(port) as c:
        assert c.get("/pid").status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_supervisor_stops_idle_workers_promptly(cli: Callable[..., Cli], sig: int) -> None:
    server, _ = start(cli, workers=2)
    workers = server.workers()
    server.signal(sig)
    assert server.wait(10) == 0, server.stderr()
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)
