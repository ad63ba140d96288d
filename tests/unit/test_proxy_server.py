"""The asyncio proxy server in process: registrar, calls, CANCEL, forking, status, shutdown.

The "phones" are bare UDP sockets that send hand-built requests and answer
what the proxy forwards, so every header the proxy adds or removes is seen
on the wire (RFC 3261 §16.6 Record-Route / Via / Max-Forwards, §16.7
response forwarding, §16.10 CANCEL, RFC 3261 §10.3 registration).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from tests.support.peers import free_port

from trunkline.config import Config
from trunkline.proxy.metrics import render_metrics
from trunkline.proxy.server import ProxyServer, advertised_host
from trunkline.sip.auth import DigestClient
from trunkline.sip.builder import make_request, make_response, new_branch
from trunkline.sip.message import Request, Response, parse_message
from trunkline.store.datadir import DataDir
from trunkline.store.users import UserStore

DOMAIN = "example.test"
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22"}
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"


class Phone(asyncio.DatagramProtocol):
    """A UDP socket that speaks SIP by hand."""

    def __init__(self, name: str, proxy: tuple[str, int]) -> None:
        self.name = name
        self.proxy = proxy
        self.queue: asyncio.Queue[Request | Response] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.cseq = 0
        self.call_id = f"{name}-{new_branch()}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(parse_message(data))

    @property
    def contact(self) -> str:
        return f"sip:{self.name}@127.0.0.1:{self.port}"

    def via(self) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={new_branch()};rport"

    def send(self, message: Request | Response, to: tuple[str, int] | None = None) -> None:
        assert self.transport is not None
        self.transport.sendto(bytes(message), to or self.proxy)

    async def recv(self, timeout: float = 3.0) -> Request | Response:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def recv_response(self, timeout: float = 3.0, skip_100: bool = True) -> Response:
        for _ in range(20):
            message = await self.recv(timeout)
            if isinstance(message, Response) and not (skip_100 and message.status == 100):
                return message
        raise AssertionError("no response")

    async def recv_request(self, method: str, timeout: float = 3.0) -> Request:
        for _ in range(20):
            message = await self.recv(timeout)
            if isinstance(message, Request) and message.method == method:
                return message
        raise AssertionError(f"no {method}")

    async def silent(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.queue.get(), seconds)
        except TimeoutError:
            return True
        return False

    def request(self, method: str, uri: str, *, to: str | None = None, **kw: Any) -> Request:
        self.cseq += 1
        return make_request(
            method,
            uri,
            from_=f"<sip:{self.name}@{DOMAIN}>",
            to=to or f"<{uri}>",
            call_id=kw.pop("call_id", self.call_id),
            cseq=kw.pop("cseq", self.cseq),
            via=self.via(),
            contact=f"<{self.contact}>",
            **kw,
        )

    async def register(self, *, q: float | None = None, expires: int = 600) -> Response:
        """REGISTER, answer the 401 with digest credentials, return the final response."""
        digest = DigestClient(self.name, PASSWORDS[self.name])
        contact = f"<{self.contact}>" + (f";q={q}" if q is not None else "")
        headers: list[tuple[str, str]] = [("Expires", str(expires))]
        response: Response | None = None
        for _ in range(2):
            request = self.request("REGISTER", f"sip:{DOMAIN}", to=f"<sip:{self.name}@{DOMAIN}>")
            request.headers.set("Contact", contact)
            for name, value in [*headers, *digest.authorization("REGISTER", f"sip:{DOMAIN}")]:
                request.headers.add(name, value)
            self.send(request)
            response = await self.recv_response()
            if response.status != 401 or not digest.challenged(response.www_authenticate):
                return response
        assert response is not None
        return response


_OPEN: list[Phone] = []


async def open_phone(name: str, proxy: tuple[str, int], host: str = "127.0.0.1") -> Phone:
    loop = asyncio.get_running_loop()
    _, phone = await loop.create_datagram_endpoint(lambda: Phone(name, proxy), local_addr=(host, 0))
    _OPEN.append(phone)
    return phone


@pytest.fixture(autouse=True)
async def close_phones() -> AsyncIterator[None]:
    yield
    while _OPEN:
        phone = _OPEN.pop()
        if phone.transport is not None:
            phone.transport.close()
    await asyncio.sleep(0)


def make_config(tmp_path: Path, **extra: Any) -> Config:
    port = free_port()
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "domains": [DOMAIN],
        "listen": {
            "udp": {"host": "127.0.0.1", "port": port},
            "tcp": {"host": "127.0.0.1", "port": port},
            "tls": {"host": "127.0.0.1", "port": port, "enabled": False},
            "ws": {"host": "127.0.0.1", "port": free_port()},
        },
        **extra,
    }
    return Config.model_validate(data)


def add_users(tmp_path: Path) -> None:
    db = DataDir(tmp_path / "data").database()
    store = UserStore(db)
    for name, password in PASSWORDS.items():
        store.add(name, DOMAIN, password, 0.0)
    db.close()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ProxyServer]:
    add_users(tmp_path)
    proxy = ProxyServer(make_config(tmp_path))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop(grace=0.5)


def proxy_address(server: ProxyServer) -> tuple[str, int]:
    return server.addresses["UDP"]


async def authenticated_invite(alice: Phone, uri: str) -> Request:
    """INVITE, 407, ACK, INVITE with Proxy-Authorization; returns the second INVITE."""
    invite = alice.request("INVITE", uri, body=SDP, content_type="application/sdp")
    alice.send(invite)
    challenge = await alice.recv_response()
    assert challenge.status == 407
    ack = make_request(
        "ACK",
        uri,
        from_=invite.headers.get("From") or "",
        to=challenge.headers.get("To") or "",
        call_id=invite.call_id,
        cseq=invite.cseq.number,
        via=str(invite.via[0]),
    )
    alice.send(ack)
    digest = DigestClient("alice", PASSWORDS["alice"])
    assert digest.challenged(challenge.proxy_authenticate, proxy=True)
    second = alice.request("INVITE", uri, body=SDP, content_type="application/sdp")
    for name, value in digest.authorization("INVITE", uri):
        second.headers.add(name, value)
    alice.send(second)
    return second


def answer(request: Request, status: int, tag: str = "callee", **kw: Any) -> Response:
    response = make_response(request, status, to_tag=tag, **kw)
    if request.record_route:
        for value in request.headers.get_all("Record-Route"):
            response.headers.add("Record-Route", value)
    return response


# -- registrar ------------------------------------------------------------------------


async def test_register_is_challenged_then_stored(server: ProxyServer) -> None:
    bob = await open_phone("bob", proxy_address(server))
    response = await bob.register()
    assert response.status == 200
    assert bob.contact in (response.headers.get("Contact") or "")
    snapshot = await server.snapshot()
    assert snapshot["registered_contacts"] == 1
    assert snapshot["bindings"][0]["aor"] == f"sip:bob@{DOMAIN}"
    assert snapshot["registrar"]["registered"] == 1


async def test_user_added_while_running_can_register(server: ProxyServer, tmp_path: Path) -> None:
    db = DataDir(tmp_path / "data").database()  # what `trunkline users add` does
    UserStore(db).add("carol", DOMAIN, "carol-secret-3", 0.0)
    db.close()
    PASSWORDS["carol"] = "carol-secret-3"
    try:
        carol = await open_phone("carol", proxy_address(server))
        assert (await carol.register()).status == 200
    finally:
        del PASSWORDS["carol"]


async def test_wrong_password_gets_the_same_challenge(server: ProxyServer) -> None:
    bob = await open_phone("bob", proxy_address(server))
    PASSWORDS["mallory"] = "guess"
    try:
        mallory = await open_phone("mallory", proxy_address(server))
        unknown = await mallory.register()
    finally:
        del PASSWORDS["mallory"]
    assert unknown.status == 401
    assert bob.transport is not None
    assert server.antiflood is not None and server.antiflood.counters.auth_failures == 1


# -- calls ------------------------------------------------------------------------------


async def test_call_between_registered_users_stays_on_the_proxy(server: ProxyServer) -> None:
    address = proxy_address(server)
    alice, bob = await open_phone("alice", address), await open_phone("bob", address)
    assert (await bob.register()).status == 200
    await authenticated_invite(alice, f"sip:bob@{DOMAIN}")

    invite = await bob.recv_request("INVITE")
    assert invite.uri_text == bob.contact
    assert invite.max_forwards == 69
    assert invite.via[0].branch is not None and invite.via[0].branch.startswith("z9hG4bKtl")
    assert invite.via[0].port == address[1]
    record_route = invite.headers.get_all("Record-Route")
    assert record_route == [f"<sip:127.0.0.1:{address[1]};lr>"]
    assert "Proxy-Authorization" not in invite.headers

    bob.send(answer(invite, 180))
    ringing = await alice.recv_response()
    assert ringing.status == 180 and len(ringing.via) == 1
    ok = answer(invite, 200, body=SDP, content_type="application/sdp")
    ok.headers.set("Contact", f"<{bob.contact}>")
    bob.send(ok)
    answered = await alice.recv_response()
    assert answered.status == 200 and answered.to_tag == "callee"
    assert answered.headers.get_all("Record-Route") == record_route
    bob.send(ok)  # a 2xx retransmission: forwarded statelessly (§16.7)
    assert (await alice.recv_response()).status == 200

    ack = alice.request("ACK", bob.contact, to=answered.headers.get("To"))
    ack.headers.set("CSeq", f"{invite.cseq.number} ACK")
    ack.headers.set("Route", record_route[0])
    alice.send(ack)
    got_ack = await bob.recv_request("ACK")
    assert len(got_ack.via) == 2 and got_ack.headers.get("Route") is None

    snapshot = await server.snapshot()
    assert snapshot["active_dialogs"] == 1

    bye = make_request(
        "BYE",
        f"sip:alice@127.0.0.1:{alice.port}",
        from_=f"{invite.headers.get('To')};tag=callee",
        to=invite.headers.get("From") or "",
        call_id=invite.call_id,
        cseq=1,
        via=bob.via(),
        extra_headers=[("Route", record_route[0])],
    )
    bob.send(bye)
    got_bye = await alice.recv_request("BYE")
    assert got_bye.via[0].branch is not None and got_bye.via[0].branch.startswith("z9hG4bKtl")
    alice.send(make_response(got_bye, 200))
    assert (await bob.recv_response()).status == 200
    await asyncio.sleep(0.05)
    assert (await server.snapshot())["active_dialogs"] == 0


async def test_unknown_user_404_and_unregistered_user_480(server: ProxyServer) -> None:
    alice = await open_phone("alice", proxy_address(server))
    await authenticated_invite(alice, f"sip:nobody@{DOMAIN}")
    assert (await alice.recv_response()).status == 404
    alice.call_id += "-2"
    await authenticated_invite(alice, f"sip:bob@{DOMAIN}")
    assert (await alice.recv_response()).status == 480


async def test_stranger_cannot_relay(server: ProxyServer) -> None:
    alice = await open_phone("alice", proxy_address(server))
    invite = make_request(
        "INVITE",
        "sip:someone@elsewhere.example",
        from_="<sip:spammer@evil.example>",
        to="<sip:someone@elsewhere.example>",
        via=alice.via(),
    )
    alice.send(invite)
    assert (await alice.recv_response()).status == 403


async def test_cancel_reaches_the_callee(server: ProxyServer) -> None:
    address = proxy_address(server)
    alice, bob = await open_phone("alice", address), await open_phone("bob", address)
    await bob.register()
    second = await authenticated_invite(alice, f"sip:bob@{DOMAIN}")
    invite = await bob.recv_request("INVITE")
    bob.send(answer(invite, 180))
    assert (await alice.recv_response()).status == 180

    cancel = make_request(
        "CANCEL",
        second.uri,
        from_=second.headers.get("From") or "",
        to=second.headers.get("To") or "",
        call_id=second.call_id,
        cseq=second.cseq.number,
        via=str(second.via[0]),
    )
    alice.send(cancel)
    assert (await alice.recv_response()).status == 200  # the CANCEL's own answer (§16.10)
    got_cancel = await bob.recv_request("CANCEL")
    assert got_cancel.via[0].branch == invite.via[0].branch
    bob.send(make_response(got_cancel, 200))
    bob.send(answer(invite, 487))
    ack = await bob.recv_request("ACK")  # the proxy's client transaction ACKs the 487
    assert ack.via[0].branch == invite.via[0].branch
    terminated = await alice.recv_response()  # the branch's 487 is the INVITE's answer
    assert terminated.status == 487 and terminated.cseq.method == "INVITE"
    assert await alice.silent(0.3)  # and it is not forwarded twice


async def test_sequential_forking_by_q(server: ProxyServer) -> None:
    address = proxy_address(server)
    alice = await open_phone("alice", address)
    desk, mobile = await open_phone("bob", address), await open_phone("bob", address)
    assert (await desk.register(q=1.0)).status == 200
    assert (await mobile.register(q=0.5)).status == 200
    await authenticated_invite(alice, f"sip:bob@{DOMAIN}")
    first = await desk.recv_request("INVITE")
    assert await mobile.silent(0.2)  # lower q waits for the first group
    desk.send(answer(first, 486, tag="desk"))
    assert (await desk.recv_request("ACK")).method == "ACK"
    second = await mobile.recv_request("INVITE")
    mobile.send(answer(second, 200, tag="mobile"))
    final = await alice.recv_response()
    assert final.status == 200 and final.to_tag == "mobile"


async def test_parallel_forking_cancels_the_losers(server: ProxyServer) -> None:
    address = proxy_address(server)
    alice = await open_phone("alice", address)
    desk, mobile = await open_phone("bob", address), await open_phone("bob", address)
    await desk.register()
    await mobile.register()
    await authenticated_invite(alice, f"sip:bob@{DOMAIN}")
    on_desk = await desk.recv_request("INVITE")
    on_mobile = await mobile.recv_request("INVITE")
    assert on_desk.via[0].branch != on_mobile.via[0].branch
    mobile.send(answer(on_mobile, 180, tag="mobile"))
    desk.send(answer(on_desk, 200, tag="desk"))
    responses = [await alice.recv_response() for _ in range(2)]
    assert [r.status for r in responses] == [180, 200]
    cancel = await mobile.recv_request("CANCEL")
    assert cancel.via[0].branch == on_mobile.via[0].branch


async def test_all_branches_fail_gives_the_best_response(server: ProxyServer) -> None:
    address = proxy_address(server)
    alice = await open_phone("alice", address)
    desk, mobile = await open_phone("bob", address), await open_phone("bob", address)
    await desk.register()
    await mobile.register()
    await authenticated_invite(alice, f"sip:bob@{DOMAIN}")
    on_desk = await desk.recv_request("INVITE")
    on_mobile = await mobile.recv_request("INVITE")
    desk.send(answer(on_desk, 503, tag="desk"))
    mobile.send(answer(on_mobile, 486, tag="mobile"))
    assert (await alice.recv_response()).status == 486  # 4xx beats 5xx (§16.7 step 6)


async def test_timer_c_cancels_a_branch_that_rings_forever(
    server: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trunkline.proxy import forwarder as forwarder_module

    monkeypatch.setattr(forwarder_module, "TIMER_C", 0.3)
    monkeypatch.setattr(forwarder_module, "CANCEL_GRACE", 0.3)
    address = proxy_address(server)
    alice, bob = await open_phone("alice", address), await open_phone("bob", address)
    await bob.register()
    await authenticated_invite(alice, f"sip:bob@{DOMAIN}")
    invite = await bob.recv_request("INVITE")
    bob.send(answer(invite, 180))
    assert (await alice.recv_response()).status == 180
    cancel = await bob.recv_request("CANCEL")  # Timer C fired (§16.8)
    assert cancel.via[0].branch == invite.via[0].branch
    # bob never answers the CANCEL nor the INVITE: the proxy gives up with a 408.
    assert (await alice.recv_response()).status == 408


async def test_natted_contact_gets_calls_and_keepalive_pings(
    server: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Contact with a private address is reached at the source it registered from."""
    from trunkline.proxy import housekeeping as housekeeping_module

    monkeypatch.setattr(housekeeping_module, "KEEPALIVE_REFRESH", 0.0)
    server.keepalive.interval = 0.1
    address = proxy_address(server)
    alice, bob = await open_phone("alice", address), await open_phone("bob", address)
    bob_contact = bob.contact
    monkeypatch.setattr(Phone, "contact", property(lambda self: "sip:bob@10.1.2.3:5060"))
    assert (await bob.register()).status == 200
    ping = await bob.recv_request("OPTIONS", timeout=4.0)  # RFC 5626 §3.5.1 idea
    assert ping.uri_text == "sip:bob@10.1.2.3:5060" and ping.max_forwards == 0
    bob.send(make_response(ping, 200))
    assert server.stats.keepalives >= 1
    server.keepalive.interval = 3600.0
    await authenticated_invite(alice, f"sip:bob@{DOMAIN}")
    invite = await bob.recv_request("INVITE")  # sent to 127.0.0.1:<bob's port>, not 10.1.2.3
    assert invite.uri_text == "sip:bob@10.1.2.3:5060"
    assert bob_contact.endswith(f":{bob.port}")


