"""Measures what each optional layer costs per request and writes
``benchmarks/results/layers.md``.

Every configuration is a fresh server pinned to CPU 0, loaded by wrk (one thread, 64
connections) pinned to CPU 1, exactly as ``python -m benchmarks http`` does. Besides
requests/s, the server's CPU time per request is read from ``/proc`` over the measured
run (the task-clock ``perf stat`` reports), all its threads included: a layer that
moves work to a background thread still pays for it here. A layer's cost is its
configuration's CPU time per request minus that of the configuration it extends.

The reference line is a bare Hyper server (``hyper_hello/``) on the same runtime shape.
Repeats are interleaved (every configuration once, then again) and the median is kept,
so a slow minute of a shared machine does not land on one configuration only.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.http.run import (
    HELLO,
    RESULTS,
    Result,
    Scenario,
    Server,
    Settings,
    measure_quietly,
    stop_all,
)
from benchmarks.machine import describe

HERE = Path(__file__).resolve().parent
HYPER = HERE / "hyper_hello"
CONNECTIONS = 64
NATIVE = Scenario("native", "native route", "/native", HELLO)
JSON = Scenario("json", "async def", "/json", HELLO)
APP = "benchmarks.layers.app"
NATIVE_LAYERS = ["access_log", "metrics", "request_id", "cors", "gzip", "trusted_host"]


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    scenario: Scenario
    layers: tuple[str, ...] = ()
    # The configuration this one adds a layer to: its cost is the difference.
    base: str | None = None
    server: Server | None = None


def _data_bridge(layers: tuple[str, ...]) -> Server:
    def argv(port: int) -> list[str]:
        # The layers travel in the environment; `env` keeps argv a plain command line.
        return ["env", f"BENCH_LAYERS={','.join(layers)}", sys.executable, "-m", APP]

    return Server("data-bridge", "data-bridge", argv)


def _hyper(binary: Path, *flags: str) -> Server:
    return Server("hyper", "bare Hyper", lambda port: [str(binary), str(port), *flags])


def configs(binary: Path) -> list[Config]:
    native = [
        Config("hyper", "bare Hyper server (reference)", NATIVE, server=_hyper(binary)),
        Config(
            "hyper-example",
            "bare Hyper as in its hello example (multi-thread runtime, HTTP/1 builder)",
            NATIVE,
            server=_hyper(binary, "--example"),
        ),
        Config("native", "native route, every optional layer off", NATIVE, base="hyper"),
    ]
    native += [
        Config(f"native+{layer}", f"native route + {layer}", NATIVE, (layer,), base="native")
        for layer in NATIVE_LAYERS
    ]
    native.append(
        Config(
            "native+all",
            "native route + all of the above",
            NATIVE,
            tuple(NATIVE_LAYERS),
            base="native",
        )
    )
    python = [
        Config("json", "async def JSON hello, every optional layer off", JSON, base="native"),
        Config(
            "json+access_log",
            "async def JSON hello + access_log (as `serve()` ships)",
            JSON,
            ("access_log",),
            base="json",
        ),
        Config(
            "json+python_middleware",
            "async def JSON hello + one pass-through `@app.middleware`",
            JSON,
            ("python_middleware",),
            base="json",
        ),
    ]
    return native + python


def build_hyper() -> Path:
    """Builds the reference server (release) and returns its binary."""
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--manifest-path", str(HYPER / "Cargo.toml")],
        check=True,
    )
    return HYPER / "target" / "release" / "hyper-hello"


def cpu_us(result: Result) -> float | None:
    """The server's CPU time per request (µs) in one run."""
    if not result.rps or result.server_cores is None:
        return None
    return result.server_cores / result.rps * 1e6


@dataclass
class Measured:
    config: Config
    runs: list[Result]

    def _median(self, value: str) -> float | None:
        values = [getattr(r, value) for r in self.runs if getattr(r, value) is not None]
        return statistics.median(values) if values else None

    @property
    def rps(self) -> float | None:
        return self._median("rps")

    @property
    def cpu_us(self) -> float | None:
        """The server's CPU time per request (µs), median of the runs."""
        per_request = [us for us in map(cpu_us, self.runs) if us is not None]
        return statistics.median(per_request) if per_request else None

    @property
    def problems(self) -> list[str]:
        return list(dict.fromkeys(p for r in self.runs for p in r.problems))


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def report(measured: dict[str, Measured], cfg: Settings) -> str:
    hyper = measured["hyper"].rps if "hyper" in measured else None
    lines = [
        "# What each layer costs per request",
        "",
        describe(
            f". `python -m benchmarks layers`: one server process pinned to CPU 0, wrk (1 thread, "
            f"{CONNECTIONS} connections) on CPU 1, {cfg.seconds} s runs after {cfg.warmup} s of "
            f"warm-up, median of {cfg.repeat} interleaved runs"
        ),
        "",
        "CPU µs/request is the server process's CPU time (all threads, from `/proc`, the "
        "task-clock `perf stat` reports) over the measured run divided by the requests "
        "served; a layer's cost is that minus the CPU time of the line it extends.",
        "",
        "| configuration | req/s | of bare Hyper | CPU µs/request | cost of the layer (µs/request) |",
        "|---|---|---|---|---|",
    ]
    for m in measured.values():
        base = measured.get(m.config.base) if m.config.base else None
        cost = (
            m.cpu_us - base.cpu_us
            if base is not None and m.cpu_us is not None and base.cpu_us is not None
            else None
        )
        share = f"{m.rps / hyper:.0%}" if m.rps and hyper else "n/a"
        lines.append(
            f"| {m.config.label} | {_num(m.rps, ',.0f')} | {share} | {_num(m.cpu_us, '.2f')} | "
            f"{'' if base is None else _num(cost, '+.2f') + f' (vs {base.config.key})'} |"
        )
    problems = [(k, p) for k, m in measured.items() for p in m.problems]
    if problems:
        lines += ["", "Problems:", ""] + [f"- {k}: {p}" for k, p in problems]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks layers")
    parser.add_argument("--seconds", type=int, default=5, help="each wrk run (s; default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up before each run (s)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs (default 3)")
    parser.add_argument("--retries", type=int, default=2, help="runs redone on a busy machine")
    parser.add_argument(
        "--only", default=None, help="comma-separated configuration keys (writes nothing)"
    )
    parser.add_argument("--out", type=Path, default=None, help=f"default {RESULTS}/layers.md")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    cfg = Settings(
        seconds=args.seconds, warmup=args.warmup, retries=args.retries, repeat=args.repeat
    )
    chosen = configs(build_hyper())
    if args.only:
        keys = set(args.only.split(","))
        chosen = [c for c in chosen if c.key in keys]
    atexit.register(stop_all)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    measured = {c.key: Measured(c, []) for c in chosen}
    with tempfile.TemporaryDirectory(prefix="data-bridge-layers-") as tmp_dir:
        for round_ in range(cfg.repeat):
            for c in chosen:
                server = c.server or _data_bridge(c.layers)
                result = measure_quietly(server, c.scenario, CONNECTIONS, cfg, Path(tmp_dir))
                measured[c.key].runs.append(result)
                print(
                    f"[{round_ + 1}/{cfg.repeat}] {c.key:24} {_num(result.rps, ',.0f')} req/s "
                    f"{_num(cpu_us(result), '.2f')} µs/req"
                    f"{'  ' + '; '.join(result.problems) if result.problems else ''}",
                    flush=True,
                )
    text = report(measured, cfg)
    print(text)
    out = args.out or (None if args.only else RESULTS / "layers.md")
    if out is not None:
        out.write_text(text)
        print(f"wrote {out}")
