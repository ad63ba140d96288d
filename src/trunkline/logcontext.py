"""The Call-ID of the message being handled, on every log line (STYLE.md habit 12).

The SIP endpoint sets :data:`call_id` where it dispatches a received message;
asyncio copies the context into every task created from there, so whatever
the handling of that message logs (router, registrar, forwarder, tasks it
spawns) carries the Call-ID without passing it around::

    from trunkline import logcontext

    token = logcontext.call_id.set(message.call_id)
    try:
        handle(message)
    finally:
        logcontext.call_id.reset(token)

:class:`CallIdFilter` (on a handler) or :func:`install` (on every record the
process creates) put the value on the record as ``record.call_id``, so a
format string can say ``%(call_id)s``. Outside any message it is ``"-"``.
Setting a ContextVar costs well under a microsecond; nothing is formatted
unless a record is actually emitted (habit 8).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

__all__ = [
    "NO_CALL_ID",
    "CallIdFilter",
    "bound",
    "call_id",
    "install",
    "printable",
    "uninstall",
]

NO_CALL_ID = "-"

call_id: ContextVar[str] = ContextVar("trunkline_call_id", default=NO_CALL_ID)
"""The Call-ID of the SIP message this task is handling (``"-"`` when none)."""


@contextlib.contextmanager
def bound(value: str | None) -> Iterator[None]:
    """Set :data:`call_id` to ``value`` for the duration of a ``with`` block."""
    token = call_id.set(value or NO_CALL_ID)
    try:
        yield
    finally:
        call_id.reset(token)


def printable(value: str) -> str:
    """``value`` as one token for a log line: spaces and control characters escaped.

    A Call-ID comes from the network; escaping keeps a crafted one from
    forging what a fail2ban filter reads after it.
    """
    if value.isprintable() and " " not in value:
        return value
    return value.encode("unicode_escape").decode("ascii").replace(" ", "\\x20")


class CallIdFilter(logging.Filter):
    """Puts ``record.call_id`` on every record passing through (never drops one).

    A record that already has a ``call_id`` (set with ``extra=`` or by
    :func:`install`) keeps it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_id"):
            record.call_id = printable(call_id.get())
        return True


_previous_factory: Callable[..., logging.LogRecord] | None = None


def install() -> None:
    """Stamp ``call_id`` on every record created in this process (idempotent).

    Wraps the log record factory, so records from any logger (ours, asyncio,
    libraries) have the attribute and no handler's format string can fail
    on ``%(call_id)s``.
    """
    global _previous_factory
    if _previous_factory is not None:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.call_id = printable(call_id.get())
        return record

    _previous_factory = previous
    logging.setLogRecordFactory(factory)


def uninstall() -> None:
    """Undo :func:`install` (tests)."""
    global _previous_factory
    if _previous_factory is not None:
        logging.setLogRecordFactory(_previous_factory)
        _previous_factory = None
