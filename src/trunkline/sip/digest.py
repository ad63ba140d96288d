"""HTTP Digest authentication for SIP: computation, client and server.

SIP uses HTTP Digest (RFC 3261 §22.4) as RFC 2617 defined it, with the
SHA-256 and SHA-512/256 algorithms added by RFC 7616 and made usable in SIP by
RFC 8760. Everything here is sans-IO: the server takes ``now`` as a parameter.

- :func:`digest_response` is RFC 7616 §3.4.1 (and RFC 2617 §3.2.2.1 for
  ``qop``-less RFC 2069 compatibility), ``-sess`` per §3.4.2, ``auth-int`` per
  §3.4.3, ``userhash`` per §3.4.4.
- :class:`DigestClient` answers 401/407 challenges, choosing the strongest
  algorithm offered (SHA-512-256 > SHA-256 > MD5, RFC 8760 §2.4), keeps the
  nonce for later requests with an increasing nonce-count, and retries without
  asking for the password again only when the server said ``stale=true``.
- :class:`DigestServer` issues stateless nonces (a timestamp and a salt
  authenticated by HMAC-SHA256 under a server secret), verifies credentials
  against a store of HA1 values (never passwords), reports expired-but-genuine
  nonces as stale (RFC 7616 §3.3), and rejects replayed nonce-counts with a
  bounded LRU table. Unknown users and wrong passwords produce the same result
  and the same work.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import re
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from trunkline.sip.authheaders import Challenge, Credentials
from trunkline.sip.errors import LocalSipError

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "LEGACY_ALGORITHMS",
    "AuthResult",
    "AuthStatus",
    "DigestClient",
    "DigestServer",
    "Ha1Lookup",
    "base_algorithm",
    "digest_response",
    "ha1",
    "select_challenge",
    "userhash",
]

_HASHLIB_NAMES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
# RFC 8760 §2.4: prefer the strongest; the -sess forms rank with their base.
_STRENGTH = {"MD5": 1, "SHA-256": 2, "SHA-512-256": 3}


def _available(name: str) -> bool:
    try:
        hashlib.new(name, b"")
    except ValueError:
        return False
    return True


ALGORITHMS: tuple[str, ...] = tuple(
    variant
    for base, hash_name in _HASHLIB_NAMES.items()
    if _available(hash_name)
    for variant in (base, f"{base}-sess")
)
"""Every algorithm token this build supports, in canonical spelling."""


_CANONICAL = {name.upper(): name for name in ALGORITHMS}


def _canonical(algorithm: str) -> str | None:
    """The canonical token for ``algorithm`` (case-insensitive), or None if unsupported."""
    return _CANONICAL.get(algorithm.upper())


def _base(algorithm: str) -> str:
    return algorithm.removesuffix("-sess")


def base_algorithm(algorithm: str) -> str:
    """The algorithm an HA1 is stored under: ``SHA-256`` for ``sha-256-sess``."""
    return _base(_require(algorithm))


def _hasher(hash_name: str) -> Callable[[bytes], hashlib._Hash]:
    """The fastest constructor hashlib has for ``hash_name`` (named ones skip a lookup)."""
    named: Callable[[bytes], hashlib._Hash] | None = getattr(hashlib, hash_name, None)
    return named if named is not None else (lambda data: hashlib.new(hash_name, data))


_HASHERS = {variant: _hasher(_HASHLIB_NAMES[_base(variant)]) for variant in ALGORITHMS}


def _hash(algorithm: str, data: str | bytes) -> str:
    """H(data) of RFC 7616 §3.4: lower-case hex of the algorithm's hash."""
    raw = data.encode() if isinstance(data, str) else data
    return _HASHERS[algorithm](raw).hexdigest()


