"""asyncio SIP transports: UDP, TCP and TLS (RFC 3261 §18), WS/WSS via :mod:`.websocket`.

The transport layer moves bytes, never parsed messages: it hands every
complete SIP message (one datagram, or one Content-Length framed message of a
stream, RFC 3261 §18.3) to its ``on_message`` callback as an :class:`Inbound`
with the transport name, the peer's source address and, for connection
oriented transports, the :class:`Connection` it came on.

What it does, and where the RFCs ask for it:

- listens and connects on IPv4 and IPv6 for every transport in
  :data:`CONNECTION_FACTORIES` (a registry by name, STYLE.md habit 6);
- reuses connections keyed by ``(transport, host, port)``; inbound connections
  are registered under the peer's source address so requests back to a client
  behind NAT, or to a browser whose Contact host is ``.invalid``, use the
  connection the client opened (RFC 3261 §18.2.2, RFC 5626 §5.3, RFC 7118 §5);
- closes connections idle for longer than ``idle_timeout``;
- answers CRLF CRLF keep-alive pings with a CRLF pong and sends pings on the
  connections it opened when ``keepalive_interval`` is set, closing the flow
  when no pong arrives in time (RFC 5626 §4.4.1);
- closes a stream whose framing is lost (bad Content-Length, oversize) as
  RFC 3261 §18.3 asks.

Choosing *where* a message goes (§18.1.1 MTU switch, §18.2.2 response
routing, Via ``received``/``rport``) is the endpoint's job
(:mod:`trunkline.sip.aio.endpoint`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from trunkline.sip.aio.tls import client_ssl_context
from trunkline.sip.aio.trace import Address, format_address, trace_message
from trunkline.sip.errors import SipFramingError
from trunkline.sip.framer import KEEPALIVE_PING, KEEPALIVE_PONG, StreamFramer

logger = logging.getLogger("trunkline.sip.transport")

RELIABLE = frozenset({"TCP", "TLS", "WS", "WSS"})
SECURE = frozenset({"TLS", "WSS"})
DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "WS": 80, "WSS": 443}
#: RFC 5626 §4.4.1: a pong must arrive within 10 seconds of the ping.
PONG_TIMEOUT = 10.0
PING = b"\r\n\r\n"
#: Socket buffer size asked for UDP sockets (the kernel may cap it at rmem_max).
UDP_BUFFER = 4 * 1024 * 1024
PONG = b"\r\n"


def normalize_host(host: str) -> str:
    """A host as a connection-table key: IPv6 without brackets, lower case."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.lower()


def is_ipv6(host: str) -> bool:
    """True for an IPv6 literal (with or without brackets); host names have no colon."""
    return ":" in host


def _address(raw: object) -> Address:
    """``(host, port)`` from a socket address (IPv6 ones have four fields)."""
    if isinstance(raw, tuple) and len(raw) >= 2:
        return (str(raw[0]), int(raw[1]))
    return ("", 0)


@dataclass(frozen=True, slots=True)
class Inbound:
    """One SIP message as it arrived (bytes, not yet parsed)."""

    data: bytes
    transport: str
    peer: Address
    local: Address
    connection: Connection | None


@dataclass(frozen=True, slots=True)
class Listener:
    """A bound socket accepting messages: UDP socket or stream server."""

    transport: str
    host: str
    port: int

    @property
    def address(self) -> Address:
        return (self.host, self.port)


class TransportError(OSError):
    """A message could not be sent (no route, connection refused, TLS failure)."""


class ConnectionFactory(Protocol):
    """Builds the asyncio protocol object for one stream connection."""

    def __call__(
        self, layer: TransportLayer, name: str, *, outbound: bool, server_name: str | None
    ) -> Connection: ...


