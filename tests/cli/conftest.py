"""Helpers for the ``data-bridge serve`` tests: a small app module written into a
temporary directory, the CLI run as a real process group on 127.0.0.1 (killed whole
in teardown), and bounded polling."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.waiting import wait_until

APP_MODULE = """
import asyncio, os, pathlib
from data_bridge import App, Request

GREETING_AT_IMPORT = os.environ.get("GREETING")

app = App()

@app.on_event("startup")
def count_boot():
    with open(pathlib.Path(__file__).with_name("boots.log"), "a") as f:
        f.write(f"{os.getpid()}\\n")
    if pathlib.Path(__file__).with_name("fail-startup").exists():
        raise RuntimeError("startup refused by the test")

@app.get("/pid")
def pid():
    return os.getpid()

@app.get("/greeting")
def greeting():
    return {"at_import": GREETING_AT_IMPORT}

@app.get("/slow")
async def slow(seconds: float = 0.5):
    await asyncio.sleep(seconds)
    return {"slept": seconds}

@app.post("/echo")
async def echo(request: Request):
    return {"size": len(await request.body())}

not_an_app = 42

def create_app():
    made = App()

    @made.get("/made")
    def made_route():
        return "by factory"

    return made
"""

START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> set[int]:
    """Live (non-zombie) child processes of ``pid``."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces: fields start after the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.add(int(entry))
    return found


def get_raw(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """One request on a fresh connection (so each one can land on any worker)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 "):
        raise ConnectionError(f"incomplete response: {data!r}")
    length = next(
        (
            int(h.split(b":", 1)[1])
            for h in head.split(b"\r\n")
            if h.lower().startswith(b"content-length:")
        ),
        None,
    )
    if length is not None and len(body) != length:
        raise ConnectionError(f"truncated body: {data!r}")
    return int(head.split(b" ", 2)[1]), body


class Cli:
    """``python -m data_bridge ...`` in its own process group, output in files."""

    def __init__(self, cwd: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.out = (cwd / f"out-{id(self)}.log").open("w+b")
        self.err = (cwd / f"err-{id(self)}.log").open("w+b")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("DATA_BRIDGE_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "data_bridge", *args],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=self.err,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        self.err.flush()
        return Path(self.err.name).read_text(errors="replace")

    def wait_ready(self, port: int, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"exited early ({self.proc.returncode}): {self.stderr()}")
            try:
                if get_raw(port, "/health", timeout=1.0)[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"not serving after {timeout} s: {self.stderr()}")

    def workers(self) -> set[int]:
        return children(self.pid)

    def wait_workers(self, count: int, timeout: float = START_TIMEOUT) -> set[int]:
        """Waits until exactly ``count`` workers are alive; returns their PIDs."""
        if not wait_until(lambda: len(self.workers()) == count, timeout):
            pytest.fail(f"expected {count} workers, have {self.workers()}: {self.stderr()}")
        return self.workers()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def kill_all(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.out.close()
        self.err.close()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "cliapp.py").write_text(APP_MODULE)
    return tmp_path


@pytest.fixture
def cli(app_dir: Path) -> Iterator[Callable[..., Cli]]:
    """Starts the CLI in ``app_dir``; every process group started is killed afterwards."""
    started: list[Cli] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Cli:
        proc = Cli(app_dir, list(args), env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill_all()


class Load:
    """Sends requests on fresh connections from a thread until stopped (bounded), and
    records what came back."""

    def __init__(self, port: int, path: str = "/pid", limit: float = 60.0) -> None:
        self.port = port
        self.path = path
        self.limit = limit
        self.ok: list[bytes] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                status, body = get_raw(self.port, self.path)
            except OSError as exc:
                self.failures.append(repr(exc))
                continue
            if status == 200:
                self.ok.append(body)
            else:
                self.failures.append(f"status {status}: {body!r}")

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.limit)

    def pids(self) -> set[int]:
        return {int(b) for b in list(self.ok)}


def http(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
