"""The registration client of one account (RFC 3261 §10.2), sans-IO.

A :class:`RegistrationClient` keeps one Address-of-Record bound to one
Contact at one registrar. It never touches a socket or a clock: the caller
passes ``now`` to every entry point, sends what :meth:`requests_to_send`
returns (each REGISTER in its own client transaction), feeds back the final
responses with :meth:`handle_response` (or :meth:`handle_timeout` when the
transaction times out or the transport fails), reads :meth:`next_event`, and
calls :meth:`handle_timer` at :meth:`get_timer`. Several accounts are
several instances.

What it does, by section:

* every REGISTER of an instance shares one Call-ID and the CSeq increases by
  one per request (§10.2 "Call-ID", "CSeq"); the Request-URI is the
  registrar's domain without user part (§10.2 "Request-URI");
* the Contact carries ``expires`` (§10.2.1.1) and, when configured,
  ``+sip.instance`` and ``reg-id`` with ``Supported: outbound`` (RFC 5626
  §4.2); only one REGISTER is outstanding at a time (§10.2);
* 401/407 are answered with digest credentials, once per challenge, again on
  ``stale=true`` (§22.2, RFC 7616 §3.4); later REGISTERs re-use the nonce
  with an increasing nonce-count;
* 423 Interval Too Brief is retried at once with the Min-Expires value
  (§10.2.8, §10.3 step 7);
* the granted expiry comes from the 200's Contact that matches ours, else its
  Expires header (§10.2.4); the binding is refreshed at ``refresh_ratio``
  (90%) of it;
* failures back off exponentially with jitter, ``min(cap, base * 2**n)``
  scaled by a random factor in [0.5, 1] (the RFC 5626 §4.5 formula), or wait
  the Retry-After a server asks for (§20.33);
* :meth:`stop` removes our binding with ``expires=0`` (§10.2.2).
"""

from __future__ import annotations

import enum
import logging
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from trunkline.sip.auth import DigestClient
from trunkline.sip.builder import make_request, new_call_id, new_tag
from trunkline.sip.errors import LocalSipError, SipParseError
from trunkline.sip.headers import Contact, NameAddr
from trunkline.sip.message import Request, Response
from trunkline.sip.uri import SipUri, parse_uri

__all__ = [
    "Account",
    "Registered",
    "RegistrationClient",
    "RegistrationEvent",
    "RegistrationFailed",
    "RegistrationState",
    "Unregistered",
]

logger = logging.getLogger(__name__)

DEFAULT_RESPONSE_TIMEOUT = 32.0
"""Give up on an unanswered REGISTER after 64*T1 (RFC 3261 §17.1.2.2, Timer F)."""
_MAX_AUTH_ROUNDS = 3  # challenges answered for one REGISTER before giving up


class RegistrationState(enum.Enum):
    """Where one account's registration stands."""

    UNREGISTERED = "Unregistered"
    REGISTERING = "Registering"
    REGISTERED = "Registered"
    REFRESHING = "Refreshing"
    UNREGISTERING = "Unregistering"
    BACKOFF = "Backoff"
    FAILED = "Failed"


_S = RegistrationState
TRANSITIONS: Mapping[RegistrationState, frozenset[RegistrationState]] = {
    _S.UNREGISTERED: frozenset({_S.REGISTERING}),
    _S.REGISTERING: frozenset({_S.REGISTERED, _S.BACKOFF, _S.FAILED, _S.UNREGISTERING}),
    _S.REGISTERED: frozenset({_S.REFRESHING, _S.UNREGISTERING}),
    _S.REFRESHING: frozenset({_S.REGISTERED, _S.BACKOFF, _S.FAILED, _S.UNREGISTERING}),
    _S.BACKOFF: frozenset({_S.REGISTERING, _S.UNREGISTERING, _S.UNREGISTERED}),
    _S.UNREGISTERING: frozenset({_S.UNREGISTERED}),
    _S.FAILED: frozenset({_S.REGISTERING, _S.UNREGISTERED}),
}
"""Every legal ``old -> new`` move; anything else is a bug and raises."""


@dataclass(frozen=True)
class Account:
    """One SIP account: who registers, where, and as what Contact.

    ``aor`` is the Address-of-Record (``sip:alice@example.com``); ``contact``
    the URI where this UA is reached (``sip:alice@192.0.2.5:5062``).
    ``registrar`` defaults to the AOR's domain (§10.2 "Request-URI");
    ``username`` to the AOR's user. ``route`` is a pre-loaded route set (an
    outbound proxy, ``<sip:proxy.example.com;lr>``) added as Route headers.
    """

    aor: str
    contact: str
    password: str | None = None
    username: str | None = None
    registrar: str | None = None
    expires: int = 3600
    display_name: str | None = None
    instance_id: str | None = None
    reg_id: int | None = None
    route: tuple[str, ...] = ()
    user_agent: str | None = None


