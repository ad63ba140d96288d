"""RFC 3263 §4.3 failover: SipEndpoint walks the located targets on failure."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint
from trunkline.sip.aio.failover import (
    MAX_RETRY_AFTER,
    FailoverPlan,
    TargetBlocklist,
    retry_after,
    retry_request,
    should_fail_over,
)
from trunkline.sip.aio.routing import Destination
from trunkline.sip.aio.tls import (
    DevCertificates,
    client_ssl_context,
    create_dev_certificates,
    server_ssl_context,
)
from trunkline.sip.builder import make_request, make_response
from trunkline.sip.dns import Locator, Srv, StaticResolver
from trunkline.sip.message import Request, Response
from trunkline.sip.timers import TimerConfig
from trunkline.sip.transaction import ClientInviteTransaction

FAST = TimerConfig(t1=0.02, t2=0.08, t4=0.1, timer_d=0.2, trying_delay=0.05)
DOMAIN = "pbx.example.com"


def request_to(uri: str, method: str = "OPTIONS") -> Request:
    return make_request(
        method,
        uri,
        from_="<sip:alice@example.org>",
        to=f"<sip:bob@{DOMAIN}>",
        contact="<sip:alice@127.0.0.1>",
    )


def srv_locator(transport: str, ports: list[int]) -> tuple[Locator, StaticResolver]:
    """SRV records for ``DOMAIN`` naming one host per port, tried in list order."""
    prefix = "_sips._tcp" if transport == "tls" else f"_sip._{transport}"
    records = [Srv(10 * (i + 1), 0, port, f"s{i}.{DOMAIN}") for i, port in enumerate(ports)]
    hosts = {f"s{i}.{DOMAIN}": ["127.0.0.1"] for i in range(len(ports))}
    resolver = StaticResolver(hosts, srv={f"{prefix}.{DOMAIN}": records})
    return Locator(resolver, transports=(transport,)), resolver


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A TCP port nobody listens on (bound, never listening: connect is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.fixture
async def endpoints() -> AsyncIterator[list[SipEndpoint]]:
    made: list[SipEndpoint] = []
    try:
        for _ in range(3):
            made.append(SipEndpoint(timers=FAST))
        yield made
    finally:
        for endpoint in made:
            await endpoint.close()


class Server:
    """A loopback SIP server that answers every request with a fixed status."""

    def __init__(self, endpoint: SipEndpoint, status: int, headers: list[tuple[str, str]]):
        self.endpoint = endpoint
        self.status = status
        self.headers = headers
        self.seen: list[Request] = []
        endpoint.on_request = self.answer

    async def answer(self, incoming: IncomingRequest) -> None:
        if incoming.request.method in ("ACK", "CANCEL"):
            return
        self.seen.append(incoming.request)
        incoming.respond(self.status, headers=self.headers, to_tag="srv")


async def serve(
    endpoint: SipEndpoint, transport: str, status: int, headers: tuple[tuple[str, str], ...] = ()
) -> tuple[Server, int]:
    listener = await endpoint.listen(transport)
    return Server(endpoint, status, list(headers)), listener.port


# -- pure helpers --------------------------------------------------------------------


def test_retry_after_parses_delta_and_ignores_comment_and_params() -> None:
    request = request_to(f"sip:bob@{DOMAIN}")
    plain = make_response(request, 503, headers=(("Retry-After", "30"),))
    commented = make_response(
        request, 503, headers=[("Retry-After", "120 (maintenance);duration=60")]
    )
    huge = make_response(request, 503, headers=[("Retry-After", "99999999")])
    assert retry_after(plain) == 30.0
    assert retry_after(commented) == 120.0
    assert retry_after(huge) == MAX_RETRY_AFTER
    assert retry_after(make_response(request, 503)) is None
    assert retry_after(make_response(request, 503, headers=[("Retry-After", "soon")])) is None


@pytest.mark.parametrize(
    ("status", "local", "answered", "expected"),
    [
        (503, False, True, True),  # the server is unavailable
        (503, True, False, True),  # transport failure
        (408, True, False, True),  # Timer B/F without any response
        (408, True, True, False),  # timed out after a provisional: the target is alive
        (408, False, True, False),  # a 408 sent by the target is its answer
        (486, False, True, False),
        (500, False, True, False),
        (200, False, True, False),
    ],
)
def test_should_fail_over(status: int, local: bool, answered: bool, expected: bool) -> None:
    response = make_response(request_to(f"sip:bob@{DOMAIN}"), status)
    assert should_fail_over(response, local=local, answered=answered) is expected


def test_blocklist_blocks_until_deadline() -> None:
    blocklist = TargetBlocklist()
    a = Destination("UDP", "192.0.2.1", 5060)
    b = Destination("UDP", "192.0.2.2", 5060)
    blocklist.block(a, 100.0, 30.0)
    blocklist.block(b, 100.0, 0.0)  # Retry-After: 0 blocks nothing
    assert blocklist.usable([a, b], 110.0) == [b]
    assert blocklist.blocked(Destination("udp", "192.0.2.1", 5060), 129.9)
    assert not blocklist.blocked(a, 130.0)
    assert blocklist.until == {}  # expired entries are forgotten


def test_plan_skips_blocked_targets() -> None:
    blocklist = TargetBlocklist()
    a, b, c = (Destination("TCP", f"192.0.2.{i}", 5060) for i in (1, 2, 3))
    blocklist.block(b, 0.0, 60.0)
    plan = FailoverPlan([b, c], own_via=True, current_destination=a)
    assert plan.next_target(blocklist, 1.0) == c
    assert plan.next_target(blocklist, 1.0) is None


def test_retry_request_gets_a_new_branch() -> None:
    request = request_to(f"sip:bob@{DOMAIN}")
    request.headers.prepend("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKproxy;rport")
    request.headers.prepend("Via", "SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKours;rport")
    ours = retry_request(request, own_via=True)
    assert [v.branch for v in ours.via] == ["z9hG4bKproxy"]  # the endpoint adds a new one
    theirs = retry_request(request, own_via=False)
    top = theirs.via[0]
    assert top.sent_by == "10.0.0.2:5060"
    assert top.branch is not None and top.branch.startswith("z9hG4bK")
    assert top.branch != "z9hG4bKours"
    assert top.rport_requested
    assert theirs.via[1].branch == "z9hG4bKproxy"
    assert (theirs.call_id, theirs.cseq) == (request.call_id, request.cseq)
    assert [v.branch for v in request.via] == ["z9hG4bKours", "z9hG4bKproxy"]  # untouched


# -- over loopback sockets -------------------------------------------------------------


async def test_connection_refused_fails_over_to_next_srv_target(
    endpoints: list[SipEndpoint], dead_port: int
) -> None:
    client, live = endpoints[0], endpoints[1]
    await client.listen("TCP")
    server, port = await serve(live, "TCP", 200)
    client.locator, _ = srv_locator("tcp", [dead_port, port])
    request = request_to(f"sip:bob@{DOMAIN};transport=tcp")
    response = await asyncio.wait_for(client.send_request(request), 5)
    assert response.status == 200
    assert client.stats.transport_errors == 1
    (seen,) = server.seen
    assert seen.via[0].transport == "TCP"
    assert seen.call_id == request.call_id


async def test_tls_failure_fails_over_and_checks_the_domain(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A TLS target whose certificate does not name the domain fails (RFC 5922 §4);
    the next one, certified for the domain, not for its SRV host or IP, is used."""
    good: DevCertificates = create_dev_certificates(tmp_path_factory.mktemp("good"), (DOMAIN,))
    wrong = create_dev_certificates(tmp_path_factory.mktemp("wrong"), ("other.example.net",))
    client = SipEndpoint(timers=FAST, client_ssl=client_ssl_context(good.ca))
    impostor_ep, live_ep = SipEndpoint(timers=FAST), SipEndpoint(timers=FAST)
    try:
        await client.listen("TLS", ssl_context=server_ssl_context(good.cert, good.key))
        bad = await impostor_ep.listen("TLS", ssl_context=server_ssl_context(wrong.cert, wrong.key))
        ok = await live_ep.listen("TLS", ssl_context=server_ssl_context(good.cert, good.key))
        impostor, live = Server(impostor_ep, 200, []), Server(live_ep, 200, [])
        client.locator, _ = srv_locator("tls", [bad.port, ok.port])
        response = await asyncio.wait_for(client.send_request(request_to(f"sips:bob@{DOMAIN}")), 5)
        assert response.status == 200
        assert (len(impostor.seen), len(live.seen)) == (0, 1)
        assert live.seen[0].via[0].transport == "TLS"
        assert client.stats.transport_errors == 1
    finally:
        for endpoint in (client, impostor_ep, live_ep):
            await endpoint.close()


