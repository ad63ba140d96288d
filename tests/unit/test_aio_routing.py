"""The §18 routing rules: received/rport stamping, response destination, next hop."""

from __future__ import annotations

import pytest

from trunkline.sip.aio.routing import (
    Destination,
    choose_transport,
    next_hop,
    response_destination,
    same_address,
    stamp_received,
    uri_destination,
)
from trunkline.sip.builder import make_request
from trunkline.sip.headers import Via
from trunkline.sip.message import Request
from trunkline.sip.uri import SipUri


def request_with_via(via: str) -> Request:
    return make_request(
        "OPTIONS", "sip:bob@example.com", from_="<sip:a@x>", to="<sip:b@y>", via=via
    )


def test_received_added_when_sent_by_differs() -> None:
    """RFC 3261 §18.2.1: sent-by 192.0.2.1 but the packet came from 198.51.100.7."""
    request = request_with_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1")
    assert stamp_received(request, ("198.51.100.7", 5060))
    top = request.via[0]
    assert top.received == "198.51.100.7"
    assert top.rport is None and not top.rport_requested


def test_nothing_added_when_sent_by_is_the_source() -> None:
    request = request_with_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1")
    before = bytes(request)
    assert not stamp_received(request, ("192.0.2.1", 5060))
    assert bytes(request) == before


def test_rport_filled_and_received_always_added() -> None:
    """RFC 3581 §4: with rport requested, received is added even when it equals sent-by."""
    request = request_with_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport")
    stamp_received(request, ("192.0.2.1", 40123))
    top = request.via[0]
    assert (top.received, top.rport) == ("192.0.2.1", 40123)


def test_ipv6_received_is_bare() -> None:
    request = request_with_via("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport")
    stamp_received(request, ("2001:db8::9", 5070))
    assert request.via[0].received == "2001:db8::9"
    assert same_address("[2001:DB8::9]", "2001:db8::9")


@pytest.mark.parametrize(
    ("via", "expected"),
    [
        ("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1", Destination("UDP", "192.0.2.1", 5070)),
        ("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", Destination("UDP", "192.0.2.1", 5060)),
        (
            "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1;received=198.51.100.7",
            Destination("UDP", "198.51.100.7", 5070),
        ),
        (
            "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1;received=198.51.100.7;rport=40000",
            Destination("UDP", "198.51.100.7", 40000),
        ),
        (
            "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK1;maddr=239.255.255.1;received=1.2.3.4",
            Destination("UDP", "239.255.255.1", 5070),
        ),
        ("SIP/2.0/TLS [2001:db8::1];branch=z9hG4bK1", Destination("TLS", "2001:db8::1", 5061)),
    ],
)
def test_response_destination(via: str, expected: Destination) -> None:
    """RFC 3261 §18.2.2 (maddr, then received/rport, then sent-by) with RFC 3581 §4."""
    assert response_destination(Via.parse(via)) == expected


@pytest.mark.parametrize(
    ("uri", "size", "expected"),
    [
        ("sip:bob@192.0.2.1", 500, "UDP"),
        ("sip:bob@192.0.2.1", 1301, "TCP"),  # §18.1.1: over 1300 bytes, congestion controlled
        ("sip:bob@192.0.2.1;transport=udp", 1301, "TCP"),
        ("sip:bob@192.0.2.1;transport=tcp", 100, "TCP"),
        ("sips:bob@example.com", 100, "TLS"),  # §26.2.2
        ("sips:bob@example.com;transport=tcp", 100, "TLS"),
        ("sip:bob@df7jal23ls0d.invalid;transport=ws", 100, "WS"),
        ("sips:bob@example.com;transport=ws", 100, "WSS"),
    ],
)
def test_choose_transport(uri: str, size: int, expected: str) -> None:
    assert choose_transport(SipUri.parse(uri), size) == expected


def test_next_hop_prefers_the_route_set() -> None:
    """§8.1.2: the first Route (loose routing) decides where the request goes."""
    request = make_request(
        "BYE",
        "sip:bob@192.0.2.9:5070",
        from_="<sip:a@x>;tag=1",
        to="<sip:b@y>;tag=2",
        extra_headers=[("Route", "<sip:proxy.example.com:5080;lr;transport=tcp>")],
    )
    hop = next_hop(request)
    assert (hop.host, hop.port, hop.transport) == ("proxy.example.com", 5080, "tcp")
    without = make_request("BYE", "sip:bob@192.0.2.9:5070", from_="<sip:a@x>", to="<sip:b@y>")
    assert next_hop(without).host == "192.0.2.9"


def test_uri_destination_honours_maddr_and_default_ports() -> None:
    assert uri_destination(SipUri.parse("sip:bob@example.com;maddr=192.0.2.3"), "UDP") == (
        Destination("UDP", "192.0.2.3", 5060, server_name="example.com")
    )
    assert uri_destination(SipUri.parse("sips:bob@[2001:db8::2]"), "TLS").port == 5061


def test_response_destination_is_remembered_per_via_object_only() -> None:
    first = Via.parse(
        "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKcache;rport=6000;received=192.0.2.9"
    )
    assert response_destination(first) == Destination("UDP", "192.0.2.9", 6000)
    assert response_destination(first) is response_destination(first)
    # Another object never gets the first one's answer, even past the cache's bound.
    for n in range(5000):
        via = Via.parse(f"SIP/2.0/TCP 198.51.100.{n % 250 + 1}:{5000 + n};branch=z9hG4bK{n}")
        assert response_destination(via) == Destination(
            "TCP", f"198.51.100.{n % 250 + 1}", 5000 + n
        )
    assert response_destination(first) == Destination("UDP", "192.0.2.9", 6000)


def test_uri_destination_is_remembered_per_uri_object_and_transport() -> None:
    uri = SipUri.parse("sip:bob@[2001:db8::5]")
    assert uri_destination(uri, "UDP") == Destination(
        "UDP", "2001:db8::5", 5060, server_name="2001:db8::5"
    )
    assert uri_destination(uri, "TLS") == Destination(
        "TLS", "2001:db8::5", 5061, server_name="2001:db8::5"
    )
    assert uri_destination(uri, "UDP").port == 5060
    other = SipUri.parse("sip:bob@198.51.100.3:5070;maddr=192.0.2.44")
    assert uri_destination(other, "UDP") == Destination(
        "UDP", "192.0.2.44", 5070, server_name="198.51.100.3"
    )