class Connection(asyncio.Protocol):
    """One stream connection (TCP or TLS; WS/WSS subclass it).

    Messages are framed with the SIP core's :class:`StreamFramer`; keep-alive
    pings are answered here, so the endpoint only ever sees SIP messages.
    """

    def __init__(
        self,
        layer: TransportLayer,
        name: str,
        *,
        outbound: bool,
        server_name: str | None = None,
    ) -> None:
        self.layer = layer
        self.name = name
        self.outbound = outbound
        self.server_name = server_name
        self.peer: Address = ("", 0)
        self.local: Address = ("", 0)
        self.last_activity = layer.loop.time()
        self.ping_sent_at: float | None = None
        self.closed = False
        self.ready: asyncio.Future[None] = layer.loop.create_future()
        self.lost: asyncio.Future[None] = layer.loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._framer = StreamFramer(max_message=layer.max_message)

    def __repr__(self) -> str:
        direction = "out" if self.outbound else "in"
        return f"<{self.name} {direction} {format_address(self.peer)}>"

    # asyncio.Protocol -----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self.peer = _address(transport.get_extra_info("peername"))
        self.local = _address(transport.get_extra_info("sockname"))
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.layer._register(self)
        self.on_open()

    def on_open(self) -> None:
        """The byte stream is up; plain SIP streams are ready at once."""
        if not self.ready.done():
            self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.ready.done():
            self.ready.set_exception(
                TransportError(f"{self.name} connection to {format_address(self.peer)} lost")
            )
        self.layer._unregister(self)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.layer.loop.time()
        self.feed_stream(data)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    # framing --------------------------------------------------------------------
    def feed_stream(self, data: bytes) -> None:
        """Frame SIP messages out of stream bytes and deliver them."""
        try:
            items = self._framer.feed(data)
        except SipFramingError as exc:
            logger.warning("%r: framing lost (%s); closing", self, exc.reason)
            self.close()
            return
        for item in items:
            if item is KEEPALIVE_PING:
                self.write_raw(PONG)
            elif item is KEEPALIVE_PONG:
                self.ping_sent_at = None
            else:
                self.deliver(item)

    def deliver(self, message: bytes) -> None:
        trace_message(False, self.name, self.peer, message)
        self.layer._deliver(Inbound(message, self.name, self.peer, self.local, self))

    # sending --------------------------------------------------------------------
    def write_raw(self, data: bytes) -> None:
        """Write bytes on the underlying stream (no SIP framing)."""
        if self._transport is None or self.closed or self._transport.is_closing():
            raise TransportError(f"{self!r} is closed")
        self._transport.write(data)

    def send(self, data: bytes) -> None:
        """Send one complete SIP message."""
        self.write_raw(data)
        self.last_activity = self.layer.loop.time()
        trace_message(True, self.name, self.peer, data)

    def ping(self) -> None:
        """Send a CRLF CRLF keep-alive ping (RFC 5626 §4.4.1)."""
        self.ping_sent_at = self.layer.loop.time()
        self.write_raw(PING)

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self.closed = True

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self.closed = True


