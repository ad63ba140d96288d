"""The phone's registration driver over a real endpoint: an in-process
registrar challenges with 401, grants a short expiry (refresh at ~90%), and
sees the expires=0 removal on close; plus OPTIONS and out-of-dialog requests."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint
from trunkline.sip.aio.tls import client_ssl_context, create_dev_certificates, server_ssl_context
from trunkline.sip.auth import Credentials, DigestServer, ha1
from trunkline.sip.builder import make_request
from trunkline.sip.message import Request, Response
from trunkline.ua.phone import Phone, PhoneConfig, RegistrationUpdate, local_address_for
from trunkline.ua.registration import Registered, RegistrationFailed, Unregistered


class Registrar:
    """A tiny digest-checking registrar (RFC 3261 §10.3) for the driver tests."""

    def __init__(self, password: str, expires: int) -> None:
        self.password = password
        self.expires = expires
        self.digest = DigestServer("test.invalid", secret=b"s" * 32)
        self.seen: list[tuple[int, str | None]] = []  # (expires asked, Authorization?)
        self.registers: list[IncomingRequest] = []
        self.others: list[Request] = []  # every other request (an INVITE routed through us)
        self.endpoint: SipEndpoint | None = None

    async def start(self, transport: str = "UDP", ssl_context: ssl.SSLContext | None = None) -> str:
        self.endpoint = SipEndpoint()
        listener = await self.endpoint.listen(transport, "127.0.0.1", 0, ssl_context=ssl_context)
        self.endpoint.on_request = self.handle
        suffix = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"sip:127.0.0.1:{listener.port}{suffix}"

    async def handle(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if request.method != "REGISTER":
            self.others.append(request)
            if incoming.transaction is not None:
                incoming.respond(404 if request.method == "INVITE" else 405)
            return
        self.registers.append(incoming)
        contact = request.contact[0]
        asked = contact.expires if contact.expires is not None else 3600
        value = request.headers.get("Authorization")
        self.seen.append((asked, value))
        if value is not None:
            result = self.digest.verify(
                Credentials.parse(value),
                "REGISTER",
                b"",
                lambda u, r, a: ha1(u, r, self.password, a),
                0.0,
            )
            if result.ok:
                granted = min(asked, self.expires)
                incoming.respond(200, headers=[("Contact", f"<{contact.uri}>;expires={granted}")])
                return
        challenges = [("WWW-Authenticate", str(c)) for c in self.digest.challenge(0.0)]
        incoming.respond(401, headers=challenges)

    async def close(self) -> None:
        if self.endpoint is not None:
            await self.endpoint.close()


@pytest.fixture
async def registrar() -> AsyncIterator[Registrar]:
    reg = Registrar("pw", expires=2)
    yield reg
    await reg.close()


async def test_register_refresh_and_unregister(registrar: Registrar) -> None:
    uri = await registrar.start()
    phone = await Phone.start(PhoneConfig(user="alice", password="pw"))
    try:
        account = phone.account(registrar=uri, expires=60)
        assert account.aor == "sip:alice@127.0.0.1"
        event = await phone.register(account)
        assert isinstance(event, Registered) and event.expires == 2
        assert [a is None for _, a in registrar.seen] == [True, False]
        await asyncio.sleep(2.2)  # refreshed at 90% of 2 s, re-using the nonce
        assert len(registrar.seen) >= 3
        assert all(a is not None for _, a in registrar.seen[2:])
        updates = []
        while not phone.events.empty():
            update = phone.events.get_nowait()
            assert isinstance(update, RegistrationUpdate)
            updates.append(update.event)
        assert any(isinstance(u, Registered) and u.refreshed for u in updates)
    finally:
        await phone.close()
    assert registrar.seen[-1][0] == 0  # expires=0 on close (§10.2.2)


async def test_wrong_password_fails(registrar: Registrar) -> None:
    uri = await registrar.start()
    phone = await Phone.start(PhoneConfig(user="alice", password="nope"))
    try:
        event = await phone.register(phone.account(registrar=uri))
        assert isinstance(event, RegistrationFailed)
        assert event.status == 401
    finally:
        await phone.close()


async def test_unregister_returns_unregistered(registrar: Registrar) -> None:
    uri = await registrar.start()
    phone = await Phone.start(PhoneConfig(user="bob", password="pw"))
    try:
        account = phone.account(registrar=uri)
        assert isinstance(await phone.register(account), Registered)
        event = await phone.unregister(account.aor)
        assert isinstance(event, Unregistered) and event.status == 200
    finally:
        await phone.close(unregister=False)


async def test_out_of_dialog_requests() -> None:
    phone = await Phone.start(PhoneConfig(user="carol"))
    client = SipEndpoint()
    await client.listen("UDP", "127.0.0.1", 0)
    try:
        host, port = phone.local_address
        for method, status in (("OPTIONS", 200), ("MESSAGE", 405)):
            request = make_request(
                method,
                f"sip:carol@{host}:{port}",
                from_="<sip:x@127.0.0.1>",
                to=f"<sip:carol@{host}:{port}>",
            )
            response = await client.send_request(request)
            assert response.status == status, method
    finally:
        await client.close()
        await phone.close()


def test_local_address_for_loopback() -> None:
    assert local_address_for("127.0.0.1") == "127.0.0.1"
    assert local_address_for("::1") == "::1"


async def test_dialog_responses_copy_record_route_and_contact() -> None:
    """RFC 3261 §12.1.1: 180 and 200 copy Record-Route in order and carry a Contact."""
    from trunkline.sip.offeranswer import PCMU, create_offer

    phone = await Phone.start(PhoneConfig(user="dave", auto_answer=True))
    client = SipEndpoint()
    await client.listen("UDP", "127.0.0.1", 0)
    provisional: list[Response] = []
    try:
        host, port = phone.local_address
        rr = ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr;ftag=x>"]
        request = make_request(
            "INVITE",
            f"sip:dave@{host}:{port}",
            from_="<sip:x@127.0.0.1>",
            to=f"<sip:dave@{host}:{port}>",
            contact=f"<{client.contact_uri('UDP')}>",
            body=bytes(create_offer([PCMU], "127.0.0.1", 40000)),
            content_type="application/sdp",
            extra_headers=[("Record-Route", value) for value in rr],
        )
        response = await client.send_request(request, on_provisional=provisional.append)
        assert response.status == 200
        ringing = [r for r in provisional if r.status == 180]
        for message in (*ringing, response):
            assert message.headers.get_all("Record-Route") == rr
            assert message.contact and str(message.contact[0].uri).startswith("sip:dave@")
        assert ringing
    finally:
        await phone.close()
        await client.close()


async def test_registered_phone_calls_through_the_registrar_as_its_aor(
    registrar: Registrar,
) -> None:
    """§8.1.1.3: From is the registered AOR; §8.1.2: the INVITE is routed via the registrar."""
    uri = await registrar.start()
    phone = await Phone.start(PhoneConfig(user="alice", password="pw"))
    try:
        assert phone.route() == ()
        account = phone.account(registrar=uri)
        assert isinstance(await phone.register(account), Registered)
        assert str(phone.identity().uri) == account.aor
        # The callee's own host is a dead port: only the registrar can see this INVITE.
        call = phone.call("sip:bob@127.0.0.1:9")
        assert call.dial_task is not None
        await asyncio.wait_for(call.dial_task, 5)
        assert call.status == 404
        (invite,) = [r for r in registrar.others if r.method == "INVITE"]
        assert str(invite.uri) == "sip:bob@127.0.0.1:9"
        assert [str(r.uri) for r in invite.route] == [f"{uri};lr"]
        assert str(invite.from_.uri) == account.aor
    finally:
        await phone.close()


async def test_outbound_proxy_domain_is_the_identity_without_registration() -> None:
    phone = await Phone.start(PhoneConfig(user="carol", outbound_proxy="192.0.2.7:5080"))
    try:
        assert str(phone.identity().uri) == "sip:carol@192.0.2.7"  # an AOR has no port
        assert phone.route() == ("<sip:192.0.2.7:5080;lr>",)
    finally:
        await phone.close()


async def test_failed_registration_is_not_removed_on_close(registrar: Registrar) -> None:
    uri = await registrar.start()
    phone = await Phone.start(PhoneConfig(user="alice", password="wrong"))
    try:
        account = phone.account(registrar=uri)
        assert isinstance(await phone.register(account), RegistrationFailed)
        assert phone.route() == ()  # not registered: nothing to route through
        event = await phone.unregister(account.aor)
        assert isinstance(event, Unregistered) and event.status is None  # nothing was sent
    finally:
        await phone.close()
    assert all(expires != 0 for expires, _ in registrar.seen)


async def test_account_aor_is_user_at_domain_without_the_registrar_port() -> None:
    phone = await Phone.start(PhoneConfig(user="alice"))
    try:
        assert phone.account(registrar="sip:127.0.0.1:55521").aor == "sip:alice@127.0.0.1"
        tcp = phone.account(registrar="sip:[::1]:5070;transport=tcp")
        assert tcp.aor == "sip:alice@[::1]"
        assert tcp.registrar == "sip:[::1]:5070;transport=tcp"
    finally:
        await phone.close()


async def test_client_only_tls_phone_registers_without_a_certificate(
    registrar: Registrar, tmp_path: Path
) -> None:
    """No server certificate: the phone connects out (checking the server against
    the CA) and registers over that connection (RFC 5626 §5.2 flow)."""
    pki = create_dev_certificates(tmp_path)
    uri = await registrar.start("TLS", server_ssl_context(pki.cert, pki.key))
    config = PhoneConfig(
        user="alice", password="pw", transport="tls", client_ssl=client_ssl_context(pki.ca)
    )
    phone = await Phone.start(config)
    try:
        assert phone.contact().endswith(";transport=tls")
        assert isinstance(await phone.register(phone.account(registrar=uri)), Registered)
        assert registrar.registers
        assert all(r.source.transport == "TLS" for r in registrar.registers)
    finally:
        await phone.close()