# -- policy, security, shutdown -----------------------------------------------------------


async def test_scanner_is_dropped_without_state(server: ProxyServer) -> None:
    phone = await open_phone("alice", proxy_address(server))
    options = phone.request("OPTIONS", f"sip:100@{DOMAIN}")
    options.headers.set("User-Agent", "friendly-scanner")
    phone.send(options)
    assert await phone.silent(0.3)
    assert server.active_transactions == 0
    assert server.stats.dropped == 1


async def test_refuses_new_requests_while_stopping(server: ProxyServer) -> None:
    phone = await open_phone("bob", proxy_address(server))
    server.accepting = False
    phone.send(phone.request("OPTIONS", f"sip:bob@{DOMAIN}"))
    response = await phone.recv_response()
    assert response.status == 503 and response.headers.get("Retry-After") == "5"


async def test_registrations_survive_a_restart(tmp_path: Path) -> None:
    add_users(tmp_path)
    config = make_config(tmp_path)
    first = ProxyServer(config)
    await first.start()
    bob = await open_phone("bob", proxy_address(first))
    assert (await bob.register()).status == 200
    await first.stop(grace=0.2)
    second = ProxyServer(config)
    await second.start()
    try:
        snapshot = await second.snapshot()
        assert [b["contact"] for b in snapshot["bindings"]] == [bob.contact]
    finally:
        await second.stop(grace=0.2)


