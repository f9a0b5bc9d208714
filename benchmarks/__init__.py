"""Benchmarks: data-bridge side by side with its peers, reported as ratios."""
