"""Logging of the ``callscript`` loggers: text lines, or one JSON object per line.

JSON entries carry ``call_id``, ``user`` and ``script_version`` as fields of their own when
the engine logged them (``extra={...}``), so a log store can filter by call or user.
"""

from __future__ import annotations

import json
import logging
import sys

_FIELDS = ("call_id", "user", "script_version")


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name}
        entry["message"] = record.getMessage()
        for field in _FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(json_lines: bool, verbose: bool) -> None:
    """Log the ``callscript`` loggers to stderr (JSON lines when ``json_lines``)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("callscript")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