async def test_trusted_source_is_relayed_by_request_uri(tmp_path: Path) -> None:
    config = make_config(tmp_path, trusted=["127.0.0.1/32"])
    server = ProxyServer(config)
    await server.start()
    try:
        uas = await open_phone("uas", ("127.0.0.1", 9), host="127.0.0.2")
        caller = await open_phone("alice", proxy_address(server))
        uri = f"sip:service@127.0.0.2:{uas.port}"
        caller.send(caller.request("INVITE", uri))  # no 407 for a trusted source
        invite = await uas.recv_request("INVITE")
        assert invite.headers.get("Record-Route") is not None
        uas.send(answer(invite, 200), ("127.0.0.1", proxy_address(server)[1]))
        assert (await caller.recv_response()).status == 200
    finally:
        await server.stop(grace=0.2)


async def http_get(port: int, path: str) -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 3.0)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode().split("\r\n")[0], body


async def test_http_status_and_metrics(server: ProxyServer) -> None:
    bob = await open_phone("bob", proxy_address(server))
    await bob.register()
    port = server.addresses["WS"][1]
    line, body = await http_get(port, "/status")
    assert line == "HTTP/1.1 200 OK"
    data = json.loads(body)
    assert data["registered_contacts"] == 1 and data["requests"]["REGISTER"] == 2
    line, body = await http_get(port, "/metrics")
    text = body.decode()
    assert 'trunkline_sip_requests_total{method="REGISTER"} 2.0' in text
    assert "trunkline_registered_contacts 1.0" in text
    assert (await http_get(port, "/nope"))[0].startswith("HTTP/1.1 404")


