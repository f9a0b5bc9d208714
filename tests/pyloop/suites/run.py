"""Runs chosen subsets of real asyncio libraries' own test suites on asyncio's loop and on
PyLoop, and fails if a test passes on asyncio's loop but not on PyLoop.

    python tests/pyloop/suites/run.py            # every suite
    python tests/pyloop/suites/run.py anyio      # one suite

Each library's sdist (pinned below) is fetched with ``pip download --no-binary`` into
``.cache/suites`` (git-ignored) and its ``tests/`` run from there in a virtualenv of their
own (``.cache/suites/venv-<python>``), so the suites' pins never touch ``.venv``. That
virtualenv sees ``data_bridge`` through a ``.pth`` file pointing at ``python/``: it uses
the extension ``make build`` put there, with no second build. The suite runs twice,
once as is and once with ``DATA_BRIDGE_SUITE_LOOP=pyloop``, which makes the
``pyloop_policy`` plugin beside this file install PyLoop's policy (see its docstring).

A test that fails on both loops is the environment's doing (no network, no IPv6, ...) and
is reported, not judged. A test that passes on asyncio and fails on PyLoop is a PyLoop
difference: the run fails unless it is listed in ``KNOWN_DIFFERENCES`` (and the pyloop
spec), and a listed one that no longer differs fails the run too, so the list stays true.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import venv
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
CACHE = ROOT / ".cache" / "suites"
LOOPS = ("asyncio", "pyloop")


@dataclasses.dataclass(frozen=True)
class Suite:
    """One library's test suite: the pinned sdist and the subset that runs."""

    name: str
    version: str
    # Installed into the suites' virtualenv besides the library itself (from its sdist).
    deps: tuple[str, ...]
    # The test files or folders that make the subset, relative to the unpacked sdist.
    paths: tuple[str, ...]
    # pytest options: plugins and deselections.
    options: tuple[str, ...]


SUITES = (
    # anyio 4.14+ ship no tests/ in their sdist; 4.13.0 is the newest that does.
    # The asyncio backend only (trio is not installed, uvloop is skipped): the "asyncio"
    # and "asyncio+eager" ids both make their loop through asyncio.new_event_loop().
    Suite(
        name="anyio",
        version="4.13.0",
        deps=("pytest-mock==3.15.1", "trustme==1.2.1", "psutil==7.1.3"),
        paths=("tests",),
        options=(
            "-p",
            "anyio",
            "-p",
            "pytest_mock",
            "-p",
            "no:asyncio",
            "-p",
            "no:trio",
            # IPv6 cases resolve "localhost" to ::1, which hosts without that line in
            # /etc/hosts (CI's) cannot: they fail on both loops and leak sockets whose
            # ResourceWarnings then fail whichever test is running at collection.
            "-k",
            "not trio and not uvloop and not ipv6",
            # Process pools and subinterpreters do not touch the loop under test.
            "--ignore=tests/test_to_process.py",
            "--ignore=tests/test_to_interpreter.py",
        ),
    ),
    # aiohttp's pytest plugin runs each test on its "pyloop" loop_factory, which is
    # asyncio.new_event_loop (so the policy decides). Its functional client and server
    # tests (HTTP/1.1, websockets, sendfile, streaming) exercise transports, flow control
    # and TLS; the unit tests with mocked transports would add nothing.
    Suite(
        name="aiohttp",
        version="3.14.5",
        deps=("pytest-mock==3.15.1", "trustme==1.2.1", "freezegun==1.5.5", "coverage==7.10.7"),
        paths=(
            "tests/test_client_functional.py",
            "tests/test_web_functional.py",
            "tests/test_web_websocket_functional.py",
            "tests/test_client_ws_functional.py",
            "tests/test_web_sendfile_functional.py",
            "tests/test_web_server.py",
            "tests/test_test_utils.py",
        ),
        options=(
            "-m",
            "not dev_mode and not autobahn and not internal",
        ),
    ),
)

# Tests that pass on asyncio's loop and fail on PyLoop, with the reason; each is also
# listed in openspec/specs/pyloop/spec.md. Keys are "<suite>::<junit classname>::<name>".
KNOWN_DIFFERENCES: dict[str, str] = {}

# Common to both runs: the suite's own ini minus its coverage/xdist/doctest addopts.
PYTEST_ARGS = (
    "-o",
    "addopts=",
    "-p",
    "pyloop_policy",
    "-p",
    "no:cacheprovider",
    "-q",
    "-rN",
    "--timeout=60",
)


def main(argv: list[str]) -> int:
    chosen = [s for s in SUITES if not argv or s.name in argv]
    if argv and len(chosen) != len(argv):
        names = ", ".join(s.name for s in SUITES)
        print(f"unknown suite in {argv}; known: {names}", file=sys.stderr)
        return 2
    python = ensure_venv()
    failed = False
    rows: list[tuple[str, str, dict[str, int], float]] = []
    for suite in chosen:
        src = unpack(suite, python)
        outcomes: dict[str, dict[str, str]] = {}
        for loop in LOOPS:
            started = time.monotonic()
            outcomes[loop] = run_suite(suite, src, python, loop)
            counts = count(outcomes[loop])
            rows.append((suite.name, loop, counts, time.monotonic() - started))
        failed |= judge(suite, src, python, outcomes)
    print()
    print(f"{'suite':<10}{'loop':<9}{'passed':>8}{'failed':>8}{'skipped':>9}{'seconds':>9}")
    for name, loop, counts, seconds in rows:
        print(
            f"{name:<10}{loop:<9}{counts['passed']:>8}{counts['failed']:>8}"
            f"{counts['skipped']:>9}{seconds:>9.0f}"
        )
    return 1 if failed else 0


