"""``data-bridge serve`` in one process: help, one-line startup errors, settings from
flags, the environment and env files, app factories, limits, Unix sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from data_bridge.serve.config import (
    ConfigError,
    load_env_file,
    parse_positive_seconds,
    parse_seconds,
    parse_size,
    parse_workers,
)
from tests.waiting import wait_until

from .conftest import Cli, free_port, http


def run_cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs a CLI invocation expected to end by itself (bounded)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DATA_BRIDGE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "data_bridge", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_help_lists_every_option(app_dir: Path) -> None:
    result = run_cli(app_dir, "serve", "--help")
    assert result.returncode == 0, result.stderr
    for option in (
        "--host", "--port", "--uds", "--workers", "--threads", "--timeout", "--ssl-certfile",
        "--graceful-timeout", "--max-body-size", "--backlog", "--limit-concurrency",
        "--max-requests", "--max-requests-jitter", "--log-level", "--access-log",
        "--no-access-log", "--log-format", "--reload", "--factory", "--env-file",
    ):  # fmt: skip
        assert option in result.stdout
    assert "DATA_BRIDGE_PORT" in result.stdout
    assert "default: 8000" in result.stdout


def test_console_script(app_dir: Path) -> None:
    script = Path(sys.executable).with_name("data-bridge")
    if not script.exists():
        pytest.skip("the data-bridge script is not installed next to this interpreter")
    result = subprocess.run(
        [str(script), "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "usage: data-bridge serve" in result.stdout


BROKEN = "raise RuntimeError('database unreachable')\n"
IMPORTS_MISSING = "import nosuchdependency_xyz\n"


@pytest.mark.parametrize(
    ("args", "env", "status", "expected"),
    [
        (["serve", "cliapp:app", "--prot", "80"], {}, 2, "--prot"),
        (["serve", "cliapp:app", "--port", "eighty"], {}, 2, "eighty"),
        (["serve", "cliapp:app", "--workers", "-1"], {}, 2, "--workers"),
        (["serve", "cliapp:app", "--max-body-size", "12XB"], {}, 2, "12XB"),
        (["serve", "cliapp:app", "--keep-alive-timeout", "nan"], {}, 2, "--keep-alive-timeout"),
        (
            ["serve", "cliapp:app"],
            {"DATA_BRIDGE_BODY_TIMEOUT": "-1"},
            2,
            "DATA_BRIDGE_BODY_TIMEOUT",
        ),
        (["serve", "cliapp:app", "--uds-mode", "rw-rw----"], {}, 2, "--uds-mode"),
        (["serve", "cliapp:app", "--uds-mode", "1660"], {}, 2, "000 to 777"),
        (["serve", "cliapp:app"], {"DATA_BRIDGE_UDS_MODE": "999"}, 2, "DATA_BRIDGE_UDS_MODE"),
        (["serve", "cliapp:app", "--timeout", "1e300"], {}, 2, "--timeout: expected a number"),
        (["serve", "cliapp:app", "--timeout", "inf"], {}, 2, "at most 31536000"),
        (["serve", "cliapp:app", "--timeout", "nan"], {}, 2, "--timeout"),
        (["serve", "cliapp:app", "--timeout", "-1"], {}, 2, "--timeout"),
        (["serve", "cliapp:app", "--timeout", "0"], {}, 2, "seconds > 0"),
        (["serve", "cliapp:app", "--graceful-timeout", "1e300"], {}, 2, "--graceful-timeout"),
        (["serve", "cliapp:app", "--graceful-timeout", "nan"], {}, 2, "seconds >= 0"),
        (["serve", "cliapp:app"], {"DATA_BRIDGE_TIMEOUT": "inf"}, 2, "DATA_BRIDGE_TIMEOUT"),
        (
            ["serve", "cliapp:app"],
            {"DATA_BRIDGE_GRACEFUL_TIMEOUT": "31536001"},
            2,
            "DATA_BRIDGE_GRACEFUL_TIMEOUT: expected a number of seconds",
        ),
        (["serve"], {}, 2, "APP"),
        (["serve", "cliapp"], {}, 2, "module:attribute"),
        (["serve", "cliapp:app"], {"DATA_BRIDGE_PORT": "abc"}, 2, "DATA_BRIDGE_PORT"),
        (["serve", "cliapp:app", "--env-file", "missing.env"], {}, 2, "missing.env"),
        (["serve", "nosuchmodule:app"], {}, 1, "could not import module 'nosuchmodule'"),
        (["serve", "broken:app"], {}, 1, "RuntimeError: database unreachable"),
        (["serve", "needsdep:app"], {}, 1, "nosuchdependency_xyz"),
        (["serve", "cliapp:nosuchattr"], {}, 1, "'nosuchattr' not found in module 'cliapp'"),
        (["serve", "cliapp:not_an_app"], {}, 1, "not a data_bridge.App"),
        (["serve", "cliapp:create_app"], {}, 1, "--factory"),
        (["serve", "broken:app", "--workers", "2"], {}, 1, "database unreachable"),
        (["serve", "nosuchmodule:app", "--max-requests", "5"], {}, 1, "nosuchmodule"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_invocation_prints_one_line(
    app_dir: Path, args: list[str], env: dict[str, str], status: int, expected: str
) -> None:
    (app_dir / "broken.py").write_text(BROKEN)
    (app_dir / "needsdep.py").write_text(IMPORTS_MISSING)
    if "--port" not in args and "DATA_BRIDGE_PORT" not in env:
        args = [*args, "--port", str(free_port())]
    result = run_cli(app_dir, *args, env=env)
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_failing_startup_hook_is_one_line(app_dir: Path) -> None:
    (app_dir / "fail-startup").write_text("")
    for workers in ("1", "2"):
        result = run_cli(
            app_dir, "serve", "cliapp:app", "--port", str(free_port()), "--workers", workers
        )
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "startup refused by the test" in lines[0], result.stderr


def test_port_in_use(app_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(app_dir, "serve", "cliapp:app", "--port", str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "address already in use" in lines[0]


def test_serves_one_process_and_stops_on_sigterm(cli: Callable[..., Cli]) -> None:
    port = free_port()
    server = cli("serve", "cliapp:app", "--port", str(port))
    server.wait_ready(port)
    with http(port) as c:
        assert c.get("/pid").json() == server.pid
        assert c.get("/slow?seconds=0").json() == {"slept": 0}
    assert server.workers() == set()
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0
    assert f"serving on http://127.0.0.1:{port}" in server.stderr()


def test_settings_from_environment(cli: Callable[..., Cli]) -> None:
    port = free_port()
    server = cli("serve", env={"DATA_BRIDGE_APP": "cliapp:app", "DATA_BRIDGE_PORT": str(port)})
    server.wait_ready(port)
    with http(port) as c:
        assert c.get("/pid").status_code == 200


def test_flag_wins_over_environment(cli: Callable[..., Cli]) -> None:
    port, other = free_port(), free_port()
    server = cli("serve", "cliapp:app", "--port", str(port), env={"DATA_BRIDGE_PORT": str(other)})
    server.wait_ready(port)
    with pytest.raises(httpx.ConnectError), http(other) as c:
        c.get("/health")


def test_env_file_is_loaded_before_the_app(cli: Callable[..., Cli], app_dir: Path) -> None:
    port = free_port()
    (app_dir / "prod.env").write_text(
        f"# settings\nexport GREETING='hello env'\nDATA_BRIDGE_PORT={port}\n"
    )
    server = cli("serve", "cliapp:app", "--env-file", "prod.env")
    server.wait_ready(port)
    with http(port) as c:
        assert c.get("/greeting").json() == {"at_import": "hello env"}


def test_factory(cli: Callable[..., Cli]) -> None:
    port = free_port()
    server = cli("serve", "cliapp:create_app", "--factory", "--port", str(port))
    server.wait_ready(port)
    with http(port) as c:
        assert c.get("/made").json() == "by factory"
        assert c.get("/pid").status_code == 404


def test_limits_from_flags(cli: Callable[..., Cli]) -> None:
    port = free_port()
    server = cli(
        "serve", "cliapp:app", "--port", str(port),
        "--max-body-size", "1KiB", "--timeout", "0.5", "--limit-concurrency", "1",
    )  # fmt: skip
    server.wait_ready(port)
    with http(port) as c:
        assert c.post("/echo", content=b"x" * 1024).json() == {"size": 1024}
        assert c.post("/echo", content=b"x" * 2048).status_code == 413
        assert c.get("/slow?seconds=3").status_code == 504
    # Two overlapping requests with room for one Python handler: one is turned away.
    barrier = threading.Barrier(2)

    def slow() -> int:
        with http(port) as c:
            barrier.wait(5)
            return c.get("/slow?seconds=0.4").status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(lambda _: slow(), range(2)))
    assert statuses == [200, 503]


def accepts(path: Path) -> bool:
    """Whether a server accepts on the Unix socket ``path``. Probed with our own
    socket: httpx leaks the one of a failed Unix connect."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def test_unix_socket(cli: Callable[..., Cli], app_dir: Path) -> None:
    path = app_dir / "db.sock"
    server = cli("serve", "cliapp:app", "--uds", str(path))
    assert wait_until(lambda: accepts(path), timeout=20), server.stderr()
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, base_url="http://local", timeout=10) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/pid").json() == server.pid
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0
    assert not path.exists()