async def test_websocket_upgrade_on_the_http_port(server: ProxyServer) -> None:
    from websockets.asyncio.client import connect

    port = server.addresses["WS"][1]
    async with connect(f"ws://127.0.0.1:{port}/", subprotocols=["sip"]) as ws:  # type: ignore[list-item]
        request = make_request(
            "REGISTER",
            f"sip:{DOMAIN}",
            from_=f"<sip:bob@{DOMAIN}>",
            to=f"<sip:bob@{DOMAIN}>",
            via="SIP/2.0/WS client.invalid;branch=" + new_branch(),
            contact="<sip:bob@client.invalid;transport=ws>",
        )
        await ws.send(bytes(request).decode())
        reply = parse_message(str(await asyncio.wait_for(ws.recv(), 3.0)).encode())
    assert isinstance(reply, Response) and reply.status == 401


def test_metrics_render_a_histogram() -> None:
    from trunkline.proxy.status import ServerStats

    stats = ServerStats(started=0.0)
    stats.count_request("INVITE")
    stats.observe_latency("INVITE", 0.004)
    stats.observe_latency("INVITE", 2.0)
    text = render_metrics(stats.snapshot(10.0)).decode()
    assert 'trunkline_request_latency_seconds_bucket{le="0.005",method="INVITE"} 1.0' in text
    assert 'trunkline_request_latency_seconds_bucket{le="+Inf",method="INVITE"} 2.0' in text
    assert 'trunkline_request_latency_seconds_count{method="INVITE"} 2.0' in text


