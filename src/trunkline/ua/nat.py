"""NAT traversal glue: STUN Binding (RFC 5389) over asyncio sockets.

:mod:`trunkline.ua.stun` is the sans-IO message and client transaction;
this module runs one :class:`~trunkline.ua.stun.BindingTransaction` over
a UDP socket the caller already has, so that the mapping learned is the
one of *that* socket (RFC 5389 §2: the reflexive address belongs to the
socket the request left from):

- :func:`run_binding` drives a transaction with any ``send`` function and a
  queue the caller fills with the STUN datagrams it receives; the phone's
  SIP socket (:class:`~trunkline.ua.phoneendpoint.PhoneEndpoint`) uses it for the
  Contact;
- :func:`discover_on_rtp` does it on a call's RTP socket before the media
  session takes the socket over, for the SDP ``c=``/``m=`` lines;
- :func:`discover` opens a socket of its own (a quick check of a server);
- :func:`parse_server` and :func:`resolve_server` read ``host[:port]``
  (default port 3478, §9) and resolve it once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from trunkline.media.transport import RtpTransport
from trunkline.ua.stun import BindingTransaction, TransactionState, is_stun

__all__ = [
    "STUN_PORT",
    "StunError",
    "discover",
    "discover_on_rtp",
    "parse_server",
    "resolve_server",
    "run_binding",
]

logger = logging.getLogger(__name__)

STUN_PORT = 3478
"""RFC 5389 §9: the default STUN port over UDP and TCP."""

Address = tuple[str, int]


class StunError(OSError):
    """The Binding transaction failed (timeout, error response, no address)."""


def parse_server(text: str) -> Address:
    """``host``, ``host:port``, ``[v6]:port`` or ``stun:host[:port]`` (RFC 7064) -> (host, port)."""
    value = text.strip()
    if value.lower().startswith("stun:"):
        value = value[5:]
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    if not host:
        raise ValueError(f"no host in STUN server {text!r}")
    try:
        number = int(port) if port else STUN_PORT
    except ValueError as exc:
        raise ValueError(f"bad port in STUN server {text!r}") from exc
    if not 0 < number < 65536:
        raise ValueError(f"bad port in STUN server {text!r}")
    return host, number


async def resolve_server(server: Address, *, ipv6: bool = False) -> Address:
    """The server's address in the family of our socket (one DNS lookup)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    infos = await loop.getaddrinfo(server[0], server[1], family=family, type=socket.SOCK_DGRAM)
    if not infos:
        raise StunError(f"cannot resolve STUN server {server[0]}")
    sockaddr = infos[0][4]
    return str(sockaddr[0]), int(sockaddr[1])


async def run_binding(
    send: Callable[[bytes], None],
    inbox: asyncio.Queue[bytes],
    *,
    rto: float = 0.5,
    rc: int = 7,
    rm: int = 16,
) -> Address:
    """Run one Binding transaction (§7.2.1); the reflexive (host, port) or :class:`StunError`.

    ``send`` transmits a datagram to the server from the socket being
    probed; ``inbox`` receives what that socket gets back (other datagrams
    are ignored by the transaction).
    """
    loop = asyncio.get_running_loop()
    txn = BindingTransaction(loop.time(), rto=rto, rc=rc, rm=rm)
    while True:
        for datagram in txn.datagrams_to_send():
            send(datagram)
        if txn.state is TransactionState.SUCCEEDED and txn.mapped is not None:
            return txn.mapped
        if txn.state is TransactionState.FAILED:
            raise StunError(txn.error or "STUN Binding failed")
        at = txn.get_timer()
        if at is None:  # pragma: no cover - a TRYING transaction always has a timer
            raise StunError("STUN transaction without a timer")
        try:
            data = await asyncio.wait_for(inbox.get(), max(at - loop.time(), 0.0))
        except TimeoutError:
            txn.handle_timer(loop.time())
            continue
        txn.handle_datagram(data, loop.time())


async def discover_on_rtp(
    transport: RtpTransport, server: Address, *, rto: float = 0.5, rc: int = 4, rm: int = 4
) -> Address:
    """The public mapping of ``transport``'s RTP socket, before media uses the socket.

    The defaults give up after 5.5 s (0, 0.5, 1.5, 3.5 s, then 4 RTOs): a
    call should not wait out the full 39.5 s of §7.2.1.
    """
    inbox: asyncio.Queue[bytes] = asyncio.Queue()

    def collect(data: bytes, _addr: Address) -> None:
        if is_stun(data):
            inbox.put_nowait(data)

    def ignore(_data: bytes, _addr: Address) -> None:
        return

    transport.set_handlers(collect, ignore)
    try:
        return await run_binding(
            lambda data: transport.send_rtp(data, server), inbox, rto=rto, rc=rc, rm=rm
        )
    finally:
        transport.set_handlers(ignore, ignore)


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, inbox: asyncio.Queue[bytes]) -> None:
        self.inbox = inbox

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if is_stun(data):
            self.inbox.put_nowait(data)


async def discover(
    server: Address,
    *,
    local: Address = ("0.0.0.0", 0),
    rto: float = 0.5,
    rc: int = 7,
    rm: int = 16,
) -> tuple[Address, Address]:
    """(local, mapped) of a fresh UDP socket bound at ``local``, probed at ``server``."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[bytes] = asyncio.Queue()
    family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Collector(inbox), local_addr=local, family=family
    )
    try:
        name = transport.get_extra_info("sockname")
        mapped = await run_binding(
            lambda data: transport.sendto(data, server), inbox, rto=rto, rc=rc, rm=rm
        )
        return (str(name[0]), int(name[1])), mapped
    finally:
        transport.close()