class UdpSocket(asyncio.DatagramProtocol):
    """One bound UDP socket; every datagram is one SIP message (§18.3)."""

    def __init__(self, layer: TransportLayer) -> None:
        self.layer = layer
        self.local: Address = ("", 0)
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.local = _address(transport.get_extra_info("sockname"))
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Bursts of requests must not overflow the default (~200 kB) kernel queue.
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, UDP_BUFFER)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if not data.strip(b"\r\n\x00 "):
            return  # a bare CRLF keep-alive datagram
        peer = _address(addr)
        layer = self.layer
        steer = layer.steer_datagram
        if steer is not None and steer(data, peer, self.local):
            return  # another process of the shared port takes it
        layer.deliver_datagram(data, peer, self.local)

    def error_received(self, exc: Exception) -> None:
        logger.debug("UDP %s: %s", format_address(self.local), exc)

    def sendto(self, data: bytes, peer: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            raise TransportError(f"UDP socket {format_address(self.local)} is closed")
        self._transport.sendto(data, (normalize_host(peer[0]), peer[1]))
        trace_message(True, "UDP", peer, data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


#: Stream transports by name (WS and WSS register themselves from .websocket).
CONNECTION_FACTORIES: dict[str, ConnectionFactory] = {"TCP": Connection, "TLS": Connection}


class TransportLayer:
    """All sockets of one SIP endpoint and its connection table."""

    def __init__(
        self,
        on_message: Callable[[Inbound], None],
        *,
        idle_timeout: float = 300.0,
        keepalive_interval: float | None = None,
        client_ssl: ssl.SSLContext | None = None,
        max_message: int = 65536,
        on_connection_closed: Callable[[Connection], None] | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.on_message = on_message
        self.on_connection_closed = on_connection_closed
        self.idle_timeout = idle_timeout
        self.keepalive_interval = keepalive_interval
        self.client_ssl = client_ssl
        self.max_message = max_message
        self.listeners: list[Listener] = []
        self._udp: dict[Address, UdpSocket] = {}
        self._servers: list[asyncio.Server] = []
        self._server_ssl: dict[str, ssl.SSLContext] = {}
        self._connections: dict[tuple[str, str, int], Connection] = {}
        self._connecting: dict[tuple[str, str, int], asyncio.Future[Connection]] = {}
        self._all: set[Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closing = False
        self.steer_datagram: Callable[[bytes, Address, Address], bool] | None = None
        """Looks at each UDP datagram first: ``steer(data, peer, local)`` returns True
        when it took the datagram elsewhere (proxy workers, :mod:`trunkline.proxy.handoff`)."""

    # listening ------------------------------------------------------------------
    async def listen(
        self,
        transport: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
    ) -> Listener:
        """Bind ``transport`` on ``host:port`` (port 0 picks one); returns the bound address.

        ``reuse_port`` sets ``SO_REUSEPORT`` so several processes (proxy workers)
        share the port, the kernel spreading datagrams and connections over them.
        """
        name = transport.upper()
        bind_host = normalize_host(host)
        if name == "UDP":
            _, proto = await self.loop.create_datagram_endpoint(
                lambda: UdpSocket(self), local_addr=(bind_host, port), reuse_port=reuse_port or None
            )
            listener = Listener("UDP", bind_host, proto.local[1])
            self._udp[(bind_host, listener.port)] = proto
        else:
            factory = CONNECTION_FACTORIES.get(name)
            if factory is None:
                raise ValueError(f"unknown SIP transport {transport!r}")
            if name in SECURE and ssl_context is None:
                raise ValueError(f"{name} needs a server ssl_context")
            server = await self.loop.create_server(
                lambda: factory(self, name, outbound=False, server_name=None),
                bind_host,
                port,
                ssl=ssl_context,
                reuse_address=True,
                reuse_port=reuse_port or None,
            )
            bound = _address(server.sockets[0].getsockname())
            listener = Listener(name, bind_host, bound[1])
            self._servers.append(server)
        self.listeners.append(listener)
        self._arm_sweeper()
        logger.info("listening on %s %s", name, format_address(listener.address))
        return listener

    def listener_for(self, transport: str, ipv6: bool = False) -> Listener | None:
        """The first listener of ``transport`` in the given address family."""
        name = transport.upper()
        for listener in self.listeners:
            if listener.transport == name and is_ipv6(listener.host) == ipv6:
                return listener
        for listener in self.listeners:
            if listener.transport == name:
                return listener
        return None

    # the connection table ---------------------------------------------------------
    def lookup(self, transport: str, peer: Address) -> Connection | None:
        """An open connection to ``peer`` over ``transport``, if there is one."""
        conn = self._connections.get((transport.upper(), normalize_host(peer[0]), peer[1]))
        if conn is not None and conn.closed:
            return None
        return conn

    @property
    def connections(self) -> list[Connection]:
        return [c for c in self._all if not c.closed]

    def _register(self, conn: Connection) -> None:
        self._all.add(conn)
        key = (conn.name, normalize_host(conn.peer[0]), conn.peer[1])
        self._connections[key] = conn

    def _unregister(self, conn: Connection) -> None:
        self._all.discard(conn)
        key = (conn.name, normalize_host(conn.peer[0]), conn.peer[1])
        if self._connections.get(key) is conn:
            del self._connections[key]
        if self.on_connection_closed is not None and not self._closing:
            self.on_connection_closed(conn)

    def _deliver(self, inbound: Inbound) -> None:
        try:
            self.on_message(inbound)
        except Exception:  # one bad message must not kill the socket
            logger.exception("error handling a message from %s", format_address(inbound.peer))

    def deliver_datagram(self, data: bytes, peer: Address, local: Address) -> None:
        """Deliver a UDP datagram received on ``local`` from ``peer``: by this process's
        socket, or by another process of the shared port (then never steered again)."""
        trace_message(False, "UDP", peer, data)
        self._deliver(Inbound(data, "UDP", peer, local, None))

    async def connect(
        self, transport: str, peer: Address, *, server_name: str | None = None
    ) -> Connection:
        """An open connection to ``peer``: reused when one exists, else opened."""
        name = transport.upper()
        host = normalize_host(peer[0])
        key = (name, host, peer[1])
        existing = self.lookup(name, (host, peer[1]))
        if existing is not None:
            return existing
        pending = self._connecting.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        factory = CONNECTION_FACTORIES.get(name)
        if factory is None:
            raise ValueError(f"unknown SIP transport {transport!r}")
        future: asyncio.Future[Connection] = self.loop.create_future()
        self._connecting[key] = future
        try:
            conn = await self._open(factory, name, host, peer[1], server_name)
        except BaseException as exc:
            future.set_exception(
                exc if isinstance(exc, Exception) else TransportError("connect cancelled")
            )
            future.exception()  # mark retrieved
            raise
        else:
            future.set_result(conn)
            return conn
        finally:
            del self._connecting[key]

    async def _open(
        self, factory: ConnectionFactory, name: str, host: str, port: int, server_name: str | None
    ) -> Connection:
        context: ssl.SSLContext | None = None
        if name in SECURE:
            context = self.client_ssl if self.client_ssl is not None else client_ssl_context()
        conn = factory(self, name, outbound=True, server_name=server_name or host)
        try:
            await self.loop.create_connection(
                lambda: conn,
                host,
                port,
                ssl=context,
                server_hostname=(server_name or host) if context is not None else None,
            )
            await asyncio.wait_for(asyncio.shield(conn.ready), 32.0)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            conn.abort()
            raise TransportError(
                f"{name} connect to {format_address((host, port))}: {exc}"
            ) from exc
        self._arm_sweeper()
        return conn

    # sending ----------------------------------------------------------------------
    async def send(
        self,
        data: bytes,
        transport: str,
        peer: Address,
        *,
        connection: Connection | None = None,
        server_name: str | None = None,
        local: Address | None = None,
    ) -> Connection | None:
        """Send one message; returns the connection used (None for UDP).

        A given open ``connection`` is used as is; otherwise one to ``peer`` is
        reused or opened.
        """
        name = transport.upper()
        if name == "UDP":
            self.udp_socket_for(peer, local).sendto(data, peer)
            return None
        if connection is None or connection.closed:
            connection = await self.connect(name, peer, server_name=server_name)
        connection.send(data)
        return connection

    def udp_socket_for(self, peer: Address, local: Address | None = None) -> UdpSocket:
        """The UDP socket to send from: the one at ``local``, else one of peer's family."""
        if local is not None:
            found = self._udp.get((normalize_host(local[0]), local[1]))
            if found is not None:
                return found
        want_v6 = is_ipv6(peer[0])
        for (host, _), sock in self._udp.items():
            if is_ipv6(host) == want_v6:
                return sock
        raise TransportError(f"no UDP socket for {format_address(peer)}")

    # idle timeouts and keep-alives ------------------------------------------------------
    def _arm_sweeper(self) -> None:
        if self._sweeper is None and not self._closing:
            period = min(self.idle_timeout / 4, self.keepalive_interval or 30.0, 30.0)
            self._sweeper = self.loop.call_later(max(period, 0.05), self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self.loop.time()
        for conn in list(self._all):
            if conn.closed:
                continue
            if now - conn.last_activity > self.idle_timeout:
                logger.info("%r idle for %.0f s; closing", conn, now - conn.last_activity)
                conn.close()
            elif conn.ping_sent_at is not None and now - conn.ping_sent_at > PONG_TIMEOUT:
                logger.info("%r: no keep-alive pong; closing the flow", conn)
                conn.close()
            elif (
                self.keepalive_interval is not None
                and conn.outbound
                and conn.ping_sent_at is None
                and now - conn.last_activity >= self.keepalive_interval
            ):
                with contextlib.suppress(TransportError):
                    conn.ping()
        self._arm_sweeper()

    async def close(self) -> None:
        """Close every socket and connection."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for server in self._servers:
            server.close()
        open_connections = list(self._all)
        for conn in open_connections:
            conn.close()
        for sock in self._udp.values():
            sock.close()
        waiting = [c.lost for c in open_connections if not c.lost.done()]
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=1.0)
            if late:
                for conn in open_connections:
                    if not conn.lost.done():
                        conn.abort()
                await asyncio.wait(late, timeout=1.0)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self._servers.clear()
        self._udp.clear()
        self._all.clear()
        self._connections.clear()
        await asyncio.sleep(0)
