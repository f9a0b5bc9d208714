"""The supervisor of ``data-bridge serve --workers N``: it owns the listening socket,
starts worker processes that inherit it, and keeps the right number of them alive.

- A worker that dies is replaced after a back-off that doubles while workers keep
  dying young (0.1 s up to :data:`MAX_BACKOFF`), so a crash loop cannot eat the machine.
- SIGTERM/SIGINT: every worker gets SIGTERM and drains; stragglers are killed after
  the graceful timeout; the supervisor exits 0.
- SIGHUP (and ``--reload`` on a source change): workers are replaced one at a time,
  each old one stopped only once its replacement reports ready. Because the socket
  stays open in the supervisor, connections arriving meanwhile wait in the backlog
  instead of being refused.
- SIGTTIN/SIGTTOU: one worker more / one fewer (never fewer than one).
- A worker that reaches ``--max-requests`` asks to be replaced the same way.
- A ready worker whose event loop sends no heartbeat for ``--worker-timeout`` (a
  handler blocking the loop, a loop spinning with the GIL held) is killed with SIGKILL
  and replaced like a worker that died; it would otherwise keep accepting connections
  it never answers. The clock starts at ``ready``, so a slow import or startup hook
  is never mistaken for a hang.
- Every worker inherits a shared memory file (:mod:`data_bridge.serve.shared_metrics`) where
  all workers keep their metrics and the supervisor counts restarts, so any worker's
  ``/metrics`` answers for the whole server.

The supervisor never starts a Tokio runtime: workers are fresh interpreters
(``python -m data_bridge.serve.worker``), never forks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from data_bridge.serve.config import Config
from data_bridge.serve.reload import INTERVAL as RELOAD_INTERVAL
from data_bridge.serve.reload import SourceWatcher
from data_bridge.serve.shared_metrics import SharedMetrics

__all__ = ["MAX_BACKOFF", "STABLE_AFTER", "Supervisor"]

logger = logging.getLogger("data_bridge")

#: First and largest delay before restarting a worker that died.
MIN_BACKOFF = 0.1
MAX_BACKOFF = 10.0
#: A worker that stayed up this long resets the back-off.
STABLE_AFTER = 30.0
#: Extra time after the graceful timeout for shutdown hooks and interpreter exit.
EXIT_MARGIN = 1.0
#: Longest sleep between two looks at the workers when nothing happens.
TICK = 0.25

_HANDLED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
)


@dataclass(eq=False)
class Worker:
    """A worker process and what the supervisor knows about it."""

    proc: subprocess.Popen[bytes]
    channel: socket.socket
    started: float
    ready: bool = False
    #: Asked to stop: its exit is expected, it no longer counts as serving capacity.
    stopping_since: float | None = None
    #: The worker this one replaces, stopped once this one is ready.
    replaces: Worker | None = None
    error: str | None = None
    #: The worker closed its end of the channel (it is exiting).
    hung_up: bool = False
    #: When the worker last said anything (a heartbeat at least), once ready.
    last_heard: float = 0.0
    #: Killed for a silent event loop: how long it had been silent.
    silent_for: float | None = None
    buffer: bytes = field(default=b"", repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid


class Supervisor:
    """Runs ``config.workers`` workers on ``listener`` until told to stop."""

    def __init__(self, config: Config, listener: socket.socket) -> None:
        self.config = config
        self.listener = listener
        self.target = config.workers
        self.workers: list[Worker] = []
        self.to_replace: list[Worker] = []
        self.failures = 0
        self.next_spawn = 0.0
        self.ever_ready = False
        self.stop_deadline: float | None = None
        self.exit_code = 0
        self.pending: list[int] = []
        self.watcher = SourceWatcher(os.getcwd()) if config.reload else None
        self.next_scan = 0.0
        self.restarts = 0
        # Closed in run(): it lives as long as the supervisor.
        self.metrics = SharedMetrics()

    def _count_restart(self, n: int = 1) -> None:
        self.restarts += n
        self.metrics.set_restarts(self.restarts)

    # -- signals ------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.pending.append(signum)

    def _handle_signals(self) -> None:
        while self.pending:
            signum = self.pending.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                if self.stop_deadline is None:
                    logger.info("received %s; stopping", signal.Signals(signum).name)
                    self.stop()
                else:
                    logger.warning("second stop signal; killing the workers")
                    self.stop_deadline = 0.0
            elif self.stop_deadline is not None:
                continue
            elif signum == signal.SIGHUP:
                logger.info("received SIGHUP; replacing the workers one by one")
                self.replace_all()
            elif signum == signal.SIGTTIN:
                self.target += 1
                logger.info("received SIGTTIN; %d workers", self.target)
            elif signum == signal.SIGTTOU:
                self.target = max(1, self.target - 1)
                logger.info("received SIGTTOU; %d workers", self.target)

    # -- workers ------------------------------------------------------------------

    def serving(self) -> list[Worker]:
        """Workers that count towards the target: not stopping, not a replacement."""
        return [w for w in self.workers if w.stopping_since is None and w.replaces is None]

    def spawn(self, replaces: Worker | None = None) -> Worker:
        ours, theirs = socket.socketpair()
        fd = self.listener.fileno()
        restarts_fd = self.metrics.fileno()
        cmd = [
            sys.executable,
            "-m",
            "data_bridge.serve.worker",
            str(fd),
            str(theirs.fileno()),
            self.config.to_json(),
            str(restarts_fd),
        ]
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, pass_fds=(fd, theirs.fileno(), restarts_fd)
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        worker = Worker(proc, ours, time.monotonic(), replaces=replaces)
        self.workers.append(worker)
        logger.debug("started worker %d", worker.pid)
        return worker

    def retire(self, worker: Worker) -> None:
        """Asks ``worker`` to drain and exit."""
        if worker.stopping_since is None:
            worker.stopping_since = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)

    def replace_all(self) -> None:
        self.to_replace = [w for w in self.serving()]

    def stop(self) -> None:
        self.stop_deadline = time.monotonic() + self.config.graceful_timeout + EXIT_MARGIN
        self.to_replace.clear()
        for worker in self.workers:
            self.retire(worker)

    def _on_message(self, worker: Worker, line: str) -> None:
        kind, _, rest = line.partition(" ")
        if kind == "ready":
            worker.ready = True
            worker.last_heard = time.monotonic()
            if not self.ever_ready:
                self.ever_ready = True
                logger.info(
                    "data-bridge serving on %s with %d worker(s) (supervisor pid %d)",
                    self.config.address,
                    self.target,
                    os.getpid(),
                )
            old, worker.replaces = worker.replaces, None
            if old is not None and old in self.workers:
                logger.info("worker %d replaces worker %d", worker.pid, old.pid)
                self.retire(old)
        elif kind == "recycle":
            if worker not in self.to_replace and worker.stopping_since is None:
                self.to_replace.insert(0, worker)
        elif kind == "error":
            worker.error = rest

    def _read(self, worker: Worker) -> None:
        while True:
            try:
                data = worker.channel.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                worker.hung_up = True
                return
            worker.last_heard = time.monotonic()
            worker.buffer += data
            while b"\n" in worker.buffer:
                line, worker.buffer = worker.buffer.split(b"\n", 1)
                self._on_message(worker, line.decode("utf-8", "replace"))

    def _on_exit(self, worker: Worker) -> None:
        self._read(worker)
        self.metrics.release(worker.pid)
        worker.channel.close()
        self.workers.remove(worker)
        if worker in self.to_replace:
            self.to_replace.remove(worker)
        for other in self.workers:
            if other.replaces is worker:
                other.replaces = None
        code = worker.proc.returncode
        status = f"signal {-code}" if code < 0 else f"status {code}"
        if worker.stopping_since is not None:
            # After a failed boot the error line is the whole story.
            log = logger.info if self.exit_code == 0 else logger.debug
            log("worker %d exited (%s)", worker.pid, status)
            return
        if self.stop_deadline is not None:
            return
        if worker.error is not None and not self.ever_ready:
            # The app cannot start: retrying would only repeat the error.
            print(f"error: {worker.error}", file=sys.stderr, flush=True)
            self.exit_code = 1
            self.stop()
            return
        now = time.monotonic()
        self.failures = 0 if now - worker.started >= STABLE_AFTER else self.failures + 1
        delay = min(MIN_BACKOFF * 2 ** max(0, self.failures - 1), MAX_BACKOFF)
        self.next_spawn = max(self.next_spawn, now + delay)
        reason = worker.error or f"exited with {status}"
        if worker.silent_for is not None:
            reason = f"was killed after its event loop was silent for {worker.silent_for:.1f} s"
        if worker.replaces is not None:
            logger.error(
                "new worker %d failed (%s); keeping the running workers", worker.pid, reason
            )
            self.to_replace.clear()
        else:
            self._count_restart()
            logger.error("worker %d %s; restarting in %.1f s", worker.pid, reason, delay)

    def _maintain(self, now: float) -> None:
        serving = self.serving()
        if len(serving) > self.target:
            for worker in sorted(serving, key=lambda w: w.started)[self.target :]:
                self.retire(worker)
        if now < self.next_spawn:
            return
        for _ in range(self.target - len(serving)):
            self.spawn()
        replacing = any(w.replaces is not None for w in self.workers)
        while self.to_replace and not replacing:
            old = self.to_replace.pop(0)
            if old in self.workers and old.stopping_since is None:
                self.spawn(replaces=old)
                replacing = True

    def _kill_hung(self, now: float) -> None:
        limit = self.config.worker_timeout
        if limit <= 0:
            return
        for worker in self.workers:
            if not worker.ready or worker.stopping_since is not None or worker.hung_up:
                continue
            if worker.silent_for is not None or now - worker.last_heard <= limit:
                continue
            # A beat may be waiting in the channel if this process was the slow one.
            self._read(worker)
            silent = time.monotonic() - worker.last_heard
            if silent <= limit:
                continue
            worker.silent_for = silent
            logger.error(
                "worker %d timed out: its event loop was silent for %.1f s "
                "(--worker-timeout %g); killing it",
                worker.pid,
                silent,
                limit,
            )
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()

    def _kill_stragglers(self, now: float) -> None:
        for worker in self.workers:
            since = worker.stopping_since
            limit = self.config.graceful_timeout + EXIT_MARGIN
            late = since is not None and now - since > limit
            if late or (self.stop_deadline is not None and now >= self.stop_deadline):
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()

    # -- main loop ----------------------------------------------------------------

    def run(self) -> int:
        """Supervises until stopped; returns the exit status."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous_wakeup = signal.set_wakeup_fd(wake_w)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _HANDLED}
        try:
            return self._loop(wake_r)
        finally:
            for worker in self.workers:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()
                worker.proc.wait()
                worker.channel.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            os.close(wake_r)
            os.close(wake_w)
            self.metrics.close()

    def _loop(self, wake_r: int) -> int:
        while True:
            self._handle_signals()
            now = time.monotonic()
            for worker in list(self.workers):
                if worker.proc.poll() is not None:
                    self._on_exit(worker)
            if self.stop_deadline is not None:
                if not self.workers:
                    if self.exit_code == 0:
                        logger.info("supervisor exiting")
                    return self.exit_code
            else:
                if self.watcher is not None and now >= self.next_scan:
                    self.next_scan = now + RELOAD_INTERVAL
                    changed = self.watcher.changed()
                    if changed:
                        logger.info("%s changed; reloading", os.path.relpath(changed[0]))
                        self.replace_all()
                self._maintain(now)
                self._kill_hung(now)
            self._kill_stragglers(now)
            timeout = TICK
            if self.stop_deadline is None and self.next_spawn > now:
                timeout = min(timeout, self.next_spawn - now)
            channels = {w.channel.fileno(): w for w in self.workers if not w.hung_up}
            try:
                readable, _, _ = select.select([wake_r, *channels], [], [], max(timeout, 0.0))
            except InterruptedError:
                continue
            for fd in readable:
                if fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_r, 512):
                            pass
                else:
                    self._read(channels[fd])