@dataclass(frozen=True)
class Registered:
    """The registrar accepted the binding (initial registration or refresh)."""

    expires: int
    refresh_at: float
    refreshed: bool = False
    bindings: tuple[str, ...] = ()
    service_route: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegistrationFailed:
    """A REGISTER failed (``status`` 408 for a timeout); ``retry_at`` None means no retry."""

    status: int
    reason: str
    retry_at: float | None


@dataclass(frozen=True)
class Unregistered:
    """The binding is gone (``status`` of the final response, None if none came)."""

    status: int | None


RegistrationEvent = Registered | RegistrationFailed | Unregistered


def _sip_uri(text: str, what: str) -> SipUri:
    try:
        uri = parse_uri(text)
    except SipParseError as exc:
        raise LocalSipError(f"invalid {what} {text!r}: {exc.reason}") from exc
    if not isinstance(uri, SipUri):
        raise LocalSipError(f"the {what} must be a sip: or sips: URI, not {text!r}")
    return uri


def _unquote(value: str | None) -> str | None:
    if value is None:
        return None
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


class RegistrationClient:
    """Keeps one account registered; see the module docstring for the protocol.

    ``rng`` draws the backoff jitter (inject a seeded one in tests);
    ``digest`` answers challenges (built from the account's credentials when
    omitted). ``max_failures`` consecutive failures move to FAILED instead of
    BACKOFF (None: retry forever); :meth:`start` leaves FAILED.
    """

    def __init__(
        self,
        account: Account,
        *,
        rng: random.Random | None = None,
        digest: DigestClient | None = None,
        refresh_ratio: float = 0.9,
        backoff_base: float = 30.0,
        backoff_max: float = 300.0,
        max_failures: int | None = None,
        response_timeout: float = DEFAULT_RESPONSE_TIMEOUT,
        call_id: str | None = None,
    ) -> None:
        if account.expires <= 0:
            raise LocalSipError("the requested expiry must be positive")
        if not 0.0 < refresh_ratio < 1.0:
            raise LocalSipError("refresh_ratio must be between 0 and 1")
        if account.reg_id is not None and account.instance_id is None:
            raise LocalSipError("reg-id needs an instance id (RFC 5626 §4.2)")
        self.account = account
        self._aor = _sip_uri(account.aor, "AOR")
        self._contact_uri = _sip_uri(account.contact, "contact")
        if account.registrar is not None:
            self._registrar: SipUri = _sip_uri(account.registrar, "registrar")
        else:
            port = f":{self._aor.port}" if self._aor.port is not None else ""
            self._registrar = _sip_uri(f"{self._aor.scheme}:{self._aor.host}{port}", "registrar")
        username = account.username or self._aor.user
        if digest is None and account.password is not None:
            if not username:
                raise LocalSipError("a password needs a username (or a user part in the AOR)")
            digest = DigestClient(username, account.password)
        self._digest = digest
        self._rng = rng or random.Random()
        self.refresh_ratio = refresh_ratio
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_failures = max_failures
        self.response_timeout = response_timeout
        self.call_id = call_id or new_call_id()
        self._from = NameAddr(account.display_name, self._aor, {"tag": new_tag()})
        self._to = NameAddr(account.display_name, self._aor, {})
        self._cseq = 0
        self._state = RegistrationState.UNREGISTERED
        self._requested = account.expires  # may grow on 423
        self._outstanding: Request | None = None
        self._outstanding_expires = 0
        self._auth_rounds = 0
        self._response_deadline: float | None = None
        self._action_at: float | None = None  # refresh (REGISTERED) or retry (BACKOFF)
        self._binding_until: float | None = None  # our binding may exist until then
        self._failures = 0
        self._outbox: list[Request] = []
        self._events: deque[RegistrationEvent] = deque()

    # -- state ------------------------------------------------------------------

    @property
    def state(self) -> RegistrationState:
        return self._state

    @property
    def registrar(self) -> SipUri:
        """The registrar's URI (the REGISTER's Request-URI, §10.2)."""
        return self._registrar

    @property
    def expires(self) -> int:
        """The expiry this client asks for (raised by a 423's Min-Expires)."""
        return self._requested

    @property
    def outstanding(self) -> Request | None:
        """The REGISTER awaiting its final response, if any (at most one, §10.2)."""
        return self._outstanding

    @property
    def failures(self) -> int:
        """Consecutive failed attempts (0 after a success)."""
        return self._failures

    def _set_state(self, new: RegistrationState) -> None:
        old = self._state
        if new is old:
            return
        if new not in TRANSITIONS[old]:
            raise LocalSipError(f"registration: illegal transition {old.value} -> {new.value}")
        logger.debug("registration %s: %s -> %s", self.account.aor, old.value, new.value)
        self._state = new

    # -- outputs ----------------------------------------------------------------

    def requests_to_send(self) -> list[Request]:
        """REGISTER requests to send now, each in a new client transaction."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> RegistrationEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The next deadline: response timeout, refresh or retry (None: nothing pending)."""
        deadlines = [d for d in (self._response_deadline, self._action_at) if d is not None]
        return min(deadlines) if deadlines else None

    # -- inputs -----------------------------------------------------------------

    def start(self, now: float) -> None:
        """Register (from UNREGISTERED or FAILED; a no-op in any other state)."""
        if self._state not in (RegistrationState.UNREGISTERED, RegistrationState.FAILED):
            return
        self._failures = 0
        self._set_state(RegistrationState.REGISTERING)
        self._send(self._requested, now)

    def stop(self, now: float) -> None:
        """Remove our binding (expires=0, §10.2.2), or just stop if there is none.

        With a REGISTER outstanding, the unregistering REGISTER waits for its
        final response: §10.2 allows one outstanding registration at a time.
        """
        state = self._state
        if state in (RegistrationState.UNREGISTERED, RegistrationState.UNREGISTERING):
            return
        self._action_at = None
        if state is RegistrationState.FAILED or (
            state is RegistrationState.BACKOFF and not self._may_be_bound(now)
        ):
            self._set_state(RegistrationState.UNREGISTERED)
            self._events.append(Unregistered(None))
            return
        self._set_state(RegistrationState.UNREGISTERING)
        if self._outstanding is None:
            self._send(0, now)

    def handle_response(self, response: Response, now: float) -> bool:
        """Take a final response to our REGISTER; False if it is not ours (ignored).

        Provisional responses are accepted and ignored (§8.1.3.2).
        """
        request = self._outstanding
        if request is None or not self._answers(request, response):
            return False
        if response.status < 200:
            return True
        self._outstanding = None
        self._response_deadline = None
        if self._state is RegistrationState.UNREGISTERING:
            self._unregistering_response(response, now)
        elif 200 <= response.status < 300:
            self._succeeded(response, now)
        elif response.status in (401, 407) and self._answer_challenge(response):
            self._send(self._outstanding_expires, now, keep_auth_rounds=True)
        elif response.status == 423 and self._retry_brief(response):
            self._send(self._requested, now)
        else:
            self._failed(response.status, response.reason, now, _retry_after(response))
        return True

    def handle_timeout(self, now: float, reason: str = "Request Timeout") -> None:
        """The outstanding REGISTER's transaction timed out or its transport failed."""
        if self._outstanding is None:
            return
        self._outstanding = None
        self._response_deadline = None
        if self._state is RegistrationState.UNREGISTERING:
            self._finish_unregister(None)
        else:
            self._failed(408, reason, now, None)

    def handle_timer(self, now: float) -> None:
        """Act on every deadline that has passed."""
        if self._response_deadline is not None and now >= self._response_deadline:
            self.handle_timeout(now)
        if self._action_at is None or now < self._action_at:
            return
        self._action_at = None
        if self._state is RegistrationState.REGISTERED:
            self._set_state(RegistrationState.REFRESHING)
            self._send(self._requested, now)
        elif self._state is RegistrationState.BACKOFF:
            self._set_state(RegistrationState.REGISTERING)
            self._send(self._requested, now)

    # -- requests ---------------------------------------------------------------

    def _contact(self, expires: int) -> str:
        params = [f"expires={expires}"]
        if self.account.instance_id is not None:
            params.append(f'+sip.instance="<{self.account.instance_id}>"')
        if self.account.reg_id is not None:
            params.append(f"reg-id={self.account.reg_id}")
        return f"<{self._contact_uri}>;" + ";".join(params)

    def _send(self, expires: int, now: float, *, keep_auth_rounds: bool = False) -> None:
        if not keep_auth_rounds:
            self._auth_rounds = 0
        self._cseq += 1
        extra: list[tuple[str, str]] = [("Route", route) for route in self.account.route]
        if self.account.reg_id is not None:
            extra.append(("Supported", "outbound"))
        if self.account.user_agent:
            extra.append(("User-Agent", self.account.user_agent))
        if self._digest is not None:
            extra.extend(self._digest.authorization("REGISTER", str(self._registrar)))
        request = make_request(
            "REGISTER",
            self._registrar,
            from_=self._from,
            to=self._to,
            call_id=self.call_id,
            cseq=self._cseq,
            contact=self._contact(expires),
            extra_headers=extra,
        )
        self._outstanding = request
        self._outstanding_expires = expires
        self._response_deadline = now + self.response_timeout
        self._outbox.append(request)

    def _answers(self, request: Request, response: Response) -> bool:
        try:
            cseq = response.cseq
            return (
                response.call_id == self.call_id
                and cseq.method == "REGISTER"
                and cseq.number == request.cseq.number
            )
        except SipParseError:
            return False

    # -- responses --------------------------------------------------------------

    def _answer_challenge(self, response: Response) -> bool:
        """Feed a 401/407 to the digest client; True to resend with credentials."""
        if self._digest is None or self._auth_rounds >= _MAX_AUTH_ROUNDS:
            return False
        proxy = response.status == 407
        try:
            challenges = response.proxy_authenticate if proxy else response.www_authenticate
        except SipParseError as exc:
            logger.info("registration %s: bad challenge: %s", self.account.aor, exc.reason)
            return False
        if not self._digest.challenged(challenges, proxy=proxy):
            return False
        self._auth_rounds += 1
        return True

    def _retry_brief(self, response: Response) -> bool:
        """423: adopt Min-Expires if it is larger than what we asked (§10.2.8)."""
        try:
            minimum = response.min_expires
        except SipParseError:
            return False
        if minimum is None or minimum <= self._outstanding_expires:
            return False
        self._requested = minimum
        return True

    def _granted(self, response: Response) -> tuple[int, tuple[str, ...]]:
        """Our binding's expiry from the 200 (§10.2.4) and every binding listed."""
        try:
            contacts = response.contact
        except SipParseError:
            contacts = []
        bindings = tuple(str(c) for c in contacts if not c.star)
        for contact in contacts:
            if self._is_ours(contact) and contact.expires is not None:
                return contact.expires, bindings
        try:
            expires = response.expires
        except SipParseError:
            expires = None
        return (expires if expires is not None else self._outstanding_expires), bindings

    def _is_ours(self, contact: Contact) -> bool:
        if contact.star:
            return False
        instance = self.account.instance_id
        if instance is not None and _unquote(contact.params.get("+sip.instance")) == (
            f"<{instance}>"
        ):
            return True
        return contact.uri == self._contact_uri

    def _succeeded(self, response: Response, now: float) -> None:
        granted, bindings = self._granted(response)
        if granted <= 0:
            self._failed(response.status, "registrar did not keep the binding", now, None)
            return
        refreshed = self._state is RegistrationState.REFRESHING
        self._failures = 0
        self._binding_until = now + granted
        self._action_at = now + granted * self.refresh_ratio
        self._set_state(RegistrationState.REGISTERED)
        service_route = tuple(response.headers.get_all("Service-Route"))
        logger.info(
            "registration %s: registered for %d s (Call-ID %s)",
            self.account.aor,
            granted,
            self.call_id,
        )
        self._events.append(
            Registered(granted, self._action_at, refreshed, bindings, service_route)
        )

    def _failed(self, status: int, reason: str, now: float, retry_after: int | None) -> None:
        self._failures += 1
        logger.info(
            "registration %s: failed %d %s (attempt %d)",
            self.account.aor,
            status,
            reason,
            self._failures,
        )
        if self.max_failures is not None and self._failures >= self.max_failures:
            self._action_at = None
            self._set_state(RegistrationState.FAILED)
            self._events.append(RegistrationFailed(status, reason, None))
            return
        delay = float(retry_after) if retry_after is not None else self._backoff()
        self._action_at = now + delay
        self._set_state(RegistrationState.BACKOFF)
        self._events.append(RegistrationFailed(status, reason, self._action_at))

    def _backoff(self) -> float:
        """RFC 5626 §4.5: ``min(max, base * 2**failures)`` times a factor in [0.5, 1]."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(self._failures, 30))
        return ceiling * self._rng.uniform(0.5, 1.0)

    def _may_be_bound(self, now: float) -> bool:
        return self._binding_until is not None and now < self._binding_until

    def _unregistering_response(self, response: Response, now: float) -> None:
        """A final response while stopping: to the expires=0 REGISTER or to one sent before."""
        removing = self._outstanding_expires == 0
        if response.status in (401, 407) and self._answer_challenge(response):
            self._send(0, now, keep_auth_rounds=True)
        elif removing:
            self._finish_unregister(response.status)
        elif 200 <= response.status < 300 or self._may_be_bound(now):
            # The REGISTER in flight when stop() came left (or refreshed) a binding.
            self._send(0, now)
        else:
            self._finish_unregister(response.status)

    def _finish_unregister(self, status: int | None) -> None:
        self._binding_until = None
        self._action_at = None
        self._set_state(RegistrationState.UNREGISTERED)
        self._events.append(Unregistered(status))


def _retry_after(response: Response) -> int | None:
    """Seconds from a Retry-After header (§20.33), ignoring a comment and params."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    head = value.split(";", 1)[0].split("(", 1)[0].strip()
    return int(head) if head.isdigit() else None
