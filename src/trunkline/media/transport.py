"""The asyncio UDP sockets of one RTP session.

RTP goes to an even port and RTCP to the next odd one (RFC 3550 §11), or
both share the RTP port when rtcp-mux is negotiated (RFC 5761 §4; the
demultiplexing rule lives in :func:`trunkline.rtp.packet.is_rtcp`). The RTCP
socket is opened in both cases so that a re-negotiation that drops rtcp-mux
does not need a new port.

This is the only place in the media engine that owns sockets; everything it
receives is handed to callbacks together with the sender's address, which
the session uses for symmetric RTP (RFC 4961).

The RTP socket is not wrapped in an event-loop datagram transport: the
transport reads it itself from a reader callback (``loop.add_reader``, which
selector loops and uvloop have; the Windows proactor loop does not), one
``recvfrom`` per readable event, or one ``recv`` while the socket is connected
(below), where the sender's address is known. uvloop's datagram transport
reads until ``EAGAIN`` (a second system call per datagram) and converts every
sender address into a new tuple and string; the reader saves about 1 us of
the ~10 us a datagram costs sent and received (600 sockets on uvloop, one
datagram per socket every 20 ms, measured on the development VM, 28 Nov 2026).
The RTCP socket keeps an ordinary datagram transport.

RTP is sent with ``sendto`` on the socket itself. When the socket buffer is
full the datagram is queued here and sent when the socket is writable again
(``loop.add_writer``), and so are the following ones until that queue has
drained, so order is kept.

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
from collections import deque
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
    """The RTCP socket's protocol: hands datagrams to the handler, counts errors."""

    def __init__(self) -> None:
        self.errors = 0
        self.set_handler(_ignore)

    def set_handler(self, handler: DatagramHandler) -> None:
        # The event loop looks ``datagram_received`` up on every datagram
        # (asyncio and uvloop alike): binding the handler itself there saves
        # a Python call per datagram.
        self.datagram_received = handler  # type: ignore[method-assign,assignment]

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that is not listening yet: harmless.
        self.errors += 1
        log.debug("media socket error: %s", exc)


def _ignore(data: bytes, addr: Address) -> None:
    """Default handler: drop the datagram."""


