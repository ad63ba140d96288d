"""SipEndpoint: transactions over real loopback sockets, §18 routing, CANCEL."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import pytest

from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint
from trunkline.sip.aio.routing import Destination
from trunkline.sip.aio.tls import (
    DevCertificates,
    client_ssl_context,
    create_dev_certificates,
    server_ssl_context,
)
from trunkline.sip.aio.trace import disable_sip_trace, enable_sip_trace
from trunkline.sip.builder import make_request
from trunkline.sip.message import Request, Response
from trunkline.sip.timers import TimerConfig
from trunkline.sip.transaction import ClientInviteTransaction, ServerTransaction

FAST = TimerConfig(t1=0.02, t2=0.08, t4=0.1, timer_d=0.2, trying_delay=0.05)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return create_dev_certificates(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def pair(pki: DevCertificates) -> AsyncIterator[tuple[SipEndpoint, SipEndpoint]]:
    a = SipEndpoint(timers=FAST, client_ssl=client_ssl_context(pki.ca))
    b = SipEndpoint(timers=FAST, client_ssl=client_ssl_context(pki.ca))
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def options_to(uri: str, body: bytes = b"") -> Request:
    return make_request(
        "OPTIONS",
        uri,
        from_="<sip:alice@127.0.0.1>",
        to="<sip:bob@127.0.0.1>",
        body=body,
        content_type="text/plain" if body else None,
    )


@pytest.mark.parametrize("name", ["UDP", "TCP", "TLS", "WS", "WSS"])
async def test_request_and_response_over_each_transport(
    pair: tuple[SipEndpoint, SipEndpoint], pki: DevCertificates, name: str
) -> None:
    a, b = pair
    context = server_ssl_context(pki.cert, pki.key) if name in ("TLS", "WSS") else None
    await a.listen(name, ssl_context=context)
    listener = await b.listen(name, ssl_context=context)
    seen: list[IncomingRequest] = []

    async def answer(incoming: IncomingRequest) -> None:
        seen.append(incoming)
        incoming.respond(200, "Fine", headers=[("X-Transport", incoming.source.transport)])

    b.on_request = answer
    scheme = "sips" if name in ("TLS", "WSS") else "sip"
    host = "localhost" if name in ("TLS", "WSS") else "127.0.0.1"
    request = options_to(f"{scheme}:bob@{host}:{listener.port};transport={name.lower()}")
    response = await asyncio.wait_for(a.send_request(request), 5)
    assert (response.status, response.reason) == (200, "Fine")
    assert response.headers.get("X-Transport") == name
    (incoming,) = seen
    top = incoming.request.via[0]
    assert top.transport == name
    # RFC 3581: the client asked for rport, the server filled in the source port.
    assert top.rport == incoming.source.port
    assert top.received == "127.0.0.1"


async def test_ipv6_udp_and_tcp(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    a, b = pair
    for name in ("UDP", "TCP"):
        await a.listen(name, "::1")
        listener = await b.listen(name, "::1")
        response = await asyncio.wait_for(
            a.send_request(options_to(f"sip:bob@[::1]:{listener.port};transport={name.lower()}")), 5
        )
        assert response.status == 200  # the default answer to OPTIONS
        assert response.via[0].received == "::1"


async def test_timeout_gives_408_after_retransmissions(
    pair: tuple[SipEndpoint, SipEndpoint],
) -> None:
    a, _ = pair
    await a.listen("UDP")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.setblocking(False)
        port = silent.getsockname()[1]
        response = await asyncio.wait_for(
            a.send_request(options_to(f"sip:bob@127.0.0.1:{port}")), 5
        )
        copies = 0
        for _ in range(100):
            try:
                silent.recv(65536)
            except BlockingIOError:
                break
            copies += 1
    assert response.status == 408
    assert copies >= 4  # Timer E retransmitted the request (§17.1.2.2)


async def test_connection_refused_gives_503(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    a, _ = pair
    await a.listen("TCP")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    response = await asyncio.wait_for(
        a.send_request(options_to(f"sip:bob@127.0.0.1:{port};transport=tcp")), 5
    )
    assert response.status == 503


async def test_large_udp_request_goes_over_tcp(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    a, b = pair
    await a.listen("UDP")
    await a.listen("TCP")
    udp = await b.listen("UDP")
    tcp = await b.listen("TCP", port=udp.port)
    assert tcp.port == udp.port
    transports: list[str] = []

    async def answer(incoming: IncomingRequest) -> None:
        transports.append(incoming.source.transport)
        incoming.respond(200)

    b.on_request = answer
    small = await a.send_request(options_to(f"sip:bob@127.0.0.1:{udp.port}"))
    big = await a.send_request(options_to(f"sip:bob@127.0.0.1:{udp.port}", body=b"x" * 1400))
    assert (small.status, big.status) == (200, 200)
    assert transports == ["UDP", "TCP"]  # RFC 3261 §18.1.1
    assert big.via[0].transport == "TCP"


async def test_response_follows_received_and_rport(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    """§18.2.2 / RFC 3581: a Via naming an unreachable sent-by still gets its answer."""
    a, b = pair
    await a.listen("UDP")
    listener = await b.listen("UDP")
    request = options_to(f"sip:bob@127.0.0.1:{listener.port}")
    request.headers.prepend("Via", "SIP/2.0/UDP 192.0.2.1:9;branch=z9hG4bKnat1;rport")
    response = await asyncio.wait_for(a.send_request(request, add_via=False), 5)
    assert response.status == 200
    assert response.via[0].received == "127.0.0.1"


async def test_cancel_gets_487(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    a, b = pair
    await a.listen("UDP")
    listener = await b.listen("UDP")
    ringing = asyncio.Event()
    cancelled: list[bool] = []

    async def ring(incoming: IncomingRequest) -> None:
        if incoming.request.method != "INVITE":
            return
        incoming.respond(180, to_tag="callee")
        ringing.set()
        for _ in range(100):
            if incoming.cancelled:
                break
            await asyncio.sleep(0.01)
        cancelled.append(incoming.cancelled)

    b.on_request = ring
    invite = make_request(
        "INVITE",
        f"sip:bob@127.0.0.1:{listener.port}",
        from_="<sip:alice@127.0.0.1>",
        to="<sip:bob@127.0.0.1>",
        contact=a.contact_uri("UDP"),
    )
    provisional: list[Response] = []
    txn = await a.start_request(invite, on_provisional=provisional.append)
    assert isinstance(txn, ClientInviteTransaction)
    await asyncio.wait_for(ringing.wait(), 5)
    async with asyncio.timeout(5):
        while not provisional:
            await asyncio.sleep(0.01)
    a.cancel(txn)
    final = await asyncio.wait_for(a.wait_final(txn), 5)
    assert final.status == 487
    await asyncio.sleep(0.05)
    assert cancelled == [True]


async def test_malformed_input_is_counted_and_dropped(
    pair: tuple[SipEndpoint, SipEndpoint],
) -> None:
    a, b = pair
    await a.listen("UDP")
    listener = await b.listen("UDP")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"\x00\xff" * 20, b"INVITE sip:x SIP/2.0\r\n\r\n", b"SIP/2.0 abc\r\n\r\n"):
            s.sendto(junk, ("127.0.0.1", listener.port))
    response = await asyncio.wait_for(
        a.send_request(options_to(f"sip:bob@127.0.0.1:{listener.port}")), 5
    )
    assert response.status == 200
    assert b.stats.malformed == 3


async def test_handler_exception_answers_500(
    pair: tuple[SipEndpoint, SipEndpoint], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = pair
    await a.listen("UDP")
    listener = await b.listen("UDP")

    async def broken(incoming: IncomingRequest) -> None:
        raise RuntimeError("boom")

    b.on_request = broken
    with caplog.at_level(logging.CRITICAL, logger="trunkline.sip.endpoint"):
        response = await asyncio.wait_for(
            a.send_request(options_to(f"sip:bob@127.0.0.1:{listener.port}")), 5
        )
    assert response.status == 500


async def test_sip_trace_logs_both_directions(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    import io

    a, b = pair
    await a.listen("UDP")
    listener = await b.listen("UDP")
    out = io.StringIO()
    handler = enable_sip_trace(out)
    try:
        await asyncio.wait_for(a.send_request(options_to(f"sip:bob@127.0.0.1:{listener.port}")), 5)
    finally:
        disable_sip_trace(handler)
    text = out.getvalue()
    assert f"[TX] UDP -> 127.0.0.1:{listener.port}\nOPTIONS sip:bob@127.0.0.1" in text
    assert f"[RX] UDP <- 127.0.0.1:{listener.port}\nSIP/2.0 200 OK" in text


async def test_stateless_forwarding(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    a, b = pair
    await a.listen("UDP")
    listener = await b.listen("UDP")
    got: list[IncomingRequest] = []
    done = asyncio.Event()

    async def sink(incoming: IncomingRequest) -> None:
        got.append(incoming)
        done.set()

    b.on_request = sink
    ack = make_request(
        "ACK", f"sip:bob@127.0.0.1:{listener.port}", from_="<sip:a@x>", to="<sip:b@y>;tag=9"
    )
    await a.send_ack(ack)
    await asyncio.wait_for(done.wait(), 5)
    assert got[0].request.method == "ACK" and got[0].transaction is None
    done.clear()
    forwarded = make_request(
        "OPTIONS", "sip:b@y", from_="<sip:a@x>", to="<sip:b@y>", via="SIP/2.0/UDP 127.0.0.1:9;rport"
    )
    a.send_stateless(forwarded, Destination("UDP", "127.0.0.1", listener.port))
    await asyncio.wait_for(done.wait(), 5)
    assert got[1].request.method == "OPTIONS"
    assert got[1].request.via[0].port == 9  # sent as given, no Via added


def test_runs_on_uvloop(pki: DevCertificates) -> None:
    """The same endpoint code on uvloop, the production loop (DESIGN.md)."""
    uvloop = pytest.importorskip("uvloop")
    from trunkline.sip.aio import new_event_loop

    async def main() -> list[int]:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        a = SipEndpoint(timers=FAST, client_ssl=client_ssl_context(pki.ca))
        b = SipEndpoint(timers=FAST)
        statuses = []
        try:
            for name in ("UDP", "TCP", "TLS", "WS"):
                context = server_ssl_context(pki.cert, pki.key) if name == "TLS" else None
                await a.listen(name, ssl_context=context)
                listener = await b.listen(name, ssl_context=context)
                host = "localhost" if name == "TLS" else "127.0.0.1"
                scheme = "sips" if name == "TLS" else "sip"
                uri = f"{scheme}:bob@{host}:{listener.port};transport={name.lower()}"
                response = await asyncio.wait_for(a.send_request(options_to(uri)), 5)
                statuses.append(response.status)
        finally:
            await a.close()
            await b.close()
        return statuses

    assert new_event_loop.__module__ == "trunkline.sip.aio"
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        assert runner.run(main()) == [200, 200, 200, 200]
    assert uvloop is not None


async def test_request_back_to_browser_over_its_connection(
    pair: tuple[SipEndpoint, SipEndpoint],
) -> None:
    """A WS client whose Contact host is .invalid is reached over the connection it opened."""
    server, browser = pair
    listener = await server.listen("WS")
    await browser.listen("UDP")  # names a sent-by; the browser opens no WS listener
    flows: list[IncomingRequest] = []
    reached = asyncio.Event()

    async def registrar(incoming: IncomingRequest) -> None:
        flows.append(incoming)
        incoming.respond(200)

    async def phone(incoming: IncomingRequest) -> None:
        incoming.respond(200, "Browser here")
        reached.set()

    server.on_request = registrar
    browser.on_request = phone
    register = make_request(
        "REGISTER",
        "sip:127.0.0.1",
        from_="<sip:web@127.0.0.1>",
        to="<sip:web@127.0.0.1>",
        contact="<sip:x7k2@df7jal23ls0d.invalid;transport=ws>",
    )
    response = await asyncio.wait_for(
        browser.send_request(register, Destination("WS", "127.0.0.1", listener.port)), 5
    )
    assert response.status == 200
    flow = flows[0].source.connection
    assert flow is not None and flows[0].source.transport == "WS"
    options = options_to("sip:x7k2@df7jal23ls0d.invalid;transport=ws")
    answer = await asyncio.wait_for(server.send_request(options, connection=flow), 5)
    assert (answer.status, answer.reason) == (200, "Browser here")
    assert reached.is_set()
    assert len(server.transport.connections) == 1


async def test_rfc3263_locator_finds_the_server(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    from trunkline.sip.dns import Locator, StaticResolver

    a, b = pair
    await a.listen("UDP")
    listener = await b.listen("UDP")
    resolver = StaticResolver({"pbx.example.com": ["127.0.0.1"]})
    a.locator = Locator(resolver)
    response = await asyncio.wait_for(
        a.send_request(options_to(f"sip:bob@pbx.example.com:{listener.port}")), 5
    )
    assert response.status == 200
    assert ("A/AAAA", "pbx.example.com") in resolver.queries


class _ProxyLike(SipEndpoint):
    """Overrides the public CANCEL hook the way a stateful proxy does (§16.10)."""

    cancels: list[tuple[str, bool]]

    def handle_cancel(self, cancel: IncomingRequest, invite: ServerTransaction | None) -> None:
        self.cancels.append((cancel.request.method, invite is not None))
        if invite is None:
            super().handle_cancel(cancel, invite)
            return
        cancel.respond(200, "OK")  # the INVITE's final response is left to the "branches"
        incoming = self.incoming_for(invite)
        assert incoming is not None
        incoming.cancelled = True


async def test_handle_cancel_default_and_override(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    a, _ = pair
    b = _ProxyLike(timers=FAST)
    b.cancels = []
    try:
        await a.listen("UDP")
        listener = await b.listen("UDP")
        cancel_answers: list[Response] = []
        a.on_stray_response = cancel_answers.append  # the CANCEL's own 200 / 481

        async def ring(incoming: IncomingRequest) -> None:
            if incoming.request.method != "INVITE":
                return
            incoming.respond(180, to_tag="callee")
            for _ in range(200):
                if incoming.cancelled:
                    break
                await asyncio.sleep(0.01)
            incoming.respond(487, "Branches Cancelled", to_tag="callee")

        b.on_request = ring
        invite = make_request(
            "INVITE",
            f"sip:bob@127.0.0.1:{listener.port}",
            from_="<sip:alice@127.0.0.1>",
            to="<sip:bob@127.0.0.1>",
            contact=a.contact_uri("UDP"),
        )
        provisional: list[Response] = []
        txn = await a.start_request(invite, on_provisional=provisional.append)
        assert isinstance(txn, ClientInviteTransaction)
        async with asyncio.timeout(5):
            while not provisional:
                await asyncio.sleep(0.01)
        a.cancel(txn)
        final = await asyncio.wait_for(a.wait_final(txn), 5)
        assert (final.status, final.reason) == (487, "Branches Cancelled")  # the override's
        assert b.cancels == [("CANCEL", True)]
        assert [r.status for r in cancel_answers if r.cseq.method == "CANCEL"] == [200]
        # A CANCEL matching nothing: the default answers 481 (§9.2).
        stray = make_request(
            "CANCEL",
            f"sip:bob@127.0.0.1:{listener.port}",
            from_="<sip:alice@127.0.0.1>",
            to="<sip:bob@127.0.0.1>",
        )
        response = await asyncio.wait_for(a.send_request(stray), 5)
        assert response.status == 481
        assert b.cancels == [("CANCEL", True), ("CANCEL", False)]
    finally:
        await b.close()


async def test_default_cancel_answer_carries_the_invite_to_tag(
    pair: tuple[SipEndpoint, SipEndpoint],
) -> None:
    a, b = pair
    await a.listen("UDP")
    listener = await b.listen("UDP")
    cancel_answers: list[Response] = []
    a.on_stray_response = cancel_answers.append

    async def ring(incoming: IncomingRequest) -> None:
        if incoming.request.method == "INVITE":
            incoming.respond(180, to_tag="callee-tag")

    b.on_request = ring
    invite = make_request(
        "INVITE",
        f"sip:bob@127.0.0.1:{listener.port}",
        from_="<sip:alice@127.0.0.1>",
        to="<sip:bob@127.0.0.1>",
        contact=a.contact_uri("UDP"),
    )
    provisional: list[Response] = []
    txn = await a.start_request(invite, on_provisional=provisional.append)
    assert isinstance(txn, ClientInviteTransaction)
    async with asyncio.timeout(5):
        while not provisional:
            await asyncio.sleep(0.01)
    a.cancel(txn)
    final = await asyncio.wait_for(a.wait_final(txn), 5)
    assert (final.status, final.to_tag) == (487, "callee-tag")
    (answer,) = [r for r in cancel_answers if r.cseq.method == "CANCEL"]
    assert (answer.status, answer.to_tag) == (200, "callee-tag")  # RFC 3261 §9.2


@pytest.mark.parametrize("handled", [True, False])
async def test_on_ack_hook_runs_synchronously(
    pair: tuple[SipEndpoint, SipEndpoint], handled: bool
) -> None:
    a, b = pair
    await a.listen("UDP")
    listener = await b.listen("UDP")
    hooked: list[str] = []
    passed_on: list[str] = []

    def on_ack(incoming: IncomingRequest) -> bool:
        hooked.append(incoming.request.method)
        return handled

    async def on_request(incoming: IncomingRequest) -> None:
        passed_on.append(incoming.request.method)

    b.on_ack = on_ack
    b.on_request = on_request
    ack = make_request(
        "ACK",
        f"sip:bob@127.0.0.1:{listener.port}",
        from_="<sip:alice@127.0.0.1>",
        to="<sip:bob@127.0.0.1>;tag=x",
    )
    await a.send_ack(ack)
    async with asyncio.timeout(5):
        while not hooked:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # a task, if one was spawned, has run by now
    assert hooked == ["ACK"]
    assert passed_on == ([] if handled else ["ACK"])


async def test_incoming_request_carries_its_wire_size() -> None:
    endpoint = SipEndpoint(timers=FAST)
    try:
        listener = await endpoint.listen("UDP")
        sizes: list[int] = []

        async def answer(incoming: IncomingRequest) -> None:
            sizes.append(incoming.wire_size)
            incoming.respond(200)

        endpoint.on_request = answer
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            client.settimeout(2.0)
            port = client.getsockname()[1]
            for padding in (b"", b"X-Pad: " + b"x" * 300 + b"\r\n"):
                data = (
                    b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\n"
                    b"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-size-%d\r\n"
                    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\n"
                    b"Call-ID: size-%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                    b"%sContent-Length: 0\r\n\r\n" % (port, len(padding), len(padding), padding)
                )
                client.sendto(data, ("127.0.0.1", listener.port))
                reply = await asyncio.get_running_loop().run_in_executor(None, client.recv, 65536)
                assert reply.startswith(b"SIP/2.0 200 ")
                assert sizes[-1] == len(data)
        assert len(sizes) == 2
    finally:
        await endpoint.close()