def ensure_venv() -> Path:
    """Creates (once per requirement set) the virtualenv every suite runs in; returns its
    python."""
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    env = CACHE / f"venv-{tag}"
    python = env / "bin" / "python"
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = sorted(
        {
            "pytest==8.4.2",
            "pytest-timeout==2.4.0",
            *runtime,
            *(dep for s in SUITES for dep in s.deps),
            *(f"{s.name}=={s.version}" for s in SUITES),
        }
    )
    stamp = env / "requirements.sha256"
    digest = hashlib.sha256("\n".join(reqs).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and python.exists():
        return python
    shutil.rmtree(env, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(env)
    check([str(python), "-m", "pip", "install", "-q", *reqs])
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # data_bridge from the checkout, with the extension `make build` left in python/.
    Path(site, "data_bridge_checkout.pth").write_text(f"{ROOT / 'python'}\n")
    stamp.write_text(digest)
    return python


def unpack(suite: Suite, python: Path) -> Path:
    """Downloads the suite's sdist once and unpacks it without its package source, so the
    tests import the installed library (built, with its C extensions) and not the tree."""
    dest = CACHE / "src" / f"{suite.name}-{suite.version}"
    if (dest / "tests").is_dir():
        return dest
    sdists = CACHE / "sdist"
    sdists.mkdir(parents=True, exist_ok=True)
    check(
        [
            str(python),
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            str(sdists),
            f"{suite.name}=={suite.version}",
        ]
    )
    (archive,) = sdists.glob(f"{suite.name}-{suite.version}.tar.gz")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    (top,) = tmp.iterdir()
    for package in (top / suite.name, top / "src"):
        shutil.rmtree(package, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    top.rename(dest)
    tmp.rmdir()
    return dest


def run_suite(
    suite: Suite, src: Path, python: Path, loop: str, only: tuple[str, ...] = ()
) -> dict[str, str]:
    """Runs the subset (or the tests ``only`` names) on one loop; returns each test's
    outcome."""
    report = CACHE / "results" / f"{suite.name}-{loop}{'-rerun' if only else ''}.xml"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    env = dict(os.environ, DATA_BRIDGE_SUITE_LOOP=loop, PYTHONPATH=str(HERE))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"--- {suite.name} {suite.version} on {loop}", flush=True)
    command = [
        str(python.parent / "pytest"),
        *PYTEST_ARGS,
        f"--junitxml={report}",
        *suite.options,
        *(only or suite.paths),
    ]
    code = subprocess.run(command, cwd=src, env=env, check=False).returncode
    if code not in (0, 1) or not report.exists():
        raise SystemExit(f"{suite.name} on {loop}: pytest exited {code}")
    return outcomes_of(report)


def outcomes_of(report: Path) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            outcome = "failed"
        elif "skipped" in tags:
            outcome = "skipped"
        else:
            outcome = "passed"
        # A test that failed its teardown appears twice; the worse outcome counts.
        if outcomes.get(key) != "failed":
            outcomes[key] = outcome
    return outcomes


def count(outcomes: dict[str, str]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for outcome in outcomes.values():
        counts[outcome] += 1
    return counts


def judge(suite: Suite, src: Path, python: Path, outcomes: dict[str, dict[str, str]]) -> bool:
    """Prints the differences between the loops; True if any is not as listed."""
    base, ours = outcomes["asyncio"], outcomes["pyloop"]
    differ = sorted(k for k, v in base.items() if v == "passed" and ours.get(k) == "failed")
    unlisted = [k for k in differ if f"{suite.name}::{k}" not in KNOWN_DIFFERENCES]
    if unlisted:
        # Some tests count the process's threads or wait on wall-clock deadlines, and
        # fail now and then on either loop when a busy machine delays an earlier test's
        # worker thread; a difference must show again when the test runs alone.
        print(f"--- rerunning {len(unlisted)} test(s) alone on PyLoop", flush=True)
        again = run_suite(suite, src, python, "pyloop", tuple(node_id(src, k) for k in unlisted))
        for key in unlisted:
            if again.get(key) == "passed":
                print(f"{suite.name}: failed on PyLoop in the full run, passed alone: {key}")
                differ.remove(key)
    both = sorted(k for k, v in base.items() if v == "failed" and ours.get(k) == "failed")
    bad = False
    for key in both:
        print(f"{suite.name}: fails on both loops (environment): {key}")
    for key in differ:
        full = f"{suite.name}::{key}"
        if full in KNOWN_DIFFERENCES:
            print(f"{suite.name}: known difference: {key} ({KNOWN_DIFFERENCES[full]})")
        else:
            print(f"{suite.name}: PASSES ON ASYNCIO, FAILS ON PYLOOP: {key}")
            bad = True
    for full in KNOWN_DIFFERENCES:
        prefix = f"{suite.name}::"
        if full.startswith(prefix) and full[len(prefix) :] not in differ:
            print(f"{suite.name}: listed as a known difference but does not differ: {full}")
            bad = True
    return bad


def node_id(src: Path, key: str) -> str:
    """pytest's node id for a junit ``classname::name`` key (``a.b.test_x.TestY``)."""
    classname, name = key.split("::", 1)
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        module = Path(*parts[:i]).with_suffix(".py")
        if (src / module).is_file():
            return "::".join([module.as_posix(), *parts[i:], name])
    return key


def check(command: list[str]) -> None:
    subprocess.run(command, check=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
