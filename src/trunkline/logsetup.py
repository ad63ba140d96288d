"""The ``[logging]`` section applied to the process: level, format (text or JSON), file.

Every line carries the Call-ID of the SIP message being handled
(:mod:`trunkline.logcontext`, ``-`` outside one), so ``grep`` on a Call-ID
shows a call's whole story, and fail2ban can match the source addresses the
anti-flood logs.

- ``text``: ``2026-11-27 16:20:01,123 INFO trunkline.proxy.server [a84b4c76e6]: ...``
- ``json``: one object per line with ``time`` (ISO 8601, UTC), ``level``,
  ``logger``, ``call_id``, ``pid`` (the worker process), ``message`` and, on
  errors, ``exception``: for log shippers (Loki, Elasticsearch, journald).

``file``: lines are appended to that file instead of stderr, through a
:class:`logging.handlers.WatchedFileHandler`, so ``logrotate`` may move the
file away (the next line reopens it). Several worker processes append to
the same file; each line is one ``write`` in append mode.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import TextIO

from trunkline import logcontext

__all__ = ["TEXT_FORMAT", "JsonFormatter", "configure_logging", "text_formatter"]

_installed: logging.Handler | None = None

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(call_id)s]: %(message)s"


def text_formatter() -> logging.Formatter:
    """The human-readable line format (with the Call-ID in brackets)."""
    return logging.Formatter(TEXT_FORMAT)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "call_id": getattr(record, "call_id", logcontext.NO_CALL_ID),
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def configure_logging(
    level: str = "info",
    format: str = "text",
    file: Path | None = None,
    *,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Set up the root logger once for ``trunkline serve``; returns the handler installed.

    Replaces the handler a previous call installed (so calling it again reconfigures),
    and stamps the Call-ID on every record (:func:`trunkline.logcontext.install`).
    ``stream`` is where lines go without ``file`` (stderr by default).
    """
    logcontext.install()
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else text_formatter())
    handler.addFilter(logcontext.CallIdFilter())  # records made before install() too
    global _installed
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
        _installed.close()
    _installed = handler
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    return handler
