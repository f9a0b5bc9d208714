"""Runs every HTTP scenario on data-bridge and its peers in one run and writes markdown
tables of ratios to FastAPI on uvicorn (``benchmarks/results/http.md``) plus bar charts.

Each server, scenario and connection count gets a fresh server process pinned to CPU 0;
wrk (one thread) is pinned to CPU 1. Every scenario's response is checked once with a
real request before it is measured. A server that does not start, or a scenario it
cannot serve, is reported as n/a.

With ``--tls`` the same servers that can terminate TLS themselves serve HTTPS (HTTP/1.1)
with one certificate made for the run, and the tables go to ``http-tls.md``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.http.report import Run, write_report
from benchmarks.loop.run import pinned

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = HERE.parent / "results"
HOST = "127.0.0.1"
APPS = "benchmarks.http.apps"
BASELINE = "fastapi-uvicorn"
CONNECTIONS = [64, 256]
ITEM = {"name": "widget", "price": 9.99, "tags": ["a", "b"]}
HELLO = {"message": "Hello, World!"}
# A run during which other processes kept more than this many cores busy is redone.
QUIET = 0.1
QUIET_WAIT = 15.0


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    path: str
    expect: Any
    content_type: str = "application/json"
    method: str = "GET"
    body: bytes | None = None


SCENARIOS = [
    Scenario("json", "JSON hello, async def", "/json", HELLO),
    Scenario("native", "JSON hello, native route", "/native", HELLO),
    Scenario("sync", "JSON hello, def handler", "/sync", HELLO),
    Scenario("plaintext", "plain text, async def", "/plaintext", "Hello, World!", "text/plain"),
    Scenario("path", "GET /users/{user_id} (int)", "/users/42", {"user_id": 42}),
    Scenario(
        "body",
        "POST /items, pydantic body",
        "/items",
        ITEM,
        method="POST",
        body=json.dumps(ITEM).encode(),
    ),
    Scenario("sleep", "async def, sleep(1 ms)", "/sleep", HELLO),
    Scenario(
        "deps",
        "GET /search, query + Depends",
        "/search?q=widget&limit=20",
        {"q": "widget", "limit": 20, "offset": 0},
    ),
    Scenario(
        "model",
        "GET /items/{id}, response_model",
        "/items/7",
        {"id": 7, "name": "widget", "price": 9.99},
    ),
]
# Scenarios that need FastAPI's API (dependencies, response models).
FASTAPI_ONLY = frozenset({"deps", "model"})
QUICK_SCENARIOS = ["json", "native", "body"]


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    argv: Callable[[int], list[str]]
    # Scenarios the server cannot serve (reported as n/a without starting it).
    unsupported: frozenset[str] = frozenset()
    note: str = ""
    # The arguments that make it serve HTTPS with (certfile, keyfile); None: it cannot.
    tls_args: Callable[[str, str], list[str]] | None = None


def _uvicorn_tls(cert: str, key: str) -> list[str]:
    return ["--ssl-certfile", cert, "--ssl-keyfile", key]


def _granian_tls(cert: str, key: str) -> list[str]:
    return ["--ssl-certificate", cert, "--ssl-keyfile", key]


def _env_tls(cert: str, key: str) -> list[str]:
    # The app reads BENCH_SSL_CERTFILE / BENCH_SSL_KEYFILE itself.
    return []


def _listen_args(port: int, workers: int) -> list[str]:
    """The address and worker-count options uvicorn, Granian and ``data-bridge serve``
    spell the same way."""
    return ["--host", HOST, "--port", str(port), "--workers", str(workers)]


def _uvicorn(target: str, workers: int = 1) -> Callable[[int], list[str]]:
    return lambda port: [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        *_listen_args(port, workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def _granian(interface: str, target: str, workers: int = 1) -> Callable[[int], list[str]]:
    return lambda port: [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        interface,
        *_listen_args(port, workers),
        "--http",
        "1",
        "--log-level",
        "warning",
        target,
    ]


SERVERS = [
    Server(
        "data-bridge",
        "data-bridge",
        lambda port: [sys.executable, "-m", f"{APPS}.data_bridge_app"],
        note="`serve(app)`, one process; `/native` is `app.constant`",
        tls_args=_env_tls,
    ),
    Server(
        BASELINE,
        "FastAPI + uvicorn",
        _uvicorn(f"{APPS}.fastapi_app:app"),
        note="`--loop uvloop --http httptools --workers 1`",
        tls_args=_uvicorn_tls,
    ),
    Server(
        "asgi-uvicorn",
        "raw ASGI + uvicorn",
        _uvicorn(f"{APPS}.asgi_app:app"),
        unsupported=frozenset({"sync"}) | FASTAPI_ONLY,
        note="no framework; `/native` is the same code as `/json`",
        tls_args=_uvicorn_tls,
    ),
    Server(
        "granian-rsgi",
        "raw RSGI + Granian",
        _granian("rsgi", f"{APPS}.rsgi_app:app"),
        unsupported=frozenset({"sync"}) | FASTAPI_ONLY,
        note="`--interface rsgi --workers 1`, default runtime threads",
        tls_args=_granian_tls,
    ),
    Server(
        "fastapi-granian",
        "FastAPI + Granian",
        _granian("asgi", f"{APPS}.fastapi_app:app"),
        note="`--interface asgi --workers 1`, default runtime threads",
        tls_args=_granian_tls,
    ),
    Server(
        "robyn",
        "Robyn",
        lambda port: [
            sys.executable,
            "-m",
            f"{APPS}.robyn_app",
            "--processes",
            "1",
            "--workers",
            "1",
            "--disable-openapi",
            "--log-level",
            "WARNING",
        ],
        unsupported=FASTAPI_ONLY,
        note="`--processes 1 --workers 1`; `/native` is a `const=True` route",
    ),
]


@dataclass(frozen=True)
class Settings:
    seconds: int
    warmup: int
    retries: int
    repeat: int
    # Server and wrk (two threads) share both cores instead of one core each: for
    # servers with several worker processes.
    spread: bool = False
    # (certfile, keyfile) when the servers speak HTTPS.
    tls: tuple[str, str] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def server_cpus(self) -> int | str:
        return "0,1" if self.spread else 0

    @property
    def client_cpus(self) -> int | str:
        return "0,1" if self.spread else 1


@dataclass
class Result:
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    # CPU cores the server used, and that other processes on the machine used, on average
    # during the measured run.
    server_cores: float | None = None
    other_cores: float | None = None
    # Requests/s of every repeat; the other numbers are those of the median repeat.
    rps_runs: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# Every server process still running, so that nothing outlives the run.
_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def _kill_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop(proc: subprocess.Popen[bytes]) -> str | None:
    """Stops a server (SIGINT, then SIGTERM, then SIGKILL to its process group); returns
    a problem description when it did not stop on SIGINT."""
    problem = None
    for sig, grace in ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        _kill_group(proc, sig)
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            problem = (
                "did not stop on SIGINT within 5 s"
                if sig == signal.SIGINT
                else "did not stop on SIGINT nor SIGTERM; killed"
            )
    # Children (Granian's worker process) may outlive the leader.
    _kill_group(proc, signal.SIGKILL)
    _LIVE.pop(proc.pid, None)
    return problem


def stop_all() -> None:
    for proc in list(_LIVE.values()):
        stop(proc)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def request(
    port: int, scenario: Scenario, timeout: float = 5.0, tls: bool = False
) -> tuple[int, str, bytes]:
    conn = (
        # The run's own throw-away certificate: nothing to verify it against.
        http.client.HTTPSConnection(
            HOST, port, timeout=timeout, context=ssl._create_unverified_context()
        )
        if tls
        else http.client.HTTPConnection(HOST, port, timeout=timeout)
    )
    try:
        headers = {"content-type": "application/json"} if scenario.body is not None else {}
        conn.request(scenario.method, scenario.path, body=scenario.body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("content-type") or "", resp.read()
    finally:
        conn.close()


def wait_ready(
    proc: subprocess.Popen[bytes], port: int, scenario: Scenario, tls: bool = False
) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            request(port, scenario, timeout=1.0, tls=tls)
            return True
        except OSError:
            time.sleep(0.1)
    return False


def check(port: int, scenario: Scenario, tls: bool = False) -> str | None:
    """One real request; a description of what is wrong, or None."""
    try:
        status, content_type, body = request(port, scenario, tls=tls)
    except OSError as exc:
        return f"check request failed: {exc!r}"
    if status != 200:
        return f"check: status {status}, body {body[:200]!r}"
    if not content_type.startswith(scenario.content_type):
        return f"check: content-type {content_type!r}, expected {scenario.content_type!r}"
    if isinstance(scenario.expect, str):
        ok = body == scenario.expect.encode()
    else:
        try:
            ok = json.loads(body) == scenario.expect
        except ValueError:
            ok = False
    return None if ok else f"check: unexpected body {body[:200]!r}"


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unparsable wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(out: str) -> Result:
    result = Result()
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        result.rps = float(m.group(1))
    if m := re.search(r"^\s+50%\s+(\S+)", out, re.M):
        result.p50_ms = _ms(m.group(1))
    if m := re.search(r"^\s+99%\s+(\S+)", out, re.M):
        result.p99_ms = _ms(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        result.problems.append(f"{m.group(1)} non-2xx responses under load")
    if m := re.search(r"Socket errors: (.*)", out):
        result.problems.append(f"socket errors under load: {m.group(1).strip()}")
    if result.rps is None or result.p50_ms is None or result.p99_ms is None:
        result.problems.append(f"could not parse wrk output: {out[-300:]!r}")
    return result


def wrk_script(scenario: Scenario, tmp: Path) -> list[str]:
    if scenario.body is None and scenario.method == "GET":
        return []
    script = tmp / f"{scenario.key}.lua"
    body = (scenario.body or b"").decode()
    script.write_text(
        f"wrk.method = {json.dumps(scenario.method)}\n"
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return ["-s", str(script)]


def wrk(port: int, scenario: Scenario, conns: int, seconds: int, tmp: Path, cfg: Settings) -> str:
    argv = [
        "wrk",
        f"-t{2 if cfg.spread else 1}",
        f"-c{conns}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        *wrk_script(scenario, tmp),
        f"{cfg.scheme}://{HOST}:{port}{scenario.path}",
    ]
    proc = subprocess.run(
        pinned(cfg.client_cpus, argv),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return proc.stdout


_LOG_PROBLEM = re.compile(r"Traceback|panicked|Error|ERROR|Exception|Segmentation", re.M)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds spent busy on all cores since boot."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLOCK_TICKS


def group_cpu(pgid: int) -> float:
    """CPU seconds used so far by the live processes of a process group."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICKS


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_quiet(limit: float) -> None:
    """Waits (up to ``limit`` s) until other processes leave the machine idle."""
    deadline = time.monotonic() + limit
    while True:
        before, start = machine_busy(), time.monotonic()
        time.sleep(0.5)
        if (machine_busy() - before) / (time.monotonic() - start) < QUIET or (
            time.monotonic() > deadline
        ):
            return


