"""The memory a supervisor shares with its workers for ``/metrics``: a file that every
worker inherits and maps, so that any worker can answer for the whole server.

The supervisor writes only two things into it: the count of workers it restarted, and,
when a worker exits, the release of that worker's slot (its gauges zeroed, then its
pid). Everything else is written by the workers' native code; the layout is described
in ``crates/data-bridge-api/src/metrics/region.rs`` and mirrored here.
"""

from __future__ import annotations

import os
import sys
import tempfile

__all__ = ["SIZE", "SharedMetrics"]

#: Bytes reserved for every worker's series (memory is used only as series appear).
SIZE = 64 << 20
_RESTARTS_AT = 0
_SLOTS_AT = 64
_SLOT_BYTES = 64
_MAX_SLOTS = 256
#: Words of a slot: pid, in-flight, loop lag, outstanding probe, queue depth. The
#: access log drop counter after them is kept for the slot's next worker.
_GAUGES = 5


def _word(value: int) -> bytes:
    # The workers read these words as native atomics.
    return value.to_bytes(8, sys.byteorder)


class SharedMetrics:
    """The shared file, open for as long as the supervisor runs."""

    def __init__(self) -> None:
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("data-bridge-metrics", os.MFD_CLOEXEC)
        else:
            with tempfile.TemporaryFile() as file:
                self.fd = os.dup(file.fileno())
        os.ftruncate(self.fd, SIZE)

    def fileno(self) -> int:
        return self.fd

    def set_restarts(self, count: int) -> None:
        os.pwrite(self.fd, _word(count), _RESTARTS_AT)

    def release(self, pid: int) -> None:
        """Frees the slot of the worker ``pid``, which has exited: its gauges no longer
        count, its counters stay for whichever worker takes the slot next."""
        slots = os.pread(self.fd, _MAX_SLOTS * _SLOT_BYTES, _SLOTS_AT)
        for index in range(_MAX_SLOTS):
            at = index * _SLOT_BYTES
            if int.from_bytes(slots[at : at + 8], sys.byteorder) == pid:
                start = _SLOTS_AT + at
                os.pwrite(self.fd, bytes(8 * (_GAUGES - 1)), start + 8)
                os.pwrite(self.fd, _word(0), start)

    def close(self) -> None:
        os.close(self.fd)
