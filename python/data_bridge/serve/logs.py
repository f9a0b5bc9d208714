"""Server logs for ``data-bridge serve``: the ``data_bridge`` logger on standard error,
as text lines or one JSON object per line, at the level chosen on the command line."""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["JSONFormatter", "configure"]

_TEXT = "%(asctime)s %(levelname)-7s [%(process)d] %(message)s"


class JSONFormatter(logging.Formatter):
    """One JSON object per record, with ``time``, ``level``, ``message`` and ``pid``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            "logger": record.name,
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """Sends the ``data_bridge`` logger to stderr at ``level`` in ``fmt`` (text|json).

    Only that logger is configured: the application keeps control of its own."""
    logger = logging.getLogger("data_bridge")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