def test_advertised_host_of_a_wildcard_is_an_address() -> None:
    assert advertised_host("127.0.0.1") == "127.0.0.1"
    assert advertised_host("0.0.0.0") not in ("0.0.0.0", "")


# -- forwarder: anti-flood limits, 513, NAT on replies, dispatcher ----------------------


async def _server_with(tmp_path: Path, **extra: Any) -> ProxyServer:
    add_users(tmp_path)
    proxy = ProxyServer(make_config(tmp_path, **extra))
    await proxy.start()
    return proxy


async def test_per_source_transaction_limit_answers_503(tmp_path: Path) -> None:
    server = await _server_with(tmp_path, limits={"max_transactions_per_source": 1})
    try:
        address = proxy_address(server)
        caller, bob = await open_phone("carol", address), await open_phone("bob", address)
        await bob.register()
        first = caller.request("INVITE", f"sip:bob@{DOMAIN}", call_id="limit-1")
        first.headers.set("From", "<sip:carol@elsewhere.example>;tag=c1")
        caller.send(first)
        ringing = await bob.recv_request("INVITE")
        second = caller.request("INVITE", f"sip:bob@{DOMAIN}", call_id="limit-2")
        second.headers.set("From", "<sip:carol@elsewhere.example>;tag=c2")
        caller.send(second)
        refused = await caller.recv_response()
        assert refused.status == 503 and refused.call_id == "limit-2"
        bob.send(answer(ringing, 486))
        busy = await caller.recv_response()
        assert busy.status == 486 and busy.call_id == "limit-1"
        assert server.antiflood is not None and server.antiflood.counters.refused_transactions
        third = caller.request("INVITE", f"sip:bob@{DOMAIN}", call_id="limit-3")
        third.headers.set("From", "<sip:carol@elsewhere.example>;tag=c3")
        caller.send(third)  # the first one ended: admitted again
        assert (await bob.recv_request("INVITE")).call_id == "limit-3"
    finally:
        await server.stop(grace=0.2)