def stale_socket(path: Path) -> None:
    """Leaves a socket file at ``path`` as a server that died would."""
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))


@pytest.mark.parametrize(
    ("args", "env", "mode"),
    [
        (["--uds-mode", "660"], {}, 0o660),
        ([], {"DATA_BRIDGE_UDS_MODE": "0o600"}, 0o600),
    ],
    ids=["flag", "env"],
)
def test_unix_socket_mode(
    cli: Callable[..., Cli], app_dir: Path, args: list[str], env: dict[str, str], mode: int
) -> None:
    path = app_dir / "db.sock"
    stale_socket(path)
    server = cli("serve", "cliapp:app", "--uds", str(path), *args, env=env)
    # The stale file is replaced by a socket that accepts.
    assert wait_until(lambda: accepts(path), timeout=20), server.stderr()
    assert stat.S_IMODE(path.stat().st_mode) == mode
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, base_url="http://local", timeout=10) as c:
        assert c.get("/health").status_code == 200
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0


@pytest.mark.parametrize("kind", ["file", "directory", "link to a socket", "live socket"])
def test_unix_socket_path_that_is_not_ours(app_dir: Path, kind: str) -> None:
    path = app_dir / "db.sock"
    live = None
    if kind == "file":
        path.write_text("keep me")
    elif kind == "directory":
        path.mkdir()
    elif kind == "link to a socket":
        stale_socket(app_dir / "other.sock")
        path.symlink_to(app_dir / "other.sock")
    else:
        live = socket.socket(socket.AF_UNIX)
        live.bind(str(path))
        live.listen()
    try:
        result = run_cli(app_dir, "serve", "cliapp:app", "--uds", str(path))
    finally:
        if live is not None:
            live.close()
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot bind unix socket {path}: " in lines[0]
    expected = "a server is listening on it" if live else "it exists and is not a socket"
    assert expected in lines[0]
    # Left as it was.
    if kind == "file":
        assert path.read_text() == "keep me"
    elif kind == "directory":
        assert path.is_dir()
    elif kind == "link to a socket":
        assert path.is_symlink()
    else:
        assert stat.S_ISSOCK(path.lstat().st_mode)


