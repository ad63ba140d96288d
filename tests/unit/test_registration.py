"""The sans-IO registration client on a fake clock, against a DigestServer registrar."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.sip.auth import AuthStatus, Credentials, DigestServer, ha1
from trunkline.sip.builder import make_response, new_branch
from trunkline.sip.errors import LocalSipError
from trunkline.sip.message import Request, Response
from trunkline.ua.registration import (
    TRANSITIONS,
    Account,
    Registered,
    RegistrationClient,
    RegistrationEvent,
    RegistrationFailed,
    RegistrationState,
    Unregistered,
)

REALM = "example.com"
PASSWORD = "s3cret"
SECRET = b"0123456789abcdef0123456789abcdef"
ACCOUNT = Account(
    aor="sip:alice@example.com", contact="sip:alice@192.0.2.5:5062", password=PASSWORD, expires=600
)
State = RegistrationState


class Registrar:
    """A small RFC 3261 §10.3 registrar with digest auth from our DigestServer."""

    def __init__(
        self,
        *,
        algorithms: Iterable[str] = ("SHA-256", "MD5"),
        nonce_ttl: float = 300.0,
        min_expires: int = 60,
        max_expires: int = 3600,
        password: str = PASSWORD,
    ) -> None:
        self.server = DigestServer(REALM, SECRET, nonce_ttl, algorithms=tuple(algorithms))
        self.password = password
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.bindings: dict[str, float] = {}  # contact URI -> expiry time
        self.results: list[AuthStatus | None] = []  # per request; None: no credentials

    def lookup(self, username: str, realm: str, algorithm: str) -> str | None:
        return ha1(username, realm, self.password, algorithm) if username == "alice" else None

    def handle(self, request: Request, now: float) -> Response:
        credentials: list[Credentials] = request.authorization
        result = (
            self.server.verify(credentials[0], request.method, request.body, self.lookup, now)
            if credentials
            else None
        )
        self.results.append(result.status if result else None)
        if result is None or not result.ok:
            stale = result is not None and result.status is AuthStatus.STALE
            headers = [("WWW-Authenticate", str(c)) for c in self.server.challenge(now, stale)]
            return make_response(request, 401, headers=headers)
        contact = request.contact[0]
        expires = contact.expires if contact.expires is not None else request.expires
        expires = self.max_expires if expires is None else expires
        key = str(contact.uri)
        if expires == 0:
            self.bindings.pop(key, None)
            return make_response(request, 200)
        if expires < self.min_expires:
            return make_response(request, 423, headers=[("Min-Expires", str(self.min_expires))])
        granted = min(expires, self.max_expires)
        self.bindings[key] = now + granted
        listed = [f"<{uri}>;expires={int(until - now)}" for uri, until in self.bindings.items()]
        return make_response(request, 200, headers=[("Contact", ", ".join(listed))])


def on_wire(request: Request) -> Request:
    """What the registrar receives: the transport adds a Via; parse from bytes."""
    request.headers.prepend("Via", f"SIP/2.0/UDP 192.0.2.5:5062;branch={new_branch()}")
    return Request.parse(bytes(request))


def events(client: RegistrationClient) -> list[RegistrationEvent]:
    out: list[RegistrationEvent] = []
    while (event := client.next_event()) is not None:
        out.append(event)
    return out


def state(client: RegistrationClient) -> RegistrationState:
    """The state, read through a call so mypy does not narrow it across steps."""
    return client.state


def one_request(client: RegistrationClient) -> Request:
    sent = client.requests_to_send()
    assert len(sent) == 1, sent
    return on_wire(sent[0])


def serve(client: RegistrationClient, registrar: Registrar, now: float, limit: int = 5) -> int:
    """Answer every request the client sends at ``now``; the number answered."""
    count = 0
    for _ in range(limit):
        sent = client.requests_to_send()
        if not sent:
            return count
        for request in sent:
            response = registrar.handle(on_wire(request), now)
            assert client.handle_response(Response.parse(bytes(response)), now)
            count += 1
    raise AssertionError("client kept sending")


def reply(request: Request, status: int, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response.parse(bytes(make_response(request, status, headers=headers)))


def test_happy_path_with_digest() -> None:
    registrar = Registrar()
    client = RegistrationClient(ACCOUNT, rng=random.Random(1))
    assert state(client) is State.UNREGISTERED and client.get_timer() is None
    client.start(100.0)
    assert state(client) is State.REGISTERING
    first = one_request(client)
    assert first.authorization == []
    assert client.get_timer() == pytest.approx(132.0)  # Timer F guard
    assert client.handle_response(registrar.handle(first, 100.0), 100.0)
    second = one_request(client)
    assert second.call_id == first.call_id
    assert second.cseq.number == first.cseq.number + 1
    assert second.from_tag == first.from_tag
    credentials = second.authorization[0]
    assert credentials.algorithm == "SHA-256" and credentials.nc == "00000001"
    assert credentials.uri == "sip:example.com"
    client.handle_response(registrar.handle(second, 100.2), 100.2)
    assert registrar.results == [None, AuthStatus.OK]
    assert events(client) == [
        Registered(600, 100.2 + 540.0, False, ("<sip:alice@192.0.2.5:5062>;expires=600",))
    ]
    assert state(client) is State.REGISTERED
    assert client.get_timer() == pytest.approx(640.2)


def test_request_shape() -> None:
    account = Account(
        aor="sip:alice@example.com",
        contact="sip:alice@192.0.2.5:5062;transport=tcp",
        registrar="sip:registrar.example.com:5070",
        display_name="Alice",
        instance_id="urn:uuid:00000000-0000-1000-8000-000A95A0E128",
        reg_id=1,
        route=("<sip:proxy.example.net;lr>",),
        user_agent="Trunkline test",
        expires=120,
    )
    client = RegistrationClient(account, call_id="reg-1@test")
    client.start(0.0)
    request = one_request(client)
    assert request.method == "REGISTER"
    assert str(request.uri) == "sip:registrar.example.com:5070"
    assert request.call_id == "reg-1@test"
    assert request.to.tag is None and request.from_tag
    assert str(request.to.uri) == str(request.from_.uri) == "sip:alice@example.com"
    (contact,) = request.contact
    assert str(contact.uri) == "sip:alice@192.0.2.5:5062;transport=tcp"
    assert contact.expires == 120
    assert contact.params["+sip.instance"] == '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"'
    assert contact.params["reg-id"] == "1"
    assert request.supported == ["outbound"]
    assert [str(r.uri) for r in request.route] == ["sip:proxy.example.net;lr"]
    assert request.headers.get("User-Agent") == "Trunkline test"
    assert request.headers.get("Via") is not None  # added by on_wire, not by the client


def test_account_validation() -> None:
    with pytest.raises(LocalSipError):
        RegistrationClient(Account(aor="tel:+15551234", contact="sip:a@192.0.2.1"))
    with pytest.raises(LocalSipError):
        RegistrationClient(Account(aor="sip:a@b", contact="sip:a@192.0.2.1", reg_id=1))
    with pytest.raises(LocalSipError):
        RegistrationClient(Account(aor="sip:a@b", contact="sip:a@192.0.2.1", expires=0))


def test_423_retries_with_min_expires() -> None:
    registrar = Registrar(min_expires=1800)
    client = RegistrationClient(ACCOUNT, rng=random.Random(2))
    client.start(0.0)
    assert serve(client, registrar, 0.0) == 3  # 401, 423, 200
    assert client.expires == 1800
    (event,) = events(client)
    assert isinstance(event, Registered) and event.expires == 1800
    assert event.refresh_at == pytest.approx(1620.0)


def test_423_without_a_larger_minimum_fails() -> None:
    client = RegistrationClient(ACCOUNT, rng=random.Random(3))
    client.start(0.0)
    request = one_request(client)
    client.handle_response(reply(request, 423, [("Min-Expires", "600")]), 0.0)
    (event,) = events(client)
    assert isinstance(event, RegistrationFailed) and event.status == 423
    assert state(client) is State.BACKOFF


def test_refresh_reuses_nonce_with_next_nonce_count() -> None:
    registrar = Registrar(max_expires=120, nonce_ttl=300.0)
    client = RegistrationClient(ACCOUNT, rng=random.Random(4))
    client.start(0.0)
    serve(client, registrar, 0.0)
    (first,) = events(client)
    assert isinstance(first, Registered) and first.expires == 120
    assert client.get_timer() == pytest.approx(108.0)
    client.handle_timer(107.9)
    assert client.requests_to_send() == []
    client.handle_timer(108.0)
    assert state(client) is State.REFRESHING
    refresh = one_request(client)
    assert refresh.authorization[0].nc == "00000002"
    client.handle_response(registrar.handle(refresh, 108.0), 108.0)
    assert registrar.results[-1] is AuthStatus.OK
    (second,) = events(client)
    assert second == Registered(
        120, 108.0 + 108.0, True, ("<sip:alice@192.0.2.5:5062>;expires=120",)
    )
    assert state(client) is State.REGISTERED


def test_stale_nonce_is_answered_again() -> None:
    registrar = Registrar(max_expires=600, nonce_ttl=300.0)
    client = RegistrationClient(ACCOUNT, rng=random.Random(5))
    client.start(0.0)
    serve(client, registrar, 0.0)
    events(client)
    client.handle_timer(540.0)  # the nonce from t=0 has expired
    assert serve(client, registrar, 540.0) == 2
    assert registrar.results[-2:] == [AuthStatus.STALE, AuthStatus.OK]
    (event,) = events(client)
    assert isinstance(event, Registered) and event.refreshed


def test_wrong_password_fails_after_one_retry() -> None:
    registrar = Registrar()
    client = RegistrationClient(
        Account(aor=ACCOUNT.aor, contact=ACCOUNT.contact, password="wrong"),
        rng=random.Random(6),
    )
    client.start(0.0)
    assert serve(client, registrar, 0.0) == 2
    assert registrar.results == [None, AuthStatus.BAD]
    (event,) = events(client)
    assert isinstance(event, RegistrationFailed) and event.status == 401
    assert state(client) is State.BACKOFF


def test_403_backs_off_exponentially_with_cap_then_recovers() -> None:
    rng = random.Random(7)
    client = RegistrationClient(ACCOUNT, rng=random.Random(7))
    now = 0.0
    client.start(now)
    delays: list[float] = []
    for _ in range(6):
        request = one_request(client)
        client.handle_response(reply(request, 403), now)
        (event,) = events(client)
        assert isinstance(event, RegistrationFailed)
        assert (event.status, event.reason) == (403, "Forbidden")
        assert event.retry_at is not None and client.get_timer() == event.retry_at
        assert state(client) is State.BACKOFF
        delays.append(event.retry_at - now)
        client.handle_timer(event.retry_at - 0.001)
        assert client.requests_to_send() == []
        now = event.retry_at
        client.handle_timer(now)
        assert state(client) is State.REGISTERING
    # min(300, 30 * 2**n) scaled by the same draws as a twin RNG gives.
    expected = [min(300.0, 30.0 * 2**n) * rng.uniform(0.5, 1.0) for n in range(1, 7)]
    assert delays == pytest.approx(expected)
    assert 30.0 <= delays[0] <= 60.0 and all(150.0 <= d <= 300.0 for d in delays[3:])
    assert client.failures == 6
    serve(client, Registrar(), now)
    assert isinstance(events(client)[-1], Registered) and client.failures == 0


def test_retry_after_is_honoured() -> None:
    client = RegistrationClient(ACCOUNT, rng=random.Random(8))
    client.start(10.0)
    request = one_request(client)
    client.handle_response(reply(request, 503, [("Retry-After", "17 (maintenance)")]), 10.0)
    assert events(client) == [RegistrationFailed(503, "Service Unavailable", 27.0)]


def test_timeout_counts_as_408() -> None:
    client = RegistrationClient(ACCOUNT, rng=random.Random(9))
    client.start(0.0)
    one_request(client)
    client.handle_timer(31.0)
    assert events(client) == []
    client.handle_timer(32.0)
    (event,) = events(client)
    assert isinstance(event, RegistrationFailed) and event.status == 408
    assert state(client) is State.BACKOFF


def test_max_failures_ends_in_failed_and_start_leaves_it() -> None:
    client = RegistrationClient(ACCOUNT, rng=random.Random(10), max_failures=2)
    client.start(0.0)
    client.handle_response(reply(one_request(client), 404), 0.0)
    retry_at = client.get_timer()
    assert retry_at is not None
    client.handle_timer(retry_at)
    client.handle_response(reply(one_request(client), 404), retry_at)
    assert events(client)[-1] == RegistrationFailed(404, "Not Found", None)
    assert state(client) is State.FAILED and client.get_timer() is None
    client.start(1000.0)
    assert state(client) is State.REGISTERING and len(client.requests_to_send()) == 1


def test_proxy_challenge_407() -> None:
    server = DigestServer(REALM, SECRET, algorithms=("MD5",))
    client = RegistrationClient(ACCOUNT, rng=random.Random(11))
    client.start(0.0)
    first = one_request(client)
    challenge = [("Proxy-Authenticate", str(c)) for c in server.challenge(0.0)]
    client.handle_response(reply(first, 407, challenge), 0.0)
    second = one_request(client)
    (credentials,) = second.proxy_authorization
    assert second.authorization == []
    result = server.verify(credentials, "REGISTER", b"", Registrar().lookup, 0.0)
    assert result.ok and result.username == "alice"


def test_granted_expiry_from_our_contact_else_expires_header() -> None:
    client = RegistrationClient(ACCOUNT, rng=random.Random(12))
    client.start(0.0)
    contacts = "<sip:alice@198.51.100.9>;expires=3000, <sip:alice@192.0.2.5:5062>;expires=200"
    client.handle_response(
        reply(one_request(client), 200, [("Contact", contacts), ("Expires", "3600")]), 0.0
    )
    (event,) = events(client)
    assert isinstance(event, Registered)
    assert event.expires == 200 and len(event.bindings) == 2
    client.handle_timer(180.0)
    client.handle_response(reply(one_request(client), 200, [("Expires", "90")]), 180.0)
    (event,) = events(client)
    assert isinstance(event, Registered) and event.expires == 90
    assert event.refresh_at == pytest.approx(180.0 + 81.0)


def test_unregister_on_stop() -> None:
    registrar = Registrar()
    client = RegistrationClient(ACCOUNT, rng=random.Random(13))
    client.start(0.0)
    serve(client, registrar, 0.0)
    assert registrar.bindings
    events(client)
    client.stop(5.0)
    assert state(client) is State.UNREGISTERING
    request = one_request(client)
    assert request.contact[0].expires == 0
    assert request.authorization[0].nc == "00000002"
    client.handle_response(registrar.handle(request, 5.0), 5.0)
    assert events(client) == [Unregistered(200)]
    assert state(client) is State.UNREGISTERED and client.get_timer() is None
    assert registrar.bindings == {}
    client.stop(6.0)  # idempotent
    assert client.requests_to_send() == [] and events(client) == []


def test_stop_while_registering_waits_for_the_answer() -> None:
    registrar = Registrar()
    client = RegistrationClient(ACCOUNT, rng=random.Random(14))
    client.start(0.0)
    first = one_request(client)
    client.stop(0.1)
    assert state(client) is State.UNREGISTERING
    assert client.requests_to_send() == []  # one outstanding REGISTER at a time
    client.handle_response(registrar.handle(first, 0.2), 0.2)  # 401
    retry = one_request(client)
    assert retry.contact[0].expires == 0 and retry.authorization
    client.handle_response(registrar.handle(retry, 0.3), 0.3)
    assert events(client) == [Unregistered(200)]
    assert registrar.bindings == {}


def test_stop_in_backoff_without_binding_is_immediate() -> None:
    client = RegistrationClient(ACCOUNT, rng=random.Random(15))
    client.start(0.0)
    client.handle_response(reply(one_request(client), 500), 0.0)
    events(client)
    client.stop(1.0)
    assert client.requests_to_send() == []
    assert events(client) == [Unregistered(None)]
    assert state(client) is State.UNREGISTERED and client.get_timer() is None


def test_stop_in_backoff_with_live_binding_unregisters() -> None:
    registrar = Registrar(max_expires=100)
    client = RegistrationClient(ACCOUNT, rng=random.Random(16))
    client.start(0.0)
    serve(client, registrar, 0.0)
    client.handle_timer(90.0)
    client.handle_response(reply(one_request(client), 500), 90.0)
    assert state(client) is State.BACKOFF
    client.stop(95.0)  # the binding from t=0 lives until t=100
    request = one_request(client)
    assert request.contact[0].expires == 0


def test_foreign_and_provisional_responses() -> None:
    client = RegistrationClient(ACCOUNT, rng=random.Random(17))
    assert not client.handle_response(
        Response.parse(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: other\r\n"
            b"CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
        ),
        0.0,
    )
    client.start(0.0)
    request = one_request(client)
    old = reply(request, 200)
    old.headers.set("CSeq", f"{request.cseq.number + 7} REGISTER")
    assert not client.handle_response(Response.parse(bytes(old)), 0.0)
    assert client.handle_response(reply(request, 100), 0.0)
    assert state(client) is State.REGISTERING and events(client) == []


def test_transition_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(RegistrationState)
    for state, targets in TRANSITIONS.items():
        assert state not in targets


@pytest.mark.parametrize("algorithms", [("SHA-256", "MD5"), ("MD5",)])
def test_two_hours_against_a_digest_registrar(algorithms: tuple[str, ...]) -> None:
    """Drive the client by its own timer for two simulated hours."""
    registrar = Registrar(algorithms=algorithms, max_expires=300, nonce_ttl=600.0)
    client = RegistrationClient(ACCOUNT, rng=random.Random(18))
    now = 0.0
    client.start(now)
    seen: list[RegistrationEvent] = []
    for _ in range(200):
        serve(client, registrar, now)
        seen.extend(events(client))
        deadline = client.get_timer()
        assert deadline is not None and deadline > now
        if deadline > 7200.0:
            break
        now = deadline
        client.handle_timer(now)
    client.stop(now)
    serve(client, registrar, now)
    seen.extend(events(client))
    registered = [e for e in seen if isinstance(e, Registered)]
    assert not [e for e in seen if isinstance(e, RegistrationFailed)]
    assert len(registered) == 1 + 7200 // 270
    assert all(e.expires == 300 for e in registered)
    assert seen[-1] == Unregistered(200)
    # A 600 s nonce covers two refreshes 270 s apart; the third (every 810 s) is stale.
    assert registrar.results.count(AuthStatus.STALE) == 7200 // 810
    assert registrar.results.count(None) == 1  # credentials sent pre-emptively after the first
    assert registrar.bindings == {}


# -- property: any order of inputs keeps the machine consistent ---------------------------

ACTIONS = st.lists(
    st.one_of(
        st.sampled_from(["start", "stop", "timer", "timeout", "late"]),
        st.tuples(
            st.sampled_from([100, 200, 401, 407, 403, 404, 408, 423, 500, 503, 603]),
            st.sampled_from(["", "Min-Expires: 7200", "Retry-After: 5", "Expires: 0", "stale"]),
        ),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(actions=ACTIONS)
def test_any_input_sequence_keeps_invariants(
    actions: list[str | tuple[int, str]],
) -> None:
    server = DigestServer(REALM, SECRET, algorithms=("MD5",))
    client = RegistrationClient(ACCOUNT, rng=random.Random(0), call_id="prop@test")
    now = 0.0
    outstanding: Request | None = None
    cseqs: list[int] = []
    for action in actions:
        now += 1.0
        if action == "start":
            client.start(now)
        elif action == "stop":
            client.stop(now)
        elif action == "timer":
            deadline = client.get_timer()
            now = max(now, deadline if deadline is not None else now)
            client.handle_timer(now)
        elif action == "timeout":
            client.handle_timeout(now)
            outstanding = None
        elif action == "late" and outstanding is not None:
            stale = reply(outstanding, 200)
            stale.headers.set("CSeq", f"{outstanding.cseq.number - 1} REGISTER")
            assert not client.handle_response(Response.parse(bytes(stale)), now)
        elif isinstance(action, tuple) and outstanding is not None:
            status, extra = action
            headers: list[tuple[str, str]] = []
            if status in (401, 407):
                name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
                challenges = server.challenge(now, stale=extra == "stale")
                headers = [(name, str(c)) for c in challenges]
            elif extra and extra != "stale":
                header, value = extra.split(": ")
                headers = [(header, value)]
            assert client.handle_response(reply(outstanding, status, headers), now)
            if status >= 200:
                outstanding = None
        if client.outstanding is None:
            outstanding = None  # timed out by the client's own Timer F guard
        sent = client.requests_to_send()
        assert len(sent) <= 1
        if sent:
            assert outstanding is None, "a second REGISTER while one is outstanding"
            outstanding = on_wire(sent[0])
            assert outstanding.call_id == "prop@test"
            cseqs.append(outstanding.cseq.number)
        events(client)
        current = client.state
        if current in (State.UNREGISTERED, State.FAILED):
            assert client.get_timer() is None and outstanding is None
        elif current is not State.UNREGISTERING:
            assert client.get_timer() is not None
    assert cseqs == sorted(set(cseqs))
