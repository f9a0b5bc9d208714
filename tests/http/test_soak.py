"""A short soak in the test suite: the same runner as ``python -m benchmarks soak``
(a real server process, every kind of route, clients that disconnect midway), bounded
to a few seconds of load; the server must not grow past the stated bounds."""

from __future__ import annotations

from benchmarks.soak.run import ROUTES, soak


def test_a_short_soak_stays_within_bounds() -> None:
    report = soak(seconds=8, clients=4, warmup=2)
    assert report.violations() == [], report.outcomes
    for method, path, _, status in ROUTES:
        assert report.outcomes[f"{status} {method} {path}"] > 0, (method, path)
    assert report.outcomes["disconnect mid-request"] > 0
    assert report.outcomes["disconnect mid-response"] > 0