def test_reload_restarts_on_source_change(cli: Callable[..., Cli], app_dir: Path) -> None:
    port = free_port()
    server = cli("serve", "cliapp:app", "--port", str(port), "--reload")
    server.wait_ready(port)
    with http(port) as c:
        assert c.get("/greeting").json() == {"at_import": None}
        source = (app_dir / "cliapp.py").read_text()
        time.sleep(0.05)  # a distinct modification time
        (app_dir / "cliapp.py").write_text(source.replace('os.environ.get("GREETING")', '"v2"'))

        def reloaded() -> bool:
            try:
                return c.get("/greeting").json() == {"at_import": "v2"}
            except httpx.TransportError:
                return False

        assert wait_until(reloaded, timeout=20), server.stderr()


@pytest.mark.parametrize(
    ("text", "size"), [("1024", 1024), ("1KiB", 1024), ("16mib", 16 << 20), ("2 GiB", 2 << 30)]
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("parse", "text", "seconds"),
    [
        (parse_seconds, "0", 0.0),
        (parse_seconds, " 2.5 ", 2.5),
        (parse_seconds, "31536000", 31_536_000.0),
        (parse_positive_seconds, "0.001", 0.001),
        (parse_positive_seconds, "1e3", 1000.0),
    ],
)
def test_parse_seconds(parse: Callable[[str], float], text: str, seconds: float) -> None:
    assert parse(text) == seconds


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_seconds, "-0.5"),
        (parse_seconds, "31536000.5"),
        (parse_seconds, "1e300"),
        (parse_seconds, "-inf"),
        (parse_seconds, "NaN"),
        (parse_seconds, "soon"),
        (parse_positive_seconds, "0"),
        (parse_positive_seconds, "infinity"),
    ],
)
def test_parse_seconds_refuses(parse: Callable[[str], float], text: str) -> None:
    with pytest.raises(ConfigError, match="expected a number of seconds"):
        parse(text)


