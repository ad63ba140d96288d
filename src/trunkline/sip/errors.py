"""Errors raised by the SIP core.

The tree, in one place::

    SipError                      base of everything the SIP core raises
    ├── SipParseError             bytes from the network are not a valid message;
    │   │                         carries the status to answer with (400, 413,
    │   │                         416, 420, 505, 513) and a precise reason
    │   └── SipFramingError       a stream transport cannot find the next message
    │                             boundary (bad Content-Length, oversize): close it
    └── LocalSipError             the local application asked for something invalid
                                  (a programming error, never caused by the peer)

Every entry point that takes bytes from the network either returns a parsed
object or raises :class:`SipParseError`; never any other exception (STYLE.md
habit 4; checked by the fuzz harness in ``tests/fuzz/``).
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of all SIP core errors."""


class SipParseError(SipError):
    """The peer sent something we cannot accept.

    ``status`` is the SIP status code to answer a request with (RFC 3261
    §21.4): 400 for syntax, 413 for an oversize body, 416 for an unsupported
    URI scheme, 420 for an unknown extension, 505 for a bad SIP version, 513
    for an oversize message. ``reason`` says exactly what was wrong and is
    safe to use as the reason phrase.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class SipFramingError(SipParseError):
    """A stream cannot be framed any further (RFC 3261 §18.3): close it."""


class LocalSipError(SipError):
    """The local application misused the API (not caused by the network)."""
