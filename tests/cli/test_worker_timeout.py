"""``--worker-timeout``: a worker whose event loop stops answering (a handler blocking
it) is killed and replaced by the supervisor, while loops merely busy awaiting slow
handlers, and workers slow to start, are left alone."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import wait_until

from .conftest import Cli, Load, free_port, get_raw

HANG_APP = """
import asyncio, os, time
from data_bridge import App

app = App()

@app.on_event("startup")
def slow_start():
    time.sleep(float(os.environ.get("STARTUP_SLEEP", "0")))

@app.get("/pid")
async def pid():
    return os.getpid()

@app.get("/block")
async def block(seconds: float = 3600.0):
    time.sleep(seconds)
    return os.getpid()

@app.get("/wait")
async def wait(seconds: float = 1.0):
    await asyncio.sleep(seconds)
    return os.getpid()
"""


@pytest.fixture
def start(cli: Callable[..., Cli], app_dir: Path) -> Callable[..., tuple[Cli, int]]:
    (app_dir / "hangapp.py").write_text(HANG_APP)

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[Cli, int]:
        port = free_port()
        server = cli("serve", "hangapp:app", "--port", str(port), "--workers", "2", *args, env=env)
        server.wait_ready(port)
        server.wait_workers(2)
        return server, port

    return run


def send_and_hold(port: int, path: str) -> socket.socket:
    """Sends a request and returns the connection without reading the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    return sock


def restarts(port: int) -> float:
    status, body = get_raw(port, "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "data_bridge_worker_restarts_total":
                return sample.value
    raise AssertionError("no restart counter in /metrics")


def test_blocked_worker_is_killed_and_replaced(
    start: Callable[..., tuple[Cli, int]],
) -> None:
    server, port = start("--worker-timeout", "2", "--metrics")
    before = server.workers()
    held = send_and_hold(port, "/block")
    try:
        with Load(port) as load:
            # The blocked worker is the one killed: a new PID appears, one old PID goes.
            assert wait_until(lambda: len(server.workers() - before) == 1, timeout=15), (
                server.stderr()
            )
            (victim,) = before - server.workers()
            fresh = (server.workers() - before).pop()
            assert wait_until(lambda: fresh in load.pids(), timeout=15), server.stderr()
            assert wait_until(lambda: len(server.workers()) == 2, timeout=5)
        # The held connection was the blocked worker's: it ends without an answer.
        try:
            answer = held.recv(65536)
        except ConnectionResetError:
            answer = b""
        assert answer == b""
    finally:
        held.close()
    log = server.stderr()
    match = re.search(rf"worker {victim} timed out: its event loop was silent for ([\d.]+) s", log)
    assert match, log
    assert 2.0 <= float(match.group(1)) < 5.0, log
    assert f"worker {victim} was killed after its event loop was silent" in log
    # The other worker kept answering the whole time.
    assert load.pids() - {fresh, victim}, (load.pids(), log)
    assert not [f for f in load.failures if "Refused" in f], load.failures
    assert wait_until(lambda: all(restarts(port) == 1 for _ in range(4)), timeout=10)


def test_busy_awaiting_loop_is_not_killed(start: Callable[..., tuple[Cli, int]]) -> None:
    server, port = start("--worker-timeout", "1")
    before = server.workers()
    answers: list[tuple[int, bytes]] = []

    def slow() -> None:
        answers.append(get_raw(port, "/wait?seconds=3", timeout=10))

    threads = [threading.Thread(target=slow) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert [status for status, _ in answers] == [200] * 8
    assert {int(body) for _, body in answers} <= before
    assert server.workers() == before
    assert "timed out" not in server.stderr()


def test_slow_startup_is_not_a_hang(start: Callable[..., tuple[Cli, int]]) -> None:
    server, port = start("--worker-timeout", "1", env={"STARTUP_SLEEP": "2.5"})
    before = server.workers()
    time.sleep(2.0)
    assert server.workers() == before
    assert get_raw(port, "/pid")[0] == 200
    assert "timed out" not in server.stderr()


def test_zero_disables_the_timeout(start: Callable[..., tuple[Cli, int]]) -> None:
    server, port = start("--worker-timeout", "0")
    before = server.workers()
    held = send_and_hold(port, "/block?seconds=3")
    try:
        time.sleep(1.0)
        assert server.workers() == before
        # The blocked worker answers once the handler returns.
        held.settimeout(10)
        assert b" 200 " in held.recv(65536)
    finally:
        held.close()
    assert server.workers() == before
    assert "timed out" not in server.stderr()
