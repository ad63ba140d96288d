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
