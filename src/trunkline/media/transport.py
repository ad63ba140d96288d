"""The asyncio UDP sockets of one RTP session.

RTP goes to an even port and RTCP to the next odd one (RFC 3550 §11), or
both share the RTP port when rtcp-mux is negotiated (RFC 5761 §4; the
demultiplexing rule lives in :func:`trunkline.rtp.packet.is_rtcp`). The RTCP
socket is opened in both cases so that a re-negotiation that drops rtcp-mux
does not need a new port.

This is the only place in the media engine that owns sockets; everything it
receives is handed to callbacks together with the sender's address, which
the session uses for symmetric RTP (RFC 4961).

RTP is sent with ``sendto`` on the socket itself: the event loop's
``DatagramTransport.sendto`` re-validates and converts the address on every
call, which on the media clock's per-packet path cost about a fifth of the
system call (measured with uvloop, 100 sockets). When the socket buffer is
full the datagram goes through the transport, which queues it, and so do
the following ones until that queue has drained, so order is kept.

The media clock's per-packet path calls :attr:`RtpTransport.send_rtp_fast`:
the socket's own ``sendto`` (a C call, no Python frame) while nothing is
queued, :meth:`RtpTransport.send_rtp` otherwise. It may raise ``OSError``;
the caller hands that to :meth:`RtpTransport.send_rtp_failed`, which queues
the datagram or counts the error exactly as ``send_rtp`` does.

Once the session has latched onto its peer (RFC 4961) it may *connect* the RTP
socket to it (:meth:`RtpTransport.connect_rtp`): then
:attr:`RtpTransport.send_rtp_connected` is the socket's ``send``, which skips
the address conversion and the kernel's per-datagram route lookup (about
1.5-2 us of the ~12 us a send plus its receive cost with 600 sockets on
uvloop, measured). A connected UDP socket only receives from its peer: the
kernel drops datagrams from other addresses, which the session would have
dropped as foreign anyway. To let another source take over (a NAT rebinding)
the session disconnects again (:meth:`RtpTransport.disconnect_rtp`,
``connect()`` with ``AF_UNSPEC``, RFC-less but POSIX and Linux behaviour;
through ctypes, since Python's ``connect`` cannot pass ``AF_UNSPEC`` on an
``AF_INET`` socket). Only sockets bound to an explicit port are connected:
disconnecting a socket whose port the kernel chose would unbind it. Elsewhere
than Linux the socket is never connected.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import random
import socket
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["Address", "DatagramHandler", "RtpTransport"]

log = logging.getLogger(__name__)

Address = tuple[str, int]
DatagramHandler = Callable[[bytes, Address], None]
DatagramSender = Callable[[bytes, Address], Any]
ConnectedSender = Callable[[bytes], Any]

DEFAULT_PORT_RANGE = (20000, 60000)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors = 0
        self.set_handler(_ignore)

    def set_handler(self, handler: DatagramHandler) -> None:
        # The event loop looks ``datagram_received`` up on every datagram
        # (asyncio and uvloop alike): binding the handler itself there saves
        # a Python call per packet on the media hot path.
        self.datagram_received = handler  # type: ignore[method-assign,assignment]

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that is not listening yet: harmless.
        self.errors += 1
        log.debug("media socket error: %s", exc)


def _write_buffer_size(transport: asyncio.BaseTransport) -> int:
    """Bytes queued in a datagram transport (asyncio and uvloop both have the method,
    the typing stubs do not declare it on ``DatagramTransport``)."""
    size = getattr(transport, "get_write_buffer_size", None)
    return int(size()) if size is not None else 0


def _ignore(data: bytes, addr: Address) -> None:
    """Default handler: drop the datagram."""


_SOCKADDR_UNSPEC = bytes(32)  # sa_family 0 (AF_UNSPEC); larger than any sockaddr_in/in6


def _libc_connect() -> Any:
    """libc's ``connect``, for the ``AF_UNSPEC`` disconnect (Linux only, see above)."""
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        connect = libc.connect
    except (OSError, AttributeError):
        return None
    connect.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    connect.restype = ctypes.c_int
    return connect


_LIBC_CONNECT = _libc_connect()


def _disconnect(sock: socket.socket) -> None:
    """Dissolve a UDP socket's association: ``connect(fd, {AF_UNSPEC}, ...)``."""
    if _LIBC_CONNECT is None or _LIBC_CONNECT(sock.fileno(), _SOCKADDR_UNSPEC, 16) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"cannot disconnect the RTP socket (errno {errno})")


