"""The asyncio registrar/proxy server behind ``trunkline serve`` (RFC 3261 §10, §16).

:class:`ProxyServer` is the edge around the sans-IO proxy core: it opens the
data directory (users, nonce secret, TLS certificate, location bindings),
binds a :class:`~trunkline.sip.aio.endpoint.SipEndpoint` on the configured
transports and executes what :meth:`Router.route <trunkline.proxy.router.Router.route>`
decides for every request:

- ``Reply``: answered through the server transaction (§8.2.6, §16.3).
- ``Forward`` / ``Relay``: forwarded statefully (§16.6): one client
  transaction per branch, branches grouped by q-value (parallel within a
  group, sequential across groups, §16.6 / RFC 3261 §16.1), the best final
  response chosen as §16.7 says (2xx and 6xx at once, otherwise the lowest
  class once every branch is done; 503 becomes 500), Timer C for INVITE
  branches (§16.8), CANCEL of the other branches after a 2xx or 6xx
  (§16.7 step 10), Record-Route (§16.6 item 4; two entries when the
  transport changes, so both sides see an address they can reach).
- in-dialog ACKs (2xx ACKs) are forwarded statelessly (§16.11), and so are
  responses that match no client transaction (2xx retransmissions, §16.7).
- ``Drop``: no answer and no state left behind.

A CANCEL is answered by the endpoint (200, then 487 upstream, §9.2); the
server cancels the pending branches of the INVITE (§16.10).

Housekeeping on timers: expired bindings purged, bindings flushed to
SQLite, OPTIONS keep-alive pings to contacts behind NAT (RFC 5626 §3.5.1
ideas, :class:`~trunkline.proxy.nat.KeepAliveSchedule`). :meth:`stop`
is the graceful shutdown of SIGTERM: stop accepting new requests (503),
let the running transactions finish, persist the bindings, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sqlite3
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from trunkline.config import Config
from trunkline.proxy import open_location, registrar_policy
from trunkline.proxy.antiflood import AntiFlood, FloodPolicy, TrustedNetworks
from trunkline.proxy.location import Binding, LocationService
from trunkline.proxy.metrics import render_metrics
from trunkline.proxy.nat import KeepAliveSchedule, KeepAliveTarget, Origin, make_keepalive
from trunkline.proxy.registrar import Authenticator, Registrar
from trunkline.proxy.router import Drop, Forward, Relay, Router, RouterConfig, Target
from trunkline.proxy.status import HttpFront, ServerStats
from trunkline.proxy.validation import Reply, ValidationPolicy, loop_branch
from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint, Source
from trunkline.sip.aio.routing import Destination
from trunkline.sip.aio.tls import server_ssl_context
from trunkline.sip.aio.transport import Connection, Listener, TransportError
from trunkline.sip.aio.websocket import WebSocketConnection
from trunkline.sip.builder import make_response, new_branch
from trunkline.sip.digest import DEFAULT_ALGORITHMS, LEGACY_ALGORITHMS
from trunkline.sip.errors import LocalSipError, SipParseError
from trunkline.sip.headers import Via
from trunkline.sip.message import Request, Response
from trunkline.sip.transaction import ClientInviteTransaction, ClientTransaction, ServerTransaction
from trunkline.store.datadir import DataDir
from trunkline.store.users import UserStore, ensure_demo_users, load_config_users

__all__ = ["TIMER_C", "ProxyEndpoint", "ProxyServer", "advertised_host"]

log = logging.getLogger("trunkline.proxy.server")

TIMER_C = 180.0
"""RFC 3261 §16.6 item 11: > 3 minutes without a final response cancels an INVITE branch."""

_CANCEL_GRACE = 32.0
"""How long a cancelled branch may stay silent before it counts as a 408 (§16.8)."""

_PURGE_INTERVAL = 30.0
_KEEPALIVE_REFRESH = 30.0


def advertised_host(bind_host: str) -> str:
    """The address to write in Via and Record-Route for a listener bound to ``bind_host``.

    A wildcard bind (``0.0.0.0``/``::``) names the interface of the default
    route (found with a connected UDP socket, nothing is sent), or loopback.
    """
    if bind_host not in ("0.0.0.0", "::", ""):
        return bind_host
    family = socket.AF_INET6 if bind_host == "::" else socket.AF_INET
    probe = "2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1"
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((probe, 9))
            return str(s.getsockname()[0])
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _split_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class ProxyEndpoint(SipEndpoint):
    """A :class:`SipEndpoint` that tells the proxy when a CANCEL arrives (§16.10)."""

    on_cancel: Callable[[ServerTransaction], None] | None = None

    def _receive_cancel(self, cancel: Request, source: Source, now: float) -> None:
        invite = self.transactions.find_cancelled(cancel)
        super()._receive_cancel(cancel, source, now)
        if invite is not None and self.on_cancel is not None:
            self.on_cancel(invite)


@dataclass(slots=True)
class _Branch:
    """One client transaction of a response context (§16.6 item 10)."""

    target: Target
    txn: ClientTransaction | None = None
    final: Response | None = None
    provisional: bool = False
    cancelled: bool = False
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Context:
    """The response context of one forwarded request (§16.7)."""

    incoming: IncomingRequest
    request: Request
    groups: list[list[Target]]
    record_route: bool
    started: float
    branches: list[_Branch] = field(default_factory=list)
    best: Response | None = None
    final_sent: bool = False
    cancelled: bool = False

    @property
    def invite(self) -> bool:
        return self.request.method == "INVITE"


def _rank(response: Response) -> tuple[int, int]:
    """§16.7 step 6: 6xx first, then the lowest class (3xx before 4xx before 5xx)."""
    status = response.status
    return (0 if status >= 600 else 1, status)


class ProxyServer:
    """The registrar/proxy server: see the module docstring.

    ``config`` is the validated configuration (``trunkline.config``) with the
    command line applied; ``now`` (wall clock) is injectable for tests.
    """

    def __init__(
        self,
        config: Config,
        *,
        data_dir: DataDir | None = None,
        clock: Callable[[], float] = time.time,
        legacy_digest: bool = False,
    ) -> None:
        self.config = config
        self.data_dir = data_dir or DataDir(config.data_dir or "trunkline-data")
        self.clock = clock
        self.legacy_digest = legacy_digest
        self.stats = ServerStats(started=clock())
        self.demo_passwords: dict[str, str] = {}
        self.domains: list[str] = []
        self.accepting = True
        self.endpoint: ProxyEndpoint | None = None
        self.location: LocationService | None = None
        self.router: Router | None = None
        self.registrar: Registrar | None = None
        self.antiflood: AntiFlood | None = None
        self.users: UserStore | None = None
        self.keepalive = KeepAliveSchedule()
        self.http: HttpFront | None = None
        self.addresses: dict[str, tuple[str, int]] = {}
        """Advertised ``(host, port)`` per transport (Via, Record-Route)."""
        self._db: sqlite3.Connection | None = None
        self._data_version = 0
        self._contexts: dict[int, _Context] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._housekeeping: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        """Open the data directory and the location service, bind every listener."""
        now = self.clock()
        config = self.config
        self._db = self.data_dir.database()
        self.users = UserStore(self._db)
        listen = config.listen
        fallback = advertised_host(listen.udp.host if listen.udp.enabled else listen.tcp.host)
        default_domain = self.data_dir.default_domain(self._db, fallback)
        self.domains = list(config.domains) or [default_domain]
        load_config_users(self.users, config.users, self.domains[0], now)
        self.demo_passwords = ensure_demo_users(self.users, self.domains[0], now)
        self.location = await open_location(config.location, db=self._db, now=now)

        endpoint = ProxyEndpoint(dialogs=False, user_agent=None, auto_trying=False)
        endpoint.on_request = self._on_request
        endpoint.on_stray_response = self._on_stray_response
        endpoint.on_cancel = self._on_cancel
        self.endpoint = endpoint
        for kind in ("udp", "tcp", "tls"):
            spec = getattr(listen, kind)
            if not spec.enabled:
                continue
            ssl_context = None
            if kind == "tls":
                if spec.certificate is not None:
                    ssl_context = server_ssl_context(spec.certificate, spec.key)
                else:
                    files = self.data_dir.tls_files(self.domains[0])
                    ssl_context = server_ssl_context(files.certificate, files.key)
            listener = await endpoint.listen(kind, spec.host, spec.port, ssl_context=ssl_context)
            self.addresses[kind.upper()] = (advertised_host(spec.host), listener.port)

        if listen.ws.enabled:
            self.http = HttpFront(self.snapshot, render_metrics, self._upgrade)
            port = await self.http.start(listen.ws.host, listen.ws.port)
            endpoint.transport.listeners.append(Listener("WS", listen.ws.host, port))
            self.addresses["WS"] = (advertised_host(listen.ws.host), port)

        trusted = TrustedNetworks([str(net) for net in config.trusted])
        self.antiflood = AntiFlood(FloodPolicy.from_config(config.limits), trusted)
        self._data_version = self._read_data_version()
        authenticator = Authenticator(
            self.data_dir.nonce_secret(),
            self._ha1,
            algorithms=LEGACY_ALGORITHMS if self.legacy_digest else DEFAULT_ALGORITHMS,
        )
        own = {f"{_bracket(host)}:{port}" for host, port in self.addresses.values()}
        validation = ValidationPolicy(
            own_addresses=frozenset(own), max_message=config.limits.max_message_size
        )
        self.registrar = Registrar(
            self.location, authenticator, self.domains, registrar_policy(config.location)
        )
        self.router = Router(
            RouterConfig(frozenset(self.domains), validation=validation),
            location=self.location,
            registrar=self.registrar,
            authenticator=authenticator,
            antiflood=self.antiflood,
            trusted=trusted,
            user_exists=self._user_exists,
        )
        self._housekeeping = asyncio.ensure_future(self._housekeep())

    # -- the user store, re-read when ``trunkline users`` changed it ------------------

    def _read_data_version(self) -> int:
        """SQLite's ``data_version``: changes when another connection commits (§2.1 of the
        SQLite pragma docs), i.e. when ``trunkline users add|remove|passwd`` ran."""
        if self._db is None:
            return 0
        row = self._db.execute("PRAGMA data_version").fetchone()
        return int(row[0]) if row else 0

    def refresh_users(self) -> bool:
        """Reload the user cache if the database changed under us; True when reloaded."""
        if self.users is None or self._db is None:
            return False
        version = self._read_data_version()
        if version == self._data_version:
            return False
        self._data_version = version
        self.users.reload()
        return True

    def _ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        assert self.users is not None
        value = self.users.ha1(username, realm, algorithm)
        if value is None and self.refresh_users():  # a user added while we run
            value = self.users.ha1(username, realm, algorithm)
        return value

    def _user_exists(self, name: str, domain: str) -> bool:
        assert self.users is not None
        if self.users.exists(name, domain):
            return True
        return self.refresh_users() and self.users.exists(name, domain)

    def _upgrade(self, transport: asyncio.Transport, buffered: bytes) -> None:
        """An HTTP request asking for WebSocket: SIP over WebSocket from here on (RFC 7118)."""
        assert self.endpoint is not None
        connection = WebSocketConnection(self.endpoint.transport, "WS", outbound=False)
        transport.set_protocol(connection)
        connection.connection_made(transport)
        connection.data_received(buffered)

    # ------------------------------------------------------------------- stop

    async def stop(self, grace: float = 5.0) -> None:
        """Graceful shutdown: refuse new requests, finish transactions, persist, close."""
        if self._stopped.is_set():
            return
        self.accepting = False
        deadline = asyncio.get_running_loop().time() + grace
        endpoint = self.endpoint
        while self._contexts and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        for task in list(self._tasks):
            task.cancel()
        if self.http is not None:
            await self.http.close()
        if endpoint is not None:
            await endpoint.close()
        if self.location is not None:
            await self.location.close()
        if self._db is not None:
            self._db.close()
            self._db = None
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    @property
    def active_transactions(self) -> int:
        return len(self.endpoint.transactions) if self.endpoint is not None else 0

    # ---------------------------------------------------------------- requests

    def _origin(self, source: Source) -> Origin:
        transport = source.transport.upper()
        flow = None if transport == "UDP" else f"{transport}:{_bracket(source.host)}:{source.port}"
        return Origin(transport, source.host, source.port, flow)

    async def _on_request(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        stats = self.stats
        stats.count_request(request.method)
        router = self.router
        refuse = router is None or (not self.accepting and request.to_tag is None)
        if refuse and incoming.transaction is not None:  # starting up or shutting down
            incoming.respond(503, "Service Unavailable", headers=(("Retry-After", "5"),))
            return
        if router is None:
            return
        origin = self._origin(incoming.source)
        decision = await router.route(request, origin, self.clock())
        if isinstance(decision, Reply):
            stats.replies += 1
            if incoming.transaction is not None:
                incoming.respond(decision.status, decision.reason, headers=decision.headers)
                stats.count_response(decision.status)
        elif isinstance(decision, Drop):
            stats.dropped += 1
            log.debug("drop %s from %s: %s", request.method, origin.address, decision.reason)
            if incoming.transaction is not None and self.endpoint is not None:
                self.endpoint.transactions.discard(incoming.transaction)
        elif incoming.transaction is None:  # an ACK for a 2xx: stateless (§16.11)
            await self._forward_stateless(request)
        elif isinstance(decision, Forward):
            groups = _q_groups(decision.targets)
            self._start_context(incoming, decision.request, groups, decision.record_route)
        elif isinstance(decision, Relay):
            target = Target(uri=decision.request.uri_text)
            self._start_context(incoming, decision.request, [[target]], decision.record_route)
        else:  # Cancel never reaches here: the endpoint answers CANCEL itself
            incoming.respond(481)

    # ------------------------------------------------------------- forwarding

    def _start_context(
        self,
        incoming: IncomingRequest,
        request: Request,
        groups: list[list[Target]],
        record_route: bool,
    ) -> None:
        if incoming.answered:  # cancelled (487 sent) while the router was still deciding
            return
        loop = asyncio.get_running_loop()
        context = _Context(incoming, request, groups, record_route, loop.time())
        assert incoming.transaction is not None
        if context.invite:
            incoming.respond(100, "Trying")  # §16.2: stop the upstream retransmissions
        self._contexts[id(incoming.transaction)] = context
        self.stats.forwarded += 1
        self._next_group(context)

    def _next_group(self, context: _Context) -> None:
        group = context.groups.pop(0)
        for target in group:
            branch = _Branch(target)
            context.branches.append(branch)
            branch.task = self._spawn(self._run_branch(context, branch))

    def _branch_request(self, context: _Context, target: Target) -> Request:
        """The copy of the request for one target (§16.6 items 1-8)."""
        request = context.request.copy()
        if target.uri != request.uri_text:
            request.uri = target.uri
        for route in reversed(target.route):
            request.headers.prepend("Route", route)
        max_forwards = request.max_forwards
        request.headers.set("Max-Forwards", str(70 if max_forwards is None else max_forwards - 1))
        return request

    async def _destination(
        self, request: Request, target: Target
    ) -> tuple[Destination, Connection | None]:
        """Where a branch goes: the registered flow or NAT binding, else §8.1.2 / RFC 3263."""
        assert self.endpoint is not None
        if target.destination is not None and not target.route:
            host, port = _split_hostport(target.destination)
            transport = (target.transport or "udp").upper()
            connection = self.endpoint.transport.lookup(transport, (host, port))
            return Destination(transport, host, port), connection
        return await self.endpoint.resolve(request), None

    def _stamp(self, request: Request, inbound: str, outbound: str, record_route: bool) -> None:
        """Record-Route (§16.6 item 4) and our Via with a loop-detecting branch (item 8)."""
        if record_route:
            inside = self._rr_value(inbound)
            outside = self._rr_value(outbound)
            request.headers.prepend("Record-Route", inside)
            if outside != inside:
                request.headers.prepend("Record-Route", outside)
        host, port = self.addresses.get(outbound) or self.addresses["UDP"]
        params: dict[str, str | None] = {"branch": loop_branch(request), "rport": None}
        request.headers.prepend("Via", str(Via(outbound, _bracket(host), port, params)))

    def _rr_value(self, transport: str) -> str:
        host, port = self.addresses.get(transport) or self.addresses["UDP"]
        param = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"<sip:{_bracket(host)}:{port}{param};lr>"

    async def _run_branch(self, context: _Context, branch: _Branch) -> None:
        endpoint = self.endpoint
        assert endpoint is not None
        request = self._branch_request(context, branch.target)
        try:
            destination, connection = await self._destination(request, branch.target)
            inbound = context.incoming.source.transport.upper()
            self._stamp(request, inbound, destination.transport, context.record_route)
            txn = await endpoint.start_request(
                request,
                destination,
                connection=connection,
                add_via=False,
                on_provisional=lambda response: self._provisional(context, branch, response),
            )
        except (TransportError, LocalSipError, SipParseError, ValueError, OSError) as exc:
            log.info("branch to %s failed: %s", branch.target.uri, exc)
            failed = make_response(context.request, 503, "Service Unavailable")
            self._final(context, branch, failed)
            return
        branch.txn = txn
        if context.cancelled:
            self._cancel_branch(branch)
        response = await self._wait_branch(context, branch, txn)
        response.headers.pop_first("Via")
        self._final(context, branch, response)

    async def _wait_branch(
        self, context: _Context, branch: _Branch, txn: ClientTransaction
    ) -> Response:
        """The branch's final response; Timer C cancels a ringing INVITE branch (§16.8).

        Timer C is a ``call_later`` handle, not a task: if the cancelled branch
        stays silent too, a second expiry gives up on it with a 408.
        """
        endpoint = self.endpoint
        assert endpoint is not None
        if not context.invite:
            return await endpoint.wait_final(txn)
        loop = asyncio.get_running_loop()
        expired = False
        handles: list[asyncio.TimerHandle] = []

        def timer_c() -> None:
            nonlocal expired
            if branch.cancelled:
                expired = True
                endpoint.transactions.discard(txn)
                if branch.task is not None:
                    branch.task.cancel()
                return
            self._cancel_branch(branch)
            handles.append(loop.call_later(_CANCEL_GRACE, timer_c))

        handles.append(loop.call_later(TIMER_C, timer_c))
        try:
            return await endpoint.wait_final(txn)
        except asyncio.CancelledError:
            if not expired:
                raise
            return make_response(txn.request, 408, "Request Timeout")
        finally:
            for handle in handles:
                handle.cancel()

    def _provisional(self, context: _Context, branch: _Branch, response: Response) -> None:
        """§16.7 step 5: forward every provisional except 100."""
        branch.provisional = True
        if response.status == 100 or context.final_sent:
            return
        response.headers.pop_first("Via")
        context.incoming.send(response)
        self.stats.count_response(response.status)

    def _final(self, context: _Context, branch: _Branch, response: Response) -> None:
        branch.final = response
        status = response.status
        if 200 <= status < 300:
            if context.final_sent:
                self._send_stateless_response(response)  # §16.7: every 2xx goes upstream
            else:
                self._send_final(context, response)
            self._cancel_others(context, branch)
        elif not context.final_sent:
            if context.best is None or _rank(response) < _rank(context.best):
                context.best = response
            if status >= 600:
                self._cancel_others(context, branch)
                self._send_final(context, response)
            elif all(b.final is not None for b in context.branches):
                if context.groups and not context.cancelled:
                    self._next_group(context)
                    return
                self._send_best(context)
        if all(b.final is not None for b in context.branches) and (
            context.final_sent or not context.groups
        ):
            self._finish(context)

    def _send_best(self, context: _Context) -> None:
        best = context.best
        assert best is not None
        if best.status == 503:  # §16.7 step 6: never forward a 503
            best = make_response(context.incoming.request, 500, "Server Internal Error")
        self._send_final(context, best)

    def _send_final(self, context: _Context, response: Response) -> None:
        context.final_sent = True
        incoming = context.incoming
        if incoming.answered:  # a CANCEL already answered it with 487
            if 200 <= response.status < 300:
                self._send_stateless_response(response)
            return
        try:
            incoming.send(response)
        except LocalSipError:
            self._send_stateless_response(response)
        self.stats.count_response(response.status)
        loop = asyncio.get_running_loop()
        self.stats.observe_latency(context.request.method, loop.time() - context.started)
        if context.invite and 200 <= response.status < 300:
            self.stats.dialog_started(response, self.clock())
        elif context.request.method == "BYE":
            self.stats.dialog_ended(context.request)

    def _finish(self, context: _Context) -> None:
        if context.incoming.transaction is not None:
            self._contexts.pop(id(context.incoming.transaction), None)

    def _cancel_others(self, context: _Context, keep: _Branch) -> None:
        for branch in context.branches:
            if branch is not keep and branch.final is None:
                self._cancel_branch(branch)
        context.groups.clear()

    def _cancel_branch(self, branch: _Branch) -> None:
        if branch.cancelled or branch.final is not None or branch.txn is None:
            return
        if isinstance(branch.txn, ClientInviteTransaction) and self.endpoint is not None:
            branch.cancelled = True
            with contextlib.suppress(LocalSipError):
                self.endpoint.cancel(branch.txn)

    def _on_cancel(self, invite: ServerTransaction) -> None:
        """§16.10: the INVITE was cancelled upstream; cancel every pending branch."""
        context = self._contexts.get(id(invite))
        self.stats.cancels += 1
        if context is None:
            return
        context.cancelled = True
        context.final_sent = True
        context.groups.clear()
        for branch in context.branches:
            self._cancel_branch(branch)

    # ------------------------------------------------------- stateless paths

    async def _forward_stateless(self, request: Request) -> None:
        """An ACK for a 2xx (or any request without a transaction): §16.11."""
        endpoint = self.endpoint
        assert endpoint is not None
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            return
        request.headers.set("Max-Forwards", str(70 if max_forwards is None else max_forwards - 1))
        try:
            destination = endpoint.resolve_now(request) or await endpoint.resolve(request)
        except (TransportError, ValueError, OSError) as exc:
            log.info("stateless %s not forwarded: %s", request.method, exc)
            return
        host, port = self.addresses.get(destination.transport) or self.addresses["UDP"]
        via = Via(destination.transport, _bracket(host), port, {"branch": new_branch()})
        request.headers.prepend("Via", str(via))
        self.stats.stateless += 1
        endpoint.send_stateless(request, destination)

    def _on_stray_response(self, response: Response) -> None:
        """A response without a client transaction: forward it by its Via (§16.7, §18.2.2)."""
        vias = response.via
        if len(vias) < 2 or self.router is None:
            return
        top = vias[0]
        if not self.router.config.validation.is_own(top.host, top.port):
            return
        response.headers.pop_first("Via")
        self._send_stateless_response(response)

    def _send_stateless_response(self, response: Response) -> None:
        if self.endpoint is not None and response.via:
            self.stats.stateless += 1
            self.endpoint.send_stateless(response)

    # ------------------------------------------------------------ housekeeping

    async def _housekeep(self) -> None:
        """Purge expired bindings, persist them, ping NATed contacts."""
        assert self.location is not None
        loop = asyncio.get_running_loop()
        flush_every = self.config.location.flush_interval
        next_purge = loop.time() + _PURGE_INTERVAL
        next_refresh = loop.time()  # the first pass builds the keep-alive schedule
        while True:
            await asyncio.sleep(min(flush_every, 1.0))
            now = loop.time()
            try:
                if now >= next_purge:
                    next_purge = now + _PURGE_INTERVAL
                    self.stats.purged += await self.location.purge_expired(self.clock())
                if now >= next_refresh:
                    next_refresh = now + _KEEPALIVE_REFRESH
                    bindings = await self.location.all_bindings(self.clock())
                    self.keepalive.update(_keepalive_targets(bindings), now)
                await self.location.flush()
            except (sqlite3.Error, OSError) as exc:
                log.warning("housekeeping failed: %s", exc)
            for target in self.keepalive.due(now):
                self._spawn(self._ping(target))
            if self.antiflood is not None:
                self.antiflood.handle_timer(self.clock())
            with contextlib.suppress(sqlite3.Error):
                self.refresh_users()  # passwords changed, users removed

    async def _ping(self, target: KeepAliveTarget) -> None:
        if self.endpoint is None or "UDP" not in self.addresses:
            return
        host, port = self.addresses["UDP"]
        ping = make_keepalive(target.contact_uri, f"sip:keepalive@{_bracket(host)}:{port}")
        address, rport = _split_hostport(target.destination)
        self.stats.keepalives += 1
        with contextlib.suppress(TransportError, LocalSipError, ValueError):
            await self.endpoint.send_request(ping, Destination("UDP", address, rport))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ status

    async def snapshot(self) -> dict[str, Any]:
        """Everything ``trunkline status`` shows, as JSON-ready data."""
        now = self.clock()
        bindings = await self.location.all_bindings(now) if self.location is not None else []
        flood = self.antiflood.counters.as_dict() if self.antiflood is not None else {}
        bans = self.antiflood.bans(now) if self.antiflood is not None else []
        return self.stats.snapshot(
            now,
            domains=self.domains,
            listeners={k: f"{_bracket(h)}:{p}" for k, (h, p) in self.addresses.items()},
            bindings=[
                {
                    "aor": b.aor,
                    "contact": b.contact_uri,
                    "expires_in": b.expires_in(now),
                    "received": b.received,
                    "transport": b.transport,
                    "user_agent": b.user_agent,
                }
                for b in bindings[:1000]
            ],
            registered_contacts=len(bindings),
            transactions=self.active_transactions,
            contexts=len(self._contexts),
            flood=flood,
            bans=[{"source": host, "until": until} for host, until in bans],
            registrar={
                "registered": self.registrar.registered if self.registrar else 0,
                "rejected": self.registrar.rejected if self.registrar else 0,
            },
        )


def _q_groups(targets: tuple[Target, ...]) -> list[list[Target]]:
    """Targets grouped by q-value, highest first (§16.6: parallel within, sequential across)."""
    groups: dict[float, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.q, []).append(target)
    return [groups[q] for q in sorted(groups, reverse=True)]


def _keepalive_targets(bindings: list[Binding]) -> list[KeepAliveTarget]:
    """UDP bindings whose Contact is not the address they registered from (behind NAT)."""
    targets = []
    for binding in bindings:
        if binding.received is None or (binding.transport or "udp").lower() != "udp":
            continue
        host, _, _ = binding.received.rpartition(":")
        if host.strip("[]") in binding.contact_uri:
            continue
        key = f"{binding.contact_uri}|{binding.received}"
        targets.append(KeepAliveTarget(key, binding.contact_uri, binding.received, "UDP"))
    return targets
