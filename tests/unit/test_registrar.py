"""REGISTER processing (RFC 3261 §10.3) with digest auth on the in-memory location service."""

from __future__ import annotations

from collections.abc import Sequence

from trunkline.proxy.location import RegistrarPolicy
from trunkline.proxy.location_sqlite import MemoryLocation
from trunkline.proxy.nat import Origin
from trunkline.proxy.registrar import Authenticator, Registrar, aor_of
from trunkline.proxy.validation import Reply
from trunkline.sip.authheaders import Challenge
from trunkline.sip.builder import make_request
from trunkline.sip.digest import DEFAULT_ALGORITHMS, LEGACY_ALGORITHMS, DigestClient, ha1
from trunkline.sip.message import Request
from trunkline.sip.uri import parse_uri

DOMAIN = "example.com"
SECRET = b"0123456789abcdef0123456789abcdef"
PASSWORDS = {"alice": "wonderland", "bob": "builder"}
ORIGIN = Origin("UDP", "203.0.113.4", 40000)


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    password = PASSWORDS.get(username)
    if password is None or realm != DOMAIN:
        return None
    return ha1(username, realm, password, algorithm)


def _registrar(
    *, algorithms: Sequence[str] | None = None, policy: RegistrarPolicy | None = None
) -> Registrar:
    auth = Authenticator(SECRET, lookup, algorithms=algorithms or DEFAULT_ALGORITHMS)
    return Registrar(
        MemoryLocation(None), auth, [DOMAIN], policy or RegistrarPolicy(min_expires=60)
    )


def _register(
    user: str = "alice",
    contact: str | None = "<sip:alice@192.168.1.2:5060>",
    *,
    cseq: int = 1,
    call_id: str = "reg-1",
    extra: Sequence[tuple[str, str]] = (),
    to_user: str | None = None,
) -> Request:
    aor = f"sip:{to_user or user}@{DOMAIN}"
    if contact == "*":  # the builder takes name-addrs only
        contact, extra = None, [("Contact", "*"), *extra]
    return make_request(
        "REGISTER",
        f"sip:{DOMAIN}",
        from_=f"<{aor}>;tag=f{cseq}",
        to=f"<{aor}>",
        via="SIP/2.0/UDP 192.168.1.2:5060",
        call_id=call_id,
        cseq=cseq,
        contact=contact,
        extra_headers=extra,
    )


def _authorize(request: Request, reply: Reply, user: str, password: str) -> Request:
    client = DigestClient(user, password)
    challenges = [Challenge.parse(v) for n, v in reply.headers if n == "WWW-Authenticate"]
    assert client.challenged(challenges)
    for name, value in client.authorization(request.method, request.uri_text):
        request.headers.add(name, value)
    return request


async def _registered(
    registrar: Registrar, request: Request, password: str, now: float = 1000.0
) -> Reply:
    first = await registrar.handle(request, ORIGIN, now)
    assert first.reply.status == 401
    retry = request.copy()
    retry.headers.set("CSeq", f"{request.cseq.number + 1} REGISTER")
    from_user = str(request.from_.uri).split(":")[1].split("@")[0]
    result = await registrar.handle(
        _authorize(retry, first.reply, from_user, password), ORIGIN, now
    )
    return result.reply


async def test_challenge_offers_sha256_then_md5() -> None:
    result = await _registrar().handle(_register(), ORIGIN, 1000.0)
    assert result.reply.status == 401 and not result.auth_failed
    algorithms = [Challenge.parse(v).algorithm for _, v in result.reply.headers]
    assert algorithms == ["SHA-256", "MD5"]


async def test_legacy_mode_offers_md5_only() -> None:
    result = await _registrar(algorithms=LEGACY_ALGORITHMS).handle(_register(), ORIGIN, 1000.0)
    assert [Challenge.parse(v).algorithm for _, v in result.reply.headers] == ["MD5"]


async def test_successful_register_lists_bindings_and_stores_source() -> None:
    registrar = _registrar()
    reply = await _registered(registrar, _register(extra=[("Expires", "600")]), "wonderland")
    assert reply.status == 200
    contacts = [v for n, v in reply.headers if n == "Contact"]
    assert contacts == ["<sip:alice@192.168.1.2:5060>;expires=600"]
    (binding,) = await registrar.location.lookup("sip:alice@example.com", 1001.0)
    assert binding.received == "203.0.113.4:40000" and binding.transport == "udp"
    assert binding.contact_uri == "sip:alice@192.168.1.2:5060"
    assert registrar.registered == 1


