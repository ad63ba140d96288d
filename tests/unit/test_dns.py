"""RFC 3263 server location: every branch on the static, in-memory backend."""

from __future__ import annotations

import collections
import random

import pytest

from trunkline.sip.dns import (
    Locator,
    Naptr,
    Srv,
    StaticResolver,
    Target,
    order_naptr,
    order_srv,
)
from trunkline.sip.errors import LocalSipError
from trunkline.sip.uri import SipUri

DOMAIN = "example.com"
HOSTS = {
    "a.example.com": ["192.0.2.1"],
    "b.example.com": ["192.0.2.2", "2001:db8::2"],
    "c.example.com": ["192.0.2.3"],
    "example.com": ["192.0.2.100"],
    "proxy.example.net": ["198.51.100.7"],
}


def naptr(order: int, pref: int, service: str, replacement: str, flags: str = "s") -> Naptr:
    return Naptr(order, pref, flags, service, "", replacement)


def locator(resolver: StaticResolver, **kwargs: object) -> Locator:
    return Locator(resolver, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]


async def locate(text: str, resolver: StaticResolver, **kwargs: object) -> list[Target]:
    return await locator(resolver, **kwargs).locate(SipUri.parse(text))


# -- numeric addresses and explicit ports (RFC 3263 §4.1, §4.2) -----------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:alice@192.0.2.9", Target("udp", "192.0.2.9", 5060, "192.0.2.9")),
        ("sip:192.0.2.9:5070", Target("udp", "192.0.2.9", 5070, "192.0.2.9")),
        ("sips:192.0.2.9", Target("tls", "192.0.2.9", 5061, "192.0.2.9")),
        ("sip:192.0.2.9;transport=TCP", Target("tcp", "192.0.2.9", 5060, "192.0.2.9")),
        ("sip:192.0.2.9;transport=tls", Target("tls", "192.0.2.9", 5061, "192.0.2.9")),
        ("sips:192.0.2.9;transport=tcp", Target("tls", "192.0.2.9", 5061, "192.0.2.9")),
        ("sip:[2001:DB8::1]:5080", Target("udp", "2001:db8::1", 5080, "2001:db8::1")),
        ("sip:x@host.invalid;maddr=192.0.2.4", Target("udp", "192.0.2.4", 5060, "192.0.2.4")),
    ],
)
async def test_numeric_ip_is_used_directly(uri: str, expected: Target) -> None:
    resolver = StaticResolver()
    assert await locate(uri, resolver, transports=("udp", "tcp", "tls")) == [expected]
    assert resolver.queries == []


async def test_explicit_port_means_address_records_only() -> None:
    resolver = StaticResolver(HOSTS, naptr={"b.example.com": [naptr(1, 1, "SIP+D2T", "x")]})
    targets = await locate("sip:bob@b.example.com:5099", resolver)
    assert targets == [
        Target("udp", "b.example.com", 5099, "192.0.2.2"),
        Target("udp", "b.example.com", 5099, "2001:db8::2"),
    ]
    assert resolver.queries == [("A/AAAA", "b.example.com")]
    secure = await locate("sips:bob@a.example.com:6000", StaticResolver(HOSTS))
    assert secure == [Target("tls", "a.example.com", 6000, "192.0.2.1")]


async def test_targets_carry_the_uri_domain_for_tls_checks() -> None:
    resolver = StaticResolver(
        HOSTS, srv={"_sips._tcp.example.com": [Srv(0, 0, 5061, "c.example.com")]}
    )
    [target] = await locate("sips:alice@Example.COM", resolver)
    assert (target.host, target.domain, target.secure) == ("c.example.com", "example.com", True)
    [direct] = await locate("sip:[2001:db8::1]", resolver)
    assert direct.domain == "2001:db8::1" and not direct.secure


def test_unknown_transport_is_a_local_error() -> None:
    with pytest.raises(LocalSipError):
        Locator(StaticResolver(), transports=("udp", "carrier-pigeon"))


async def test_prefer_ipv6_puts_aaaa_first() -> None:
    targets = await locate("sip:b.example.com:5060", StaticResolver(HOSTS), prefer_ipv6=True)
    assert [t.address for t in targets] == ["2001:db8::2", "192.0.2.2"]


# -- explicit transport parameter ---------------------------------------------------------


async def test_transport_param_queries_srv_for_that_transport() -> None:
    resolver = StaticResolver(
        HOSTS,
        srv={"_sip._tcp.example.com": [Srv(10, 0, 5070, "a.example.com")]},
        naptr={DOMAIN: [naptr(1, 1, "SIP+D2U", "_sip._udp.example.com")]},
    )
    targets = await locate("sip:example.com;transport=tcp", resolver)
    assert targets == [Target("tcp", "a.example.com", 5070, "192.0.2.1")]
    assert ("NAPTR", DOMAIN) not in resolver.queries  # RFC 3263 §4.1: no NAPTR needed