async def test_503_fails_over_and_retry_after_skips_the_target(
    endpoints: list[SipEndpoint],
) -> None:
    client, busy_ep, live_ep = endpoints
    await client.listen("UDP")
    busy, busy_port = await serve(busy_ep, "UDP", 503, (("Retry-After", "30"),))
    live, live_port = await serve(live_ep, "UDP", 200)
    client.locator, _ = srv_locator("udp", [busy_port, live_port])
    first = await asyncio.wait_for(client.send_request(request_to(f"sip:bob@{DOMAIN}")), 5)
    assert first.status == 200
    assert len(busy.seen) == 1 and len(live.seen) == 1
    # Same request, new transaction: identical but for the Via branch (RFC 3263 §4.3).
    tried, retried = busy.seen[0], live.seen[0]
    assert tried.via[0].branch != retried.via[0].branch
    assert (tried.call_id, tried.cseq) == (retried.call_id, retried.cseq)
    # Retry-After: 30 -> the next request goes straight to the second target.
    second = await asyncio.wait_for(client.send_request(request_to(f"sip:bob@{DOMAIN}")), 5)
    assert second.status == 200
    assert len(busy.seen) == 1 and len(live.seen) == 2
    blocked = Destination("UDP", "127.0.0.1", busy_port)
    now = client.loop.time()
    assert client.blocklist.blocked(blocked, now)
    assert not client.blocklist.blocked(blocked, now + 31)


