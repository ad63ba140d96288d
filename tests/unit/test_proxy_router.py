"""Each branch of the routing decision, with requests built by the SIP builder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from trunkline.proxy.antiflood import AntiFlood, FloodPolicy, TrustedNetworks
from trunkline.proxy.dispatcher import Dispatcher, DispatchRule
from trunkline.proxy.forking import ResponseContext, SendBranch, SendUpstream, record_route_value
from trunkline.proxy.location import ContactSpec, RegisterRequest, RegistrarPolicy
from trunkline.proxy.location_sqlite import MemoryLocation
from trunkline.proxy.nat import Origin
from trunkline.proxy.registrar import Authenticator, Registrar
from trunkline.proxy.router import Cancel, Drop, Forward, Relay, Router, RouterConfig
from trunkline.proxy.validation import Reply, ValidationPolicy
from trunkline.sip.authheaders import Challenge
from trunkline.sip.builder import make_request, make_response
from trunkline.sip.digest import DigestClient, ha1
from trunkline.sip.errors import SipParseError
from trunkline.sip.message import Request, parse_message

DOMAIN = "example.com"
PROXY = "192.0.2.10:5060"
SECRET = b"0123456789abcdef0123456789abcdef"
PASSWORDS = {"alice": "wonderland", "bob": "builder", "carol": "singer"}
STRANGER = Origin("UDP", "198.51.100.7", 5060)
ALICE_PHONE = Origin("UDP", "203.0.113.4", 40000)
CARRIER = Origin("UDP", "10.9.9.9", 5060)
NOW = 1000.0


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    password = PASSWORDS.get(username)
    return (
        None if password is None or realm != DOMAIN else ha1(username, realm, password, algorithm)
    )


async def _router(**flood: float) -> Router:
    location = MemoryLocation(None)
    auth = Authenticator(SECRET, lookup)
    antiflood = AntiFlood(FloodPolicy(**flood), TrustedNetworks(["10.9.0.0/16"]))  # type: ignore[arg-type]
    registrar = Registrar(location, auth, [DOMAIN], RegistrarPolicy())
    config = RouterConfig(
        domains=frozenset({DOMAIN}),
        validation=ValidationPolicy(own_addresses=frozenset({PROXY})),
    )
    for contact, q, received in (
        ("sip:bob@192.168.1.5:5060", 1.0, "203.0.113.50:31000"),
        ("sip:bob@198.51.100.99:5060", 0.5, "198.51.100.99:5060"),
    ):
        await location.apply_register(
            RegisterRequest(
                aor="sip:bob@example.com",
                call_id=f"reg-{q}",
                cseq=1,
                contacts=(ContactSpec(contact, expires=3600, q=q),),
                received=received,
                transport="udp",
                path=("<sip:edge.example.net;lr>",) if q < 1 else (),
            ),
            NOW,
            RegistrarPolicy(),
        )
    return Router(
        config,
        location=location,
        registrar=registrar,
        authenticator=auth,
        antiflood=antiflood,
        user_exists=lambda user, domain: user in PASSWORDS and domain == DOMAIN,
    )


def _invite(
    uri: str = "sip:bob@example.com",
    from_: str = "sip:alice@example.com",
    *,
    method: str = "INVITE",
    to_tag: str | None = None,
    extra: Sequence[tuple[str, str]] = (),
    contact: str | None = "<sip:alice@192.168.1.2:5060>",
    max_forwards: int = 70,
) -> Request:
    to = f"<{uri}>" if to_tag is None else f"<{uri}>;tag={to_tag}"
    return make_request(
        method,
        uri,
        from_=f"<{from_}>;tag=ft",
        to=to,
        via="SIP/2.0/UDP 192.168.1.2:5060;rport",
        call_id="call-1",
        contact=contact,
        max_forwards=max_forwards,
        extra_headers=extra,
    )


def _with_credentials(request: Request, reply: Reply, user: str, password: str) -> Request:
    client = DigestClient(user, password)
    assert client.challenged(
        [Challenge.parse(v) for n, v in reply.headers if n == "Proxy-Authenticate"], proxy=True
    )
    for name, value in client.authorization(request.method, request.uri_text):
        request.headers.add(name, value)
    return request


async def test_validation_failure_is_replied() -> None:
    router = await _router()
    decision = await router.route(_invite(max_forwards=0), STRANGER, NOW)
    assert isinstance(decision, Reply) and decision.status == 483


async def test_flood_and_scanner_dropped() -> None:
    router = await _router(requests_per_second=1, burst=2)
    scanner = _invite(extra=[("User-Agent", "friendly-scanner")])
    assert await router.route(scanner, STRANGER, NOW) == Drop("scanner")
    other = Origin("UDP", "198.51.100.8", 5060)
    decisions = [await router.route(_invite(), other, NOW) for _ in range(3)]
    assert decisions[2] == Drop("flood")
    assert await router.route(_invite(), other, NOW + 1) == Drop("banned")


async def test_in_dialog_follows_our_record_route() -> None:
    router = await _router()
    request = _invite(
        "sip:bob@192.168.1.5:5060",
        method="BYE",
        to_tag="tt",
        extra=[("Route", f"<sip:{PROXY};lr>, <sip:edge.example.net;lr>")],
    )
    decision = await router.route(request, STRANGER, NOW)
    assert isinstance(decision, Relay) and decision.reason == "loose route"
    assert decision.request.headers.get_all("Route") == ["<sip:edge.example.net;lr>"]


async def test_in_dialog_last_hop_goes_to_request_uri() -> None:
    router = await _router()
    request = _invite(
        "sip:bob@192.168.1.5:5060",
        method="BYE",
        to_tag="tt",
        extra=[("Route", f"<sip:{PROXY};lr>")],
    )
    decision = await router.route(request, STRANGER, NOW)
    assert isinstance(decision, Relay)
    assert "Route" not in decision.request.headers
    assert decision.target.uri == "sip:bob@192.168.1.5:5060"


async def test_strict_router_rewrite_undone() -> None:
    router = await _router()
    request = _invite(
        f"sip:{PROXY};lr",
        method="BYE",
        to_tag="tt",
        extra=[("Route", "<sip:bob@192.168.1.5:5060>")],
    )
    decision = await router.route(request, STRANGER, NOW)
    assert isinstance(decision, Relay)
    assert decision.request.uri_text == "sip:bob@192.168.1.5:5060"
    assert "Route" not in decision.request.headers


async def test_in_dialog_without_our_route_refused() -> None:
    router = await _router()
    request = _invite("sip:bob@203.0.113.77", method="BYE", to_tag="tt")
    assert await router.route(request, STRANGER, NOW) == Reply(403, "Relaying Denied")
    ack = _invite("sip:bob@203.0.113.77", method="ACK", to_tag="tt")
    assert isinstance(await router.route(ack, STRANGER, NOW), Drop)
    trusted = await router.route(
        _invite("sip:x@203.0.113.77", method="BYE", to_tag="t"), CARRIER, NOW
    )
    assert isinstance(trusted, Relay)


async def test_cancel_goes_to_response_context() -> None:
    router = await _router()
    decision = await router.route(_invite(method="CANCEL", contact=None), STRANGER, NOW)
    assert isinstance(decision, Cancel)


async def test_register_goes_to_registrar_and_counts_failures() -> None:
    router = await _router(auth_failures_before_ban=2)
    register = make_request(
        "REGISTER",
        f"sip:{DOMAIN}",
        from_="<sip:alice@example.com>",
        to="<sip:alice@example.com>",
        via="SIP/2.0/UDP 192.168.1.2",
        contact="<sip:alice@192.168.1.2>",
    )
    first = await router.route(register, ALICE_PHONE, NOW)
    assert isinstance(first, Reply) and first.status == 401
    for attempt in range(2):
        retry = register.copy()
        client = DigestClient("alice", "wrong")
        client.challenged([Challenge.parse(v) for _, v in first.headers])
        for name, value in client.authorization("REGISTER", register.uri_text):
            retry.headers.add(name, value)
        decision = await router.route(retry, ALICE_PHONE, NOW + attempt)
        assert isinstance(decision, Reply) and decision.status == 401
    assert router.antiflood is not None and router.antiflood.counters.auth_failures == 2
    assert await router.route(register, ALICE_PHONE, NOW + 5) == Drop("banned")


async def test_local_user_must_authenticate_then_forks() -> None:
    router = await _router()
    challenge = await router.route(_invite(), ALICE_PHONE, NOW)
    assert isinstance(challenge, Reply) and challenge.status == 407
    request = _with_credentials(_invite(), challenge, "alice", "wonderland")
    decision = await router.route(request, ALICE_PHONE, NOW)
    assert isinstance(decision, Forward) and decision.record_route
    assert "Proxy-Authorization" not in decision.request.headers
    assert [t.uri for t in decision.targets] == [
        "sip:bob@192.168.1.5:5060",
        "sip:bob@198.51.100.99:5060",
    ]
    first, second = decision.targets
    assert first.destination == "203.0.113.50:31000" and first.q == 1.0
    assert second.destination is None and second.route == ("<sip:edge.example.net;lr>",)
    # The NATed caller's Contact now points at its public address.
    assert str(decision.request.contact[0].uri) == "sip:alice@203.0.113.4:40000"


async def test_credentials_of_another_user_refused() -> None:
    router = await _router()
    challenge = await router.route(_invite(), ALICE_PHONE, NOW)
    assert isinstance(challenge, Reply)
    request = _with_credentials(_invite(), challenge, "carol", "singer")
    assert await router.route(request, ALICE_PHONE, NOW) == Reply(403, "Forbidden")


async def test_wrong_password_rechallenged_and_counted() -> None:
    router = await _router()
    challenge = await router.route(_invite(), ALICE_PHONE, NOW)
    assert isinstance(challenge, Reply)
    request = _with_credentials(_invite(), challenge, "alice", "nope")
    decision = await router.route(request, ALICE_PHONE, NOW)
    assert isinstance(decision, Reply) and decision.status == 407
    assert router.antiflood is not None and router.antiflood.counters.auth_failures == 1


async def test_trusted_source_relays_to_foreign_domain() -> None:
    router = await _router()
    decision = await router.route(_invite("sip:service@203.0.113.80:5080"), CARRIER, NOW)
    assert isinstance(decision, Relay) and decision.record_route and decision.reason == "trusted"


async def test_authenticated_local_user_may_call_out() -> None:
    router = await _router()
    outbound = _invite("sip:dave@other.org")
    challenge = await router.route(outbound, ALICE_PHONE, NOW)
    assert isinstance(challenge, Reply) and challenge.status == 407
    request = _with_credentials(_invite("sip:dave@other.org"), challenge, "alice", "wonderland")
    decision = await router.route(request, ALICE_PHONE, NOW)
    assert isinstance(decision, Relay) and decision.reason == "local user"


async def test_stranger_may_not_relay() -> None:
    router = await _router()
    request = _invite("sip:dave@other.org", from_="sip:eve@evil.example")
    assert await router.route(request, STRANGER, NOW) == Reply(403, "Relaying Denied")


async def test_stranger_may_call_local_user() -> None:
    router = await _router()
    request = _invite(from_="sip:eve@elsewhere.example")
    decision = await router.route(request, STRANGER, NOW)
    assert isinstance(decision, Forward) and decision.aor == "sip:bob@example.com"


async def test_unknown_user_404_and_unregistered_480() -> None:
    router = await _router()
    unknown = _invite("sip:nobody@example.com", from_="sip:eve@elsewhere.example")
    assert (await router.route(unknown, CARRIER, NOW)) == Reply(404, "Not Found")
    carol = _invite("sip:carol@example.com", from_="sip:eve@elsewhere.example")
    assert (await router.route(carol, STRANGER, NOW)) == Reply(480, "Temporarily Unavailable")


async def test_strangers_cannot_tell_unknown_users_from_unregistered_ones() -> None:
    router = await _router()
    for user in ("nobody", "carol"):  # carol exists but has not registered
        request = _invite(f"sip:{user}@example.com", from_="sip:eve@elsewhere.example")
        assert await router.route(request, STRANGER, NOW) == Reply(
            480, "Temporarily Unavailable"
        ), user


async def test_options_to_the_domain_answered() -> None:
    router = await _router()
    request = _invite(f"sip:{DOMAIN}", from_="sip:eve@elsewhere.example", method="OPTIONS")
    decision = await router.route(request, STRANGER, NOW)
    assert isinstance(decision, Reply) and decision.status == 200


async def test_stray_ack_dropped() -> None:
    router = await _router()
    decision = await router.route(_invite(method="ACK"), STRANGER, NOW)
    assert isinstance(decision, Drop)


async def test_register_for_foreign_domain_refused_for_strangers() -> None:
    router = await _router()
    register = make_request(
        "REGISTER",
        "sip:other.org",
        from_="<sip:x@other.org>",
        to="<sip:x@other.org>",
        via="SIP/2.0/UDP 198.51.100.7",
    )
    assert await router.route(register, STRANGER, NOW) == Reply(403, "Relaying Denied")
    assert isinstance(await router.route(register.copy(), CARRIER, NOW), Relay)


TORTURE = sorted(
    path
    for folder in ("rfc4475", "rfc5118")
    for path in (Path(__file__).parents[1] / "data" / folder).glob("*.dat")
)


async def test_torture_messages_never_raise() -> None:
    """RFC 4475/5118 messages: every request that parses gets a decision, never an exception."""
    assert len(TORTURE) > 40
    router = await _router()
    decided = 0
    for path in TORTURE:
        try:
            message = parse_message(path.read_bytes())
        except SipParseError:
            continue
        if not isinstance(message, Request):
            continue
        for origin in (STRANGER, CARRIER, ALICE_PHONE):
            decision = await router.route(message.copy(), origin, NOW)
            assert isinstance(decision, Reply | Forward | Relay | Cancel | Drop), path.name
            decided += 1
    assert decided > 60


async def test_dispatch_rule_forwards_in_failover_order() -> None:
    router = await _router()
    dispatcher = Dispatcher.from_uris("media", ["sip:10.0.0.1:5080", "sip:10.0.0.2:5080"])
    router.dispatcher = dispatcher
    router.config = replace(
        router.config, dispatch=(DispatchRule("media", domain=DOMAIN, user_prefix="*9"),)
    )
    request = _invite("sip:*9100@example.com", from_="sip:eve@elsewhere.example")
    decision = await router.route(request, STRANGER, NOW)
    assert isinstance(decision, Forward) and decision.dispatch_set == "media"
    assert [t.uri for t in decision.targets] == [
        "sip:*9100@10.0.0.1:5080",
        "sip:*9100@10.0.0.2:5080",
    ]
    assert decision.targets[0].q > decision.targets[1].q
    assert decision.failover == frozenset({408, 503})
    for destination in dispatcher["media"].destinations:
        for _ in range(3):
            dispatcher["media"].report(destination.uri, ok=False, now=NOW)
    again = _invite("sip:*9100@example.com", from_="sip:eve@elsewhere.example")
    decision = await router.route(again, STRANGER, NOW)
    assert isinstance(decision, Reply) and decision.status == 503


async def test_dispatch_to_foreign_domain_needs_trust() -> None:
    router = await _router()
    router.dispatcher = Dispatcher.from_uris("pstn", ["sip:gw.carrier.net"])
    router.config = replace(router.config, dispatch=(DispatchRule("pstn", domain="pstn.local"),))
    request = _invite("sip:+15551234@pstn.local", from_="sip:eve@elsewhere.example")
    assert await router.route(request, STRANGER, NOW) == Reply(403, "Relaying Denied")
    trusted = await router.route(request.copy(), CARRIER, NOW)
    assert isinstance(trusted, Forward) and trusted.targets[0].uri == "sip:+15551234@gw.carrier.net"


async def test_invalid_ack_dropped_not_answered() -> None:
    router = await _router()
    decision = await router.route(_invite(method="ACK", max_forwards=0), STRANGER, NOW)
    assert decision == Drop("invalid ACK: 483 Too Many Hops")


async def test_route_then_fork_end_to_end() -> None:
    """The router's Forward drives a response context: ringing, answer, cancel of the other."""
    router = await _router()
    request = _invite(from_="sip:eve@elsewhere.example")
    decision = await router.route(request, STRANGER, NOW)
    assert isinstance(decision, Forward)
    context = ResponseContext(
        decision.request, decision.targets, record_route=record_route_value(f"sip:{PROXY}")
    )
    sends = [a for a in context.start(NOW) if isinstance(a, SendBranch)]
    assert [s.target.uri for s in sends] == ["sip:bob@192.168.1.5:5060"]  # q=1.0 group first
    assert sends[0].request.headers.get("Record-Route") == f"<sip:{PROXY};lr>"
    assert sends[0].target.destination == "203.0.113.50:31000"  # the NAT binding
    routed = sends[0].request.copy()
    routed.headers.prepend("Via", f"SIP/2.0/UDP {PROXY};branch={sends[0].branch}")
    record_routes = [("Record-Route", v) for v in routed.headers.get_all("Record-Route")]
    answer = make_response(routed, 200, headers=record_routes)  # the UAS copies it (§12.1.1)
    upstream = [
        a for a in context.receive_response(0, answer, NOW + 1) if isinstance(a, SendUpstream)
    ]
    assert [u.response.status for u in upstream] == [200]
    assert upstream[0].response.headers.get_all("Record-Route") == [f"<sip:{PROXY};lr>"]
    assert context.finished


