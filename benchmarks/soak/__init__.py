"""Soak: a bounded mixed load on one data-bridge process, with its memory, descriptors,
threads and Python objects sampled before and after (``python -m benchmarks soak``)."""