async def test_timeout_fails_over(endpoints: list[SipEndpoint]) -> None:
    client, live_ep = endpoints[0], endpoints[1]
    await client.listen("UDP")
    live, live_port = await serve(live_ep, "UDP", 200)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.setblocking(False)
        client.locator, _ = srv_locator("udp", [silent.getsockname()[1], live_port])
        response = await asyncio.wait_for(client.send_request(request_to(f"sip:bob@{DOMAIN}")), 5)
        copies = 0
        for _ in range(100):
            try:
                silent.recv(65536)
            except BlockingIOError:
                break
            copies += 1
    assert response.status == 200
    assert copies >= 4  # Timer E ran until Timer F fired, then the next target
    assert len(live.seen) == 1


async def test_last_failure_is_returned_when_every_target_fails(
    endpoints: list[SipEndpoint], dead_port: int
) -> None:
    client, busy_ep = endpoints[0], endpoints[1]
    await client.listen("TCP")
    busy, busy_port = await serve(busy_ep, "TCP", 503)
    client.locator, _ = srv_locator("tcp", [busy_port, dead_port])
    response = await asyncio.wait_for(client.send_request(request_to(f"sip:bob@{DOMAIN}")), 5)
    assert response.status == 503
    assert len(busy.seen) == 1
    assert client.stats.transport_errors == 1  # the second target was tried too
    assert client.blocklist.until == {}  # no Retry-After, nothing blocked


