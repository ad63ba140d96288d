"""Stateless 4xx/5xx answers to malformed requests (RFC 3261 §8.2, §16.3) on RFC 4475 messages."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from trunkline.sip.aio.endpoint import SipEndpoint, Source
from trunkline.sip.aio.malformed import error_response, looks_like_request
from trunkline.sip.errors import SipParseError
from trunkline.sip.message import parse_message

TORTURE = Path(__file__).parents[1] / "data" / "rfc4475"


def torture(name: str) -> bytes:
    return (TORTURE / f"{name}.dat").read_bytes()


def parse_error(data: bytes) -> SipParseError:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    return caught.value


@pytest.mark.parametrize(
    ("line", "method"),
    [
        (b"INVITE sip:a@b SIP/2.0", "INVITE"),
        (b"OPTIONS sip:a@b SIP/7.0", "OPTIONS"),
        (b"INVITE sip:user@example.com; lr SIP/2.0", "INVITE"),  # lwsruri: LWS in the URI
        (b"SIP/2.0 200 OK", None),
        (b"INVITE sip:a@b", None),
        (b"IN<VITE sip:a@b SIP/2.0", None),
        (b"", None),
    ],
)
def test_request_line_shape(line: bytes, method: str | None) -> None:
    assert looks_like_request(line) == method


def header_lines(message: bytes) -> dict[bytes, list[bytes]]:
    """Raw header values by lower-cased name (the copied fields may be what is malformed)."""
    found: dict[bytes, list[bytes]] = {}
    for line in message.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return found


def test_response_copies_the_five_fields_and_adds_a_to_tag() -> None:
    data = torture("badinv01")
    error = parse_error(data)
    reply = error_response(data, error.status, error.reason, server="Trunkline")
    assert reply is not None
    assert reply.startswith(b"SIP/2.0 400 Malformed Via parameter\r\n")
    assert reply.endswith(b"\r\nContent-Length: 0\r\n\r\n")
    got = header_lines(reply)
    sent = header_lines(data)
    for name in (b"via", b"from", b"call-id", b"cseq"):
        assert got[name] == sent[name]
    assert got[b"call-id"] == [b"badinv01.0ha0isndaksdjasdf3234nas"]
    assert got[b"server"] == [b"Trunkline"]
    (to,) = got[b"to"]  # §8.2.6.2: the UAS adds a tag to a tagless To
    assert to.startswith(b"sip:j.user@example.com;tag=")
    assert len(to) > len(b"sip:j.user@example.com;tag=")


def test_compact_and_folded_headers_are_copied() -> None:
    data = (
        b"OPTIONS sip:x@y SIP/7.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"f: <sip:a@y>\r\n ;tag=1\r\n"
        b"t: <sip:x@y;tag=notatag>;tag=2\r\n"
        b"i: abc\r\n"
        b"CSeq: 1 OPTIONS\r\n\r\n"
    )
    reply = error_response(data, 505, "Version Not Supported")
    assert reply is not None
    assert b"\r\nFrom: <sip:a@y> ;tag=1\r\n" in reply
    assert b"\r\nTo: <sip:x@y;tag=notatag>;tag=2\r\n" in reply  # already tagged: unchanged
    assert b"\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n" in reply


@pytest.mark.parametrize("name", ["insuf", "scalarlg", "bigcode", "test"])
def test_unanswerable_messages_give_none(name: str) -> None:
    data = torture(name)
    error = parse_error(data)
    assert error_response(data, error.status, error.reason) is None


def test_an_ack_is_never_answered() -> None:
    data = torture("badinv01").replace(b"INVITE", b"ACK")
    assert error_response(data, 400, "Bad Request") is None


def test_reason_phrase_is_made_safe() -> None:
    data = torture("badvers")
    reply = error_response(data, 400, "bad\r\nX-Injected: 1")
    assert reply is not None
    assert reply.split(b"\r\n")[0] == b"SIP/2.0 400 bad??X-Injected: 1"


# -- over UDP, through the endpoint ------------------------------------------------------


@pytest.fixture
async def udp_endpoint() -> AsyncIterator[tuple[SipEndpoint, socket.socket, int]]:
    endpoint = SipEndpoint()
    listener = await endpoint.listen("UDP")
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setblocking(False)
    try:
        yield endpoint, client, listener.port
    finally:
        client.close()
        await endpoint.close()


async def exchange(client: socket.socket, port: int, data: bytes, wait: float) -> bytes | None:
    loop = asyncio.get_running_loop()
    client.sendto(data, ("127.0.0.1", port))
    try:
        return await asyncio.wait_for(loop.sock_recv(client, 65536), wait)
    except TimeoutError:
        return None


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("badvers", 505),  # RFC 4475 §3.1.2.16
        ("unkscm", 416),  # §3.3.2
        ("novelsc", 416),  # §3.3.3: 416 when the scheme is never acceptable
        ("badinv01", 400),  # §3.1.2.1
        ("mismatch01", 400),  # §3.1.2.17: parses, then fails the CSeq check
        ("clerr", 400),  # §3.1.2.2 over UDP
        ("lwsruri", 400),  # §3.1.2.8
        ("quotbal", 400),  # §3.1.2.6
    ],
)
async def test_torture_request_gets_its_status(
    udp_endpoint: tuple[SipEndpoint, socket.socket, int], name: str, status: int
) -> None:
    endpoint, client, port = udp_endpoint
    data = torture(name)
    reply = await exchange(client, port, data, 2.0)
    assert reply is not None
    assert reply.startswith(f"SIP/2.0 {status} ".encode())
    got, sent = header_lines(reply), header_lines(data)
    assert got[b"call-id"] == sent.get(b"call-id", sent.get(b"i"))
    assert got[b"cseq"] == sent[b"cseq"]
    assert (endpoint.stats.malformed, endpoint.stats.rejected) == (1, 1)


@pytest.mark.parametrize("name", ["scalarlg", "bigcode", "insuf"])
async def test_malformed_responses_and_headless_requests_are_dropped(
    udp_endpoint: tuple[SipEndpoint, socket.socket, int], name: str
) -> None:
    endpoint, client, port = udp_endpoint
    assert await exchange(client, port, torture(name), 0.3) is None
    assert (endpoint.stats.malformed, endpoint.stats.rejected) == (1, 0)


async def test_foreign_datagram_hook_sees_non_sip_first(
    udp_endpoint: tuple[SipEndpoint, socket.socket, int],
) -> None:
    endpoint, client, port = udp_endpoint
    taken: list[tuple[bytes, Source]] = []

    def take(data: bytes, source: Source) -> bool:
        if data[:1] == b"\x00":
            taken.append((data, source))
            return True
        return False

    endpoint.on_foreign_datagram = take  # type: ignore[method-assign]
    stun_like = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)
    assert await exchange(client, port, stun_like, 0.3) is None
    ((data, source),) = taken
    assert data == stun_like
    assert (source.transport, source.port) == ("UDP", client.getsockname()[1])
    assert (endpoint.stats.foreign, endpoint.stats.malformed) == (1, 0)
    # Not taken: parsed as SIP, which drops it. SIP text never reaches the hook.
    assert await exchange(client, port, b"\x01junk", 0.2) is None
    assert await exchange(client, port, torture("badvers"), 2.0) is not None
    assert len(taken) == 1
    assert (endpoint.stats.foreign, endpoint.stats.malformed) == (1, 2)
