"""asyncio edge of the SIP stack: transports, tracing and the :class:`SipEndpoint`.

Everything here owns sockets, tasks or the clock; the protocol logic lives
in the sans-IO core (:mod:`trunkline.sip`).
"""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType

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
    "new_event_loop",
]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop event loop when uvloop is installed, else the stdlib one.

    Use as ``asyncio.Runner(loop_factory=new_event_loop)`` or
    ``asyncio.run(main(), loop_factory=...)`` (Python 3.12+).
    """
    if _uvloop is None:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = _uvloop.new_event_loop()
    return loop


del _websocket


def _import_uvloop() -> ModuleType | None:
    try:
        return importlib.import_module("uvloop")
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return None


_uvloop = _import_uvloop()