def measure(server: Server, scenario: Scenario, conns: int, cfg: Settings, tmp: Path) -> Result:
    """One attempt: a fresh server, a check, a warm-up and a measured wrk run."""
    port = free_port()
    log_path = tmp / f"{server.key}-{scenario.key}-{conns}.log"
    argv, env = server.argv(port), {**os.environ, "BENCH_PORT": str(port)}
    if cfg.tls is not None and server.tls_args is not None:
        argv = [*argv, *server.tls_args(*cfg.tls)]
        env |= {"BENCH_SSL_CERTFILE": cfg.tls[0], "BENCH_SSL_KEYFILE": cfg.tls[1]}
    tls = cfg.tls is not None
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            pinned(cfg.server_cpus, argv),
            cwd=ROOT,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _LIVE[proc.pid] = proc
    result = Result()
    try:
        if not wait_ready(proc, port, scenario, tls):
            code = proc.poll()
            state = f"exited with {code}" if code is not None else "never answered"
            result.problems.append(f"server did not start ({state})")
            return result
        if problem := check(port, scenario, tls):
            result.problems.append(problem)
            return result
        if cfg.warmup > 0:
            warm = parse_wrk(wrk(port, scenario, conns, cfg.warmup, tmp, cfg))
            result.problems += [f"warm-up: {p}" for p in warm.problems]
        busy, server_cpu, client_cpu = machine_busy(), group_cpu(proc.pid), children_cpu()
        start = time.monotonic()
        out = wrk(port, scenario, conns, cfg.seconds, tmp, cfg)
        wall = time.monotonic() - start
        server_cpu = group_cpu(proc.pid) - server_cpu
        others = machine_busy() - busy - server_cpu - (children_cpu() - client_cpu)
        result = Result(problems=result.problems)
        parsed = parse_wrk(out)
        result.rps, result.p50_ms, result.p99_ms = parsed.rps, parsed.p50_ms, parsed.p99_ms
        result.problems += parsed.problems
        result.server_cores = server_cpu / wall
        result.other_cores = max(0.0, others / wall)
        if proc.poll() is not None:
            result.problems.append(f"server exited with {proc.returncode} during the run")
        elif problem := check(port, scenario, tls):
            result.problems.append(f"after the run: {problem}")
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        result.problems.append(str(exc))
    finally:
        if problem := stop(proc):
            result.problems.append(problem)
        text = log_path.read_text(errors="replace")
        if _LOG_PROBLEM.search(text):
            lines = [ln for ln in text.splitlines() if ln.strip()]
            result.problems.append("server log: " + " | ".join(lines[-6:])[-600:])
    return result


