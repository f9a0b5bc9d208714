"""Markdown tables and bar charts for the HTTP benchmark results."""

from __future__ import annotations

import importlib.metadata
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.machine import describe

if TYPE_CHECKING:
    from benchmarks.http.run import Result, Scenario, Server, Settings

PACKAGES = [
    "data-bridge",
    "pydantic",
    "fastapi",
    "uvicorn",
    "uvloop",
    "httptools",
    "granian",
    "robyn",
]


@dataclass
class Run:
    servers: list[Server]
    scenarios: list[Scenario]
    connections: list[int]
    settings: Settings
    results: dict[tuple[str, str, int], Result]
    baseline: str
    # Other processes' CPU use (cores) above which a run is reported as disturbed.
    quiet: float


def machine() -> str:
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout or wrk.stderr).split(" [")[0].strip() or "wrk"
    return describe(f", {wrk_version}; each server pinned to CPU 0, wrk (one thread) to CPU 1")


def versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def ratio(value: float | None, base: float | None, higher_is_better: bool) -> str:
    if value is None or base is None or value == 0 or base == 0:
        return "n/a"
    return f"{(value / base if higher_is_better else base / value):.2f}x"


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _spread(r: Result) -> str:
    if r.rps is None or len(r.rps_runs) < 2:
        return "n/a"
    return f"±{(max(r.rps_runs) - min(r.rps_runs)) / 2 / r.rps:.0%}"


def _cpu(r: Result) -> str:
    if r.server_cores is None or r.other_cores is None:
        return "n/a"
    return f"{r.server_cores:.2f} / {r.other_cores:.2f}"


def _metric(run: Run, server: str, scenario: str, conns: int, name: str) -> float | None:
    result = run.results.get((server, scenario, conns))
    return None if result is None else getattr(result, name)


