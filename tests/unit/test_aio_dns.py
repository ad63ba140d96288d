"""The dnspython backend of the RFC 3263 locator against a DNS server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from typing import cast

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from trunkline.sip.aio.dns import DnspythonResolver
from trunkline.sip.dns import Locator, Target
from trunkline.sip.uri import SipUri


class _TinyDns(asyncio.DatagramProtocol):
    """Answers from a dict {(name, type): [rdata text]}; NXDOMAIN for unknown names."""

    def __init__(self, zone: Mapping[tuple[str, str], list[str]]) -> None:
        self.zone = zone
        self.names = {name for name, _ in zone}
        self.transport: asyncio.DatagramTransport | None = None
        self.queries: list[tuple[str, str]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        texts = self.zone.get((name, rdtype))
        if texts:
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", rdtype, *texts))
        elif name not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


ZONE = {
    ("example.com.", "NAPTR"): [
        '10 10 "S" "SIP+D2T" "" _sip._tcp.example.com.',
        '20 10 "S" "SIP+D2U" "" _sip._udp.example.com.',
    ],
    ("_sip._tcp.example.com.", "SRV"): ["10 0 5070 b.example.com.", "20 0 5060 a.example.com."],
    ("_sip._udp.example.com.", "SRV"): ["0 0 5060 a.example.com."],
    ("a.example.com.", "A"): ["192.0.2.1"],
    ("b.example.com.", "A"): ["192.0.2.2"],
    ("b.example.com.", "AAAA"): ["2001:db8::2"],
}


@pytest.fixture
async def tiny_dns() -> AsyncIterator[tuple[_TinyDns, int]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _TinyDns(ZONE), local_addr=("127.0.0.1", 0)
    )
    try:
        port = int(transport.get_extra_info("sockname")[1])
        yield protocol, port
    finally:
        transport.close()


async def test_dnspython_backend_against_local_server(tiny_dns: tuple[_TinyDns, int]) -> None:
    server, port = tiny_dns
    resolver = DnspythonResolver(["127.0.0.1"], port=port, timeout=2.0)
    located = await asyncio.wait_for(
        Locator(resolver, rng=random.Random(1)).locate(SipUri.parse("sip:bob@example.com")),
        timeout=10,
    )
    assert located == [
        Target("tcp", "b.example.com", 5070, "192.0.2.2"),
        Target("tcp", "b.example.com", 5070, "2001:db8::2"),
        Target("tcp", "a.example.com", 5060, "192.0.2.1"),
        Target("udp", "a.example.com", 5060, "192.0.2.1"),
    ]
    assert ("example.com.", "NAPTR") in server.queries
    # NXDOMAIN and empty answers read as "no records".
    assert await asyncio.wait_for(resolver.srv("_sip._udp.nowhere.example."), 10) == []
    assert await asyncio.wait_for(resolver.naptr("a.example.com"), 10) == []
    # The cache answers repeated lookups without asking the server again.
    before = len(server.queries)
    assert await asyncio.wait_for(resolver.addresses("a.example.com"), 10) == ["192.0.2.1"]
    assert len(server.queries) == before


async def test_dnspython_backend_timeout_reads_as_empty() -> None:
    loop = asyncio.get_running_loop()
    # A socket that never answers.
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        port = int(transport.get_extra_info("sockname")[1])
        resolver = DnspythonResolver(["127.0.0.1"], port=port, timeout=0.3)
        assert await asyncio.wait_for(resolver.addresses("example.com"), 5) == []
    finally:
        transport.close()