async def test_message_over_the_size_limit_gets_513(tmp_path: Path) -> None:
    server = await _server_with(tmp_path, limits={"max_message_size": 1500})
    try:
        phone = await open_phone("carol", proxy_address(server))
        message = phone.request(
            "MESSAGE", f"sip:bob@{DOMAIN}", body=b"x" * 1400, content_type="text/plain"
        )
        phone.send(message)
        assert (await phone.recv_response()).status == 513
    finally:
        await server.stop(grace=0.2)


async def test_natted_callee_contact_fixed_in_2xx(
    server: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = proxy_address(server)
    alice, bob = await open_phone("alice", address), await open_phone("bob", address)
    monkeypatch.setattr(Phone, "contact", property(lambda self: "sip:bob@10.1.2.3:5060"))
    assert (await bob.register()).status == 200
    monkeypatch.undo()
    await authenticated_invite(alice, f"sip:bob@{DOMAIN}")
    invite = await bob.recv_request("INVITE")
    ok = answer(invite, 200, body=SDP, content_type="application/sdp")
    ok.headers.set("Contact", "<sip:bob@10.1.2.3:5060>")
    bob.send(ok)
    response = await alice.recv_response()
    assert response.status == 200
    assert response.headers.get("Contact") == f"<sip:bob@127.0.0.1:{bob.port}>"


async def test_dispatcher_probes_and_fails_over(tmp_path: Path) -> None:
    gateways = [await open_phone("gw", ("127.0.0.1", 9)) for _ in range(2)]
    config = {
        "trusted": ["127.0.0.0/8"],
        "dispatcher": {
            "sets": [
                {
                    "name": "pstn",
                    "destinations": [f"sip:127.0.0.1:{gw.port}" for gw in gateways],
                }
            ],
            "rules": [{"set": "pstn", "user_prefix": "00"}],
        },
    }
    server = await _server_with(tmp_path, **config)
    try:
        for gw in gateways:  # the first housekeeping pass probes every destination
            probe = await gw.recv_request("OPTIONS", timeout=4.0)
            gw.send(make_response(probe, 200), to=proxy_address(server))
        caller = await open_phone("carrier", proxy_address(server))
        invite = caller.request("INVITE", "sip:0049301234@pstn.example")
        caller.send(invite)
        first: Phone | None = None
        for _ in range(250):  # at most 5 s: whichever destination comes first
            first = next((gw for gw in gateways if not gw.queue.empty()), None)
            if first is not None:
                break
            await asyncio.sleep(0.02)
        assert first is not None
        failing = await first.recv_request("INVITE")
        assert failing.uri_text.startswith("sip:0049301234@127.0.0.1:")
        first.send(answer(failing, 503), to=proxy_address(server))
        second = gateways[1] if first is gateways[0] else gateways[0]
        retried = await second.recv_request("INVITE")  # failover to the next destination
        second.send(answer(retried, 200), to=proxy_address(server))
        assert (await caller.recv_response()).status == 200
    finally:
        await server.stop(grace=0.2)