class RtpTransport:
    """An RTP socket and its RTCP companion, bound on ``host``."""

    def __init__(
        self,
        rtp: asyncio.DatagramTransport,
        rtcp: asyncio.DatagramTransport,
        rtp_protocol: _Protocol,
        rtcp_protocol: _Protocol,
        rtp_socket: socket.socket | None = None,
        *,
        connectable: bool = False,
    ) -> None:
        self._rtp = rtp
        self._rtp_socket = rtp_socket
        self._queued = False  # the transport holds RTP we could not send at once
        # Only a socket bound to a port of our choosing (see the module docstring).
        self._connectable = connectable and rtp_socket is not None and _LIBC_CONNECT is not None
        self.connected: Address | None = None  # the peer the RTP socket is connected to
        #: ``send(data)`` on the connected socket while nothing is queued, else None.
        self.send_rtp_connected: ConnectedSender | None = None
        self._rtcp = rtcp
        self._rtp_protocol = rtp_protocol
        self._rtcp_protocol = rtcp_protocol
        self.rtcp_mux = False
        self.closed = False
        self.send_rtp_fast: DatagramSender = (
            rtp_socket.sendto if rtp_socket is not None else self.send_rtp
        )
        rtp_name = rtp.get_extra_info("sockname")
        rtcp_name = rtcp.get_extra_info("sockname")
        self.local_rtp: Address = (rtp_name[0], rtp_name[1])
        self.local_rtcp: Address = (rtcp_name[0], rtcp_name[1])

    @classmethod
    async def open(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
        attempts: int = 50,
    ) -> RtpTransport:
        """Bind an even RTP port and the odd port above it.

        ``port`` 0 picks a random even port in ``port_range``; a given port
        must be even and is tried once.
        """
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        candidates: list[int]
        if port:
            if port % 2:
                raise ValueError("the RTP port must be even (RFC 3550 §11)")
            candidates = [port]
        else:
            low, high = port_range
            candidates = [random.randrange(low, high, 2) for _ in range(attempts)]
        last_error: OSError | None = None
        for rtp_port in candidates:
            rtp_sock = socket.socket(family, socket.SOCK_DGRAM)
            rtcp_sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtp_sock.bind((host, rtp_port))
                rtcp_sock.bind((host, rtp_port + 1))
            except OSError as exc:
                rtp_sock.close()
                rtcp_sock.close()
                last_error = exc
                continue
            rtp_t, rtp_p = await loop.create_datagram_endpoint(_Protocol, sock=rtp_sock)
            rtcp_t, rtcp_p = await loop.create_datagram_endpoint(_Protocol, sock=rtcp_sock)
            return cls(rtp_t, rtcp_t, rtp_p, rtcp_p, rtp_sock, connectable=True)
        raise OSError(f"no free RTP port pair on {host}: {last_error}")

    def set_handlers(self, on_rtp: DatagramHandler, on_rtcp: DatagramHandler) -> None:
        """Where received datagrams go: ``handler(data, (host, port))``.

        Under rtcp-mux RTCP arrives on the RTP socket; the RTP handler
        demultiplexes it.
        """
        self._rtp_protocol.set_handler(on_rtp)
        self._rtcp_protocol.set_handler(on_rtcp)

    @property
    def socket_errors(self) -> int:
        return self._rtp_protocol.errors + self._rtcp_protocol.errors

    def send_rtp(self, data: bytes, addr: Address) -> None:
        if self.closed:
            return
        sock = self._rtp_socket
        if sock is not None and not self._queued:
            try:
                sock.sendto(data, addr)
            except OSError as exc:
                self.send_rtp_failed(data, addr, exc)
            return
        if self._queued and _write_buffer_size(self._rtp) == 0:
            self._set_queued(False)
            self.send_rtp(data, addr)
            return
        self._rtp.sendto(data, addr)

    def send_rtp_failed(self, data: bytes, addr: Address, exc: OSError) -> None:
        """A direct ``sendto`` of ``data`` raised ``exc``: queue it when the socket
        buffer is full (and send through the queue until it drains), else count it."""
        if self.closed:
            return
        if isinstance(exc, BlockingIOError | InterruptedError):
            self._set_queued(True)  # full: the transport queues this and what follows
            self._rtp.sendto(data, addr)
        else:
            self._rtp_protocol.error_received(exc)

    def _set_queued(self, queued: bool) -> None:
        self._queued = queued
        sock = self._rtp_socket
        self.send_rtp_fast = self.send_rtp if queued or sock is None else sock.sendto
        self._update_connected_sender()

    def _update_connected_sender(self) -> None:
        sock = self._rtp_socket
        usable = self.connected is not None and not self._queued and not self.closed
        self.send_rtp_connected = sock.send if usable and sock is not None else None

    def connect_rtp(self, peer: Address) -> bool:
        """Connect the RTP socket to ``peer`` (the latched remote); False if not done.

        Afterwards :attr:`send_rtp_connected` sends to it without an address, and
        datagrams from anyone else are dropped by the kernel.
        """
        sock = self._rtp_socket
        if not self._connectable or self.closed or sock is None:
            return False
        if self.connected == peer:
            return True
        try:
            sock.connect(peer)
        except OSError as exc:
            log.debug("RTP socket not connected to %s: %s", peer, exc)
            self._drop_connection()
            return False
        self.connected = peer
        self._update_connected_sender()
        return True

    def disconnect_rtp(self) -> None:
        """Receive from any address again (before re-latching)."""
        if self.connected is not None:
            self._drop_connection()

    def _drop_connection(self) -> None:
        sock = self._rtp_socket
        self.connected = None
        self._update_connected_sender()
        if sock is None or self.closed:
            return
        try:
            _disconnect(sock)
        except OSError as exc:  # unexpected: never connect this socket again
            log.warning("%s; RTP stays unconnected", exc)
            self._connectable = False

    def send_rtcp(self, data: bytes, addr: Address) -> None:
        """Send RTCP from the RTCP port, or from the RTP port under rtcp-mux."""
        if not self.closed:
            (self._rtp if self.rtcp_mux else self._rtcp).sendto(data, addr)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.send_rtp_fast = self.send_rtp  # which now sends nothing
            self.send_rtp_connected = None
            self._rtp.close()
            self._rtcp.close()
