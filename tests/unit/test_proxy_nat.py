"""NAT detection, Contact fixing and keep-alive scheduling."""

from __future__ import annotations

from trunkline.proxy.nat import (
    KeepAliveSchedule,
    KeepAliveTarget,
    Origin,
    detect_nat,
    fix_contact,
    fixed_contact_uri,
    is_private,
    make_keepalive,
)
from trunkline.sip.builder import make_request, make_response
from trunkline.sip.message import Request


def _register(via_host: str, contact: str) -> Request:
    return make_request(
        "REGISTER",
        "sip:example.com",
        from_="<sip:alice@example.com>",
        to="<sip:alice@example.com>",
        via=f"SIP/2.0/UDP {via_host};rport",
        contact=contact,
    )


def test_private_ranges() -> None:
    for host in ("10.1.2.3", "172.20.0.1", "192.168.1.1", "100.64.0.1", "[fd00::1]", "fe80::1"):
        assert is_private(host), host
    for host in ("8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1", "example.com"):
        assert not is_private(host), host


def test_nated_client_detected() -> None:
    request = _register("192.168.1.20:5060", "<sip:alice@192.168.1.20:5060>")
    info = detect_nat(request, Origin("UDP", "203.0.113.4", 40123))
    assert info.behind_nat
    assert "private address in contact" in info.reasons
    assert "via host differs from source" in info.reasons


def test_public_client_not_nated() -> None:
    request = _register("203.0.113.4:5060", "<sip:alice@203.0.113.4:5060>")
    assert not detect_nat(request, Origin("UDP", "203.0.113.4", 5060)).behind_nat


def test_port_mismatch_on_udp_is_nat_but_not_on_tcp() -> None:
    request = _register("203.0.113.4:5060", "<sip:alice@203.0.113.4:5060>")
    assert detect_nat(request, Origin("UDP", "203.0.113.4", 61000)).behind_nat
    assert not detect_nat(request, Origin("TCP", "203.0.113.4", 61000)).behind_nat


def test_fixed_contact_uri_keeps_user_and_params() -> None:
    fixed = fixed_contact_uri(
        "sip:alice@192.168.1.20:5060;transport=udp", Origin("UDP", "203.0.113.4", 40123)
    )
    assert fixed == "sip:alice@203.0.113.4:40123;transport=udp"
    assert fixed_contact_uri("tel:+123", Origin("UDP", "1.2.3.4", 5)) == "tel:+123"
    v6 = fixed_contact_uri("sip:a@10.0.0.1", Origin("UDP", "2001:db8::5", 5060))
    assert v6 == "sip:a@[2001:db8::5]:5060"


def test_fix_contact_rewrites_message() -> None:
    request = _register("192.168.1.20", '"Alice" <sip:alice@192.168.1.20>;expires=60')
    assert fix_contact(request, Origin("UDP", "203.0.113.4", 40123))
    contact = request.contact[0]
    assert str(contact.uri) == "sip:alice@203.0.113.4:40123"
    assert contact.expires == 60 and contact.display_name == "Alice"
    assert b"203.0.113.4:40123" in bytes(request)
    assert not fix_contact(request, Origin("UDP", "203.0.113.4", 40123))


def test_origin_address_brackets_ipv6() -> None:
    assert Origin("UDP", "2001:db8::1", 5060).address == "[2001:db8::1]:5060"
    assert Origin("TLS", "1.2.3.4", 5061, "c1").reliable


def test_keepalive_schedule() -> None:
    schedule = KeepAliveSchedule(interval=20.0)
    a = KeepAliveTarget("a", "sip:a@10.0.0.1", "203.0.113.1:4000")
    b = KeepAliveTarget("b", "sip:b@10.0.0.2", "203.0.113.2:4000")
    schedule.update([a, b], now=0.0)
    assert schedule.get_timer() == 20.0
    assert schedule.due(19.9) == []
    assert {t.key for t in schedule.due(20.0)} == {"a", "b"}
    assert schedule.get_timer() == 40.0
    schedule.update([b], now=30.0)  # a unregistered
    assert [t.key for t in schedule.due(40.0)] == ["b"]
    schedule.remove("b")
    assert schedule.get_timer() is None and len(schedule) == 0
    assert schedule.sent == 3


def test_keepalive_memory_stays_bounded() -> None:
    schedule = KeepAliveSchedule(interval=1.0)
    for round_ in range(200):
        targets = [
            KeepAliveTarget(f"{round_}-{i}", "sip:x@10.0.0.1", "1.2.3.4:5") for i in range(5)
        ]
        schedule.update(targets, now=float(round_))
    assert len(schedule) == 5
    assert len(schedule._heap) <= 2 * 5 + 64 + 5


def test_make_keepalive() -> None:
    ping = make_keepalive("sip:alice@203.0.113.4:40123", "sip:proxy@192.0.2.10")
    assert ping.method == "OPTIONS" and ping.max_forwards == 0
    assert ping.uri_text == "sip:alice@203.0.113.4:40123"


def test_response_from_nated_callee_judged_by_contact() -> None:
    invite = make_request(
        "INVITE",
        "sip:bob@203.0.113.50:31000",
        from_="<sip:alice@example.com>",
        to="<sip:bob@example.com>",
        via="SIP/2.0/UDP 192.0.2.10:5060",  # the proxy's Via, on top of the response too
    )
    callee = Origin("UDP", "203.0.113.50", 31000)
    ok = make_response(invite, 200, headers=[("Contact", "<sip:bob@192.168.1.5:5060>")])
    info = detect_nat(ok, callee)
    assert info.behind_nat and "via host differs from source" not in info.reasons
    assert fix_contact(ok, callee) and str(ok.contact[0].uri) == "sip:bob@203.0.113.50:31000"
    public = make_response(invite, 200, headers=[("Contact", "<sip:bob@203.0.113.50:31000>")])
    assert not detect_nat(public, callee).behind_nat