def test_parse_workers_auto() -> None:
    assert parse_workers("auto") == parse_workers("0") >= 1
    with pytest.raises(ConfigError):
        parse_workers("-2")


def test_env_file_does_not_override_the_shell(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text('A=from-file\nB="quoted # kept"\n\n# comment\n')
    environ = {"A": "from-shell"}
    load_env_file(str(tmp_path / ".env"), environ)
    assert environ == {"A": "from-shell", "B": "quoted # kept"}


def test_reload_keeps_serving_when_the_new_code_is_broken(
    cli: Callable[..., Cli], app_dir: Path
) -> None:
    port = free_port()
    server = cli("serve", "cliapp:app", "--port", str(port), "--reload")
    server.wait_ready(port)
    worker = server.wait_workers(1)
    source = (app_dir / "cliapp.py").read_text()
    time.sleep(0.05)
    (app_dir / "cliapp.py").write_text(source + "\nraise RuntimeError('typo')\n")
    assert wait_until(lambda: "keeping the running workers" in server.stderr(), timeout=20)
    assert "RuntimeError: typo" in server.stderr()
    with http(port) as c:
        assert c.get("/pid").json() == worker.pop()


def test_json_log_format(cli: Callable[..., Cli]) -> None:
    port = free_port()
    server = cli("serve", "cliapp:app", "--port", str(port), "--log-format", "json")
    server.wait_ready(port)
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0
    lines = server.stderr().strip().splitlines()
    assert len(lines) >= 2
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "message", "logger", "pid"} <= entry.keys()
    assert any("serving on" in json.loads(line)["message"] for line in lines)


def test_https_and_certificate_reload_on_sighup(cli: Callable[..., Cli], app_dir: Path) -> None:
    import ssl

    import trustme

    certfile, keyfile = app_dir / "cert.pem", app_dir / "key.pem"

    def issue() -> ssl.SSLContext:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        cert.private_key_pem.write_to_path(str(keyfile))
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        return ctx

    first = issue()
    port = free_port()
    server = cli(
        "serve", "cliapp:app", "--port", str(port),
        "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile),
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}/health"

    def serves(ctx: ssl.SSLContext) -> bool:
        try:
            return httpx.get(url, verify=ctx, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_until(lambda: serves(first), timeout=20), server.stderr()
    assert f"serving on https://127.0.0.1:{port}" in server.stderr()
    second = issue()
    server.signal(signal.SIGHUP)
    assert wait_until(lambda: serves(second), timeout=10), server.stderr()
    assert not serves(first)
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0
