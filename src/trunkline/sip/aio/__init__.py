"""asyncio edge of the SIP stack: transports, tracing and the :class:`SipEndpoint`.

Everything here owns sockets, tasks or the clock; the protocol logic lives
in the sans-IO core (:mod:`trunkline.sip`).
"""

from __future__ import annotations

from trunkline.sip.aio import websocket as _websocket  # registers WS and WSS
from trunkline.sip.aio.trace import disable_sip_trace, enable_sip_trace
from trunkline.sip.aio.transport import (
    Connection,
    Inbound,
    Listener,
    TransportError,
    TransportLayer,
)

__all__ = [
    "Connection",
    "Inbound",
    "Listener",
    "TransportError",
    "TransportLayer",
    "disable_sip_trace",
    "enable_sip_trace",
]

del _websocket
