"""The phone's SIP endpoint: its CANCEL hook and STUN on the SIP socket.

:class:`PhoneEndpoint` is the :class:`~trunkline.sip.aio.endpoint.SipEndpoint`
a :class:`~trunkline.ua.phone.Phone` runs on: it tells the phone when a
caller's CANCEL ended a ringing call (RFC 3261 §9.2), and it shares its UDP
SIP socket with STUN (RFC 5389) to learn the socket's public address.
:func:`local_address_for` is the local IP the kernel would use to reach a host.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint, Source
from trunkline.sip.transaction import ServerTransaction
from trunkline.ua.nat import run_binding
from trunkline.ua.stun import is_stun

__all__ = ["PhoneEndpoint", "local_address_for"]


class PhoneEndpoint(SipEndpoint):
    """A :class:`SipEndpoint` that reports a caller's CANCEL as it is handled.

    It keeps the UA behaviour of RFC 3261 §9.2 (200 to the CANCEL, 487 to the
    INVITE, both from :meth:`SipEndpoint.handle_cancel`, the endpoint's public
    CANCEL hook) and then calls :attr:`on_cancelled` with the cancelled
    INVITE's :class:`IncomingRequest`, so a ringing call ends at once.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_cancelled: Callable[[IncomingRequest], None] | None = None
        self._stun_inbox: asyncio.Queue[bytes] | None = None

    def on_foreign_datagram(self, data: bytes, source: Source) -> bool:
        # STUN and SIP share the UDP socket while we probe it (RFC 5389 §6 demultiplexing:
        # a STUN message starts with two zero bits and carries the magic cookie).
        if self._stun_inbox is not None and is_stun(data):
            self._stun_inbox.put_nowait(data)
            return True
        return False

    async def discover_public_address(
        self, server: tuple[str, int], *, local: tuple[str, int] | None = None
    ) -> tuple[str, int]:
        """The public (host, port) of our UDP SIP socket at ``local``, by STUN Binding.

        Four requests (0, 0.5, 1.5, 3.5 s), failure at 5.5 s: a phone that starts
        should not wait out the 39.5 s of RFC 5389 §7.2.1 for a dead server.
        """
        sock = self.transport.udp_socket_for(server, local)
        inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._stun_inbox = inbox
        try:
            return await run_binding(lambda data: sock.sendto(data, server), inbox, rc=4, rm=4)
        finally:
            self._stun_inbox = None

    def handle_cancel(self, cancel: IncomingRequest, invite: ServerTransaction | None) -> None:
        incoming = self.incoming_for(invite) if invite is not None else None
        super().handle_cancel(cancel, invite)
        if incoming is not None and incoming.cancelled and self.on_cancelled is not None:
            self.on_cancelled(incoming)


def local_address_for(remote_host: str) -> str:
    """The local IP the kernel would use to reach ``remote_host`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in remote_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((remote_host.strip("[]"), 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"
