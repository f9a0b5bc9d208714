"""Operating ``data-bridge serve``: the access log (on by default), ``--metrics`` with
the supervisor's restart count, and ``executor="process"`` routes with
``--process-pool-size`` shut down with the server."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import wait_until

from .conftest import Cli, children, free_port, get_raw, http

POOL_APP = """
import os
from data_bridge import App

app = App()

@app.get("/square/{n}", executor="process")
def square(n: int):
    return {"pid": os.getpid(), "parent": os.getppid(), "square": n * n}
"""


def metric(port: int, name: str) -> float:
    status, body = get_raw(port, "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} not in /metrics")


def test_access_log_is_on_by_default(cli: Callable[..., Cli]) -> None:
    port = free_port()
    server = cli("serve", "cliapp:app", "--port", str(port))
    server.wait_ready(port)
    with http(port) as client:
        request_id = client.get("/pid?x=1").headers["x-request-id"]
    assert wait_until(lambda: request_id in server.stderr(), timeout=5), server.stderr()
    line = next(line for line in server.stderr().splitlines() if request_id in line)
    assert '"GET /pid?x=1 HTTP/1.1" 200 ' in line


def test_no_access_log(cli: Callable[..., Cli]) -> None:
    port = free_port()
    server = cli("serve", "cliapp:app", "--port", str(port), "--no-access-log")
    server.wait_ready(port)
    with http(port) as client:
        assert "x-request-id" not in client.get("/pid").headers
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0
    assert "GET /pid" not in server.stderr()


def test_metrics_count_worker_restarts(cli: Callable[..., Cli]) -> None:
    port = free_port()
    server = cli("serve", "cliapp:app", "--port", str(port), "--workers", "2", "--metrics")
    server.wait_ready(port)
    before = server.wait_workers(2)
    assert metric(port, "data_bridge_worker_restarts_total") == 0
    os.kill(min(before), signal.SIGKILL)
    assert wait_until(lambda: len(server.workers() - before) == 1, timeout=15)
    # Every worker, old or new, reports the supervisor's count.
    assert wait_until(
        lambda: all(metric(port, "data_bridge_worker_restarts_total") == 1 for _ in range(6)),
        timeout=10,
    )


def test_process_pool_route(cli: Callable[..., Cli], app_dir: Path) -> None:
    (app_dir / "poolapp.py").write_text(POOL_APP)
    port = free_port()
    server = cli("serve", "poolapp:app", "--port", str(port), "--process-pool-size", "1")
    server.wait_ready(port)
    with http(port) as client:
        body = client.get("/square/12").json()
    assert body["square"] == 144
    assert body["pid"] != server.pid
    assert body["parent"] == server.pid
    assert body["pid"] in children(server.pid)
    server.signal(signal.SIGTERM)
    assert server.wait(15) == 0
    # The pool's processes were stopped with the server, not left behind.
    assert wait_until(lambda: not alive(body["pid"]), timeout=5)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
