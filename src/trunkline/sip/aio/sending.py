"""Sending and addressing for :class:`~trunkline.sip.aio.endpoint.SipEndpoint`.

The transport half of RFC 3261 §18: requests go to the next hop of §8.1.2
(located per RFC 3263 §4), switched from UDP to TCP above the MTU limit
(§18.1.1); responses go back over the request's connection when it is still
open, else by the Via rules of §18.2.2 (``received``/``rport``, RFC 3581 §4).
Also the addresses we name ourselves by: our Via (with ``rport``, RFC 3581
§3) and a Contact URI.

:class:`Sender` is a mixin of :class:`SipEndpoint`; its methods are the
endpoint's public sending API (``send_stateless``, ``prepare``, ``locate``...).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from trunkline.sip.aio.failover import TargetBlocklist
from trunkline.sip.aio.incoming import EndpointStats
from trunkline.sip.aio.routing import (
    Destination,
    choose_transport,
    is_ip_literal,
    next_hop,
    response_destination,
    uri_destination,
)
from trunkline.sip.aio.transport import (
    RELIABLE,
    Connection,
    TransportError,
    TransportLayer,
    is_ipv6,
)
from trunkline.sip.builder import new_branch
from trunkline.sip.dialog_table import DialogLayer
from trunkline.sip.dns import Locator
from trunkline.sip.errors import LocalSipError
from trunkline.sip.events import Peer, Transmit
from trunkline.sip.headers import Via
from trunkline.sip.message import Request, Response
from trunkline.sip.transaction import ServerTransaction
from trunkline.sip.transaction_table import TransactionLayer

__all__ = ["SECURE_TRANSPORTS", "Resolver", "Sender"]

logger = logging.getLogger("trunkline.sip.endpoint")

Resolver = Callable[[str, int], Awaitable[list[str]]]

#: Transports whose targets need a TLS server name (SNI, RFC 5922 §7).
SECURE_TRANSPORTS = frozenset({"TLS", "WSS"})


class Sender:
    """The endpoint's sending and addressing methods (a mixin of ``SipEndpoint``)."""

    loop: asyncio.AbstractEventLoop
    transport: TransportLayer
    transactions: TransactionLayer
    dialogs: DialogLayer | None
    stats: EndpointStats
    mtu_limit: int
    user_agent: str | None
    locator: Locator | None
    blocklist: TargetBlocklist
    _resolver: Resolver
    _server_names: dict[tuple[str, str, int], str]

    if TYPE_CHECKING:

        def pump(self) -> None: ...

        def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...

    def _transmit(self, transmit: Transmit) -> None:
        message = transmit.message
        peer = transmit.peer
        if isinstance(message, Response):
            self._send_response_message(message, peer)
            return
        if peer is None:  # the ACK of a 2xx: routed from the request itself (§13.2.2.4)
            destination = self.resolve_now(message)
            if destination is None:
                self._spawn(self.send_ack(message))
                return
            destination = self._prepare_now(message, destination, None, None)
            self._send_bytes(bytes(message), destination)
            return
        name = peer.transport.upper()
        server_name = (
            self._server_names.get((name, peer.host, peer.port))
            if name in SECURE_TRANSPORTS
            else None
        )
        self._send_bytes(
            bytes(message),
            Destination(name, peer.host, peer.port, server_name),
            request=message,
        )

    def _send_bytes(
        self,
        data: bytes,
        destination: Destination,
        *,
        request: Request | None = None,
        connection: Connection | None = None,
    ) -> None:
        """Send now when possible (UDP, open connection); else connect in a task."""
        name = destination.transport
        address = (destination.host, destination.port)
        try:
            if name == "UDP":
                self.transport.udp_socket_for(address).sendto(data, address)
                self.stats.sent += 1
                return
            conn = (
                connection
                if connection is not None and not connection.closed
                else (self.transport.lookup(name, address))
            )
            if conn is not None:
                conn.send(data)
                self.stats.sent += 1
                return
        except TransportError as exc:
            self._send_failed(request, str(exc))
            return
        self._spawn(self._connect_and_send(data, destination, request))

    async def _connect_and_send(
        self, data: bytes, destination: Destination, request: Request | None
    ) -> None:
        try:
            await self.transport.send(
                data,
                destination.transport,
                (destination.host, destination.port),
                server_name=destination.server_name,
            )
            self.stats.sent += 1
        except TransportError as exc:
            self._send_failed(request, str(exc))
            self.pump()

    def _send_failed(self, request: Request | None, reason: str) -> None:
        self.stats.transport_errors += 1
        logger.info("send failed: %s", reason)
        if request is None:
            return
        txn = self.transactions.find_client(request)
        if txn is not None:
            self.transactions.transport_error(txn, self.loop.time(), reason)

    def _send_response_message(self, response: Response, peer: Peer | None) -> None:
        """RFC 3261 §18.2.2: the request's connection if open, else the Via rules."""
        data = bytes(response)
        if peer is not None and peer.transport.upper() in RELIABLE:
            conn = self.transport.lookup(peer.transport, (peer.host, peer.port))
            if conn is not None:
                try:
                    conn.send(data)
                    self.stats.sent += 1
                    return
                except TransportError:
                    pass
        top = response.top_via
        if top is None:
            logger.info("response %d without Via dropped", response.status)
            return
        self._send_bytes(data, response_destination(top))

    def send_response(self, transaction: ServerTransaction, response: Response) -> None:
        """Answer through a server transaction (it retransmits as §17.2 says)."""
        if self.user_agent and "Server" not in response.headers:
            response.headers.add("Server", self.user_agent)
        self._respond(transaction, response, self.loop.time())
        self.pump()

    def _respond(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        self.transactions.send_response(transaction, response, now)
        if self.dialogs is not None:
            self.dialogs.response_sent(transaction.request, response, now, transaction.peer)

    def send_stateless(
        self,
        message: Request | Response,
        destination: Destination | None = None,
        *,
        connection: Connection | None = None,
    ) -> None:
        """Send without a transaction: a proxy's forwarded response (§16.7, §18.2.2)
        or a stateless request (a 2xx ACK, a stateless proxy's forward)."""
        if isinstance(message, Response) and destination is None and connection is None:
            self._send_response_message(message, None)
            return
        if destination is None:
            if connection is None:
                raise LocalSipError("a stateless request needs a destination or a connection")
            destination = Destination(connection.name, connection.peer[0], connection.peer[1])
        self._send_bytes(bytes(message), destination, connection=connection)

    def send_stateless_bytes(self, data: bytes, destination: Destination) -> None:
        """Send already rendered bytes (a re-sent ACK, a forwarded message)."""
        self._send_bytes(data, destination)

    # -- addressing -------------------------------------------------------------------
    def via_for(self, transport: str, *, ipv6: bool = False, branch: str | None = None) -> Via:
        """Our Via for a request sent over ``transport`` (with ``rport``, RFC 3581 §3)."""
        listener = self.transport.listener_for(transport, ipv6) or self.transport.listener_for(
            "UDP", ipv6
        )
        if listener is None:
            raise LocalSipError(f"no {transport} listener to name in Via")
        host = listener.host
        if host in ("0.0.0.0", "::"):
            host = "::1" if ipv6 else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        params: dict[str, str | None] = {"branch": branch or new_branch(), "rport": None}
        return Via(transport.upper(), host, listener.port, params)

    def contact_uri(
        self, transport: str = "UDP", *, user: str | None = None, ipv6: bool = False
    ) -> str:
        """A Contact URI naming one of our listeners."""
        listener = self.transport.listener_for(transport, ipv6)
        if listener is None:
            raise LocalSipError(f"no {transport} listener for a Contact")
        host = listener.host
        if ":" in host:
            host = f"[{host}]"
        userpart = f"{user}@" if user else ""
        scheme = "sips" if transport.upper() in ("TLS", "WSS") else "sip"
        param = "" if transport.upper() == "UDP" else f";transport={transport.lower()}"
        return f"{scheme}:{userpart}{host}:{listener.port}{param}"

    def resolve_now(self, request: Request) -> Destination | None:
        """The next hop of ``request`` (§8.1.2) when no DNS is needed, else None."""
        uri = next_hop(request)
        transport = choose_transport(uri, request.wire_size() + 80, mtu_limit=self.mtu_limit)
        dest = uri_destination(uri, transport)
        return dest if is_ip_literal(dest.host) else None

    async def resolve(self, request: Request) -> Destination:
        """The next hop of ``request`` (§8.1.2) as one transport and address: the first
        of :meth:`locate`."""
        return (await self.locate(request))[0]

    async def locate(self, request: Request) -> list[Destination]:
        """Every destination to try for ``request``, best first (RFC 3263 §4).

        An IP literal next hop gives one destination; a name goes through the
        :attr:`locator` (NAPTR/SRV/A) or, without one, A/AAAA lookups. Targets
        blocked by a 503's Retry-After (:attr:`blocklist`) are left out; raises
        :class:`TransportError` when nothing is left.
        """
        dest = self.resolve_now(request)
        if dest is not None:
            return [dest]
        uri = next_hop(request)
        if self.locator is not None:
            targets = await self.locator.locate(uri)
            found = [
                Destination(t.transport.upper(), t.address, t.port, server_name=t.domain)
                for t in targets
            ]
        else:
            transport = choose_transport(uri, request.wire_size() + 80, mtu_limit=self.mtu_limit)
            dest = uri_destination(uri, transport)
            addresses = await self._resolver(dest.host, dest.port)
            found = [
                Destination(transport, address, dest.port, server_name=dest.server_name)
                for address in dict.fromkeys(addresses)
            ]
        if not found:
            raise TransportError(f"cannot locate {uri}")
        usable = self.blocklist.usable(found, self.loop.time())
        if not usable:
            raise TransportError(f"every server for {uri} asked us to wait (503 Retry-After)")
        return usable

    async def _getaddrinfo(self, host: str, port: int) -> list[str]:
        infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        return [str(info[4][0]) for info in infos]

    async def prepare(
        self,
        request: Request,
        destination: Destination | None = None,
        *,
        connection: Connection | None = None,
        add_via: bool | None = None,
    ) -> Destination:
        """Pick the destination, add our Via, apply the §18.1.1 MTU rule."""
        if connection is not None and destination is None:
            destination = Destination(connection.name, connection.peer[0], connection.peer[1])
        if destination is None:
            destination = await self.resolve(request)
        return self._prepare_now(request, destination, connection, add_via)

    def _prepare_now(
        self,
        request: Request,
        destination: Destination,
        connection: Connection | None,
        add_via: bool | None,
    ) -> Destination:
        if add_via is None:
            add_via = not request.headers.get("Via")
        if add_via:
            via = self.via_for(destination.transport, ipv6=is_ipv6(destination.host))
            request.headers.prepend("Via", str(via))
        if self.user_agent and "User-Agent" not in request.headers:
            request.headers.add("User-Agent", self.user_agent)
        if (
            destination.transport == "UDP"
            and connection is None
            and len(bytes(request)) > self.mtu_limit
        ):
            destination = Destination(
                "TCP", destination.host, destination.port, destination.server_name
            )
            if add_via:
                top = request.via[0]
                tcp = Via("TCP", top.host, top.port, dict(top.params), top.protocol)
                request.via = [tcp, *request.via[1:]]
        return destination

    async def send_ack(
        self, ack: Request, destination: Destination | None = None, *, add_via: bool | None = None
    ) -> Destination:
        """Send the ACK of a 2xx, outside any transaction (§13.2.2.4)."""
        destination = await self.prepare(ack, destination, add_via=add_via)
        self._send_bytes(bytes(ack), destination)
        return destination
