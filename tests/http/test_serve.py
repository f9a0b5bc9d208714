"""Starting and stopping: ``data_bridge.serve()`` in a subprocess stopped by SIGTERM or
SIGINT (in-flight requests finish, shutdown hooks run, exit status 0), and
``start()``/``server.shutdown(grace)`` in this process."""

from __future__ import annotations

import asyncio
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import data_bridge
import data_bridge.pyloop
from data_bridge import App
from tests.waiting import wait_until

from .conftest import Running, connect, recv_all, run_server_info

SCRIPT = """
import asyncio, pathlib, sys
from data_bridge import App, serve

port, out, grace = int(sys.argv[1]), pathlib.Path(sys.argv[2]), float(sys.argv[3])
app = App()

@app.on_event("startup")
def startup():
    (out / "startup").write_text("1")

@app.on_event("shutdown")
async def shutdown():
    await asyncio.sleep(0.01)
    (out / "shutdown").write_text("1")

@app.get("/slow")
async def slow(seconds: float = 0.5):
    (out / "slow-started").write_text("1")
    await asyncio.sleep(seconds)
    return {"slept": seconds}

@app.get("/ping")
def ping():
    return "pong"

serve(app, port=port, graceful_timeout=grace)
(out / "returned").write_text("1")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


class ServeProcess:
    """``serve()`` running in a child process."""

    def __init__(self, tmp: Path, grace: float) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.stdout = (tmp / "stdout").open("wb")
        self.stderr = (tmp / "stderr").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(self.port), str(tmp), str(grace)],
            stdout=self.stdout,
            stderr=self.stderr,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        self.stdout.flush()
        self.stderr.flush()
        return (self.tmp / "stdout").read_text() + (self.tmp / "stderr").read_text()

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=1) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"serve() exited early ({self.proc.returncode}): {self.output()}")
                try:
                    if c.get("/health").status_code == 200:
                        return
                except httpx.TransportError:
                    time.sleep(0.05)
        pytest.fail(f"serve() did not start: {self.output()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.stdout.close()
        self.stderr.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    started: list[ServeProcess] = []

    def make(grace: float) -> ServeProcess:
        proc = ServeProcess(tmp_path, grace)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.close()


def get_in_thread(pool: ThreadPoolExecutor, url: str, path: str) -> Future[httpx.Response]:
    def run() -> httpx.Response:
        with httpx.Client(base_url=url, timeout=10) as c:
            return c.get(path)

    return pool.submit(run)


def shut_down_while_slow(
    pool: ThreadPoolExecutor, running: Running, started: threading.Event, grace: float
) -> tuple[Future[httpx.Response], float]:
    """Sends ``GET /slow``, waits until its handler has ``started``, then shuts the server
    down with ``grace`` seconds; returns the pending response and how long the shutdown
    took."""
    slow = get_in_thread(pool, running.base_url, "/slow")
    assert started.wait(5)
    start = time.monotonic()
    running.shutdown(grace)
    return slow, time.monotonic() - start


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_in_flight_requests_and_runs_hooks(
    spawn: Any, tmp_path: Path, sig: signal.Signals
) -> None:
    grace = 5.0
    server: ServeProcess = spawn(grace)
    server.wait_ready()
    assert f"data-bridge serving on http://127.0.0.1:{server.port}" in server.output()
    assert (tmp_path / "startup").exists()
    with httpx.Client(base_url=server.url, timeout=5) as c:
        assert c.get("/ping").json() == "pong"
    with ThreadPoolExecutor(1) as pool:
        slow = get_in_thread(pool, server.url, "/slow?seconds=0.8")
        assert wait_until(lambda: (tmp_path / "slow-started").exists(), timeout=5)
        start = time.monotonic()
        server.proc.send_signal(sig)
        # The listener closes at once, while the slow request is still running.
        assert wait_until(lambda: refused(server.port), timeout=0.6), "still accepting"
        resp = slow.result(10)
    assert resp.status_code == 200
    assert resp.json() == {"slept": 0.8}
    assert server.proc.wait(grace + 5) == 0, server.output()
    assert time.monotonic() - start < grace
    assert (tmp_path / "shutdown").exists(), server.output()
    assert (tmp_path / "returned").exists()


def test_requests_past_the_grace_period_are_cut(spawn: Any, tmp_path: Path) -> None:
    grace = 0.5
    server: ServeProcess = spawn(grace)
    server.wait_ready()
    with ThreadPoolExecutor(1) as pool:
        slow = get_in_thread(pool, server.url, "/slow?seconds=30")
        assert wait_until(lambda: (tmp_path / "slow-started").exists(), timeout=5)
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(grace + 5) == 0, server.output()
        assert time.monotonic() - start < grace + 2.0
        with pytest.raises(httpx.TransportError):
            slow.result(10)
    assert (tmp_path / "shutdown").exists(), server.output()


def test_idle_process_exits_promptly(spawn: Any, tmp_path: Path) -> None:
    server: ServeProcess = spawn(30.0)
    server.wait_ready()
    # An idle keep-alive connection must not hold the shutdown for the grace period.
    with connect(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(10) == 0, server.output()
        assert time.monotonic() - start < 3.0
        assert recv_all(sock, timeout=3) == b""
    assert (tmp_path / "shutdown").exists()


# -- start() / shutdown() in this process ------------------------------------------


def slow_app(started: threading.Event, cancelled: threading.Event, seconds: float) -> App:
    app = App()

    @app.get("/slow")
    async def slow() -> str:
        started.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "done"

    return app


def test_shutdown_waits_for_in_flight_requests() -> None:
    started, cancelled = threading.Event(), threading.Event()
    app = slow_app(started, cancelled, 0.5)
    with ThreadPoolExecutor(1) as pool, run_server_info(app) as running:
        slow, took = shut_down_while_slow(pool, running, started, 5.0)
        assert 0.2 < took < 4.0
        resp = slow.result(5)
        assert (resp.status_code, resp.json()) == (200, "done")
        assert not cancelled.is_set()
        assert refused(running.address[1])


def test_shutdown_closes_idle_connections_at_once() -> None:
    app = App()
    with run_server_info(app) as running, connect(running.address) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        running.shutdown(5.0)
        assert time.monotonic() - start < 1.0
        assert recv_all(sock, timeout=2) == b""


def test_shutdown_closes_connections_still_busy_after_the_grace_period() -> None:
    started, cancelled = threading.Event(), threading.Event()
    app = slow_app(started, cancelled, 30.0)
    with ThreadPoolExecutor(1) as pool, run_server_info(app) as running:
        slow, took = shut_down_while_slow(pool, running, started, 0.3)
        assert took < 2.0
        # Server.shutdown(): "... then closes the remaining connections".
        try:
            outcome: Any = slow.result(timeout=2)
        except httpx.TransportError as exc:
            outcome = exc
        except TimeoutError:
            outcome = None
        assert isinstance(outcome, httpx.TransportError), (
            f"the busy connection was not closed after the grace period: {outcome!r}"
        )
        assert cancelled.wait(2), "the abandoned handler was not cancelled"


def test_start_runs_startup_hooks_and_reports_the_address() -> None:
    app = App()
    calls: list[str] = []

    @app.on_event("startup")
    def sync_hook() -> None:
        calls.append("sync")

    @app.on_event("startup")
    async def async_hook() -> None:
        await asyncio.sleep(0)
        calls.append("async")

    with pytest.raises(ValueError, match="unknown event"):
        app.on_event("teardown")(sync_hook)

    with run_server_info(app) as running:
        assert calls == ["sync", "async"]
        host, port = running.bound
        assert host == "127.0.0.1"
        assert isinstance(port, int) and port > 0
        with httpx.Client(base_url=running.base_url, timeout=5) as c:
            assert c.get("/ready").json() == {"status": "ready"}


def test_port_in_use_fails_before_startup_hooks() -> None:
    app = App()
    ran: list[int] = []
    app.on_event("startup")(lambda: ran.append(1))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1:{port}: address already in use"):
            data_bridge.pyloop.run(data_bridge.start(app, port=port))
    assert ran == []


def test_unix_socket_mode_and_what_binding_leaves_alone(tmp_path: Path) -> None:
    path = tmp_path / "db.sock"
    app = App()
    with run_server_info(app, uds=str(path), uds_mode=0o600) as running:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url=running.base_url, timeout=5) as c:
            assert c.get("/health").status_code == 200
        # A second server does not take the socket of one still listening.
        with pytest.raises(OSError, match="a server is listening on it"):
            data_bridge.pyloop.run(data_bridge.start(App(), uds=str(path)))
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    with pytest.raises(OSError, match=f"{taken}: it exists and is not a socket"):
        data_bridge.pyloop.run(data_bridge.start(App(), uds=str(taken)))
    assert taken.read_text() == "keep me"
    for bad in (0o1777, -1, True):
        with pytest.raises(ValueError, match="permission bits"):
            data_bridge.pyloop.run(data_bridge.start(App(), uds=str(path), uds_mode=bad))