def _require(algorithm: str) -> str:
    canonical = _canonical(algorithm)
    if canonical is None:
        raise LocalSipError(f"unsupported digest algorithm {algorithm!r}")
    return canonical


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username ":" realm ":" password), what a user store keeps (RFC 7616 §3.4.2).

    The same value serves the algorithm and its ``-sess`` form.
    """
    return _hash(_require(algorithm), f"{username}:{realm}:{password}")


def userhash(username: str, realm: str, algorithm: str) -> str:
    """H(username ":" realm), the hidden username of RFC 7616 §3.4.4."""
    return _hash(_require(algorithm), f"{username}:{realm}")


def digest_response(
    *,
    algorithm: str,
    ha1_value: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest (``response`` parameter), RFC 7616 §3.4.1.

    ``ha1_value`` is :func:`ha1`; for a ``-sess`` algorithm the session key
    H(HA1 ":" nonce ":" cnonce) is derived here (§3.4.2). Without ``qop`` this is
    the RFC 2069 form kept by RFC 2617 §3.2.2.1 and RFC 3261 §22.4.
    """
    algorithm = _require(algorithm)
    if algorithm.endswith("-sess"):
        if cnonce is None:
            raise LocalSipError("a -sess algorithm needs a cnonce")
        ha1_value = _hash(algorithm, f"{ha1_value}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _hash(algorithm, f"{method}:{uri}:{_hash(algorithm, body)}")
    else:
        ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop is None:
        return _hash(algorithm, f"{ha1_value}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise LocalSipError("qop needs nc and cnonce")
    return _hash(algorithm, f"{ha1_value}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def select_challenge(
    challenges: Iterable[Challenge], algorithms: Sequence[str] = ALGORITHMS
) -> Challenge | None:
    """The strongest Digest challenge whose algorithm we support (RFC 8760 §2.4).

    Among equally strong challenges the first one listed wins, so the server's
    order decides between, for example, SHA-256 and SHA-256-sess.
    """
    allowed = {name.upper() for name in algorithms}
    best: Challenge | None = None
    best_rank = 0
    for challenge in challenges:
        if not challenge.is_digest or challenge.nonce is None or challenge.realm is None:
            continue
        algorithm = _canonical(challenge.algorithm)
        if algorithm is None or algorithm.upper() not in allowed:
            continue
        if challenge.qop_options and not {"auth", "auth-int"} & set(challenge.qop_options):
            continue
        rank = _STRENGTH[_base(algorithm)]
        if rank > best_rank:
            best, best_rank = challenge, rank
    return best


@dataclass
class _Session:
    """What a client remembers about one realm (RFC 7616 §3.4: nonce reuse)."""

    challenge: Challenge
    header: str  # "Authorization" or "Proxy-Authorization"
    nc: int = 0
    uses: int = 0  # requests we sent credentials on with this nonce


class DigestClient:
    """The UAC side of RFC 3261 §22.2-22.3 for one username and password.

    Feed every 401/407 to :meth:`challenged`; call :meth:`authorization` for
    the header fields to put on a request (the retry and every later request
    to the same realms, re-using the nonce with an increasing nonce-count).
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        algorithms: Sequence[str] = ALGORITHMS,
        cnonce_factory: Callable[[], str] | None = None,
        prefer_auth_int: bool = False,
    ) -> None:
        self.username = username
        self._password = password
        self.algorithms = tuple(algorithms)
        self._cnonce = cnonce_factory or (lambda: secrets.token_urlsafe(18))
        self.prefer_auth_int = prefer_auth_int
        self._sessions: dict[tuple[str, str], _Session] = {}  # (header, realm)

    def challenged(self, challenges: Iterable[Challenge], *, proxy: bool = False) -> bool:
        """Take the challenges of a 401 (``proxy=False``) or 407 (``proxy=True``).

        Returns True when the request should be retried with :meth:`authorization`,
        False when retrying cannot help: no supported challenge, or the server
        rejected the first credentials computed from a fresh nonce and did not
        say ``stale=true``: the password is wrong and RFC 3261 §22.2 says not to
        retry with the same credentials. A nonce that already worked for
        several requests and is then refused without ``stale`` (servers that
        never send it) is replaced once by the new one.
        """
        header = "Proxy-Authorization" if proxy else "Authorization"
        by_realm: dict[str, list[Challenge]] = {}
        for challenge in challenges:
            if challenge.realm is not None:
                by_realm.setdefault(challenge.realm, []).append(challenge)
        retry = False
        for realm, offered in by_realm.items():
            chosen = select_challenge(offered, self.algorithms)
            if chosen is None:
                continue
            key = (header, realm)
            previous = self._sessions.get(key)
            if previous is not None and previous.uses == 1 and not chosen.stale:
                del self._sessions[key]
                return False
            self._sessions[key] = _Session(chosen, header)
            retry = True
        return retry

    def forget(self, realm: str | None = None) -> None:
        """Drop the remembered nonce for ``realm`` (or for every realm)."""
        if realm is None:
            self._sessions.clear()
        else:
            for key in [key for key in self._sessions if key[1] == realm]:
                del self._sessions[key]

    def authorization(self, method: str, uri: str, body: bytes = b"") -> list[tuple[str, str]]:
        """(header name, value) pairs for a request, one per realm we hold a nonce for."""
        return [
            (session.header, str(self._answer(session, method, uri, body)))
            for session in self._sessions.values()
        ]

    def _answer(self, session: _Session, method: str, uri: str, body: bytes) -> Credentials:
        challenge = session.challenge
        algorithm = _require(challenge.algorithm)
        realm = challenge.realm or ""
        nonce = challenge.nonce or ""
        qop = self._choose_qop(challenge.qop_options)
        cnonce = self._cnonce() if qop is not None or algorithm.endswith("-sess") else None
        nc: str | None = None
        if qop is not None:
            session.nc += 1
            nc = f"{session.nc:08x}"
        session.uses += 1
        response = digest_response(
            algorithm=algorithm,
            ha1_value=ha1(self.username, realm, self._password, algorithm),
            nonce=nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        hidden = challenge.userhash
        params: dict[str, str] = {
            "username": userhash(self.username, realm, algorithm) if hidden else self.username,
            "realm": realm,
            "nonce": nonce,
            "uri": uri,
            "response": response,
            "algorithm": algorithm,
        }
        if cnonce is not None:
            params["cnonce"] = cnonce
        if challenge.opaque is not None:
            params["opaque"] = challenge.opaque
        if qop is not None and nc is not None:
            params["qop"] = qop
            params["nc"] = nc
        if hidden:
            params["userhash"] = "true"
        return Credentials("Digest", params)

    def _choose_qop(self, options: list[str]) -> str | None:
        if not options:
            return None
        if "auth-int" in options and (self.prefer_auth_int or "auth" not in options):
            return "auth-int"
        return "auth"


class AuthStatus(enum.Enum):
    """Outcome of :meth:`DigestServer.verify`."""

    OK = "ok"
    STALE = "stale"  # genuine credentials on an expired nonce: re-challenge with stale=true
    BAD = "bad"  # anything else: re-challenge (or 403), same shape for every cause


@dataclass(frozen=True)
class AuthResult:
    """What the server decided. ``reason`` is for logs only, never for the peer."""

    status: AuthStatus
    username: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK


Ha1Lookup = Callable[[str, str, str], str | None]
"""``(username, realm, base algorithm) -> HA1 hex or None`` from the user store."""

DEFAULT_ALGORITHMS: tuple[str, ...] = ("SHA-256", "MD5")
"""What :class:`DigestServer` offers by default: SHA-256, then MD5 for old clients."""
LEGACY_ALGORITHMS: tuple[str, ...] = ("MD5",)
"""MD5 only: for clients that fail on any other challenge (see :class:`DigestServer`)."""

_NONCE_STRUCT = struct.Struct("!Q8s")  # milliseconds since the epoch, salt
_MAC_LENGTH = 16
_CLOCK_SKEW = 5.0  # seconds a nonce may be "from the future" (workers' clocks differ)
_NONCE_SIZE = _NONCE_STRUCT.size + _MAC_LENGTH
# 32 bytes are 43 base64url characters, the last carrying 2 unused bits, zero in
# every nonce we make: only that spelling is ours.
_NONCE_TEXT = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
_NONCE_PADDING = "="
_FROM_URLSAFE = str.maketrans("-_", "+/")


class DigestServer:
    """The UAS/proxy side of RFC 3261 §22.1-22.3 with stateless nonces.

    ``nonce = base64url(ms || salt || mac)`` with
    ``mac = HMAC-SHA256(secret, realm || ms || salt)[:16]``: any worker
    holding ``secret`` can check a nonce, and only its expiry needs the clock.
    ``max_nonces`` bounds the nonce-count replay table.

    Offering several algorithms follows RFC 8760 §2.4 (strongest first), but
    older peers do not cope (measured here, 2026-11): SIPp 3.6.1 answers
    only the first challenge and knows only MD5; baresip 1.0 (libre) gives up
    as soon as any challenge names an algorithm it lacks, whatever the order.
    Kamailio 5.6 handles MD5 and SHA-256 (not SHA-512-256). Pass
    ``algorithms=LEGACY_ALGORITHMS`` where such clients register.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        nonce_ttl: float = 300.0,
        *,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        qop: Sequence[str] = ("auth",),
        require_qop: bool = True,
        max_nonces: int = 10000,
        nc_window: int = 64,
    ) -> None:
        if len(secret) < 16:
            raise LocalSipError("the nonce secret must be at least 16 bytes")
        self.realm = realm
        self._secret = secret
        self.nonce_ttl = nonce_ttl
        self.algorithms = tuple(_require(name) for name in algorithms)
        self.qop = tuple(qop)
        self.require_qop = require_qop
        self._max_nonces = max_nonces
        self._nc_window = nc_window
        self._seen: OrderedDict[str, tuple[int, set[int]]] = OrderedDict()
        self._mac_prefix = realm.encode() + b"\x00"
        # The rendered challenges with the nonce left out (it is the only part
        # that changes): see challenge_values().
        self._templates = {
            stale: [self._template(name, stale) for name in self.algorithms]
            for stale in (False, True)
        }

    def _template(self, algorithm: str, stale: bool) -> tuple[str, str]:
        # Rendered with a marker nonce; ours are base64url, always a plain quoted-string.
        rendered = str(
            Challenge.digest(
                realm=self.realm, nonce="N0NCE", algorithm=algorithm, qop=self.qop, stale=stale
            )
        )
        # A quote inside the realm is escaped (\"), so this text occurs once.
        before, after = rendered.split(', nonce="N0NCE"')
        return before + ', nonce="', '"' + after

    # -- nonces ---------------------------------------------------------------

    def _mac(self, head: bytes) -> bytes:
        return hmac.digest(self._secret, self._mac_prefix + head, "sha256")[:_MAC_LENGTH]

    def make_nonce(self, now: float) -> str:
        head = _NONCE_STRUCT.pack(int(now * 1000), os.urandom(8))  # as secrets.token_bytes
        return base64.urlsafe_b64encode(head + self._mac(head)).decode().rstrip("=")

    def _nonce_time(self, nonce: str) -> float | None:
        """The issue time of a nonce we made, or None if it is not ours."""
        if _NONCE_TEXT.fullmatch(nonce) is None:
            return None
        try:  # base64url without padding; the regex let through only its alphabet
            raw = binascii.a2b_base64(nonce.translate(_FROM_URLSAFE) + _NONCE_PADDING)
        except binascii.Error:
            return None
        head, mac = raw[: _NONCE_STRUCT.size], raw[_NONCE_STRUCT.size :]
        if len(raw) != _NONCE_SIZE or not hmac.compare_digest(mac, self._mac(head)):
            return None
        millis, _salt = _NONCE_STRUCT.unpack(head)
        return float(millis) / 1000.0

    def challenge(self, now: float, stale: bool = False) -> list[Challenge]:
        """One challenge per algorithm, strongest first, sharing a fresh nonce.

        Old clients (JsSIP, many phones) read only the first or only MD5, so
        MD5 comes last (RFC 8760 §2.4).
        """
        nonce = self.make_nonce(now)
        return [
            Challenge.digest(
                realm=self.realm, nonce=nonce, algorithm=name, qop=self.qop, stale=stale
            )
            for name in self.algorithms
        ]

    def challenge_values(self, now: float, stale: bool = False) -> list[str]:
        """:meth:`challenge` rendered as header values, without building the objects.

        The same text as ``[str(c) for c in self.challenge(now, stale)]`` (a
        unit test holds them equal): every 401/407 the server sends, so the
        constant parts are rendered once, at construction.
        """
        nonce = self.make_nonce(now)
        return [before + nonce + after for before, after in self._templates[stale]]

    # -- verification -----------------------------------------------------------

    def _dummy_ha1(self, username: str, algorithm: str) -> str:
        """An HA1 for unknown users, so their rejection costs the same work."""
        key = hmac.new(self._secret, f"dummy:{username}".encode(), hashlib.sha256).hexdigest()
        return ha1(username, self.realm, key, algorithm)

    def precheck(
        self, credentials: Credentials, *, request_uri: str | None = None
    ) -> AuthResult | None:
        """The checks that need no user store: a BAD result, or None to go on.

        RFC 7616 §3.4 fields present, our realm, an algorithm and qop we
        offered, a well-formed nonce-count, and (when ``request_uri`` is given)
        a digest-uri equal to the Request-URI (RFC 2617 §3.2.2.5).
        """
        if not credentials.is_digest:
            return AuthResult(AuthStatus.BAD, reason="not Digest")
        params = credentials.params
        required = ("username", "realm", "nonce", "uri", "response")
        if any(params.get(name) is None for name in required):
            return AuthResult(AuthStatus.BAD, reason="missing parameter")
        if credentials.realm != self.realm:
            return AuthResult(AuthStatus.BAD, reason="wrong realm")
        algorithm = _canonical(credentials.algorithm)
        if algorithm is None or algorithm not in self.algorithms:
            return AuthResult(AuthStatus.BAD, reason="algorithm not offered")
        if request_uri is not None and credentials.uri != request_uri:
            return AuthResult(AuthStatus.BAD, reason="digest-uri does not match request")
        qop = credentials.qop
        if qop is None:
            if self.require_qop and self.qop:
                return AuthResult(AuthStatus.BAD, reason="qop required")
        elif qop not in self.qop:
            return AuthResult(AuthStatus.BAD, reason="qop not offered")
        elif _parse_nc(credentials.nc) is None or not credentials.cnonce:
            return AuthResult(AuthStatus.BAD, reason="bad nc or cnonce")
        if algorithm.endswith("-sess") and not credentials.cnonce:
            return AuthResult(AuthStatus.BAD, reason="-sess without cnonce")
        return None

    def verify(
        self,
        credentials: Credentials,
        method: str,
        body: bytes,
        ha1_lookup: Ha1Lookup,
        now: float,
        *,
        request_uri: str | None = None,
        userhash_lookup: Callable[[str, str, str], str | None] | None = None,
    ) -> AuthResult:
        """Check an Authorization / Proxy-Authorization value (RFC 7616 §3.4).

        ``ha1_lookup(username, realm, algorithm)`` gets the base algorithm
        (``SHA-256`` for ``SHA-256-sess``). ``userhash_lookup(hash, realm,
        algorithm)`` maps a hidden username back (RFC 7616 §3.4.4); without it
        userhash credentials are rejected. A user store that must be awaited
        uses :meth:`precheck`, its own lookup, then :meth:`verify_ha1`.
        """
        failure = self.precheck(credentials, request_uri=request_uri)
        if failure is not None:
            return failure
        algorithm = base_algorithm(credentials.algorithm)
        username = credentials.username or ""
        if credentials.userhash:
            found = userhash_lookup(username, self.realm, algorithm) if userhash_lookup else None
            username = found if found is not None else username
        stored = ha1_lookup(username, self.realm, algorithm)
        return self.verify_ha1(
            credentials, method, body, stored, now, username=username, request_uri=request_uri
        )

    def verify_ha1(
        self,
        credentials: Credentials,
        method: str,
        body: bytes,
        stored_ha1: str | None,
        now: float,
        *,
        username: str | None = None,
        request_uri: str | None = None,
        prechecked: bool = False,
    ) -> AuthResult:
        """:meth:`verify` with the HA1 already looked up (None: no such user).

        ``username`` is the real username when the credentials carried a
        userhash. Unknown users are checked against a dummy HA1 so the work,
        and the answer, are the same as for a wrong password.
        ``prechecked=True``: the caller's :meth:`precheck` (with the same
        ``request_uri``) returned None, so it is not run twice.
        """
        if not prechecked:
            failure = self.precheck(credentials, request_uri=request_uri)
            if failure is not None:
                return failure
        algorithm = _require(credentials.algorithm)
        username = username if username is not None else credentials.username or ""
        nonce = credentials.nonce or ""
        issued = self._nonce_time(nonce)
        expected = digest_response(
            algorithm=algorithm,
            ha1_value=stored_ha1 or self._dummy_ha1(username, algorithm),
            nonce=nonce,
            method=method,
            uri=credentials.uri or "",
            qop=credentials.qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
            body=body,
        )
        matches = hmac.compare_digest(expected.encode(), (credentials.response or "").encode())
        if issued is None:
            return AuthResult(AuthStatus.BAD, reason="nonce not issued by us")
        if not matches or stored_ha1 is None:
            return AuthResult(AuthStatus.BAD, reason="wrong response or unknown user")
        if now - issued > self.nonce_ttl:
            return AuthResult(AuthStatus.STALE, username=username, reason="nonce expired")
        if issued - now > _CLOCK_SKEW:
            return AuthResult(AuthStatus.BAD, reason="nonce from the future")
        nc_value = _parse_nc(credentials.nc)
        if nc_value is not None and not self._fresh_nc(nonce, nc_value):
            return AuthResult(AuthStatus.BAD, reason="nonce-count replayed")
        return AuthResult(AuthStatus.OK, username=username)

    def _fresh_nc(self, nonce: str, nc: int) -> bool:
        """Record ``nc`` for ``nonce``; False if seen before or too far behind (RFC 7616 §3.4).

        Per nonce we keep the highest count and the counts seen within
        ``nc_window`` of it (requests may arrive out of order over UDP).
        """
        entry = self._seen.get(nonce)
        if entry is None:
            self._seen[nonce] = (nc, {nc})
            while len(self._seen) > self._max_nonces:
                self._seen.popitem(last=False)
            return True
        self._seen.move_to_end(nonce)
        highest, seen = entry
        if nc in seen or nc <= highest - self._nc_window:
            return False
        seen.add(nc)
        if nc > highest:
            highest = nc
            seen = {value for value in seen if value > highest - self._nc_window}
        self._seen[nonce] = (highest, seen)
        return True


_NC_VALUE = re.compile(r"[0-9a-fA-F]{8}")


def _parse_nc(value: str | None) -> int | None:
    """nc-value = 8LHEX (RFC 3261 §25.1)."""
    if value is None or _NC_VALUE.fullmatch(value) is None:
        return None
    return int(value, 16)
