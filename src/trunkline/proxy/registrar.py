"""The registrar: REGISTER processing (RFC 3261 §10.3) and digest authentication.

:class:`Authenticator` wraps one :class:`~trunkline.sip.digest.DigestServer`
per realm (the domain is the realm, as the user store keeps HA1 per domain)
and turns a request into an :class:`AuthCheck`: authenticated as a user, or a
401/407 challenge. Unknown users and wrong passwords get the same fresh
challenge (no user enumeration); only the ``failed`` flag, kept for the
anti-flood counters and never shown to the peer, tells them from a first
unauthenticated request. The offered algorithms are one setting:
``DEFAULT_ALGORITHMS`` (SHA-256 then MD5, RFC 8760) or ``LEGACY_ALGORITHMS``
for deployments with clients that fail on SHA-256 (SIPp, baresip 1.0).

:class:`Registrar` runs §10.3 in order:

1. the Request-URI names a domain we serve (else 404, step 1 says forward;
   the router already forwarded what is not ours);
2. Require: only ``path`` is understood (420, step 2);
3. authentication (401, step 3) and authorization: the authenticated user
   may register only its own AoR (403, step 4; ``may_register`` overrides);
4. the AoR from To (404 for another domain, step 5);
5. steps 6-8 by the location service (``plan_register``): ``*``, Min-Expires
   (423), Call-ID/CSeq ordering, all-or-nothing updates;
6. the 200 lists every current binding with its expires (step 8), echoes
   Path to UAs that support it (RFC 3327 §5.3, Kamailio's "lazy" mode; the
   Path is stored either way) and says ``Supported: path``.

The source address and flow are stored with each binding (``received``,
``flow``) so the proxy can send to the NAT binding or the connection the UA
registered over (RFC 5626 §5.2 ideas); the Contact itself is stored as sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from trunkline.proxy.location import (
    LocationService,
    RegisterOutcome,
    RegisterRequest,
    RegistrarPolicy,
)
from trunkline.proxy.validation import Reply
from trunkline.sip.digest import (
    DEFAULT_ALGORITHMS,
    AuthStatus,
    DigestServer,
    Ha1Lookup,
    base_algorithm,
)
from trunkline.sip.errors import LocalSipError, SipParseError
from trunkline.sip.uri import SipUri, Uri

if TYPE_CHECKING:
    from trunkline.proxy.nat import Origin
    from trunkline.sip.message import Request

__all__ = [
    "AuthCheck",
    "Authenticator",
    "RegisterResult",
    "Registrar",
    "aor_of",
]

log = logging.getLogger("trunkline.proxy.registrar")

SUPPORTED_EXTENSIONS = frozenset({"path"})


def aor_of(uri: Uri) -> str | None:
    """The canonical AoR (``sip:user@host``, lower-case host, no port/params) or None.

    ``sips:`` AoRs are filed under ``sip:`` so a phone registered over TLS is
    found by a ``sip:`` call and vice versa (the transport choice is per hop).
    """
    if not isinstance(uri, SipUri) or uri.user is None:
        return None
    return uri.aor if uri.scheme == "sip" else uri.copy(scheme="sip").aor


class AuthCheck(NamedTuple):
    """The outcome of :meth:`Authenticator.check`.

    ``username`` is set when authenticated; otherwise ``reply`` is the
    challenge to send. ``failed`` marks credentials that were present and
    wrong (for fail2ban-style counting); ``stale`` a genuine but expired nonce.
    """

    username: str | None = None
    reply: Reply | None = None
    failed: bool = False
    stale: bool = False

    @property
    def ok(self) -> bool:
        return self.username is not None


class Authenticator:
    """Digest authentication (RFC 3261 §22) for every realm the server serves.

    ``ha1_lookup`` is the user store's ``(username, realm, algorithm)`` lookup
    (``UserStore.ha1``); the realm is the user's domain.
    """

    def __init__(
        self,
        secret: bytes,
        ha1_lookup: Ha1Lookup,
        *,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        nonce_ttl: float = 300.0,
    ) -> None:
        self._secret = secret
        self._ha1 = ha1_lookup
        self.algorithms = tuple(algorithms)
        self.nonce_ttl = nonce_ttl
        self._servers: dict[str, DigestServer] = {}

    def server(self, realm: str) -> DigestServer:
        server = self._servers.get(realm)
        if server is None:
            server = DigestServer(realm, self._secret, self.nonce_ttl, algorithms=self.algorithms)
            self._servers[realm] = server
        return server

    def challenge_reply(self, realm: str, now: float, *, proxy: bool, stale: bool = False) -> Reply:
        """A 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) with one challenge per algorithm."""
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        values = self.server(realm).challenge_values(now, stale=stale)
        headers = tuple((name, value) for value in values)
        if proxy:
            return Reply(407, "Proxy Authentication Required", headers)
        return Reply(401, "Unauthorized", headers)

    def check(self, request: Request, realm: str, now: float, *, proxy: bool) -> AuthCheck:
        """Authenticate ``request`` in ``realm`` from Authorization (or Proxy-Authorization)."""
        try:
            offered = request.proxy_authorization if proxy else request.authorization
        except SipParseError:
            return AuthCheck(reply=self.challenge_reply(realm, now, proxy=proxy), failed=True)
        credentials = next((c for c in offered if c.is_digest and c.realm == realm), None)
        if credentials is None:
            return AuthCheck(reply=self.challenge_reply(realm, now, proxy=proxy))
        server = self.server(realm)
        precheck = server.precheck(credentials)
        if precheck is not None:
            log.debug("auth precheck failed: %s", precheck.reason)
            return AuthCheck(reply=self.challenge_reply(realm, now, proxy=proxy), failed=True)
        username = credentials.username or ""
        try:
            stored = self._ha1(username, realm, base_algorithm(credentials.algorithm))
        except LocalSipError:
            stored = None
        result = server.verify_ha1(
            credentials, request.method, request.body, stored, now, prechecked=True
        )
        if result.status is AuthStatus.OK:
            return AuthCheck(username=result.username)
        if result.status is AuthStatus.STALE:
            reply = self.challenge_reply(realm, now, proxy=proxy, stale=True)
            return AuthCheck(reply=reply, stale=True)
        log.debug("auth failed for %r in %r: %s", username, realm, result.reason)
        return AuthCheck(reply=self.challenge_reply(realm, now, proxy=proxy), failed=True)


class RegisterResult(NamedTuple):
    """What the router needs from a REGISTER: the reply and, for counters, the outcome."""

    reply: Reply
    auth: AuthCheck | None = None
    outcome: RegisterOutcome | None = None
    aor: str | None = None

    @property
    def auth_failed(self) -> bool:
        return self.auth is not None and self.auth.failed


_DEFAULT_POLICY = RegistrarPolicy()


MayRegister = Callable[[str, str, str], bool]
"""``(username, realm, aor) -> allowed`` for third-party registration policy."""


def own_aor_only(username: str, realm: str, aor: str) -> bool:
    """The default: a user registers ``sip:user@realm`` and nothing else."""
    return aor == f"sip:{username}@{realm.lower()}"


class Registrar:
    """RFC 3261 §10.3 on a :class:`LocationService`; the only I/O is awaiting it."""

    def __init__(
        self,
        location: LocationService,
        authenticator: Authenticator | None,
        domains: Iterable[str],
        policy: RegistrarPolicy = _DEFAULT_POLICY,
        *,
        may_register: MayRegister = own_aor_only,
    ) -> None:
        self.location = location
        self.authenticator = authenticator
        self.domains = frozenset(domain.lower() for domain in domains)
        self.policy = policy
        self.may_register = may_register
        self.registered = 0
        self.rejected = 0

    def serves(self, uri: Uri) -> bool:
        return isinstance(uri, SipUri) and uri.host.lower() in self.domains

    async def handle(self, request: Request, origin: Origin, now: float) -> RegisterResult:
        """Process one REGISTER; never raises for bad input (400 instead)."""
        try:
            result = await self._handle(request, origin, now)
        except SipParseError as error:
            result = RegisterResult(Reply(error.status, error.reason))
        if result.reply.status == 200:
            self.registered += 1
        elif result.reply.status >= 300 and result.reply.status not in (401, 407):
            self.rejected += 1
        return result

    async def _handle(self, request: Request, origin: Origin, now: float) -> RegisterResult:
        # Step 1: a domain we serve.
        uri = request.uri
        if not self.serves(uri):
            return RegisterResult(Reply(404, "Domain Not Served"))
        realm = uri.host.lower() if isinstance(uri, SipUri) else ""
        # Step 2: Require.
        unsupported = [tag for tag in request.require if tag.lower() not in SUPPORTED_EXTENSIONS]
        if unsupported:
            return RegisterResult(
                Reply(420, "Bad Extension", (("Unsupported", ", ".join(unsupported)),))
            )
        # Step 3: authentication.
        auth: AuthCheck | None = None
        if self.authenticator is not None:
            auth = self.authenticator.check(request, realm, now, proxy=False)
            if not auth.ok:
                assert auth.reply is not None
                return RegisterResult(auth.reply, auth)
        # Step 5: the AoR, from To, must be in the Request-URI's domain.
        aor = aor_of(request.to.uri)
        to_uri = request.to.uri
        if aor is None or not isinstance(to_uri, SipUri) or to_uri.host.lower() != realm:
            return RegisterResult(Reply(404, "Not Found"), auth)
        # Step 4: may this user register this AoR?
        username = auth.username if auth is not None else None
        if username is not None and not self.may_register(username, realm, aor):
            log.info("REGISTER for %s by %s refused from %s", aor, username, origin.host)
            return RegisterResult(Reply(403, "Forbidden"), auth, aor=aor)
        # Steps 6-8.
        register = RegisterRequest.from_request(
            request,
            aor,
            received=origin.address,
            transport=origin.transport.lower(),
            flow=origin.flow,
        )
        outcome = await self.location.apply_register(register, now, self.policy)
        path_supported = any(tag.lower() == "path" for tag in request.supported)
        reply = self._reply(outcome, register, now, path_supported=path_supported)
        return RegisterResult(reply, auth, outcome, aor)

    def _reply(
        self,
        outcome: RegisterOutcome,
        register: RegisterRequest,
        now: float,
        *,
        path_supported: bool,
    ) -> Reply:
        if outcome.status == 423:
            minimum = outcome.min_expires or self.policy.min_expires
            return Reply(423, outcome.reason, (("Min-Expires", str(minimum)),))
        if not outcome.ok:
            return Reply(outcome.status, outcome.reason)
        headers: list[tuple[str, str]] = [
            ("Contact", binding.contact_value(now)) for binding in outcome.bindings
        ]
        if path_supported:
            # RFC 3327 §5.3 ("lazy" mode): echo Path to a UA that says it supports it.
            headers.extend(("Path", value) for value in register.path)
        headers.append(("Supported", "path"))
        return Reply(200, "OK", tuple(headers))