async def test_wrong_password_and_unknown_user_look_the_same() -> None:
    registrar = _registrar()
    wrong = await _registered(registrar, _register(), "not-the-password")
    unknown = await _registered(registrar, _register("mallory"), "anything")
    assert wrong.status == unknown.status == 401
    assert [n for n, _ in wrong.headers] == [n for n, _ in unknown.headers]
    assert wrong.reason == unknown.reason


async def test_failed_auth_is_flagged_for_counting() -> None:
    registrar = _registrar()
    first = await registrar.handle(_register(), ORIGIN, 1000.0)
    retry = _authorize(_register(cseq=2), first.reply, "alice", "bad")
    result = await registrar.handle(retry, ORIGIN, 1000.0)
    assert result.auth_failed and result.reply.status == 401


async def test_user_may_not_register_someone_elses_aor() -> None:
    registrar = _registrar()
    request = _register("alice", to_user="bob")
    first = await registrar.handle(request, ORIGIN, 1000.0)
    retry = _authorize(
        _register("alice", to_user="bob", cseq=2), first.reply, "alice", "wonderland"
    )
    result = await registrar.handle(retry, ORIGIN, 1000.0)
    assert result.reply.status == 403


async def test_min_expires_423() -> None:
    registrar = _registrar()
    reply = await _registered(registrar, _register(extra=[("Expires", "10")]), "wonderland")
    assert reply.status == 423 and ("Min-Expires", "60") in reply.headers


async def test_query_remove_and_star() -> None:
    registrar = _registrar()
    assert (await _registered(registrar, _register(call_id="c1"), "wonderland")).status == 200
    second = _register(contact="<sip:alice@10.0.0.9>;q=0.5", call_id="c2")
    assert (await _registered(registrar, second, "wonderland")).status == 200
    query = await _registered(registrar, _register(contact=None, call_id="c3"), "wonderland")
    contacts = [v for n, v in query.headers if n == "Contact"]
    assert len(contacts) == 2 and contacts[1].endswith(";q=0.5")
    star = _register(contact="*", call_id="c4", extra=[("Expires", "0")])
    cleared = await _registered(registrar, star, "wonderland")
    assert cleared.status == 200 and not [v for n, v in cleared.headers if n == "Contact"]
    assert await registrar.location.lookup("sip:alice@example.com", 1001.0) == []


async def test_path_stored_and_echoed() -> None:
    registrar = _registrar()
    extra = [("Path", "<sip:edge.example.net;lr>"), ("Supported", "path")]
    reply = await _registered(registrar, _register(extra=extra), "wonderland")
    assert ("Path", "<sip:edge.example.net;lr>") in reply.headers
    (binding,) = await registrar.location.lookup("sip:alice@example.com", 1001.0)
    assert binding.path == ("<sip:edge.example.net;lr>",)


async def test_path_not_echoed_without_supported_path() -> None:
    registrar = _registrar()
    reply = await _registered(
        registrar, _register(extra=[("Path", "<sip:edge.example.net;lr>")]), "wonderland"
    )
    assert reply.status == 200 and "Path" not in dict(reply.headers)
    (binding,) = await registrar.location.lookup("sip:alice@example.com", 1001.0)
    assert binding.path == ("<sip:edge.example.net;lr>",)  # still stored for routing


async def test_unknown_require_is_420() -> None:
    result = await _registrar().handle(_register(extra=[("Require", "gruu")]), ORIGIN, 1.0)
    assert result.reply.status == 420 and ("Unsupported", "gruu") in result.reply.headers


async def test_foreign_domain_is_404() -> None:
    request = _register()
    request.uri = "sip:other.org"
    result = await _registrar().handle(request, ORIGIN, 1.0)
    assert result.reply.status == 404


async def test_bad_contact_is_400() -> None:
    registrar = Registrar(MemoryLocation(None), None, [DOMAIN])
    bad = _register(contact="*")  # wildcard without Expires: 0
    result = await registrar.handle(bad, ORIGIN, 1.0)
    assert result.reply.status == 400


async def test_stale_nonce_rechallenges_with_stale() -> None:
    registrar = _registrar()
    first = await registrar.handle(_register(), ORIGIN, 1000.0)
    retry = _authorize(_register(cseq=2), first.reply, "alice", "wonderland")
    result = await registrar.handle(retry, ORIGIN, 1000.0 + 3600)
    assert result.reply.status == 401 and result.auth is not None and result.auth.stale
    assert not result.auth_failed


def test_aor_of() -> None:
    assert aor_of(parse_uri("sips:Alice@Example.COM:5061;transport=tls")) == "sip:Alice@example.com"
    assert aor_of(parse_uri("sip:example.com")) is None
    assert aor_of(parse_uri("tel:+123")) is None
