"""`python -m benchmarks [loop|http|http-scaling|soak|layers] [options]`: run a benchmark suite
(default: loop)."""

from __future__ import annotations

import sys


def main() -> None:
    suite = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "loop"
    rest = sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == suite else sys.argv[1:]
    if suite == "loop":
        from benchmarks.loop.run import main as run

        run(rest)
    elif suite == "http":
        from benchmarks.http.run import main as run_http

        run_http(rest)
    elif suite == "http-scaling":
        from benchmarks.http.scaling import main as run_scaling

        run_scaling(rest)
    elif suite == "soak":
        from benchmarks.soak.run import main as run_soak

        run_soak(rest)
    elif suite == "layers":
        from benchmarks.layers.run import main as run_layers

        run_layers(rest)
    else:
        raise SystemExit(
            f"unknown suite {suite!r}; expected 'loop', 'http', 'http-scaling', 'soak' or 'layers'"
        )


if __name__ == "__main__":
    main()