async def test_transport_param_without_srv_uses_default_port() -> None:
    resolver = StaticResolver(HOSTS)
    targets = await locate("sip:example.com;transport=tls", resolver)
    assert targets == [Target("tls", "example.com", 5061, "192.0.2.100")]
    # A SIP URI asking for TLS looks for _sips._tcp (RFC 3263 §4.2).
    assert resolver.queries[0] == ("SRV", "_sips._tcp.example.com")


async def test_unsupported_or_contradictory_transport_gives_nothing() -> None:
    resolver = StaticResolver(HOSTS)
    assert await locate("sip:example.com;transport=sctp", resolver) == []
    assert await locate("sips:example.com;transport=udp", resolver) == []
    assert await locate("sips:192.0.2.1", resolver, transports=("udp",)) == []
    assert resolver.queries == []


# -- NAPTR -> SRV -> A/AAAA ---------------------------------------------------------------


def full_zone() -> StaticResolver:
    return StaticResolver(
        HOSTS,
        naptr={
            DOMAIN: [
                naptr(20, 10, "SIP+D2U", "_sip._udp.example.com"),
                naptr(10, 20, "SIP+D2T", "_sip._tcp.example.com"),
                naptr(10, 10, "SIPS+D2T", "_sips._tcp.example.com"),
                naptr(5, 10, "SIP+D2X", "_sip._x.example.com"),  # not a SIP service
                naptr(5, 10, "SIP+D2S", "_sip._sctp.example.com"),  # unsupported transport
                naptr(5, 10, "SIP+D2U", "", flags="u"),  # a regexp record, not usable
            ]
        },
        srv={
            "_sips._tcp.example.com": [Srv(0, 0, 5061, "c.example.com")],
            "_sip._tcp.example.com": [
                Srv(20, 0, 5060, "b.example.com"),
                Srv(10, 0, 5062, "a.example.com"),
            ],
            "_sip._udp.example.com": [Srv(0, 0, 5060, "a.example.com")],
        },
    )


async def test_naptr_order_then_preference_then_srv_priority() -> None:
    targets = await locate("sip:alice@example.com", full_zone())
    assert targets == [
        Target("tls", "c.example.com", 5061, "192.0.2.3"),
        Target("tcp", "a.example.com", 5062, "192.0.2.1"),
        Target("tcp", "b.example.com", 5060, "192.0.2.2"),
        Target("tcp", "b.example.com", 5060, "2001:db8::2"),
        Target("udp", "a.example.com", 5060, "192.0.2.1"),
    ]


async def test_sips_uri_keeps_only_sips_services() -> None:
    targets = await locate("sips:alice@example.com", full_zone())
    assert targets == [Target("tls", "c.example.com", 5061, "192.0.2.3")]


async def test_naptr_only_for_supported_transports() -> None:
    targets = await locate("sip:alice@example.com", full_zone(), transports=("udp",))
    assert targets == [Target("udp", "a.example.com", 5060, "192.0.2.1")]


def test_order_naptr_filters_and_sorts() -> None:
    records = full_zone().naptr_records[DOMAIN]
    ordered = order_naptr(records, secure=False, transports=("udp", "tcp", "tls", "ws", "wss"))
    assert [(t, r.order, r.preference) for t, r in ordered] == [
        ("tls", 10, 10),
        ("tcp", 10, 20),
        ("udp", 20, 10),
    ]
    ws = [naptr(1, 1, "SIPS+D2W", "_sips._ws.example.com"), naptr(1, 2, "sip+d2w", "_w")]
    assert [t for t, _ in order_naptr(ws, secure=False, transports=("ws", "wss"))] == [
        "wss",
        "ws",
    ]
    assert [t for t, _ in order_naptr(ws, secure=True, transports=("ws", "wss"))] == ["wss"]


async def test_naptr_a_flag_goes_straight_to_addresses() -> None:
    resolver = StaticResolver(
        HOSTS, naptr={DOMAIN: [naptr(1, 1, "SIP+D2T", "proxy.example.net.", flags="A")]}
    )
    targets = await locate("sip:example.com", resolver)
    assert targets == [Target("tcp", "proxy.example.net", 5060, "198.51.100.7")]


async def test_no_naptr_falls_back_to_srv_per_transport() -> None:
    resolver = StaticResolver(
        HOSTS,
        srv={
            "_sip._tcp.example.com": [Srv(0, 0, 5060, "b.example.com")],
            "_sip._udp.example.com": [Srv(0, 0, 5060, "a.example.com")],
            "_sips._tcp.example.com": [Srv(0, 0, 5061, "c.example.com")],
        },
    )
    targets = await locate("sip:example.com", resolver)
    assert [(t.transport, t.host) for t in targets] == [
        ("udp", "a.example.com"),
        ("tcp", "b.example.com"),
        ("tcp", "b.example.com"),
        ("tls", "c.example.com"),
    ]
    assert resolver.queries[:4] == [
        ("NAPTR", DOMAIN),
        ("SRV", "_sip._udp.example.com"),
        ("A/AAAA", "a.example.com"),
        ("SRV", "_sip._tcp.example.com"),
    ]
    secure = await locate("sips:example.com", resolver)
    assert secure == [Target("tls", "c.example.com", 5061, "192.0.2.3")]


