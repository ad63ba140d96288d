"""Transport layer: UDP, TCP, TLS, WS, WSS on loopback (IPv4 and IPv6)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from trunkline.sip.aio import websocket as _websocket  # registers WS/WSS
from trunkline.sip.aio.tls import (
    DevCertificates,
    client_ssl_context,
    create_dev_certificates,
    server_ssl_context,
)
from trunkline.sip.aio.transport import Inbound, TransportError, TransportLayer

assert _websocket.SIP_SUBPROTOCOL == "sip"


def options(n: int = 1) -> bytes:
    body = b""
    return (
        b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-test-%d\r\n"
        b"Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\n"
        b"Call-ID: transport-%d\r\nCSeq: %d OPTIONS\r\nContent-Length: %d\r\n\r\n"
        % (n, n, n, len(body))
    ) + body


class Collector:
    """Gathers delivered messages; ``wait(n)`` is bounded in time."""

    def __init__(self) -> None:
        self.items: list[Inbound] = []
        self.event = asyncio.Event()

    def __call__(self, inbound: Inbound) -> None:
        self.items.append(inbound)
        self.event.set()

    async def wait(self, count: int, timeout: float = 5.0) -> list[Inbound]:
        async with asyncio.timeout(timeout):
            while len(self.items) < count:
                self.event.clear()
                await self.event.wait()
        return self.items


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return create_dev_certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def pair(
    pki: DevCertificates,
) -> AsyncIterator[tuple[TransportLayer, Collector, TransportLayer, Collector]]:
    got_a, got_b = Collector(), Collector()
    a = TransportLayer(got_a, client_ssl=client_ssl_context(pki.ca))
    b = TransportLayer(got_b, client_ssl=client_ssl_context(pki.ca))
    try:
        yield a, got_a, b, got_b
    finally:
        await a.close()
        await b.close()


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HOSTS = [
    "127.0.0.1",
    pytest.param("::1", marks=pytest.mark.skipif(not has_ipv6(), reason="no ::1")),
]


@pytest.mark.parametrize("host", HOSTS)
async def test_udp_round_trip(
    pair: tuple[TransportLayer, Collector, TransportLayer, Collector], host: str
) -> None:
    a, got_a, b, got_b = pair
    la = await a.listen("UDP", host)
    lb = await b.listen("UDP", host)
    assert await b.send(options(1), "UDP", la.address) is None
    (first,) = await got_a.wait(1)
    assert first.data == options(1)
    assert first.transport == "UDP"
    assert first.peer == (host, lb.port)
    assert first.connection is None
    await a.send(options(2), "UDP", first.peer)
    (back,) = await got_b.wait(1)
    assert back.peer == (host, la.port)  # sent from the listening socket (symmetric)


async def test_udp_ignores_crlf_keepalive(
    pair: tuple[TransportLayer, Collector, TransportLayer, Collector],
) -> None:
    a, got_a, b, _ = pair
    la = await a.listen("UDP")
    await b.listen("UDP")
    await b.send(b"\r\n\r\n", "UDP", la.address)
    await b.send(options(3), "UDP", la.address)
    items = await got_a.wait(1)
    await asyncio.sleep(0.05)
    assert [i.data for i in items] == [options(3)]


@pytest.mark.parametrize("name", ["TCP", "TLS", "WS", "WSS"])
@pytest.mark.parametrize("host", HOSTS)
async def test_stream_round_trip_and_reuse(
    pair: tuple[TransportLayer, Collector, TransportLayer, Collector],
    pki: DevCertificates,
    name: str,
    host: str,
) -> None:
    a, got_a, b, got_b = pair
    context = server_ssl_context(pki.cert, pki.key) if name in ("TLS", "WSS") else None
    la = await a.listen(name, host, ssl_context=context)
    conn1 = await b.send(options(1), name, la.address)
    conn2 = await b.send(options(2), name, la.address)
    assert conn1 is not None and conn1 is conn2  # reused, keyed by (transport, address)
    items = await got_a.wait(2)
    assert [i.data for i in items] == [options(1), options(2)]
    inbound = items[0]
    assert inbound.transport == name
    assert inbound.connection is not None
    assert inbound.peer == conn1.local
    # A request back to the peer reuses the connection the peer opened (NAT, .invalid).
    assert a.lookup(name, inbound.peer) is inbound.connection
    assert await a.send(options(3), name, inbound.peer) is inbound.connection
    (back,) = await got_b.wait(1)
    assert back.data == options(3)
    assert back.connection is conn1
    assert len(a.connections) == 1 and len(b.connections) == 1


async def test_tls_checks_certificates_by_default(pki: DevCertificates) -> None:
    server = TransportLayer(Collector())
    client = TransportLayer(Collector())  # system trust store: does not know our CA
    try:
        listener = await server.listen("TLS", ssl_context=server_ssl_context(pki.cert, pki.key))
        with pytest.raises(TransportError):
            await client.send(options(), "TLS", listener.address)
        assert client.connections == []
    finally:
        await client.close()
        await server.close()


async def test_tls_checks_host_name(pki: DevCertificates) -> None:
    server = TransportLayer(Collector())
    client = TransportLayer(Collector(), client_ssl=client_ssl_context(pki.ca))
    try:
        listener = await server.listen("TLS", ssl_context=server_ssl_context(pki.cert, pki.key))
        with pytest.raises(TransportError):
            await client.send(options(), "TLS", listener.address, server_name="sip.example.com")
        conn = await client.send(options(), "TLS", listener.address, server_name="localhost")
        assert conn is not None
    finally:
        await client.close()
        await server.close()


async def raw_exchange(port: int, data: bytes, expect: int, timeout: float = 3.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        out = b""
        async with asyncio.timeout(timeout):
            while len(out) < expect:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                out += chunk
        return out
    finally:
        writer.close()


async def test_websocket_requires_sip_subprotocol() -> None:
    layer = TransportLayer(Collector())
    try:
        listener = await layer.listen("WS")
        handshake = (
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        reply = await raw_exchange(listener.port, handshake, 12)
        assert reply.startswith(b"HTTP/1.1 400")
        with_sip = handshake.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Protocol: sip\r\n\r\n")
        reply = await raw_exchange(listener.port, with_sip, 12)
        assert reply.startswith(b"HTTP/1.1 101")
        assert b"Sec-WebSocket-Protocol: sip" in reply
    finally:
        await layer.close()


async def test_crlf_ping_gets_pong_and_no_message() -> None:
    got = Collector()
    layer = TransportLayer(got)
    try:
        listener = await layer.listen("TCP")
        reply = await raw_exchange(listener.port, b"\r\n\r\n", 2)
        assert reply == b"\r\n"
        assert got.items == []
    finally:
        await layer.close()


async def test_outbound_keepalive_ping_and_flow_failure() -> None:
    received = bytearray()
    seen = asyncio.Event()

    async def silent_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(100):
                received.extend(chunk)
                seen.set()
        finally:
            writer.close()

    server = await asyncio.start_server(silent_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    closed: list[object] = []
    layer = TransportLayer(Collector(), keepalive_interval=0.1, on_connection_closed=closed.append)
    try:
        conn = await layer.connect("TCP", ("127.0.0.1", port))
        async with asyncio.timeout(3):
            await seen.wait()
        assert bytes(received) == b"\r\n\r\n"
        assert conn.ping_sent_at is not None
        conn.ping_sent_at -= 11.0  # pretend RFC 5626's 10 s passed without a pong
        async with asyncio.timeout(3):
            while not conn.closed:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        assert closed == [conn]
    finally:
        await layer.close()
        server.close()


async def test_idle_connections_are_closed() -> None:
    server = TransportLayer(Collector(), idle_timeout=0.2)
    client = TransportLayer(Collector())
    try:
        listener = await server.listen("TCP")
        await client.send(options(), "TCP", listener.address)
        async with asyncio.timeout(3):
            while not server.connections:
                await asyncio.sleep(0.01)
            while server.connections:
                await asyncio.sleep(0.02)
    finally:
        await client.close()
        await server.close()


async def test_framing_error_closes_stream() -> None:
    got = Collector()
    layer = TransportLayer(got)
    try:
        listener = await layer.listen("TCP")
        bad = options().replace(b"Content-Length: 0", b"Content-Length: -5")
        reply = await raw_exchange(listener.port, bad, 1)
        assert reply == b""  # closed by the server
        assert got.items == []
    finally:
        await layer.close()


async def test_connect_refused_raises_transport_error() -> None:
    layer = TransportLayer(Collector())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        with pytest.raises(TransportError):
            await layer.send(options(), "TCP", ("127.0.0.1", port))
    finally:
        await layer.close()


def test_dev_certificates_verify(pki: DevCertificates, tmp_path: Path) -> None:
    context = client_ssl_context(pki.ca)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert "BEGIN CERTIFICATE" in pki.cert.read_text()


async def test_reuse_port_lets_two_layers_bind_one_port() -> None:
    received: list[Inbound] = []
    layers = [TransportLayer(received.append) for _ in range(2)]
    try:
        first_udp = await layers[0].listen("UDP", "127.0.0.1", 0, reuse_port=True)
        port = first_udp.port
        second_udp = await layers[1].listen("UDP", "127.0.0.1", port, reuse_port=True)
        assert second_udp.port == port
        for layer in layers:
            assert (await layer.listen("TCP", "127.0.0.1", port, reuse_port=True)).port == port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(options(), ("127.0.0.1", port))
            for _ in range(100):  # at most 1 s
                if received:
                    break
                await asyncio.sleep(0.01)
        assert [inbound.data for inbound in received] == [options()]
        # Without the option the port stays taken.
        with pytest.raises(OSError):
            await TransportLayer(received.append).listen("UDP", "127.0.0.1", port)
    finally:
        for layer in layers:
            await layer.close()