async def test_register_with_preloaded_route_to_us() -> None:
    """A phone with an outbound proxy: REGISTER sip:domain with Route: <sip:proxy;lr>."""
    router = await _router()
    register = make_request(
        "REGISTER",
        f"sip:{DOMAIN}",
        from_="<sip:alice@example.com>",
        to="<sip:alice@example.com>",
        via="SIP/2.0/UDP 192.168.1.2",
        contact="<sip:alice@192.168.1.2>",
        extra_headers=[("Route", f"<sip:{PROXY};lr>")],
    )
    decision = await router.route(register, ALICE_PHONE, NOW)
    assert isinstance(decision, Reply) and decision.status == 401
    assert register.uri_text == f"sip:{DOMAIN}" and "Route" not in register.headers


async def _ip_domain_router() -> Router:
    """The zero-config setup: the domain is the server's own address (127.0.0.1)."""
    location = MemoryLocation(None)
    auth = Authenticator(SECRET, lookup)
    config = RouterConfig(
        domains=frozenset({"127.0.0.1"}),
        validation=ValidationPolicy(own_addresses=frozenset({"127.0.0.1:5060"})),
    )
    return Router(
        config,
        location=location,
        registrar=Registrar(location, auth, ["127.0.0.1"], RegistrarPolicy()),
        authenticator=auth,
        trusted=TrustedNetworks(["10.9.0.0/16"]),
        user_exists=lambda user, domain: user == "bob" and domain == "127.0.0.1",
    )


