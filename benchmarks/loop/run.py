"""Runs every loop benchmark on asyncio, uvloop, rloop and PyLoop in one run and
writes a markdown table of ratios to uvloop (``benchmarks/results/loop.md``).

The server process is pinned to CPU 0 and the C load client to CPU 1, so each side
has a core of its own. Micro cases report the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from benchmarks.machine import describe

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = HERE.parent / "results"
LOOPS = ["asyncio", "uvloop", "rloop", "pyloop"]
MICRO = ["call_soon", "sleep0", "sleep0_tasks", "timers"]
# (label, server kind, transport, message size)
ECHO = [
    ("tcp streams 1 KiB", "streams", "tcp", 1024),
    ("tcp streams 64 KiB", "streams", "tcp", 65536),
    ("tcp protocol 1 KiB", "protocol", "tcp", 1024),
    ("tcp protocol 64 KiB", "protocol", "tcp", 65536),
    ("udp 1 KiB", "udp", "udp", 1024),
]
MICRO_LABELS = {
    "call_soon": "call_soon chain, 1M callbacks (s)",
    "sleep0": "sleep(0), 1M in one task (s)",
    "sleep0_tasks": "sleep(0), 10k tasks x 50 (s)",
    "timers": "100k timers (s)",
}


def pinned(cpu: int | str, argv: list[str]) -> list[str]:
    """``argv`` run on CPU ``cpu`` (a number or a taskset list such as ``"0,1"``)."""
    if os.cpu_count() and os.cpu_count() > 1 and _has_taskset():  # type: ignore[operator]
        return ["taskset", "-c", str(cpu), *argv]
    return argv


def _has_taskset() -> bool:
    return subprocess.run(["which", "taskset"], capture_output=True).returncode == 0


def build_client() -> Path:
    out = Path(tempfile.gettempdir()) / "data-bridge-echo-client"
    src = HERE / "echo_client.c"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["cc", "-O2", "-o", str(out), str(src)], check=True)
    return out


def run_micro(loop: str, case: str) -> float | None:
    proc = subprocess.run(
        pinned(0, [sys.executable, "-m", "benchmarks.loop.cases", loop, case]),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        print(f"  {loop} {case} failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    return float(proc.stdout.strip())


def run_echo(
    loop: str, client: Path, kind: str, proto: str, size: int, seconds: float
) -> float | None:
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen(
            pinned(0, [sys.executable, "-m", "benchmarks.loop.cases", loop, kind, str(port_file)]),
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            while not port_file.exists() or not port_file.read_text():
                if server.poll() is not None or time.monotonic() > deadline:
                    print(
                        f"  {loop} {kind}: server did not start: {server.stderr.read()[-300:] if server.stderr else ''}"
                    )
                    return None
                time.sleep(0.05)
            port = port_file.read_text().strip()
            proc = subprocess.run(
                pinned(1, [str(client), proto, port, "10", str(size), str(seconds)]),
                capture_output=True,
                text=True,
                timeout=seconds + 30,
            )
            if proc.returncode != 0:
                print(f"  {loop} {kind} {size}: client failed: {proc.stderr.strip()}")
                return None
            return float(proc.stdout.strip())
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def best_of(
    loops: list[str], rounds: int, run: Callable[[str], float | None], higher_is_better: bool
) -> dict[str, float | None]:
    """Best result of each loop over `rounds` rounds; the loops take turns inside a
    round, so a slow spell on the machine is shared instead of hitting one loop."""
    best: dict[str, float | None] = dict.fromkeys(loops)
    failed: set[str] = set()
    pick = max if higher_is_better else min
    for _ in range(rounds):
        for loop in loops:
            if loop in failed:
                continue
            value = run(loop)
            if value is None:
                failed.add(loop)
                best[loop] = None
                continue
            current = best[loop]
            best[loop] = value if current is None else pick(current, value)
    return best


def machine() -> str:
    return describe("; server pinned to CPU 0, client to CPU 1")


def fmt_ratio(value: float | None, base: float | None, higher_is_better: bool) -> str:
    if value is None or base is None or value == 0 or base == 0:
        return "n/a"
    ratio = value / base if higher_is_better else base / value
    return f"{ratio:.2f}x"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks loop")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case and loop (best kept)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each echo run")
    parser.add_argument("--loops", default=",".join(LOOPS))
    parser.add_argument("--only", default="", help="comma-separated case names to run")
    args = parser.parse_args(argv)
    loops = args.loops.split(",")
    only = set(filter(None, args.only.split(",")))
    client = build_client()
    rows: list[tuple[str, dict[str, float | None], bool]] = []
    for case in MICRO:
        if only and case not in only:
            continue
        print(f"{MICRO_LABELS[case]}")
        values = best_of(loops, args.repeat, partial(run_micro, case=case), False)
        print("  " + "  ".join(f"{k}={v}" for k, v in values.items()))
        rows.append((MICRO_LABELS[case], values, False))
    for label, kind, proto, size in ECHO:
        if only and kind not in only:
            continue
        print(f"echo {label}")
        values = best_of(
            loops,
            args.repeat,
            partial(
                run_echo, client=client, kind=kind, proto=proto, size=size, seconds=args.seconds
            ),
            True,
        )
        print("  " + "  ".join(f"{k}={v}" for k, v in values.items()))
        rows.append((f"echo {label}, 10 conns (msg/s)", values, True))

    lines = [
        "# Event loop benchmarks",
        "",
        f"Machine: {machine()}.",
        "",
        "Ratios are to uvloop (above 1.00x = faster than uvloop). Each case is run "
        f"{args.repeat} times per loop, the loops taking turns, and the best run is kept. "
        "Micro cases: seconds (lower is better). "
        f"Echo: {args.seconds:.0f} s per run, messages per second (higher is better), "
        "C load client in another process.",
        "",
        "| case | "
        + " | ".join(loops)
        + " | "
        + " | ".join(f"{name} / uvloop" for name in loops if name != "uvloop")
        + " |",
        "|---|" + "---|" * (2 * len(loops) - (1 if "uvloop" in loops else 0)),
    ]
    for label, values, higher in rows:
        cells = []
        for loop in loops:
            v = values.get(loop)
            cells.append("n/a" if v is None else (f"{v:,.0f}" if higher else f"{v:.3f}"))
        ratios = [
            fmt_ratio(values.get(name), values.get("uvloop"), higher)
            for name in loops
            if name != "uvloop"
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    table = "\n".join(lines) + "\n"
    print()
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not only:
        (RESULTS / "loop.md").write_text(table)
        print(f"written to {RESULTS / 'loop.md'}")
