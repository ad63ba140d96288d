"""The asyncio registrar/proxy server behind ``trunkline serve`` (RFC 3261 §10, §16).

:class:`ProxyServer` is the edge around the sans-IO proxy core: it opens the
data directory (users, nonce secret, TLS certificate, location bindings),
binds a :class:`~trunkline.sip.aio.endpoint.SipEndpoint` on the configured
transports and executes what :meth:`Router.route <trunkline.proxy.router.Router.route>`
decides for every request:

- ``Reply``: answered through the server transaction (§8.2.6, §16.3).
- ``Forward`` / ``Relay``: forwarded statefully (§16.6-16.8) by the
  :class:`~trunkline.proxy.forwarder.Forwarder`, which drives one
  :class:`~trunkline.proxy.forking.ResponseContext` per request (q-groups,
  best response, merged challenges, Timer C, dispatcher failover), after the
  per-source transaction and dialog limits of the anti-flood (503 over them).
- in-dialog ACKs (2xx ACKs) are forwarded statelessly (§16.11), and so are
  responses that match no client transaction (2xx retransmissions, §16.7).
- ``Drop``: no answer and no state left behind.

A CANCEL for an INVITE with a response context is answered 200 and cancels
the pending branches, whose 487 goes upstream (§16.10); before the context
exists the endpoint answers it as a UA would (200 and 487, §9.2).

Periodic work (bindings purged and flushed, NAT keep-alives, dispatcher
health checks) is in :mod:`trunkline.proxy.housekeeping`. :meth:`stop`
is the graceful shutdown of SIGTERM: stop accepting new requests (503),
let the running transactions finish, persist the bindings, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from trunkline.config import Config
from trunkline.proxy import open_location, registrar_policy
from trunkline.proxy.antiflood import AntiFlood, FloodPolicy, TrustedNetworks
from trunkline.proxy.dispatch_config import build_dispatcher
from trunkline.proxy.dispatcher import Dispatcher, DispatchRule
from trunkline.proxy.forwarder import Forwarder, bracket, split_hostport
from trunkline.proxy.handoff import ResponseHandoff, worker_suffix
from trunkline.proxy.housekeeping import Housekeeper
from trunkline.proxy.location import LocationService
from trunkline.proxy.location_sqlite import SharedSqliteLocation
from trunkline.proxy.metrics import render_metrics
from trunkline.proxy.nat import KeepAliveSchedule, Origin
from trunkline.proxy.registrar import Authenticator, Registrar
from trunkline.proxy.router import Decision, Drop, Forward, Lookup, Relay, Router, RouterConfig
from trunkline.proxy.status import HttpFront, ServerStats, merge_snapshots
from trunkline.proxy.validation import Reply, ValidationPolicy
from trunkline.proxy.workers import (
    STATUS_INTERVAL,
    BanRelay,
    FlowAwareLocation,
    SharedAntiFlood,
    StatusBoard,
    WorkerSpec,
    listen_shared,
)
from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint, Source
from trunkline.sip.aio.gcpolicy import ServingCollector
from trunkline.sip.aio.tls import server_ssl_context
from trunkline.sip.aio.transport import Listener
from trunkline.sip.aio.websocket import WebSocketConnection
from trunkline.sip.builder import set_branch_suffix
from trunkline.sip.digest import DEFAULT_ALGORITHMS, LEGACY_ALGORITHMS
from trunkline.sip.errors import SipParseError
from trunkline.sip.message import Request, Response, parse_message
from trunkline.sip.transaction import ServerTransaction, TransactionState
from trunkline.store.datadir import DataDir
from trunkline.store.users import UserStore, ensure_demo_users, load_config_users

__all__ = ["ProxyEndpoint", "ProxyServer", "advertised_host"]

log = logging.getLogger("trunkline.proxy.server")


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


class ProxyEndpoint(SipEndpoint):
    """A :class:`SipEndpoint` whose CANCELs go to the proxy's response contexts (§16.10).

    ``on_cancel`` returns True when a context took the CANCEL: the CANCEL is
    answered 200 and the INVITE's final response is left to the branches
    (their 487, §16.10). Otherwise (no context yet, or nothing to cancel)
    the UA behaviour of §9.2 applies (200 and 487, or 481).
    """

    on_cancel: Callable[[ServerTransaction], bool] | None = None

    def handle_cancel(self, cancel: IncomingRequest, invite: ServerTransaction | None) -> None:
        hook = self.on_cancel
        if (
            invite is not None
            and hook is not None
            and invite.state is TransactionState.PROCEEDING
            and hook(invite)
        ):
            last = invite.last_response
            cancel.respond(200, "OK", to_tag=last.to_tag if last is not None else None)
            return
        super().handle_cancel(cancel, invite)


class ProxyServer:
    """The registrar/proxy server: see the module docstring.

    ``config`` is the validated configuration (``trunkline.config``) with the
    command line applied; ``now`` (wall clock) is injectable for tests.
    ``dispatcher``/``dispatch_rules`` default to the config's ``[dispatcher]``;
    ``worker`` says which of several worker processes this is
    (:mod:`trunkline.proxy.workers`).
    """

    def __init__(
        self,
        config: Config,
        *,
        data_dir: DataDir | None = None,
        clock: Callable[[], float] = time.time,
        legacy_digest: bool = False,
        dispatcher: Dispatcher | None = None,
        dispatch_rules: tuple[DispatchRule, ...] = (),
        worker: WorkerSpec | None = None,
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
        self.forwarder: Forwarder | None = None
        if dispatcher is None:
            dispatcher, dispatch_rules = build_dispatcher(config.dispatcher)
        self.dispatcher = dispatcher
        self._housekeeping: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._ban_relay: BanRelay | None = None
        self._handoff: ResponseHandoff | None = None
        self.dispatch_rules = dispatch_rules
        self.worker = worker or WorkerSpec()
        self.shared: dict[str, tuple[str, int]] = {}
        """The SIP port shared with the other workers, per transport (several workers only)."""
        self._stopped = asyncio.Event()
        self._collector: ServingCollector | None = None

    # ------------------------------------------------------------------ start

    def prepare(self) -> None:
        """Open the data directory: the domain, the users of the config, the demo users."""
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
        for kind in ("udp", "tcp", "tls", "ws"):  # as configured; start() puts the bound ones
            spec = getattr(listen, kind)
            if spec.enabled:
                self.addresses[kind.upper()] = (advertised_host(spec.host), spec.port)

    def close_database(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def start(self) -> None:
        """Open the data directory and the location service, bind every listener."""
        if self._db is None:
            self.prepare()
        self.addresses.clear()
        assert self._db is not None
        now = self.clock()
        config = self.config
        listen = config.listen
        if self.worker.shared and config.location.backend == "memory":
            # Several workers: every one reads and writes the database (proxy.workers).
            self.location = await SharedSqliteLocation.open(self._db, now)
        else:
            self.location = await open_location(config.location, db=self._db, now=now)
        if self.worker.shared:  # TCP/TLS/WS flows accepted by another worker are not ours
            self.location = FlowAwareLocation(self.location, self._holds_flow)

        # No merged-request 482 (§8.2.2.2 is a UAS rule): a spiral has the same
        # From tag, Call-ID and CSeq and must be routed again (§16.3 item 4).
        endpoint = ProxyEndpoint(
            dialogs=False, user_agent=None, auto_trying=False, reject_merged=False
        )
        endpoint.on_request = self._on_request
        endpoint.on_stray_response = self._on_stray_response
        endpoint.on_cancel = self._on_cancel
        self.endpoint = endpoint
        worker = self.worker
        for kind in ("udp", "tcp", "tls"):
            spec = getattr(listen, kind)
            if not spec.enabled or (kind == "tls" and not worker.primary):
                continue
            if worker.shared and kind == "udp":
                # Only the shared port, bound with the others at the end: what we send
                # leaves from it, so phones behind NAT see one address (proxy.handoff).
                self.addresses["UDP"] = self.shared["UDP"] = (advertised_host(spec.host), spec.port)
                continue
            if worker.shared and kind == "tcp":
                # Our own port first (Via, Record-Route, the source of what we send);
                # the port every worker shares at the end (see trunkline.proxy.workers).
                mine = await endpoint.listen(kind, spec.host, 0)
                self.addresses["TCP"] = (advertised_host(spec.host), mine.port)
                self.shared["TCP"] = (advertised_host(spec.host), spec.port)
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

        if listen.ws.enabled and worker.primary:
            self.http = HttpFront(self.snapshot, render_metrics, self._upgrade)
            port = await self.http.start(listen.ws.host, listen.ws.port)
            endpoint.transport.listeners.append(Listener("WS", listen.ws.host, port))
            self.addresses["WS"] = (advertised_host(listen.ws.host), port)

        trusted = TrustedNetworks([str(net) for net in config.trusted])
        policy = FloodPolicy.from_config(config.limits)
        if worker.shared:  # a ban made by one worker applies in all (proxy.workers)
            relay = self._ban_relay = BanRelay(worker)
            shared = SharedAntiFlood(policy, trusted, relay)
            relay.start(lambda host, until: shared.ban_from_peer(host, until, self.clock()))
            self.antiflood = shared
        else:
            self.antiflood = AntiFlood(policy, trusted)
        authenticator = Authenticator(
            self.data_dir.nonce_secret(),
            self._ha1,
            algorithms=LEGACY_ALGORITHMS if self.legacy_digest else DEFAULT_ALGORITHMS,
        )
        own = {
            f"{bracket(host)}:{port}"
            for host, port in (*self.addresses.values(), *self.shared.values())
        }
        validation = ValidationPolicy(
            own_addresses=frozenset(own), max_message=config.limits.max_message_size
        )
        self.registrar = Registrar(
            self.location, authenticator, self.domains, registrar_policy(config.location)
        )
        self.router = Router(
            RouterConfig(
                frozenset(self.domains), validation=validation, dispatch=self.dispatch_rules
            ),
            location=self.location,
            registrar=self.registrar,
            authenticator=authenticator,
            antiflood=self.antiflood,
            trusted=trusted,
            user_exists=self._user_exists,
            dispatcher=self.dispatcher,
        )
        self.forwarder = Forwarder(
            endpoint,
            self.addresses,
            self.stats,
            antiflood=self.antiflood,
            dispatcher=self.dispatcher,
            clock=self.clock,
        )
        housekeeper = Housekeeper(
            endpoint,
            self.location,
            self.addresses,
            self.stats,
            keepalive=self.keepalive if worker.primary else None,
            spawn=self.forwarder.spawn,
            clock=self.clock,
            flush_interval=config.location.flush_interval,
            antiflood=self.antiflood,
            dispatcher=self.dispatcher,
            refresh_users=self.refresh_users,
        )
        self._collector = ServingCollector(asyncio.get_running_loop())  # see sip.aio.gcpolicy
        self._collector.start()
        if worker.shared:  # responses come to any worker of the UDP port (proxy.handoff)
            set_branch_suffix(worker_suffix(worker.index))
            handoff = self._handoff = ResponseHandoff(
                worker.index, worker.handoff_inbox, worker.handoff_peers
            )
            handoff.start(endpoint.transport.deliver_datagram, self._holds_invite)
            endpoint.transport.steer_datagram = handoff.steer
        if self.shared:  # all workers join the port's SO_REUSEPORT group together
            worker.announce_prepared()
            await worker.wait_go()
            for name, (_, port) in self.shared.items():
                host = getattr(listen, name.lower()).host
                await listen_shared(endpoint.transport, name, host, port)
        # After the binding: the NAT pings are sent from the (shared) UDP port, and a
        # published status means this worker takes its share of the flows.
        self._housekeeping = asyncio.ensure_future(housekeeper.run())
        if worker.shared and not worker.primary:
            self._publisher = asyncio.ensure_future(self._publish_status())

    def _holds_invite(self, data: bytes) -> bool | None:
        """Is the INVITE the CANCEL datagram ``data`` targets one of this worker's
        transactions? None when ``data`` is no readable CANCEL (proxy.handoff)."""
        if self.endpoint is None:
            return None
        try:
            message = parse_message(data)
            if not isinstance(message, Request) or message.method != "CANCEL":
                return None
            return self.endpoint.transactions.find_cancelled(message) is not None
        except (SipParseError, ValueError):
            return None

    def _holds_flow(self, transport: str, received: str) -> bool:
        """True when this worker has the connection a binding was registered over."""
        if self.endpoint is None:
            return False
        try:
            peer = split_hostport(received)
        except ValueError:
            return False
        return self.endpoint.transport.lookup(transport, peer) is not None

    @property
    def status_board(self) -> StatusBoard:
        """Where the workers publish their status (``<data dir>/run/``)."""
        return StatusBoard(self.data_dir.path / "run")

    async def _publish_status(self) -> None:
        """Every STATUS_INTERVAL: this worker's counters and calls, for the first worker."""
        board = self.status_board
        while True:
            now = self.clock()
            try:
                board.publish(self.worker.index, self.local_snapshot(now), now)
            except OSError as error:
                log.warning("cannot publish the worker status: %s", error)
            await asyncio.sleep(STATUS_INTERVAL)

    # -- the user store, re-read when ``trunkline users`` changed it ------------------

    def refresh_users(self) -> bool:
        """Re-read the user cache if the database changed under us; True when re-read.

        Called on a miss: a user added while we run is found at once. Checking costs one
        indexed SQLite read; re-reading happens only after a change. The store watches its
        own generation counter (bumped by SQLite triggers on any change to ``users``, from
        any process), not SQLite's ``data_version``, which every location write by another
        worker would move."""
        if self.users is None:
            return False
        return self.users.refresh()

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
        forwarder = self.forwarder
        while (
            forwarder is not None
            and forwarder.contexts
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.05)
        for task in (self._housekeeping, self._publisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._ban_relay is not None:
            self._ban_relay.close()
            self._ban_relay = None
        if self._handoff is not None:
            self._handoff.close()
            self._handoff = None
            set_branch_suffix("")
        if forwarder is not None:
            forwarder.cancel_tasks()
        if self.http is not None:
            await self.http.close()
        if endpoint is not None:
            await endpoint.close()
        if self.location is not None:
            await self.location.close()
        self.close_database()
        if self._collector is not None:
            self._collector.stop()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    @property
    def active_transactions(self) -> int:
        return len(self.endpoint.transactions) if self.endpoint is not None else 0

    # ---------------------------------------------------------------- requests

    def _origin(self, source: Source) -> Origin:
        transport = source.transport.upper()
        flow = None if transport == "UDP" else f"{transport}:{bracket(source.host)}:{source.port}"
        return Origin(transport, source.host, source.port, flow)

    def _on_request(self, incoming: IncomingRequest) -> Awaitable[None] | None:
        """Route and execute at once; a task only when the registrar or the location
        service must be awaited (the endpoint runs the returned coroutine)."""
        request = incoming.request
        self.stats.count_request(request.method)
        router = self.router
        refuse = router is None or (not self.accepting and request.to_tag is None)
        if refuse and incoming.transaction is not None:  # starting up or shutting down
            incoming.respond(503, "Service Unavailable", headers=(("Retry-After", "5"),))
            return None
        if router is None or self.forwarder is None:
            return None
        origin = self._origin(incoming.source)
        size = incoming.wire_size or len(bytes(request))
        decision = router.route_now(request, origin, self.clock(), size=size)
        if isinstance(decision, Lookup):
            return self._route_later(incoming, origin, decision)
        self._execute(incoming, origin, decision)
        return None

    async def _route_later(self, incoming: IncomingRequest, origin: Origin, lookup: Lookup) -> None:
        assert self.router is not None
        self._execute(incoming, origin, await self.router.finish(lookup))

    def _execute(self, incoming: IncomingRequest, origin: Origin, decision: Decision) -> None:
        """Carry out the router's decision for ``incoming``."""
        request = incoming.request
        stats = self.stats
        forwarder = self.forwarder
        assert forwarder is not None
        if isinstance(decision, Reply):
            stats.replies += 1
            if incoming.transaction is not None:
                incoming.respond(decision.status, decision.reason, headers=decision.headers)
                stats.count_response(decision.status)
        elif isinstance(decision, Drop):
            stats.dropped += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("drop %s from %s: %s", request.method, origin.address, decision.reason)
            if incoming.transaction is not None and self.endpoint is not None:
                self.endpoint.transactions.discard(incoming.transaction)
        elif incoming.transaction is None:  # an ACK for a 2xx: stateless (§16.11)
            forwarder.forward_stateless(request)
        elif not isinstance(decision, Forward | Relay):  # Cancel: the endpoint answers CANCEL
            incoming.respond(481)
        elif not forwarder.admit(decision.request, origin.host):
            incoming.respond(503, "Service Unavailable", headers=(("Retry-After", "5"),))
            stats.count_response(503)
        elif isinstance(decision, Forward):
            forwarder.start(
                incoming,
                decision.request,
                decision.targets,
                record_route=decision.record_route,
                failover=decision.failover,
                dispatch_set=decision.dispatch_set,
            )
        else:
            forwarder.start(
                incoming, decision.request, (decision.target,), record_route=decision.record_route
            )

    def _on_stray_response(self, response: Response) -> None:
        """A response without a client transaction: forward it by its Via (§16.7, §18.2.2)."""
        vias = response.via
        if len(vias) < 2 or self.router is None or self.forwarder is None:
            return
        top = vias[0]
        if not self.router.config.validation.is_own(top.host, top.port):
            return
        response.headers.pop_first("Via")
        self.forwarder.send_stateless_response(response)

    def _on_cancel(self, invite: ServerTransaction) -> bool:
        return self.forwarder is not None and self.forwarder.cancel(invite)

    # ------------------------------------------------------------------ status

    async def snapshot(self) -> dict[str, Any]:
        """Everything ``trunkline status`` shows, as JSON-ready data.

        The first of several workers adds what the others published
        (:func:`~trunkline.proxy.status.merge_snapshots`); registrations come
        from the location service, which they share.
        """
        now = self.clock()
        data = self.local_snapshot(now)
        if self.worker.shared and self.worker.primary:
            others = self.status_board.read(now, exclude=self.worker.index)
            data = merge_snapshots(data, others, index=self.worker.index, pid=os.getpid())
        bindings = await self.location.all_bindings(now) if self.location is not None else []
        data["bindings"] = [
            {
                "aor": b.aor,
                "contact": b.contact_uri,
                "expires_in": b.expires_in(now),
                "received": b.received,
                "transport": b.transport,
                "user_agent": b.user_agent,
            }
            for b in bindings[:1000]
        ]
        data["registered_contacts"] = len(bindings)
        return data

    def local_snapshot(self, now: float) -> dict[str, Any]:
        """This process's part of the status: counters, calls, transactions, bans."""
        flood = self.antiflood.counters.as_dict() if self.antiflood is not None else {}
        bans = self.antiflood.bans(now) if self.antiflood is not None else []
        return self.stats.snapshot(
            now,
            domains=self.domains,
            listeners={k: f"{bracket(h)}:{p}" for k, (h, p) in self.addresses.items()},
            transactions=self.active_transactions,
            contexts=len(forwarder.contexts) if (forwarder := self.forwarder) else 0,
            flood=flood,
            bans=[{"source": host, "until": until} for host, until in bans],
            registrar={
                "registered": self.registrar.registered if self.registrar else 0,
                "rejected": self.registrar.rejected if self.registrar else 0,
            },
            handoff=self._handoff.counters() if self._handoff is not None else {},
        )