async def test_ip_domain_in_dialog_request_to_phone_on_same_host_relayed() -> None:
    """Regression: a phone at 127.0.0.1:5070 is not the proxy at 127.0.0.1:5060."""
    router = await _ip_domain_router()
    for method in ("BYE", "ACK"):
        request = _invite(
            "sip:ben@127.0.0.1:5070",
            method=method,
            to_tag="tt",
            extra=[("Route", "<sip:127.0.0.1:5060;lr>")],
        )
        decision = await router.route(request, STRANGER, NOW)
        assert isinstance(decision, Relay), (method, decision)
        assert decision.target.uri == "sip:ben@127.0.0.1:5070"


async def test_ip_domain_trusted_relay_to_other_port_not_located() -> None:
    router = await _ip_domain_router()
    request = _invite("sip:carol@127.0.0.1:5070", from_="sip:gw@carrier.example")
    decision = await router.route(request, CARRIER, NOW)
    assert isinstance(decision, Relay) and decision.reason == "trusted"


async def test_ip_domain_without_port_or_on_our_port_is_local() -> None:
    router = await _ip_domain_router()
    for uri in ("sip:bob@127.0.0.1", "sip:bob@127.0.0.1:5060"):
        decision = await router.route(_invite(uri, from_="sip:gw@carrier.example"), CARRIER, NOW)
        assert decision == Reply(480, "Temporarily Unavailable"), uri
    unknown = _invite("sip:nobody@127.0.0.1", from_="sip:gw@carrier.example")
    assert await router.route(unknown, CARRIER, NOW) == Reply(404, "Not Found")
