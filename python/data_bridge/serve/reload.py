"""``--reload``: notices when a ``.py`` file under a directory is added, changed or
removed, by comparing modification times.

Polling keeps the supervisor free of threads and extra dependencies; it runs only in
the supervisor, at :data:`INTERVAL`, and skips directories that never hold the app's
own code (virtualenvs, caches, VCS and build folders).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["INTERVAL", "SourceWatcher"]

#: Seconds between two scans.
INTERVAL = 0.5

_SKIP = {"__pycache__", "node_modules", "site-packages", "target", "venv", "build", "dist"}


class SourceWatcher:
    """Remembers the ``.py`` files under ``root`` and reports which ones changed."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.mtimes = self._scan()

    def _scan(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIP]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    try:
                        found[path] = os.stat(path).st_mtime_ns
                    except OSError:
                        continue
        return found

    def changed(self) -> list[str]:
        """Files added, modified or removed since the previous call (sorted)."""
        now = self._scan()
        before = self.mtimes
        self.mtimes = now
        return sorted(p for p in now.keys() | before.keys() if now.get(p) != before.get(p))
