"""The scale-out setup of ``docs/deployment.md``: nginx, configured with
``docs/nginx/data-bridge.conf``, in front of two ``data-bridge serve`` instances on
loopback, with ``--proxy-headers``."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.waiting import wait_until

from .conftest import Cli, free_port

CONFIG = Path(__file__).parents[2] / "docs" / "nginx" / "data-bridge.conf"

WHO_APP = """
import os
from data_bridge import App, Request

app = App()

@app.get("/who")
def who(request: Request):
    return {
        "pid": os.getpid(),
        "client": request.client[0] if request.client else None,
        "scheme": request.url.scheme,
        "host": request.url.hostname,
        "forwarded_for": request.headers.get("x-forwarded-for"),
        "request_id": request.headers.get("x-request-id"),
    }
"""

MAIN = """
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/data-bridge.conf;
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[int, int], int]]:
    """Starts nginx with the documented config pointing at two ports; returns its port."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(first: int, second: int) -> int:
        port = free_port()
        site = (
            CONFIG.read_text()
            .replace("127.0.0.1:8001", f"127.0.0.1:{first}")
            .replace("127.0.0.1:8002", f"127.0.0.1:{second}")
            .replace("listen 80;", f"listen 127.0.0.1:{port};")
        )
        (tmp_path / "data-bridge.conf").write_text(site)
        (tmp_path / "nginx.conf").write_text(MAIN.format(tmp=tmp_path))
        args = [binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
        args += ["-e", str(tmp_path / "error.log")]
        check = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        if not wait_until(lambda: listening(port) or proc.poll() is not None, timeout=10):
            pytest.fail("nginx did not start listening")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        return port

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_nginx_spreads_requests_and_forwards_the_client(
    cli: Callable[..., Cli], app_dir: Path, nginx: Callable[[int, int], int]
) -> None:
    (app_dir / "whoapp.py").write_text(WHO_APP)
    ports = [free_port(), free_port()]
    instances = [
        cli("serve", "whoapp:app", "--port", str(p), "--proxy-headers", "--no-access-log")
        for p in ports
    ]
    for instance, port in zip(instances, ports, strict=True):
        instance.wait_ready(port)
    front = nginx(*ports)
    seen = []
    with httpx.Client(base_url=f"http://127.0.0.1:{front}", timeout=10) as client:
        for _ in range(8):
            response = client.get(
                "/who",
                headers={"host": "shop.example", "x-forwarded-for": "203.0.113.7"},
            )
            assert response.status_code == 200, response.text
            seen.append(response.json())
        assert client.get("/metrics").status_code == 404
    assert {w["pid"] for w in seen} == {i.pid for i in instances}
    for who in seen:
        # nginx appended its own peer (127.0.0.1, trusted); the client is the hop before.
        assert who["forwarded_for"] == "203.0.113.7, 127.0.0.1"
        assert who["client"] == "203.0.113.7"
        assert who["scheme"] == "http"
        assert who["host"] == "shop.example"
        assert len(who["request_id"]) == 32