def measure_quietly(
    server: Server, scenario: Scenario, conns: int, cfg: Settings, tmp: Path
) -> Result:
    """Measures, again up to ``cfg.retries`` times while other processes disturbed the
    run; keeps the least disturbed attempt."""
    best: Result | None = None
    best_noise = float("inf")
    problems: list[str] = []
    for _ in range(cfg.retries + 1):
        wait_quiet(QUIET_WAIT)
        result = measure(server, scenario, conns, cfg, tmp)
        problems += result.problems
        if result.rps is None or result.other_cores is None:
            best = result
            break
        if result.other_cores < best_noise:
            best, best_noise = result, result.other_cores
        if best_noise < QUIET:
            break
    best = best or result
    best.problems = list(dict.fromkeys(problems))
    return best


def measure_repeated(
    server: Server, scenario: Scenario, conns: int, cfg: Settings, tmp: Path
) -> Result:
    """``cfg.repeat`` measurements, each on a fresh server; the median one by requests/s,
    with the problems of all."""
    runs = [measure_quietly(server, scenario, conns, cfg, tmp) for _ in range(cfg.repeat)]
    measured = sorted((r for r in runs if r.rps is not None), key=lambda r: r.rps or 0.0)
    result = measured[(len(measured) - 1) // 2] if measured else runs[0]
    result.rps_runs = [r.rps for r in runs if r.rps is not None]
    problems = [p for r in runs for p in r.problems]
    result.problems = list(dict.fromkeys(problems))
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks http")
    parser.add_argument("--seconds", type=int, default=None, help="each wrk run (s; default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up wrk run before each (s)")
    parser.add_argument(
        "--connections",
        default=None,
        help=f"comma-separated (default {','.join(map(str, CONNECTIONS))})",
    )
    parser.add_argument(
        "--servers", default=None, help=f"comma-separated, from {','.join(s.key for s in SERVERS)}"
    )
    parser.add_argument(
        "--scenarios",
        default=None,
        help=f"comma-separated, from {','.join(s.key for s in SCENARIOS)}",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="measurements per server, scenario and connection count, each on a fresh "
        "server; the median is kept (default 3, 1 with --quick)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help=f"runs redone while other processes kept over {QUIET} cores busy (default 2)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep what an interrupted run with the same settings measured (saved in "
        f"{tempfile.gettempdir()}) and measure only the rest",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a certificate made for the run (servers that terminate TLS "
        "themselves); results in http-tls.md",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: 1 s runs, 64 connections, scenarios {','.join(QUICK_SCENARIOS)}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where to write http.md and the charts (default {RESULTS}, for full runs only: "
        "--quick or a narrowed --servers/--scenarios/--connections writes nothing unless "
        "--out is given)",
    )
    args = parser.parse_args(argv)
    tls_dir = tempfile.TemporaryDirectory(prefix="data-bridge-tls-")
    atexit.register(tls_dir.cleanup)
    cfg = Settings(
        tls=make_certificate(Path(tls_dir.name)) if args.tls else None,
        seconds=args.seconds or (1 if args.quick else 5),
        warmup=args.warmup,
        retries=args.retries,
        repeat=args.repeat or (1 if args.quick else 3),
    )
    conns_list = [int(c) for c in (args.connections or "").split(",") if c] or (
        [64] if args.quick else CONNECTIONS
    )
    by_key = {s.key: s for s in SERVERS}
    server_keys = [k for k in (args.servers or "").split(",") if k] or list(by_key)
    if unknown := set(server_keys) - set(by_key):
        parser.error(f"unknown servers {sorted(unknown)}")
    if BASELINE not in server_keys:
        server_keys.insert(0, BASELINE)  # every number is reported as a ratio to it
    servers = [
        s for s in SERVERS if s.key in server_keys and (not args.tls or s.tls_args is not None)
    ]
    scenario_keys = [k for k in (args.scenarios or "").split(",") if k] or (
        QUICK_SCENARIOS if args.quick else [s.key for s in SCENARIOS]
    )
    if unknown := set(scenario_keys) - {s.key for s in SCENARIOS}:
        parser.error(f"unknown scenarios {sorted(unknown)}")
    scenarios = [s for s in SCENARIOS if s.key in scenario_keys]
    full = not (args.quick or args.servers or args.scenarios or args.connections)
    out: Path | None = args.out or (RESULTS if full else None)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, _terminated)
    # Caught signals are reset to their default in the servers, ignored ones stay ignored:
    # a run started with `nohup ... &` would hand its ignored SIGINT to the servers, and
    # Robyn (one process) then never stops on SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    results = load_progress(cfg) if args.resume else {}
    run = Run(
        servers=servers,
        scenarios=scenarios,
        connections=conns_list,
        settings=cfg,
        results=results,
        baseline=BASELINE,
        quiet=QUIET,
    )
    with tempfile.TemporaryDirectory(prefix="data-bridge-http-") as tmp_dir:
        tmp = Path(tmp_dir)
        try:
            for conns in conns_list:
                for scenario in scenarios:
                    print(f"{scenario.label}, {conns} connections")
                    for server in servers:
                        key = (server.key, scenario.key, conns)
                        if key in results:
                            result = results[key]
                        elif scenario.key in server.unsupported:
                            result = Result(problems=["scenario not supported"])
                        else:
                            result = measure_repeated(server, scenario, conns, cfg, tmp)
                        results[key] = result
                        save_progress(cfg, results)
                        print(f"  {server.key:16} {_summary(result)}", flush=True)
        except (KeyboardInterrupt, SystemExit):
            stop_all()
            print("\ninterrupted; the partial results follow, no file is written", flush=True)
            write_report(run, None)
            raise
        finally:
            stop_all()
    write_report(run, out)
    progress_file(cfg).unlink(missing_ok=True)


def make_certificate(folder: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 from a throw-away CA: (certfile, keyfile)."""
    import trustme

    cert = trustme.CA().issue_cert(HOST)
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return str(certfile), str(keyfile)


def progress_file(cfg: Settings) -> Path:
    """Where the results measured so far are kept, for ``--resume``."""
    tls = "-tls" if cfg.tls else ""
    name = f"data-bridge-http{tls}-{cfg.seconds}s-{cfg.warmup}w-{cfg.repeat}x-{cfg.retries}r.json"
    return Path(tempfile.gettempdir()) / name


def save_progress(cfg: Settings, results: dict[tuple[str, str, int], Result]) -> None:
    path = progress_file(cfg)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([[*key, asdict(r)] for key, r in results.items()]))
    tmp.replace(path)


def load_progress(cfg: Settings) -> dict[tuple[str, str, int], Result]:
    path = progress_file(cfg)
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        print(f"nothing to resume in {path}")
        return {}
    results = {(srv, sc, int(c)): Result(**r) for srv, sc, c, r in saved}
    print(f"resuming: {len(results)} results kept from {path}")
    return results


def _terminated(signum: int, frame: object) -> None:
    print(f"\nreceived {signal.Signals(signum).name}", file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)


def _summary(result: Result) -> str:
    if result.rps is None:
        return "n/a  " + "; ".join(result.problems)
    text = (
        f"{result.rps:>10,.0f} req/s  p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms"
        f"  server {result.server_cores or 0:.2f} cores, others {result.other_cores or 0:.2f}"
    )
    return text + ("  !! " + "; ".join(result.problems) if result.problems else "")