async def test_unusable_naptr_falls_back_to_srv() -> None:
    resolver = StaticResolver(
        HOSTS,
        naptr={DOMAIN: [naptr(1, 1, "SIP+D2S", "_sip._sctp.example.com")]},
        srv={"_sip._udp.example.com": [Srv(0, 0, 5060, "a.example.com")]},
    )
    targets = await locate("sip:example.com", resolver)
    assert targets == [Target("udp", "a.example.com", 5060, "192.0.2.1")]


async def test_no_srv_uses_address_records_and_default_ports() -> None:
    assert await locate("sip:example.com", StaticResolver(HOSTS)) == [
        Target("udp", "example.com", 5060, "192.0.2.100")
    ]
    assert await locate("sips:example.com", StaticResolver(HOSTS)) == [
        Target("tls", "example.com", 5061, "192.0.2.100")
    ]
    tcp_only = await locate("sip:example.com", StaticResolver(HOSTS), transports=("tcp",))
    assert tcp_only == [Target("tcp", "example.com", 5060, "192.0.2.100")]
    assert await locate("sip:nowhere.example.org", StaticResolver(HOSTS)) == []


async def test_srv_target_dot_means_no_service() -> None:
    resolver = StaticResolver(HOSTS, srv={"_sip._udp.example.com": [Srv(0, 0, 0, ".")]})
    # "." drops the SRV set; with nothing else found the locator falls back to A.
    assert await locate("sip:example.com;transport=udp", resolver) == [
        Target("udp", "example.com", 5060, "192.0.2.100")
    ]


async def test_duplicate_targets_are_listed_once() -> None:
    resolver = StaticResolver(
        HOSTS,
        srv={
            "_sip._udp.example.com": [
                Srv(0, 0, 5060, "a.example.com"),
                Srv(1, 0, 5060, "a.example.com"),
            ]
        },
    )
    assert await locate("sip:example.com;transport=udp", resolver) == [
        Target("udp", "a.example.com", 5060, "192.0.2.1")
    ]


# -- RFC 2782 ordering ---------------------------------------------------------------------


def test_order_srv_priority_first() -> None:
    records = [Srv(20, 100, 1, "z"), Srv(10, 0, 2, "y"), Srv(10, 0, 3, "x"), Srv(5, 1, 4, "w")]
    ordered = order_srv(records, random.Random(1))
    assert [r.priority for r in ordered] == [5, 10, 10, 20]
    assert {r.target for r in ordered[1:3]} == {"x", "y"}


def test_order_srv_weights_are_proportional() -> None:
    records = [Srv(0, 60, 1, "a"), Srv(0, 30, 2, "b"), Srv(0, 10, 3, "c")]
    rng = random.Random(2024)
    trials = 3000
    first = collections.Counter(order_srv(records, rng)[0].target for _ in range(trials))
    for target, weight in (("a", 0.6), ("b", 0.3), ("c", 0.1)):
        assert abs(first[target] / trials - weight) < 0.04, first
    # Every record appears exactly once whatever the draw.
    assert sorted(r.target for r in order_srv(records, rng)) == ["a", "b", "c"]


def test_order_srv_zero_weight_rarely_first() -> None:
    records = [Srv(0, 0, 1, "zero"), Srv(0, 50, 2, "heavy")]
    rng = random.Random(5)
    first = collections.Counter(order_srv(records, rng)[0].target for _ in range(1000))
    # P(zero first) = 1/51 per RFC 2782's running-sum rule.
    assert first["zero"] < 60
    assert first["heavy"] > 900


def test_order_srv_is_deterministic_with_injected_rng() -> None:
    records = [Srv(0, w, i, f"t{i}") for i, w in enumerate((5, 10, 20, 40))]
    assert order_srv(records, random.Random(9)) == order_srv(records, random.Random(9))


async def test_locate_sent_by_for_responses() -> None:
    resolver = StaticResolver(
        HOSTS, srv={"_sips._tcp.example.com": [Srv(0, 0, 5071, "c.example.com")]}
    )
    loc = locator(resolver)
    assert await loc.locate_sent_by("UDP", "192.0.2.50", None) == [
        Target("udp", "192.0.2.50", 5060, "192.0.2.50")
    ]
    assert await loc.locate_sent_by("UDP", "[2001:db8::5]", 5070) == [
        Target("udp", "2001:db8::5", 5070, "2001:db8::5")
    ]
    assert await loc.locate_sent_by("udp", "a.example.com", 5080) == [
        Target("udp", "a.example.com", 5080, "192.0.2.1")
    ]
    [tls] = await loc.locate_sent_by("TLS", "example.com", None)
    assert tls == Target("tls", "c.example.com", 5071, "192.0.2.3")
    assert tls.domain == "example.com"
    # No SRV for UDP: A/AAAA of the sent-by on the default port.
    assert await loc.locate_sent_by("UDP", "example.com", None) == [
        Target("udp", "example.com", 5060, "192.0.2.100")
    ]
    assert await loc.locate_sent_by("SCTP-MAGIC", "example.com", None) == []
