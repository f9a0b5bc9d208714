"""One app per server; every app serves the scenarios of :mod:`benchmarks.http.scenarios`."""
