"""``python -m benchmarks http-scaling``: each server with 1 and then 2 worker processes
on the JSON hello and the pydantic echo, and how much the second worker adds.

Server and wrk (two threads) share both cores here, so this measures what a second
worker buys on a machine whose cores also serve the load generator, not a clean 2x.
Results go to ``benchmarks/results/http-scaling.md``.
"""

from __future__ import annotations

import argparse
import atexit
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.http.report import machine, ratio, versions
from benchmarks.http.run import (
    APPS,
    RESULTS,
    SCENARIOS,
    Result,
    Server,
    Settings,
    _granian,
    _listen_args,
    _uvicorn,
    measure_repeated,
    stop_all,
)

WORKERS = (1, 2)
SCENARIO_KEYS = ("json", "body")
CONNECTIONS = 128


def _data_bridge(workers: int) -> Callable[[int], list[str]]:
    return lambda port: [
        sys.executable,
        "-m",
        "data_bridge",
        "serve",
        f"{APPS}.data_bridge_app:app",
        *_listen_args(port, workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def servers(workers: int) -> list[Server]:
    """The servers compared, each with ``workers`` worker processes."""
    return [
        Server("data-bridge", "data-bridge", _data_bridge(workers), note="`data-bridge serve`"),
        Server(
            "fastapi-uvicorn",
            "FastAPI + uvicorn",
            _uvicorn(f"{APPS}.fastapi_app:app", workers),
            note="uvloop + httptools",
        ),
        Server(
            "granian-rsgi",
            "raw RSGI + Granian",
            _granian("rsgi", f"{APPS}.rsgi_app:app", workers),
            note="no framework",
        ),
    ]


def report(results: dict[tuple[str, str, int], Result], cfg: Settings) -> str:
    by_key = {s.key: s.label for s in SCENARIOS}
    lines = [
        "# HTTP scaling: 1 and 2 worker processes",
        "",
        "Machine: "
        + machine().replace(
            "each server pinned to CPU 0, wrk (one thread) to CPU 1",
            "server and wrk (two threads) share both cores",
        )
        + ".",
        "",
        f"Versions: {versions()}.",
        "",
        f"Each cell: `wrk -t2 -c{CONNECTIONS}` for {cfg.seconds} s after a {cfg.warmup} s "
        f"warm-up on a fresh server, median of {cfg.repeat}. With two cores shared by the "
        "workers and wrk, a second worker cannot double throughput; the scaling column "
        "shows what it adds on this machine. `python -m benchmarks http-scaling` "
        "regenerates this file.",
        "",
        "| scenario | server | 1 worker (req/s) | 2 workers (req/s) | scaling | "
        "2 workers vs FastAPI + uvicorn |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIO_KEYS:
        base = results.get(("fastapi-uvicorn", scenario, 2))
        for server in servers(1):
            one = results.get((server.key, scenario, 1))
            two = results.get((server.key, scenario, 2))
            cells = [f"{r.rps:,.0f}" if r and r.rps else "n/a" for r in (one, two)]
            lines.append(
                f"| {by_key[scenario]} | {server.label} | {cells[0]} | {cells[1]} | "
                f"{ratio(two.rps if two else None, one.rps if one else None, True)} | "
                f"{ratio(two.rps if two else None, base.rps if base else None, True)} |"
            )
    problems = [
        f"- {server} ({workers} workers, {scenario}): {p}"
        for (server, scenario, workers), r in results.items()
        for p in r.problems
    ]
    lines += ["", "## Problems seen", "", *(problems or ["None."])]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks http-scaling")
    parser.add_argument("--seconds", type=int, default=5, help="each wrk run (s)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up wrk run before each (s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell, median kept")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the report")
    args = parser.parse_args(argv)
    cfg = Settings(
        seconds=args.seconds, warmup=args.warmup, retries=2, repeat=args.repeat, spread=True
    )
    scenarios = {s.key: s for s in SCENARIOS}
    results: dict[tuple[str, str, int], Result] = {}
    atexit.register(stop_all)
    with tempfile.TemporaryDirectory(prefix="data-bridge-scaling-") as tmp_dir:
        tmp = Path(tmp_dir)
        for workers in WORKERS:
            for key in SCENARIO_KEYS:
                for server in servers(workers):
                    result = measure_repeated(server, scenarios[key], CONNECTIONS, cfg, tmp)
                    results[(server.key, key, workers)] = result
                    rps = f"{result.rps:,.0f} req/s" if result.rps else "n/a"
                    print(f"{server.key:16} {key:5} {workers} worker(s): {rps}", flush=True)
    text = report(results, cfg)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "http-scaling.md").write_text(text)
    print(f"written to {args.out / 'http-scaling.md'}")
