"""The routing decision: what the proxy does with each request, in one readable place.

Like a Kamailio ``request_route``, :meth:`Router.route` reads top to bottom;
every step is a small method named after the Kamailio route block it stands
for, and the first step that decides returns a :class:`Decision`::

    route(REQINIT)    validation (RFC 3261 §16.3) and anti-flood
    route(PREROUTE)   Route pre-processing: our Route removed, strict-router fix (§16.4)
    route(WITHINDLG)  in-dialog requests follow the Route set we are in (loose routing)
    route(CANCEL)     matched to the INVITE's response context (§16.10)
    route(REGISTRAR)  REGISTER for our domains (§10.3)
    route(AUTH)       407 for requests from our users; trusted sources skip it
    route(NATMANAGE)  Contact of a NATed caller rewritten to its source address
    route(DISPATCH)   Request-URIs matching a dispatch rule go to a destination set
    route(RELAY)      non-local Request-URI: trusted sources and our users only (403)
    route(LOCATION)   404 unknown user, 480 nobody registered, else fork (§16.5-16.6)

Decisions are data; the server executes them:

- :class:`~trunkline.proxy.validation.Reply`: answer locally.
- :class:`Forward`: a stateful fork to the targets (``trunkline.proxy.forking``);
  with ``failover`` set (dispatcher sets), the next q-group is tried only
  after one of those statuses or a timeout.
- :class:`Relay`: forward to one next hop (the top Route, or the Request-URI).
- :class:`Cancel`: find the response context of the INVITE and cancel it.
- :class:`Drop`: say nothing (floods, bans, scanners, stray ACKs).

Only the location service and the registrar are awaited; the rest is sans-IO
and ``now`` comes from the caller. :meth:`Router.route_now` runs the same
steps without awaiting: it returns the decision, or a :class:`Lookup` when the
registrar or the location service must be awaited for it (the server's fast
path: most in-dialog and relayed requests need neither).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from trunkline.proxy.antiflood import AntiFlood, TrustedNetworks, Verdict
from trunkline.proxy.dispatcher import FAILOVER_STATUSES, Dispatcher, DispatchRule, retarget
from trunkline.proxy.location import Binding, LocationService
from trunkline.proxy.nat import Origin, detect_nat, fix_contact
from trunkline.proxy.registrar import Authenticator, RegisterResult, Registrar, aor_of
from trunkline.proxy.validation import Reply, ValidationPolicy, validate_request
from trunkline.sip.errors import SipParseError
from trunkline.sip.message import Request
from trunkline.sip.uri import SipUri, Uri, parse_uri

__all__ = [
    "AUTH_METHODS",
    "Cancel",
    "Decision",
    "Drop",
    "Forward",
    "Lookup",
    "Relay",
    "Reply",
    "Router",
    "RouterConfig",
    "Target",
]

log = logging.getLogger("trunkline.proxy.router")

AUTH_METHODS: frozenset[str] = frozenset(
    {"INVITE", "MESSAGE", "SUBSCRIBE", "REFER", "PUBLISH", "OPTIONS", "INFO", "NOTIFY"}
)
"""Out-of-dialog methods that our own users must authenticate (407)."""

_DIALOG_FORMING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
_NO_RECORD_ROUTE = frozenset({"REGISTER", "OPTIONS", "MESSAGE", "PUBLISH"})


@dataclass(frozen=True, slots=True)
class Target:
    """One destination of a forwarded request (RFC 3261 §16.5 target set element).

    ``uri`` becomes the branch's Request-URI. ``route`` is a Route set to
    put in front (a registration's Path, RFC 3327 §5.3). ``destination`` is
    the ``host:port`` to send to instead of resolving the URI (the NAT
    binding a UA registered from) and ``flow`` the connection it registered
    over (RFC 5626 §5.2); both None means "resolve per RFC 3263".
    """

    uri: str
    q: float = 1.0
    route: tuple[str, ...] = ()
    destination: str | None = None
    transport: str | None = None
    flow: str | None = None

    @classmethod
    def from_binding(cls, binding: Binding) -> Target:
        """The target of a registered contact, sent to its source when NATed."""
        destination = None
        # With a Path the first hop is the edge proxy, which handles the NAT (RFC 3327 §5.3).
        if (
            not binding.path
            and binding.received is not None
            and not _contact_matches(binding.contact_uri, binding.received)
        ):
            destination = binding.received
        return cls(
            uri=binding.contact_uri,
            q=binding.q,
            route=binding.path,
            destination=destination,
            transport=binding.transport,
            flow=binding.flow,
        )


def _contact_matches(contact_uri: str, received: str) -> bool:
    try:
        uri = parse_uri(contact_uri)
    except SipParseError:
        return False
    if not isinstance(uri, SipUri):
        return False
    return f"{uri.host}:{uri.port or uri.default_port}".lower() == received.lower()


@dataclass(frozen=True, slots=True)
class Forward:
    """Fork ``request`` (already pre-processed) to ``targets`` statefully (§16.6)."""

    request: Request
    targets: tuple[Target, ...]
    record_route: bool = True
    aor: str | None = None
    failover: frozenset[int] | None = None
    dispatch_set: str | None = None


@dataclass(frozen=True, slots=True)
class Relay:
    """Forward ``request`` to one next hop: its top Route, else its Request-URI (§16.6 item 6)."""

    request: Request
    record_route: bool = False
    reason: str = ""

    @property
    def target(self) -> Target:
        return Target(uri=self.request.uri_text)


@dataclass(frozen=True, slots=True)
class Cancel:
    """A CANCEL: cancel the matching INVITE's branches, or forward it statelessly (§16.10)."""

    request: Request


@dataclass(frozen=True, slots=True)
class Drop:
    """Do not answer (the reason is for logs and counters)."""

    reason: str


Decision = Reply | Forward | Relay | Cancel | Drop


@dataclass(frozen=True, slots=True)
class Lookup:
    """The decision needs the registrar or the location service: ``await step()`` for it."""

    step: Callable[[], Awaitable[Decision]]


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """The proxy's identity and policy switches."""

    domains: frozenset[str]
    validation: ValidationPolicy = field(default_factory=ValidationPolicy)
    auth_methods: frozenset[str] = AUTH_METHODS
    authenticate_local_users: bool = True
    dispatch: tuple[DispatchRule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", frozenset(d.lower() for d in self.domains))


class Router:
    """The proxy's routing policy; see the module docstring for the order of steps."""

    def __init__(
        self,
        config: RouterConfig,
        *,
        location: LocationService,
        registrar: Registrar | None = None,
        authenticator: Authenticator | None = None,
        antiflood: AntiFlood | None = None,
        trusted: TrustedNetworks | None = None,
        user_exists: Callable[[str, str], bool] | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.config = config
        self.location = location
        self.registrar = registrar
        self.authenticator = authenticator
        self.antiflood = antiflood
        self.trusted = trusted or (antiflood.trusted if antiflood else TrustedNetworks())
        self.user_exists = user_exists
        self.dispatcher = dispatcher

    # ------------------------------------------------------------------ route

    async def route(
        self, request: Request, origin: Origin, now: float, *, size: int | None = None
    ) -> Decision:
        """The decision for one request received from ``origin`` (see the module docstring).

        Never raises for bad input: a header that fails to parse late (a
        From URI, a Route) gives the status its parse error carries.
        """
        decision = self.route_now(request, origin, now, size=size)
        if isinstance(decision, Lookup):
            return await self.finish(decision)
        return decision

    def route_now(
        self, request: Request, origin: Origin, now: float, *, size: int | None = None
    ) -> Decision | Lookup:
        """:meth:`route` without awaiting: the decision, or the :class:`Lookup` that
        :meth:`finish` awaits (REGISTER, the location service)."""
        try:
            return self._route(request, origin, now, size)
        except SipParseError as error:
            return Reply(error.status, error.reason)

    async def finish(self, lookup: Lookup) -> Decision:
        """The decision a :class:`Lookup` from :meth:`route_now` was waiting for."""
        try:
            return await lookup.step()
        except SipParseError as error:
            return Reply(error.status, error.reason)

    def _route(
        self, request: Request, origin: Origin, now: float, size: int | None
    ) -> Decision | Lookup:
        decision = self.request_init(request, origin, now, size)
        if decision is not None:
            return decision
        trusted = origin.host in self.trusted
        try:
            ours = self.preroute(request)
        except SipParseError as error:
            return Reply(error.status, error.reason)
        if request.to_tag is not None:
            return self.within_dialog(request, ours, trusted)
        if request.method == "CANCEL":
            return Cancel(request)
        if request.method == "ACK":
            return Drop("ACK outside any transaction or dialog")
        if request.method == "REGISTER" and self._is_local(request.uri):
            return Lookup(partial(self.register, request, origin, now))
        decision = self.authenticate(request, origin, now, trusted)
        if decision is not None:
            return decision
        self.nat_manage(request, origin, trusted)
        decision = self.dispatch(request, origin, trusted)
        if decision is not None:
            return decision
        if request.headers.get("Route") is not None or not self._is_local(request.uri):
            return self.relay(request, origin, trusted)
        return Lookup(partial(self.locate, request, now, trusted=trusted))

    # ------------------------------------------------------- route(REQINIT)

    def request_init(
        self, request: Request, origin: Origin, now: float, size: int | None
    ) -> Decision | None:
        """Anti-flood first (cheap, and floods must not cost a parse), then §16.3."""
        if self.antiflood is not None:
            verdict = self.antiflood.check(origin.host, request.headers.get("User-Agent"), now)
            if verdict is not Verdict.ACCEPT:
                return Drop(verdict.value)
        reply = validate_request(request, self.config.validation, size=size)
        if reply is not None and request.method == "ACK":
            return Drop(f"invalid ACK: {reply.status} {reply.reason}")  # ACKs get no answer
        return reply

    # ------------------------------------------------------ route(PREROUTE)

    def preroute(self, request: Request) -> bool:
        """RFC 3261 §16.4: undo a strict router's rewrite, then remove our own top Route.

        Returns True when a Route of ours was found (the request follows a
        Record-Route we inserted). Raises SipParseError on a bad Route.
        """
        if "Route" not in request.headers:
            return False
        routes = request.route
        ours = False
        uri = request.uri
        if routes and isinstance(uri, SipUri) and uri.lr and self._is_own_uri(uri):
            # The previous hop was a strict router: it put our Record-Route URI (which
            # carries lr) into the Request-URI (§16.4, first paragraph).
            last = routes.pop()
            request.uri = last.uri_text
            request.route = routes
            ours = True
        while routes and self._is_own_uri(routes[0].uri):
            del routes[0]  # twice when we record-routed across transports
            request.headers.pop_first("Route")
            ours = True
        return ours

    # ----------------------------------------------------- route(WITHINDLG)

    def within_dialog(self, request: Request, ours: bool, trusted: bool) -> Decision:
        """In-dialog requests follow the Route set we are in; with none left, the Request-URI."""
        if not ours and not trusted:
            if request.method == "ACK":
                return Drop("in-dialog ACK not routed through us")
            return (
                Reply(403, "Relaying Denied") if self._foreign(request) else Reply(404, "Not Here")
            )
        if request.headers.get("Route") is None and (
            self._is_own_uri(request.uri) or self._is_local(request.uri)
        ):
            if request.method == "ACK":
                return Drop("in-dialog ACK addressed to the proxy")
            return Reply(404, "Not Here")
        return Relay(request, reason="loose route" if ours else "trusted in-dialog")

    # ----------------------------------------------------- route(REGISTRAR)

    async def register(self, request: Request, origin: Origin, now: float) -> Decision:
        if self.registrar is None:
            return Reply(405, "Method Not Allowed")
        result: RegisterResult = await self.registrar.handle(request, origin, now)
        if result.auth_failed and self.antiflood is not None:
            self.antiflood.auth_failed(origin.host, now, _from_user(request))
        return result.reply

    # ---------------------------------------------------------- route(AUTH)

    def authenticate(
        self, request: Request, origin: Origin, now: float, trusted: bool
    ) -> Decision | None:
        """407 for requests claiming to be from one of our users (RFC 3261 §22.3)."""
        if trusted or self.authenticator is None or not self.config.authenticate_local_users:
            return None
        if request.method not in self.config.auth_methods:
            return None
        from_uri = request.from_.uri
        if not isinstance(from_uri, SipUri) or from_uri.host.lower() not in self.config.domains:
            return None  # a stranger: only local destinations, checked in route(RELAY)
        realm = from_uri.host.lower()
        check = self.authenticator.check(request, realm, now, proxy=True)
        if not check.ok:
            if check.failed and self.antiflood is not None:
                self.antiflood.auth_failed(origin.host, now, from_uri.user)
            assert check.reply is not None
            return check.reply
        if check.username != from_uri.user:
            log.info(
                "From %s does not match credentials of %s (src=%s)",
                from_uri.user,
                check.username,
                origin.host,
            )
            return Reply(403, "Forbidden")
        _remove_credentials(request, realm)
        return None

    # ------------------------------------------------------ route(DISPATCH)

    def dispatch(self, request: Request, origin: Origin, trusted: bool) -> Decision | None:
        """Requests matching a dispatch rule go to its set, in failover order."""
        if self.dispatcher is None or request.headers.get("Route") is not None:
            return None
        rule = next((r for r in self.config.dispatch if r.matches(request.uri)), None)
        if rule is None:
            return None
        if not (trusted or self._is_local(request.uri) or self._from_local_user(request)):
            log.info("dispatching denied for %s from src=%s", request.uri_text, origin.host)
            return Reply(403, "Relaying Denied")
        candidates = self.dispatcher[rule.set_name].candidates(request.call_id)
        if not candidates:
            return Reply(503, "Service Unavailable", (("Retry-After", "30"),))
        targets = tuple(
            Target(uri=retarget(request.uri, destination.uri), q=1.0 / (rank + 1))
            for rank, destination in enumerate(candidates)
        )
        return Forward(
            request,
            targets,
            record_route=request.method not in _NO_RECORD_ROUTE,
            failover=FAILOVER_STATUSES,
            dispatch_set=rule.set_name,
        )

    # --------------------------------------------------------- route(RELAY)

    def relay(self, request: Request, origin: Origin, trusted: bool) -> Decision:
        """A preloaded Route or a foreign domain: no open relay (403) for strangers."""
        if trusted or self._from_local_user(request):
            return Relay(
                request,
                record_route=request.method not in _NO_RECORD_ROUTE,
                reason="trusted" if trusted else "local user",
            )
        log.info("relaying denied for %s from src=%s", request.uri_text, origin.host)
        return Reply(403, "Relaying Denied")

    # ------------------------------------------------------ route(NATMANAGE)

    def nat_manage(self, request: Request, origin: Origin, trusted: bool) -> None:
        """Fix the Contact of dialog-forming requests from NATed clients (nathelper)."""
        if trusted or request.method not in _DIALOG_FORMING:
            return
        if detect_nat(request, origin).behind_nat:
            fix_contact(request, origin)

    # ------------------------------------------------------ route(LOCATION)

    async def locate(self, request: Request, now: float, *, trusted: bool = True) -> Decision:
        """The target set from the location service (§16.5).

        Our own (authenticated) users and trusted sources learn that a user
        does not exist (404); a stranger gets the 480 of a user who is not
        registered, so that calls from outside cannot enumerate the users.
        """
        aor = aor_of(request.uri)
        if aor is None:
            if request.method == "OPTIONS":
                validation = self.config.validation
                return Reply(200, "OK", (("Allow", validation.allow_header),))
            return Reply(404, "Not Found")
        uri = request.uri
        assert isinstance(uri, SipUri) and uri.user is not None
        if self.user_exists is not None and not self.user_exists(uri.user, uri.host.lower()):
            if trusted or self._from_local_user(request):
                return Reply(404, "Not Found")
            return Reply(480, "Temporarily Unavailable")
        bindings = await self.location.lookup(aor, now)
        if not bindings:
            if self.user_exists is None:
                return Reply(404, "Not Found")
            return Reply(480, "Temporarily Unavailable")
        targets = tuple(Target.from_binding(binding) for binding in bindings)
        return Forward(
            request,
            targets,
            record_route=request.method not in _NO_RECORD_ROUTE,
            aor=aor,
        )

    # --------------------------------------------------------------- helpers

    def _is_own_uri(self, uri: Uri) -> bool:
        """A URI the proxy put in a Record-Route (our address, no user part)."""
        if not isinstance(uri, SipUri) or uri.user is not None:
            return False
        if self.config.validation.is_own(uri.host, uri.port):
            return True
        return uri.port is None and uri.host.lower() in self.config.domains

    def _is_local(self, uri: Uri) -> bool:
        """A Request-URI in one of our domains (or addressed to one of our addresses).

        A domain that is an IP address (the zero-config domain is the server's
        own address) names the proxy only on the proxy's ports: with another
        explicit port, ``sip:bob@127.0.0.1:5070`` is a phone on the same host
        (a Contact, a relay target), not us (RFC 3261 §16.4, §19.1.4).
        """
        if not isinstance(uri, SipUri):
            return False
        host = uri.host.lower()
        if host in self.config.domains and (uri.port is None or not _is_ip_literal(host)):
            return True
        return self.config.validation.is_own(uri.host, uri.port)

    def _foreign(self, request: Request) -> bool:
        return request.headers.get("Route") is not None or not (
            self._is_own_uri(request.uri) or self._is_local(request.uri)
        )

    def _from_local_user(self, request: Request) -> bool:
        """True once route(AUTH) has let the request through as one of our users."""
        if self.authenticator is None or not self.config.authenticate_local_users:
            return False
        from_uri = request.from_.uri
        return (
            request.method in self.config.auth_methods
            and isinstance(from_uri, SipUri)
            and from_uri.host.lower() in self.config.domains
        )


@functools.lru_cache(maxsize=1024)
def _is_ip_literal(host: str) -> bool:
    """An IPv4 or (bracketed) IPv6 address rather than a domain name (cached: the same few
    hosts come in every request)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _from_user(request: Request) -> str | None:
    try:
        uri = request.from_.uri
    except SipParseError:
        return None
    return uri.user if isinstance(uri, SipUri) else None


def _remove_credentials(request: Request, realm: str) -> None:
    """Drop the Proxy-Authorization we consumed; keep those for other realms (§22.3)."""
    kept = [c for c in request.proxy_authorization if c.realm != realm]
    request.headers.remove("Proxy-Authorization")
    for credentials in kept:
        request.headers.add("Proxy-Authorization", str(credentials))
