"""Runs the soak: starts ``benchmarks.soak.app`` in its own process (access log on, as
shipped), warms it up, samples it, sends a bounded mixed load from client threads
(every route, errors, timeouts, and clients that disconnect mid-request and
mid-response), lets it settle, samples it again, and checks the growth against stated
bounds. ``python -m benchmarks soak [--seconds N] [--clients N] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.machine import describe

HOST = "127.0.0.1"
RESULTS = Path(__file__).resolve().parent.parent / "results"
ROOT = RESULTS.parent.parent
ITEM = json.dumps({"name": "widget", "price": 9.99, "tags": ["a"]}).encode()
#: Tokio's idle blocking threads exit after 10 s; the settled sample waits them out.
SETTLE = 12.0


@dataclass(frozen=True)
class Sample:
    rss_mib: float
    fds: int
    threads: int
    objects: int


@dataclass(frozen=True)
class Bounds:
    """How much a settled server may have grown over its warmed-up self."""

    rss_mib: float = 24.0
    fds: int = 4
    threads: int = 4
    objects_ratio: float = 0.02


@dataclass
class Report:
    seconds: float
    clients: int
    before: Sample
    after: Sample
    settled: Sample
    outcomes: Counter[str] = field(default_factory=Counter)
    bounds: Bounds = field(default_factory=Bounds)

    @property
    def requests(self) -> int:
        return sum(self.outcomes.values())

    def violations(self) -> list[str]:
        b, s, lim = self.before, self.settled, self.bounds
        found = []
        if s.rss_mib - b.rss_mib > lim.rss_mib:
            found.append(f"RSS grew {s.rss_mib - b.rss_mib:.1f} MiB (bound {lim.rss_mib})")
        if s.fds - b.fds > lim.fds:
            found.append(f"open descriptors grew by {s.fds - b.fds} (bound {lim.fds})")
        if s.threads - b.threads > lim.threads:
            found.append(f"threads grew by {s.threads - b.threads} (bound {lim.threads})")
        if s.objects > b.objects * (1 + lim.objects_ratio):
            found.append(
                f"Python objects grew {s.objects / b.objects - 1:.1%} (bound {lim.objects_ratio:.0%})"
            )
        unexpected = [k for k in self.outcomes if k.startswith("unexpected")]
        found += [f"{self.outcomes[k]} x {k}" for k in unexpected]
        return found


def _proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def sample(pid: int, port: int) -> Sample:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", "/_soak/stats")
        stats = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return Sample(
        rss_mib=_proc_status(pid, "VmRSS") / 1024,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=_proc_status(pid, "Threads"),
        objects=int(stats["objects"]),
    )


# (method, path, body, expected status) for the requests a keep-alive client sends.
ROUTES: list[tuple[str, str, bytes | None, int]] = [
    ("GET", "/json", None, 200),
    ("GET", "/sync", None, 200),
    ("GET", "/users/7", None, 200),
    ("GET", "/users/seven", None, 422),
    ("GET", "/missing", None, 404),
    ("POST", "/items", ITEM, 200),
    ("POST", "/items", b"{not json", 422),
    ("GET", "/stream", None, 200),
    ("GET", "/file", None, 200),
    ("GET", "/raise", None, 500),
    ("GET", "/http-error", None, 409),
    ("GET", "/slow", None, 504),
    ("POST", "/upload", b"u" * 100_000, 200),
]


def _abandon_request(port: int) -> None:
    """Declares a large body, sends a little of it, and goes away."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nhost: soak\r\ncontent-length: 1000000\r\n\r\n" + b"u" * 100
        )


