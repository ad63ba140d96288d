"""RtpTransport sends RTP on the socket itself and falls back to the event
loop's queue (keeping order) when the socket buffer is full."""

from __future__ import annotations

import asyncio
import socket

from trunkline.media.transport import Address, RtpTransport


class FullOnce:
    """Stands in for the RTP socket: the first ``full`` sends find the buffer full."""

    def __init__(self, real: socket.socket, full: int) -> None:
        self.real = real
        self.full = full
        self.direct: list[bytes] = []

    def sendto(self, data: bytes, addr: Address) -> int:
        if self.full:
            self.full -= 1
            raise BlockingIOError
        self.direct.append(data)
        return self.real.sendto(data, addr)


async def test_send_direct_then_queue_then_direct_again() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2.0)
    transport = await RtpTransport.open("127.0.0.1")
    try:
        real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fake = FullOnce(real, full=1)
        transport._rtp_socket = fake  # type: ignore[assignment]
        dest = receiver.getsockname()
        for i in range(5):
            transport.send_rtp(bytes([i]) * 20, dest)
            await asyncio.sleep(0.01)  # let the loop drain its queue
        got = [receiver.recv(100)[0] for _ in range(5)]
        assert sorted(got) == list(range(5))
        # The first went through the loop's queue; once it drained, direct sends resumed.
        assert [d[0] for d in fake.direct] == [1, 2, 3, 4]
        real.close()
    finally:
        transport.close()
        receiver.close()


async def test_send_errors_go_to_error_received() -> None:
    transport = await RtpTransport.open("127.0.0.1")
    try:
        before = transport.socket_errors
        transport.send_rtp(b"x" * 20, ("127.0.0.1", 0))  # port 0: EINVAL from sendto
        assert transport.socket_errors == before + 1
        transport.close()
        transport.send_rtp(b"x" * 20, ("127.0.0.1", 9))  # closed: silently nothing
    finally:
        transport.close()


async def test_fast_send_path_switches_to_the_queue_and_back() -> None:
    """``send_rtp_fast`` is the socket's own sendto; a full buffer reported through
    ``send_rtp_failed`` routes sends through the loop's queue until it drains."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2.0)
    transport = await RtpTransport.open("127.0.0.1")
    try:
        dest = receiver.getsockname()
        sock = transport._rtp_socket
        assert sock is not None

        def fast() -> object:
            return transport.send_rtp_fast

        assert fast() == sock.sendto
        transport.send_rtp_fast(b"\x00" * 20, dest)
        transport.send_rtp_failed(b"\x01" * 20, dest, BlockingIOError())
        assert fast() == transport.send_rtp  # queued: keep the order
        transport.send_rtp_fast(b"\x02" * 20, dest)
        await asyncio.sleep(0.02)
        transport.send_rtp_fast(b"\x03" * 20, dest)  # drained: back to direct sends
        assert fast() == sock.sendto
        assert [receiver.recv(100)[0] for _ in range(4)] == [0, 1, 2, 3]
        before = transport.socket_errors
        transport.send_rtp_failed(b"x", dest, OSError("EINVAL"))
        assert transport.socket_errors == before + 1
        transport.close()
        transport.send_rtp_fast(b"x" * 20, dest)  # closed: silently nothing
    finally:
        transport.close()
        receiver.close()


async def test_connected_rtp_socket_sends_to_the_peer_and_ignores_others() -> None:
    t = await RtpTransport.open()
    got: list[tuple[bytes, Address]] = []
    t.set_handlers(lambda d, a: got.append((d, a)), lambda d, a: None)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for s in (peer, other):
            s.bind(("127.0.0.1", 0))
            s.settimeout(2)
        port = t.local_rtp
        assert t.send_rtp_connected is None
        assert t.connect_rtp(peer.getsockname())
        assert t.connected == peer.getsockname()
        assert t.send_rtp_connected is not None
        t.send_rtp_connected(b"hello")
        assert peer.recvfrom(100) == (b"hello", port)
        other.sendto(b"foreign", port)  # dropped by the kernel while connected
        peer.sendto(b"peer", port)
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert [d for d, _ in got] == [b"peer"]
        t.disconnect_rtp()
        assert t.connected is None and t.send_rtp_connected is None
        assert t.local_rtp == port  # still bound to its port
        other.sendto(b"welcome", port)
        for _ in range(100):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        assert got[-1] == (b"welcome", other.getsockname())
    finally:
        peer.close()
        other.close()
        t.close()
    assert not t.connect_rtp(("127.0.0.1", 9))  # closed: never