_MAX_DATAGRAM = 65536  # what one recv may return (larger than any UDP payload)


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
        loop: asyncio.AbstractEventLoop,
        rtp_socket: socket.socket,
        rtcp: asyncio.DatagramTransport,
        rtcp_protocol: _Protocol,
        *,
        connectable: bool = False,
    ) -> None:
        self._loop = loop
        self._rtp_socket = rtp_socket
        self._fd = rtp_socket.fileno()
        self._on_rtp: DatagramHandler = _ignore
        self._errors = 0  # RTP socket errors (sends, and ICMP errors reported on receive)
        self._backlog: deque[tuple[bytes, Address]] = deque()  # RTP the socket could not take
        self._queued = False  # the backlog is not empty: send through it, in order
        # Only a socket bound to a port of our choosing (see the module docstring).
        self._connectable = connectable and _LIBC_CONNECT is not None
        self.connected: Address | None = None  # the peer the RTP socket is connected to
        #: ``send(data)`` on the connected socket while nothing is queued, else None.
        self.send_rtp_connected: ConnectedSender | None = None
        self._rtcp = rtcp
        self._rtcp_protocol = rtcp_protocol
        self.rtcp_mux = False
        self.closed = False
        self.send_rtp_fast: DatagramSender = rtp_socket.sendto
        rtp_name = rtp_socket.getsockname()
        rtcp_name = rtcp.get_extra_info("sockname")
        self.local_rtp: Address = (rtp_name[0], rtp_name[1])
        self.local_rtcp: Address = (rtcp_name[0], rtcp_name[1])
        self._recv = rtp_socket.recv
        self._recvfrom = rtp_socket.recvfrom
        rtp_socket.setblocking(False)
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        """One datagram from the (unconnected) RTP socket, with its sender."""
        try:
            data, addr = self._recvfrom(_MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._error(exc)
            return
        self._on_rtp(data, addr)

    def _readable_connected(self) -> None:
        """One datagram from the connected RTP socket: the kernel let only the peer's in."""
        try:
            data = self._recv(_MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # e.g. ECONNREFUSED: an ICMP error from the peer
            self._error(exc)
            return
        self._on_rtp(data, self.connected)  # type: ignore[arg-type]  # connected: set

    def _error(self, exc: OSError) -> None:
        # ICMP port unreachable from a peer that is not listening yet: harmless.
        self._errors += 1
        log.debug("media socket error: %s", exc)

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
            rtcp_t, rtcp_p = await loop.create_datagram_endpoint(_Protocol, sock=rtcp_sock)
            try:
                return cls(loop, rtp_sock, rtcp_t, rtcp_p, connectable=True)
            except BaseException:
                rtp_sock.close()
                rtcp_t.close()
                raise
        raise OSError(f"no free RTP port pair on {host}: {last_error}")

    def set_handlers(self, on_rtp: DatagramHandler, on_rtcp: DatagramHandler) -> None:
        """Where received datagrams go: ``handler(data, (host, port))``.

        Under rtcp-mux RTCP arrives on the RTP socket; the RTP handler
        demultiplexes it.
        """
        self._on_rtp = on_rtp
        self._rtcp_protocol.set_handler(on_rtcp)

    @property
    def socket_errors(self) -> int:
        return self._errors + self._rtcp_protocol.errors

    def send_rtp(self, data: bytes, addr: Address) -> None:
        if self.closed:
            return
        if self._queued:
            self._backlog.append((data, addr))
            return
        try:
            self._rtp_socket.sendto(data, addr)
        except OSError as exc:
            self.send_rtp_failed(data, addr, exc)

    def send_rtp_failed(self, data: bytes, addr: Address, exc: OSError) -> None:
        """A direct ``sendto`` of ``data`` raised ``exc``: queue it when the socket
        buffer is full (and send through the queue until it drains), else count it."""
        if self.closed:
            return
        if isinstance(exc, BlockingIOError | InterruptedError):
            self._backlog.append((data, addr))
            if not self._queued:
                self._set_queued(True)
                self._loop.add_writer(self._fd, self._drain)
        else:
            self._error(exc)

    def _drain(self) -> None:
        """The socket is writable: send the backlog, in order, as far as it goes."""
        backlog = self._backlog
        sendto = self._rtp_socket.sendto
        while backlog:
            data, addr = backlog[0]
            try:
                sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return  # still full: wait for the next writable event
            except OSError as exc:
                self._error(exc)
            backlog.popleft()
        self._loop.remove_writer(self._fd)
        self._set_queued(False)

    def _set_queued(self, queued: bool) -> None:
        self._queued = queued
        self.send_rtp_fast = self.send_rtp if queued or self.closed else self._rtp_socket.sendto
        self._update_connected_sender()

    def _update_connected_sender(self) -> None:
        usable = self.connected is not None and not self._queued and not self.closed
        self.send_rtp_connected = self._rtp_socket.send if usable else None

    def connect_rtp(self, peer: Address) -> bool:
        """Connect the RTP socket to ``peer`` (the latched remote); False if not done.

        Afterwards :attr:`send_rtp_connected` sends to it without an address, and
        datagrams from anyone else are dropped by the kernel.
        """
        sock = self._rtp_socket
        if not self._connectable or self.closed:
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
        self._loop.add_reader(self._fd, self._readable_connected)
        return True

    def disconnect_rtp(self) -> None:
        """Receive from any address again (before re-latching)."""
        if self.connected is not None:
            self._drop_connection()

    def _drop_connection(self) -> None:
        sock = self._rtp_socket
        self.connected = None
        self._update_connected_sender()
        if self.closed:
            return
        self._loop.add_reader(self._fd, self._readable)
        try:
            _disconnect(sock)
        except OSError as exc:  # unexpected: never connect this socket again
            log.warning("%s; RTP stays unconnected", exc)
            self._connectable = False

    def send_rtcp(self, data: bytes, addr: Address) -> None:
        """Send RTCP from the RTCP port, or from the RTP port under rtcp-mux."""
        if self.rtcp_mux:
            self.send_rtp(data, addr)
        elif not self.closed:
            self._rtcp.sendto(data, addr)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.send_rtp_fast = self.send_rtp  # which now sends nothing
            self.send_rtp_connected = None
            self._backlog.clear()
            if not self._loop.is_closed():
                self._loop.remove_reader(self._fd)
                if self._queued:
                    self._loop.remove_writer(self._fd)
            self._rtp_socket.close()
            self._rtcp.close()
