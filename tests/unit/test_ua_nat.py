"""STUN discovery over real loopback sockets (RFC 5389 §7.2.1) against an
in-process server that answers like one behind a NAT would: a mapped address
different from ours, which the phone must put in its Contact and its SDP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest

from trunkline.media.transport import RtpTransport
from trunkline.sip.sdp import SessionDescription
from trunkline.ua.call import CallState
from trunkline.ua.nat import (
    STUN_PORT,
    StunError,
    discover,
    discover_on_rtp,
    parse_server,
    run_binding,
)
from trunkline.ua.phone import IncomingCall, Phone, PhoneConfig
from trunkline.ua.stun import Attribute, StunClass, StunMessage, encode_xor_address

PUBLIC_HOST = "203.0.113.50"


class NatStunServer(asyncio.DatagramProtocol):
    """Answers every Binding request with PUBLIC_HOST and the source port + 1000."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.requests: list[tuple[str, int]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = StunMessage.parse(data)
        assert request.cls is StunClass.REQUEST
        self.requests.append(addr)
        tid = request.transaction_id
        mapped = encode_xor_address(PUBLIC_HOST, addr[1] + 1000, tid)
        response = StunMessage(
            0x001, StunClass.SUCCESS, tid, ((Attribute.XOR_MAPPED_ADDRESS, mapped),)
        )
        assert self.transport is not None
        self.transport.sendto(response.encode(fingerprint=True), addr)


@pytest.fixture
async def stun_server() -> AsyncIterator[tuple[NatStunServer, tuple[str, int]]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        NatStunServer, local_addr=("127.0.0.1", 0)
    )
    try:
        name = transport.get_extra_info("sockname")
        yield protocol, (name[0], name[1])
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stun.example.com", ("stun.example.com", STUN_PORT)),
        ("stun.example.com:19302", ("stun.example.com", 19302)),
        ("stun:192.0.2.1:3479", ("192.0.2.1", 3479)),
        ("[2001:db8::1]:3478", ("2001:db8::1", 3478)),
        ("2001:db8::1", ("2001:db8::1", STUN_PORT)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["", ":3478", "host:0", "host:port"])
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_server(text)


async def test_discover_reports_the_mapping(
    stun_server: tuple[NatStunServer, tuple[str, int]],
) -> None:
    server, address = stun_server
    local, mapped = await asyncio.wait_for(discover(address, local=("127.0.0.1", 0)), 5)
    assert mapped == (PUBLIC_HOST, local[1] + 1000)
    assert server.requests == [local]


async def test_binding_times_out_on_a_silent_server() -> None:
    inbox: asyncio.Queue[bytes] = asyncio.Queue()
    sent: list[bytes] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(StunError, match="timeout"):
        await run_binding(sent.append, inbox, rto=0.02, rc=3, rm=2)
    elapsed = loop.time() - start
    assert len(sent) == 3  # §7.2.1: Rc requests, then Rm * RTO of waiting
    assert 0.08 <= elapsed < 2.0  # 0.02 + 0.04 then 2 * 0.02 = 0.1 s


async def test_rtp_socket_learns_its_own_mapping(
    stun_server: tuple[NatStunServer, tuple[str, int]],
) -> None:
    server, address = stun_server
    transport = await RtpTransport.open("127.0.0.1")
    try:
        mapped = await asyncio.wait_for(discover_on_rtp(transport, address), 5)
    finally:
        transport.close()
    assert server.requests == [transport.local_rtp]
    assert mapped == (PUBLIC_HOST, transport.local_rtp[1] + 1000)


async def test_phone_announces_stun_mappings_in_contact_and_sdp(
    stun_server: tuple[NatStunServer, tuple[str, int]],
) -> None:
    server, (host, port) = stun_server
    alice = await Phone.start(PhoneConfig(user="alice", stun_server=f"{host}:{port}"))
    bob = await Phone.start(PhoneConfig(user="bob"))
    try:
        local = alice.local_address
        assert alice.public_address == (PUBLIC_HOST, local[1] + 1000)
        assert server.requests[0] == local  # probed from the SIP socket itself
        assert alice.contact() == f"sip:alice@{PUBLIC_HOST}:{local[1] + 1000}"
        bob_host, bob_port = bob.local_address
        call = alice.call(f"sip:bob@{bob_host}:{bob_port}")
        ring = None
        for _ in range(20):
            ring = await asyncio.wait_for(bob.events.get(), 10)
            if isinstance(ring, IncomingCall):
                break
        assert isinstance(ring, IncomingCall)
        invite = ring.call.incoming_request
        assert invite is not None
        contact = invite.request.contact[0]
        assert str(contact.uri) == f"sip:alice@{PUBLIC_HOST}:{local[1] + 1000}"
        offer = SessionDescription.parse(invite.request.body)
        media = call.media
        assert media is not None
        rtp_port = media.local_address[1]
        assert server.requests[-1] == ("127.0.0.1", rtp_port)  # the RTP socket probed too
        assert f"c=IN IP4 {PUBLIC_HOST}" in bytes(offer).decode()
        assert f"m=audio {rtp_port + 1000} " in bytes(offer).decode()
        await call.hangup()
        assert call.state is CallState.ENDED
    finally:
        await alice.close(unregister=False)
        await bob.close(unregister=False)


async def test_phone_without_a_stun_answer_keeps_its_local_address() -> None:
    # A bad server (port 0) fails before any packet or DNS query: the phone still starts.
    phone = await Phone.start(PhoneConfig(user="carol", stun_server="127.0.0.1:0"))
    try:
        assert phone.public_address is None and phone.stun_error is not None
        host, port = phone.local_address
        assert phone.contact() == f"sip:carol@{host}:{port}"
        assert phone.call_config.stun_server is None
    finally:
        await phone.close(unregister=False)