def tables(run: Run, conns: int, chart: str | None) -> list[str]:
    base_label = next(s.label for s in run.servers if s.key == run.baseline)
    others = [s for s in run.servers if s.key != run.baseline]
    lines = [
        f"## {conns} connections",
        "",
        f"Requests/s relative to {base_label} (above 1.00x = more requests/s):",
        "",
        f"| scenario | {base_label} (req/s) | " + " | ".join(s.label for s in others) + " |",
        "|---|---:|" + "---:|" * len(others),
    ]
    for sc in run.scenarios:
        base = _metric(run, run.baseline, sc.key, conns, "rps")
        cells = [_num(base, ",.0f")]
        cells += [ratio(_metric(run, s.key, sc.key, conns, "rps"), base, True) for s in others]
        lines.append(f"| {sc.label} | " + " | ".join(cells) + " |")
    if chart:
        lines += ["", f"![requests/s at {conns} connections]({chart})"]
    lines += [
        "",
        f"All numbers, with ratios to {base_label} for the same scenario (above 1.00x = "
        "better: more requests/s, lower latency). Spread is half the range of requests/s "
        "over the repeats, relative to the median. The last column is the CPU cores the server "
        "used during the measured run (at most 1: it is pinned to one core) and those other "
        "processes on the machine used (wrk excluded):",
        "",
        "| scenario | server | req/s | ratio | spread | p50 (ms) | ratio | p99 (ms) | ratio "
        "| CPU: server / others |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sc in run.scenarios:
        for s in run.servers:
            r = run.results.get((s.key, sc.key, conns))
            if r is None:
                continue
            cells = [sc.label, s.label]
            for name, fmt, higher in (
                ("rps", ",.0f", True),
                ("p50_ms", ".2f", False),
                ("p99_ms", ".2f", False),
            ):
                value = getattr(r, name)
                base = _metric(run, run.baseline, sc.key, conns, name)
                cells += [_num(value, fmt), ratio(value, base, higher)]
                if name == "rps":
                    cells.append(_spread(r))
            cells.append(_cpu(r))
            lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def chart(run: Run, conns: int, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no charts")
        return False
    n = len(run.servers)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.6 * len(run.scenarios)), 5.0))
    for i, s in enumerate(run.servers):
        values = []
        for sc in run.scenarios:
            r = run.results.get((s.key, sc.key, conns))
            values.append(r.rps if r is not None and r.rps is not None else 0.0)
        xs = [x + (i - (n - 1) / 2) * width for x in range(len(run.scenarios))]
        ax.bar(xs, values, width, label=s.label)
    ax.set_xticks(range(len(run.scenarios)))
    ax.set_xticklabels([sc.label for sc in run.scenarios], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("requests/s (higher is better)")
    ax.set_title(f"HTTP requests/s, {conns} connections, one server core (missing bar = n/a)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def problems(run: Run) -> list[str]:
    labels = {s.key: s.label for s in run.servers}
    scenario_labels = {s.key: s.label for s in run.scenarios}
    # The same problem of one server is listed once, with the runs it happened in.
    seen: dict[tuple[str, str], list[str]] = {}
    for (server, scenario, conns), r in run.results.items():
        for problem in r.problems:
            if problem != "scenario not supported":
                where = f"{scenario_labels[scenario]} at {conns} connections"
                seen.setdefault((server, problem), []).append(where)
    runs_of = {
        server: sum(
            1
            for (srv, _, _), r in run.results.items()
            if srv == server and "scenario not supported" not in r.problems
        )
        for server in labels
    }
    lines = []
    for (server, problem), where in seen.items():
        places = "every run" if len(where) == runs_of[server] else "; ".join(where)
        text = problem.replace("|", "\\|")
        lines.append(f"- {labels[server]}: {text} ({places})")
    noisy = [
        f"{labels[server]}, {scenario_labels[scenario]} at {conns} connections"
        f" ({r.other_cores:.2f} cores)"
        for (server, scenario, conns), r in run.results.items()
        if r.other_cores is not None and r.other_cores >= run.quiet
    ]
    unsupported = sorted(
        {
            f"{labels[server]}: {scenario_labels[scenario]}"
            for (server, scenario, _), r in run.results.items()
            if "scenario not supported" in r.problems
        }
    )
    out = ["## Problems seen", ""]
    out += lines or ["None: every check passed and wrk saw no errors or non-2xx responses."]
    if noisy:
        out += [
            "",
            f"Other processes kept at least {run.quiet} cores busy during these reported runs, "
            "even in the least disturbed attempt, so their numbers are less reliable: "
            + "; ".join(noisy)
            + ".",
        ]
    if unsupported:
        out += ["", "Not applicable (no such handler kind): " + "; ".join(unsupported) + "."]
    return [*out, ""]


def write_report(run: Run, out: Path | None) -> None:
    cfg = run.settings
    name = "http-tls" if cfg.tls else "http"
    lines = [
        "# HTTPS benchmarks" if cfg.tls else "# HTTP benchmarks",
        "",
        *(
            [
                "Every server terminates TLS itself (TLS 1.3, HTTP/1.1, one certificate made "
                "for the run by trustme); `python -m benchmarks http --tls` "
                "regenerates this file.",
                "",
            ]
            if cfg.tls
            else []
        ),
        f"Machine: {machine()}.",
        "",
        f"Versions: {versions()}.",
        "",
        f"Each measurement starts a fresh server process, checks its response once (status "
        f"200, content type and body), warms it up with wrk for {cfg.warmup} s, then measures "
        f"for {cfg.seconds} s (`wrk -t1 -cN --latency`). Every server, scenario and "
        f"connection count is measured {cfg.repeat} times and the median run by requests/s "
        "is reported (its p50 and p99 with it); a run during which other processes kept "
        f"over {run.quiet} cores busy is redone up to {cfg.retries} times. One worker "
        "process everywhere. Ratios are to FastAPI on uvicorn; above 1.00x is better. A "
        "server that fails to start or a scenario it cannot serve is n/a. `python -m benchmarks http` regenerates this file.",
        "",
        "| server | how it runs |",
        "|---|---|",
        *(f"| {s.label} | {s.note} |" for s in run.servers),
        "",
        "| scenario | request |",
        "|---|---|",
        *(f"| {sc.label} | `{sc.method} {sc.path}` |" for sc in run.scenarios),
        "",
    ]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for conns in run.connections:
        chart_name = f"{name}-{conns}.png"
        drawn = out is not None and chart(run, conns, out / chart_name)
        lines += tables(run, conns, chart_name if drawn else None)
    lines += problems(run)
    text = "\n".join(lines)
    print()
    print(text)
    if out is not None:
        (out / f"{name}.md").write_text(text)
        print(f"written to {out / f'{name}.md'}")