async def test_other_failures_do_not_fail_over(endpoints: list[SipEndpoint]) -> None:
    client, first_ep, second_ep = endpoints
    await client.listen("UDP")
    first, first_port = await serve(first_ep, "UDP", 486)
    second, second_port = await serve(second_ep, "UDP", 200)
    client.locator, _ = srv_locator("udp", [first_port, second_port])
    response = await asyncio.wait_for(client.send_request(request_to(f"sip:bob@{DOMAIN}")), 5)
    assert response.status == 486
    assert (len(first.seen), len(second.seen)) == (1, 0)


async def test_every_target_blocked_raises(endpoints: list[SipEndpoint]) -> None:
    client, busy_ep = endpoints[0], endpoints[1]
    await client.listen("UDP")
    busy, busy_port = await serve(busy_ep, "UDP", 503, (("Retry-After", "60"),))
    client.locator, _ = srv_locator("udp", [busy_port])
    first = await asyncio.wait_for(client.send_request(request_to(f"sip:bob@{DOMAIN}")), 5)
    assert first.status == 503
    with pytest.raises(OSError, match="Retry-After"):
        await client.send_request(request_to(f"sip:bob@{DOMAIN}"))
    assert len(busy.seen) == 1


async def test_a_records_fail_over_without_a_locator(dead_port: int) -> None:
    """Without a locator, every A/AAAA address of the name is a target in turn."""
    live_ep = SipEndpoint(timers=FAST)

    async def addresses(host: str, port: int) -> list[str]:
        assert host == DOMAIN
        return ["127.0.0.2", "127.0.0.1"]  # nobody listens on 127.0.0.2

    client = SipEndpoint(timers=FAST, resolver=addresses)
    try:
        await client.listen("TCP")
        listener = await live_ep.listen("TCP", "127.0.0.1")
        server = Server(live_ep, 200, [])
        uri = f"sip:bob@{DOMAIN}:{listener.port};transport=tcp"
        response = await asyncio.wait_for(client.send_request(request_to(uri)), 5)
        assert response.status == 200
        assert len(server.seen) == 1
        assert client.stats.transport_errors == 1
    finally:
        await client.close()
        await live_ep.close()


async def test_invite_fails_over_and_cancel_reaches_the_current_target(
    endpoints: list[SipEndpoint],
) -> None:
    client, busy_ep, ringing_ep = endpoints
    await client.listen("UDP")
    busy, busy_port = await serve(busy_ep, "UDP", 503)
    listener = await ringing_ep.listen("UDP")
    rang = asyncio.Event()
    cancelled: list[bool] = []

    async def ring(incoming: IncomingRequest) -> None:
        if incoming.request.method != "INVITE":
            return
        incoming.respond(180, to_tag="callee")
        rang.set()
        for _ in range(200):
            if incoming.cancelled:
                break
            await asyncio.sleep(0.01)
        cancelled.append(incoming.cancelled)

    ringing_ep.on_request = ring
    client.locator, _ = srv_locator("udp", [busy_port, listener.port])
    provisional: list[Response] = []
    txn = await client.start_request(
        request_to(f"sip:bob@{DOMAIN}", "INVITE"), on_provisional=provisional.append
    )
    assert isinstance(txn, ClientInviteTransaction)
    await asyncio.wait_for(rang.wait(), 5)
    async with asyncio.timeout(5):
        while not provisional:
            await asyncio.sleep(0.01)
    current = client.current_transaction(txn)
    assert current is not txn  # the first attempt got the 503
    assert current.request.via[0].branch != txn.request.via[0].branch
    client.cancel(txn)  # the TU still holds the first transaction
    final = await asyncio.wait_for(client.wait_final(txn), 5)
    assert final.status == 487
    assert len(busy.seen) == 1
    async with asyncio.timeout(5):
        while not cancelled:
            await asyncio.sleep(0.01)
    assert cancelled == [True]
