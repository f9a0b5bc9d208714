"""The process pool of ``executor="process"`` routes: CPU-bound ``def`` handlers run in
worker processes, so they neither hold the GIL of the serving process nor block its
event loop.

The pool is a :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn``
start method (the serving process runs a Tokio runtime, which must never be forked),
started on first use. Worker processes ignore SIGINT: a Ctrl-C in the terminal reaches
the whole process group, and the server, not its pool, decides how to stop. A handler
that kills its process breaks the pool; the request fails with 500 and the next one
gets a fresh pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

__all__ = ["ProcessPool", "available_cpus"]

logger = logging.getLogger("data_bridge")


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProcessPool:
    """Runs picklable calls in ``size`` worker processes (default: one per CPU)."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size or available_cpus()
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _current(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.size,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_ignore_sigint,
                )
            return self._executor

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)

    async def run(self, func: Callable[..., Any], /, **kwargs: Any) -> Any:
        """``func(**kwargs)`` in a worker process; arguments and result are pickled.

        Raises :class:`~concurrent.futures.process.BrokenProcessPool` if a worker
        process died; the pool is then replaced for the next call."""
        executor = self._current()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, functools.partial(func, **kwargs))
        except BrokenProcessPool:
            logger.error("a process pool worker died; starting a new pool")
            self._discard(executor)
            raise

    @property
    def started(self) -> bool:
        """Whether worker processes were started (the pool starts on first use)."""
        return self._executor is not None

    def shutdown(self) -> None:
        """Stops the worker processes, waiting for running calls; idempotent. A later
        call starts a new pool."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            with contextlib.suppress(Exception):
                executor.shutdown(wait=True, cancel_futures=True)