def _abandon_response(port: int) -> None:
    """Asks for a streamed response, reads a little of it, and goes away."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nhost: soak\r\n\r\n")
        sock.recv(100)


def client(port: int, deadline: float, outcomes: Counter[str], lock: threading.Lock) -> None:
    seen: Counter[str] = Counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    i = 0
    while time.monotonic() < deadline:
        i += 1
        if i % 50 == 0:
            _abandon_request(port)
            seen["disconnect mid-request"] += 1
            continue
        if i % 50 == 25:
            _abandon_response(port)
            seen["disconnect mid-response"] += 1
            continue
        method, path, body, expected = ROUTES[i % len(ROUTES)]
        headers = {"content-type": "application/json"} if body is not None else {}
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            seen[f"unexpected {type(exc).__name__} on {method} {path}"] += 1
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=10)
            continue
        if response.status == expected:
            seen[f"{response.status} {method} {path}"] += 1
        else:
            seen[f"unexpected {response.status} on {method} {path}"] += 1
        if response.getheader("connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.close()
    with lock:
        outcomes.update(seen)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _drain(pipe: object) -> None:
    # The access log goes to a pipe that must be read, or the server's writes stall.
    for _ in iter(pipe.readline, b""):  # type: ignore[attr-defined]
        pass


def soak(seconds: float, clients: int, warmup: float, bounds: Bounds | None = None) -> Report:
    """Runs one soak and returns its report (the server is stopped either way)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.soak.app"],
        cwd=ROOT,
        env={**os.environ, "BENCH_PORT": str(port)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    drainer = threading.Thread(target=_drain, args=(proc.stdout,), daemon=True)
    drainer.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sample(proc.pid, port)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the soak server did not start") from None
                time.sleep(0.1)
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def load(duration: float, into: Counter[str]) -> None:
            end = time.monotonic() + duration
            threads = [
                threading.Thread(target=client, args=(port, end, into, lock))
                for _ in range(clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(duration + 60)

        load(warmup, Counter())
        time.sleep(SETTLE)
        before = sample(proc.pid, port)
        start = time.monotonic()
        load(seconds, outcomes)
        elapsed = time.monotonic() - start
        after = sample(proc.pid, port)
        time.sleep(SETTLE)
        settled = sample(proc.pid, port)
        if proc.poll() is not None:
            outcomes[f"unexpected server exit {proc.returncode}"] += 1
        return Report(elapsed, clients, before, after, settled, outcomes, bounds or Bounds())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        drainer.join(10)
        if proc.stdout is not None:
            proc.stdout.close()


def markdown(report: Report) -> str:
    rows = [
        ("RSS (MiB)", "rss_mib", "{:.1f}"),
        ("open descriptors", "fds", "{}"),
        ("threads", "threads", "{}"),
        ("Python objects (after gc)", "objects", "{}"),
    ]
    lines = [
        "# Soak",
        "",
        f"Machine: {describe('')}.",
        "",
        f"One `data-bridge` process (`serve()` as shipped, access log on) under "
        f"{report.clients} keep-alive client threads for {report.seconds:.0f} s after a "
        f"warm-up: {report.requests:,} requests ({report.requests / report.seconds:,.0f}/s) "
        "over every kind of route (JSON, `def`, path parameters, pydantic bodies, invalid "
        "JSON, 404, streaming, files, a handler that raises, `HTTPException`, a route "
        "timeout, a streamed upload), plus clients that disconnect mid-request and "
        "mid-response. Sampled after the warm-up, right after the load, and "
        f"{SETTLE:.0f} s later. `python -m benchmarks soak --seconds "
        f"{report.seconds:.0f} --clients {report.clients}` regenerates this file.",
        "",
        "| | after warm-up | after the load | settled | bound on growth |",
        "|---|---:|---:|---:|---:|",
    ]
    b = report.bounds
    limits = {
        "rss_mib": f"{b.rss_mib} MiB",
        "fds": str(b.fds),
        "threads": str(b.threads),
        "objects": f"{b.objects_ratio:.0%}",
    }
    for label, attr, fmt in rows:
        values = [
            fmt.format(getattr(s, attr)) for s in (report.before, report.after, report.settled)
        ]
        lines.append(f"| {label} | {' | '.join(values)} | {limits[attr]} |")
    violations = report.violations()
    lines += ["", "Within bounds." if not violations else "Out of bounds: " + "; ".join(violations)]
    lines += ["", "| outcome | count |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in sorted(report.outcomes.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks soak")
    parser.add_argument("--seconds", type=float, default=180.0, help="load duration (180)")
    parser.add_argument("--clients", type=int, default=16, help="client threads (16)")
    parser.add_argument("--warmup", type=float, default=20.0, help="warm-up seconds (20)")
    parser.add_argument("--out", type=Path, default=None, help=f"write soak.md here ({RESULTS})")
    args = parser.parse_args(argv)
    report = soak(args.seconds, args.clients, args.warmup)
    text = markdown(report)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "soak.md").write_text(text)
    if report.violations():
        raise SystemExit(1)
