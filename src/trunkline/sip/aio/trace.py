"""SIP message tracing: every message as sent and received (``--sip-trace``).

The transports call :func:`trace_message` for every SIP message they put on
or take off the wire. Each record is one log entry on the
``trunkline.sip.trace`` logger at DEBUG level: a header line with the
direction, transport and peer address, then the full message::

    [TX] UDP -> 127.0.0.1:5060
    INVITE sip:bob@127.0.0.1 SIP/2.0
    ...

Nothing is formatted unless the logger is enabled (STYLE.md habit 8): the
hot path pays one ``isEnabledFor`` check per message.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

logger = logging.getLogger("trunkline.sip.trace")

Address = tuple[str, int]


def format_address(address: Address) -> str:
    """``host:port``, with IPv6 hosts in brackets (RFC 3986 §3.2.2)."""
    host, port = address
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def trace_message(outgoing: bool, transport: str, peer: Address, data: bytes) -> None:
    """Log one SIP message as sent (``outgoing``) or received."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    arrow = "->" if outgoing else "<-"
    tag = "TX" if outgoing else "RX"
    text = data.decode("utf-8", errors="replace")
    logger.debug("[%s] %s %s %s\n%s", tag, transport, arrow, format_address(peer), text)


def enable_sip_trace(stream: TextIO | None = None) -> logging.Handler:
    """Turn tracing on, printing bare messages to ``stream`` (stderr by default).

    Returns the handler so the caller can remove it again.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return handler


def disable_sip_trace(handler: logging.Handler) -> None:
    """Undo :func:`enable_sip_trace`."""
    logger.removeHandler(handler)
    if not logger.handlers:
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
