"""The asyncio SIP endpoint: transports + transaction layer + the TU's async API.

:class:`SipEndpoint` binds transports (:mod:`.transport`), parses what they
deliver, stamps ``received``/``rport`` (RFC 3261 §18.2.1, RFC 3581), drives
the sans-IO :class:`~trunkline.sip.transaction_table.TransactionLayer` with
``loop.time()`` and arms one ``loop.call_at`` for its earliest deadline, and
sends what the layer emits per §18 (responses per §18.2.2; requests to the
next hop of §8.1.2, switched from UDP to TCP above 1300 bytes, §18.1.1).

The transaction user (a softphone, a proxy, a PBX) sees::

    endpoint.on_request = handler          # async def handler(incoming: IncomingRequest)
    await incoming.respond(180)            # through the server transaction
    response = await endpoint.send_request(request, on_provisional=cb)
    endpoint.send_stateless(message, destination)   # proxies (§16.11)

A request without an explicit destination whose next hop is a name is sent
to the targets of RFC 3263 server location in order: on a transport error, a
timeout without any response or a 503 the same request goes to the next
target with a new branch (RFC 3263 §4.3, :mod:`.failover`); a 503 with
Retry-After keeps that target out of later requests for that long. The TU's
transaction handle stays valid across the move (``wait_final``, ``cancel``,
``current_transaction``).

A CANCEL is matched to its INVITE (§9.2) and handed to :meth:`SipEndpoint.handle_cancel`,
the extension point a proxy overrides for §16.10; the default answers 200 and
487s the INVITE.

Dialogs (INVITE/ACK/BYE with 2xx retransmission, RFC 3261 §12-§15) are in
:mod:`trunkline.sip.aio.calls`, built on the same API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from trunkline.sip.aio import websocket as _websocket  # registers WS and WSS
from trunkline.sip.aio.failover import (
    FailoverPlan,
    TargetBlocklist,
    retry_after,
    retry_request,
    should_fail_over,
)
from trunkline.sip.aio.incoming import EndpointStats, IncomingRequest, Source
from trunkline.sip.aio.routing import (
    Destination,
    choose_transport,
    is_ip_literal,
    next_hop,
    response_destination,
    stamp_received,
    uri_destination,
)
from trunkline.sip.aio.trace import format_address
from trunkline.sip.aio.transport import (
    RELIABLE,
    Connection,
    Inbound,
    Listener,
    TransportError,
    TransportLayer,
    is_ipv6,
)
from trunkline.sip.builder import make_response, new_branch
from trunkline.sip.dialog_table import DialogLayer
from trunkline.sip.dns import Locator
from trunkline.sip.errors import LocalSipError, SipParseError
from trunkline.sip.events import (
    Event,
    MergedRequestRejected,
    Peer,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    TransactionTerminated,
    TransactionTimedOut,
    TransactionTransportError,
    Transmit,
)
from trunkline.sip.headers import Via
from trunkline.sip.message import Request, Response, parse_message
from trunkline.sip.timers import DEFAULT_TIMERS, TimerConfig
from trunkline.sip.transaction import (
    ClientInviteTransaction,
    ClientTransaction,
    ServerTransaction,
    TransactionState,
)
from trunkline.sip.transaction_table import TransactionLayer

__all__ = [
    "Destination",
    "EndpointStats",
    "IncomingRequest",
    "SipEndpoint",
    "Source",
]

logger = logging.getLogger("trunkline.sip.endpoint")

assert _websocket.SIP_SUBPROTOCOL == "sip"

ProvisionalCallback = Callable[[Response], None]
RequestHandler = Callable[[IncomingRequest], Awaitable[None]]
StrayResponseHandler = Callable[[Response], None]
Resolver = Callable[[str, int], Awaitable[list[str]]]

#: §8.1.3.1 / §17.1.4: what the TU sees when the transaction fails locally.
TIMEOUT_STATUS = (408, "Request Timeout")
TRANSPORT_ERROR_STATUS = (503, "Service Unavailable")

_SECURE = frozenset({"TLS", "WSS"})


@dataclass(slots=True)
class _Pending:
    """A client transaction the TU awaits."""

    future: asyncio.Future[Response]
    on_provisional: ProvisionalCallback | None
    responses: list[Response] = field(default_factory=list)
    failover: FailoverPlan | None = None


class SipEndpoint:
    """One SIP endpoint: its transports, its transaction layer, its TU callbacks."""

    def __init__(
        self,
        *,
        timers: TimerConfig = DEFAULT_TIMERS,
        client_ssl: ssl.SSLContext | None = None,
        idle_timeout: float = 300.0,
        keepalive_interval: float | None = None,
        mtu_limit: int = 1300,
        auto_trying: bool = True,
        reject_merged: bool = True,
        user_agent: str | None = "Trunkline",
        resolver: Resolver | None = None,
        dialogs: bool = True,
        locator: Locator | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.timers = timers
        self.mtu_limit = mtu_limit
        self.user_agent = user_agent
        self.stats = EndpointStats()
        self.transactions = TransactionLayer(
            timers, auto_trying=auto_trying, reject_merged=reject_merged
        )
        self.transport = TransportLayer(
            self._on_inbound,
            idle_timeout=idle_timeout,
            keepalive_interval=keepalive_interval,
            client_ssl=client_ssl,
            on_connection_closed=self._on_connection_closed,
        )
        self.on_request: RequestHandler | None = None
        self.on_stray_response: StrayResponseHandler | None = None
        self.on_ack: Callable[[IncomingRequest], bool] | None = None
        """Optional synchronous hook for ACKs (no transaction, nothing to answer):
        return True when handled, False to pass the ACK on to ``on_request``. It
        saves a task per call; it must not block or await."""
        self.on_event: Callable[[Event], None] | None = None
        self._resolver = resolver or self._getaddrinfo
        self.locator = locator
        """RFC 3263 server location (NAPTR/SRV/A); without it, plain A/AAAA lookups."""
        self._pending: dict[int, _Pending] = {}
        self.blocklist = TargetBlocklist()
        """Targets that answered 503 with Retry-After (RFC 3261 §21.5.4), skipped until then."""
        self._moved: dict[int, FailoverPlan] = {}  # id(origin txn) -> its failover plan
        self._server_names: dict[tuple[str, str, int], str] = {}  # TLS/WSS SNI per target
        self._incoming: dict[int, IncomingRequest] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer_hooks: list[tuple[Callable[[], float | None], Callable[[float], None]]] = []
        self._current_source: Source | None = None
        self._closed = False
        self.dialogs: DialogLayer | None = DialogLayer(timers) if dialogs else None
        """The dialog layer (RFC 3261 §12-§15); None for a proxy, which keeps no dialogs."""
        if self.dialogs is not None:
            self._timer_hooks.append((self.dialogs.get_timer, self.dialogs.handle_timer))

    # -- setup ----------------------------------------------------------------------
    async def listen(
        self,
        transport: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Listener:
        """Bind a transport; port 0 picks a free one (read it from the result)."""
        return await self.transport.listen(transport, host, port, ssl_context=ssl_context)

    async def close(self) -> None:
        """Stop timers, fail pending requests, close every socket."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.cancel()
        self._pending.clear()
        self._moved.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self.transport.close()

    def add_timer_source(
        self, get_timer: Callable[[], float | None], handle_timer: Callable[[float], None]
    ) -> None:
        """Let another sans-IO layer (the dialog layer) share the endpoint's one timer."""
        self._timer_hooks.append((get_timer, handle_timer))
        self.rearm()

    # -- receiving ------------------------------------------------------------------
    def _on_inbound(self, inbound: Inbound) -> None:
        self.stats.received += 1
        try:
            message = parse_message(inbound.data)
            source = Source(
                inbound.transport,
                inbound.peer[0],
                inbound.peer[1],
                inbound.local,
                inbound.connection,
            )
            if isinstance(message, Request):
                self._current_source = source
                self._receive_request(message, source)
            else:
                self._receive_response(message)
        except SipParseError as exc:
            self.stats.malformed += 1
            logger.info(
                "dropped a malformed message from %s %s: %s",
                inbound.transport,
                format_address(inbound.peer),
                exc.reason,
            )
            return
        try:
            self.pump()
        finally:
            self._current_source = None

    def _receive_request(self, request: Request, source: Source) -> None:
        # Touch the fields every layer needs so a malformed one raises here (§8.2).
        if not request.via:
            raise SipParseError("Missing Via header")
        _ = (request.call_id, request.cseq, request.from_, request.to)
        if request.cseq.method != request.method:
            raise SipParseError("CSeq method does not match the request method")
        self.stats.requests += 1
        stamp_received(request, source.address)
        now = self.loop.time()
        if request.method == "CANCEL":
            self._receive_cancel(request, source, now)
            return
        self.transactions.receive_request(request, source.peer, now)

    def _receive_cancel(self, cancel: Request, source: Source, now: float) -> None:
        """RFC 3261 §9.2: match the CANCEL, give it a server transaction, then
        :meth:`handle_cancel`. Kept for subclasses that override it; new code
        overrides :meth:`handle_cancel` instead."""
        invite = self.transactions.find_cancelled(cancel)
        txn = self.transactions.receive_request(cancel, source.peer, now)
        self.transactions.drain_events()  # the CANCEL is handled here, not by on_request
        if txn is None:
            return  # a retransmitted CANCEL, answered by its transaction
        self.handle_cancel(IncomingRequest(self, cancel, txn, source), invite)

    def handle_cancel(self, cancel: IncomingRequest, invite: ServerTransaction | None) -> None:
        """A new CANCEL arrived: the public extension point for proxies (RFC 3261 §16.10).

        ``cancel`` carries the CANCEL's own server transaction (answer it with
        ``cancel.respond``); ``invite`` is the INVITE server transaction it
        matches (§9.2), or None. This default is the UA behaviour of §9.2: 481
        when nothing matches or the INVITE already has its final response,
        else 200 to the CANCEL and 487 to the INVITE (:meth:`terminate_invite`).
        A stateful proxy overrides it to answer 200 and CANCEL its pending
        branches, leaving the INVITE's final response to the response context,
        and forwards an unmatched CANCEL statelessly (§16.10).
        """
        if invite is None or invite.state is not TransactionState.PROCEEDING:
            cancel.respond(481, "Call/Transaction Does Not Exist")
            return
        last = invite.last_response
        # §9.2: the To tag of the 200 SHOULD be that of the INVITE's responses.
        cancel.respond(200, "OK", to_tag=last.to_tag if last is not None else None)
        self.terminate_invite(invite)

    def terminate_invite(
        self,
        invite: ServerTransaction,
        status: int = 487,
        reason: str = "Request Terminated",
    ) -> None:
        """Answer a cancelled INVITE (487 by default, §9.2) and mark its
        :class:`IncomingRequest` ``cancelled`` so the TU stops working on it."""
        incoming = self._incoming.get(id(invite))
        if incoming is not None:
            incoming.cancelled = True
            incoming._final = True
        last = invite.last_response
        to_tag = last.to_tag if last is not None else None
        self.send_response(invite, make_response(invite.request, status, reason, to_tag=to_tag))

    def incoming_for(self, transaction: ServerTransaction) -> IncomingRequest | None:
        """The :class:`IncomingRequest` handed to the TU for ``transaction``, if still open."""
        return self._incoming.get(id(transaction))

    def _receive_response(self, response: Response) -> None:
        if not response.via:
            raise SipParseError("Missing Via header")
        _ = (response.call_id, response.cseq)
        self.stats.responses += 1
        self.transactions.receive_response(response, self.loop.time())

    # -- the pump: transmits out, events up, one timer ---------------------------------
    def pump(self) -> None:
        """Send what the layers queued, hand events to the TU, re-arm the timer."""
        ours = self.transactions.outbox
        theirs = self.dialogs.outbox if self.dialogs is not None else None
        for _ in range(1000):  # events can queue transmits and vice versa; bounded
            # Peek before draining: most pumps find one queue, or none, non-empty.
            transmits = ours.drain_transmits() if ours.transmits else []
            events = ours.drain_events() if ours.events else []
            if theirs is not None:
                if theirs.transmits:
                    transmits += theirs.drain_transmits()
                if theirs.events:
                    events += theirs.drain_events()
            if not transmits and not events:
                break
            for transmit in transmits:
                self._transmit(transmit)
            for event in events:
                self._dispatch(event)
        self.rearm()

    def rearm(self) -> None:
        """Arm one ``call_at`` at the earliest deadline of all layers.

        An armed timer is only replaced by an earlier one: when the earliest
        deadline moved later (or went away) the armed one fires early, finds
        nothing due and re-arms. That trades a rare idle wake-up for a
        cancel + ``call_at`` on most messages under load.
        """
        if self._closed:
            return
        at = self.transactions.get_timer()
        for get_timer, _ in self._timer_hooks:
            other = get_timer()
            if other is not None and (at is None or other < at):
                at = other
        if at is None:
            return
        armed = self._timer_at
        if self._timer is not None:
            if armed is not None and armed <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.loop.time()
        self.transactions.handle_timer(now)
        for _, handle_timer in self._timer_hooks:
            handle_timer(now)
        self.pump()

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            source = self._current_source
            if source is None:
                peer = event.peer or Peer("udp", "", 0)
                source = Source(peer.transport.upper(), peer.host, peer.port, ("", 0))
            self._deliver_request(event.request, event.transaction, source)
        elif isinstance(event, ResponseReceived):
            if self.dialogs is not None:
                verdict = self.dialogs.response_received(event.response, self.loop.time())
                if not verdict.fresh:
                    return  # a 2xx retransmission, re-ACKed by the dialog layer (§13.2.2.4)
            self._deliver_response(event.response, event.transaction)
        elif isinstance(event, SendRequest):
            self._spawn(self._send_layer_request(event.request))
        elif isinstance(event, TransactionTimedOut | TransactionTransportError):
            txn = event.transaction
            if isinstance(txn, ClientTransaction):
                timed_out = isinstance(event, TransactionTimedOut)
                status, reason = TIMEOUT_STATUS if timed_out else TRANSPORT_ERROR_STATUS
                moved = self._finish(txn, make_response(txn.request, status, reason), local=True)
                if self.dialogs is not None and timed_out and not moved:
                    self.dialogs.request_timed_out(txn.request, self.loop.time())
            else:
                logger.info("%r: %s", txn, event)
        elif isinstance(event, TransactionTerminated):
            txn = event.transaction
            self._incoming.pop(id(txn), None)
            if isinstance(txn, ClientTransaction):
                if id(txn) in self._pending:
                    last = txn.last_response
                    if last is not None and last.status >= 200:
                        self._finish(txn, last)
                    else:
                        self._finish(txn, make_response(txn.request, *TIMEOUT_STATUS), local=True)
                plan = self._moved.get(id(txn))
                if plan is not None and plan.final is not None:
                    del self._moved[id(txn)]
        elif isinstance(event, MergedRequestRejected):
            logger.info("482 for a merged request, Call-ID %s", event.request.call_id)
        if self.on_event is not None:
            self.on_event(event)

    def _deliver_request(
        self, request: Request, txn: ServerTransaction | None, source: Source
    ) -> None:
        incoming = IncomingRequest(self, request, txn, source)
        if self.dialogs is not None:
            verdict = self.dialogs.request_received(request, self.loop.time())
            if verdict.status is not None:  # 481, 500, 491, 422 (§12.2.2, §14.2, RFC 4028)
                if txn is not None:
                    incoming.respond(verdict.status, headers=verdict.headers)
                return
            incoming.dialog = verdict.dialog
            incoming.dialog_headers = verdict.headers
        if txn is not None:
            self._incoming[id(txn)] = incoming
        elif self.on_ack is not None and request.method == "ACK" and self.on_ack(incoming):
            return
        handler = self.on_request
        if handler is None:
            if txn is not None:
                self._default_answer(incoming)
            return
        self._spawn(self._run_handler(handler, incoming))

    async def _run_handler(self, handler: RequestHandler, incoming: IncomingRequest) -> None:
        try:
            await handler(incoming)
        except Exception:
            logger.exception("request handler failed for %s", incoming.request.method)
            if incoming.transaction is not None and not incoming.answered:
                with contextlib.suppress(LocalSipError):
                    incoming.respond(500, "Server Internal Error")

    def _default_answer(self, incoming: IncomingRequest) -> None:
        if incoming.request.method == "OPTIONS":
            incoming.respond(200, "OK")
        else:
            incoming.respond(501, "Not Implemented")

    def _deliver_response(self, response: Response, txn: ClientTransaction | None) -> None:
        pending = self._pending.get(id(txn)) if txn is not None else None
        if pending is None:
            self.stats.stray_responses += 1
            if self.on_stray_response is not None:
                self.on_stray_response(response)
            return
        if response.status < 200:
            if pending.on_provisional is not None:
                pending.on_provisional(response)
            return
        assert txn is not None
        self._finish(txn, response)

    def _finish(self, txn: ClientTransaction, response: Response, *, local: bool = False) -> bool:
        """Hand the final response to the TU, or fail over (RFC 3263 §4.3): True if moved.

        ``local`` marks a response made up for a timeout or a transport error.
        """
        pending = self._pending.pop(id(txn), None)
        if pending is None or pending.future.done():
            return False
        plan = pending.failover
        if plan is not None:
            if self._fail_over(txn, pending, plan, response, local):
                return True
            plan.final = response
            origin = plan.origin
            if origin is not None and origin.state is TransactionState.TERMINATED:
                self._moved.pop(id(origin), None)
        pending.future.set_result(response)
        return False

    def _fail_over(
        self,
        txn: ClientTransaction,
        pending: _Pending,
        plan: FailoverPlan,
        response: Response,
        local: bool,
    ) -> bool:
        """Retry on the next target with a new branch when ``response`` is a failure."""
        now = self.loop.time()
        if response.status == 503 and not local:
            seconds = retry_after(response)
            if seconds is not None:
                self.blocklist.block(plan.current_destination, now, seconds)
        answered = txn.last_response is not None
        if plan.cancelled or self._closed:
            return False
        if not should_fail_over(response, local=local, answered=answered):
            return False
        while True:
            target = plan.next_target(self.blocklist, now)
            if target is None:
                return False
            request = retry_request(txn.request, plan.own_via)
            try:
                destination = self._prepare_now(request, target, None, plan.own_via)
            except LocalSipError as exc:  # e.g. no listener to name in Via
                logger.info("cannot fail over %s to %s: %s", request.method, target, exc)
                continue
            break
        logger.info(
            "%s to %s %s failed with %d; trying %s %s",
            request.method,
            plan.current_destination.transport,
            format_address((plan.current_destination.host, plan.current_destination.port)),
            response.status,
            destination.transport,
            format_address((destination.host, destination.port)),
        )
        plan.tried.append(plan.current_destination)
        plan.current_destination = destination
        plan.current = self._launch(request, destination, None, pending, now)
        if plan.origin is not None:
            self._moved[id(plan.origin)] = plan
        return True

    # -- sending ----------------------------------------------------------------------
    def _transmit(self, transmit: Transmit) -> None:
        message = transmit.message
        peer = transmit.peer
        if isinstance(message, Response):
            self._send_response_message(message, peer)
            return
        if peer is None:  # the ACK of a 2xx: routed from the request itself (§13.2.2.4)
            destination = self.resolve_now(message)
            if destination is None:
                self._spawn(self.send_ack(message))
                return
            destination = self._prepare_now(message, destination, None, None)
            self._send_bytes(bytes(message), destination)
            return
        name = peer.transport.upper()
        server_name = (
            self._server_names.get((name, peer.host, peer.port)) if name in _SECURE else None
        )
        self._send_bytes(
            bytes(message),
            Destination(name, peer.host, peer.port, server_name),
            request=message,
        )

    def _send_bytes(
        self,
        data: bytes,
        destination: Destination,
        *,
        request: Request | None = None,
        connection: Connection | None = None,
    ) -> None:
        """Send now when possible (UDP, open connection); else connect in a task."""
        name = destination.transport
        address = (destination.host, destination.port)
        try:
            if name == "UDP":
                self.transport.udp_socket_for(address).sendto(data, address)
                self.stats.sent += 1
                return
            conn = (
                connection
                if connection is not None and not connection.closed
                else (self.transport.lookup(name, address))
            )
            if conn is not None:
                conn.send(data)
                self.stats.sent += 1
                return
        except TransportError as exc:
            self._send_failed(request, str(exc))
            return
        self._spawn(self._connect_and_send(data, destination, request))

    async def _connect_and_send(
        self, data: bytes, destination: Destination, request: Request | None
    ) -> None:
        try:
            await self.transport.send(
                data,
                destination.transport,
                (destination.host, destination.port),
                server_name=destination.server_name,
            )
            self.stats.sent += 1
        except TransportError as exc:
            self._send_failed(request, str(exc))
            self.pump()

    def _send_failed(self, request: Request | None, reason: str) -> None:
        self.stats.transport_errors += 1
        logger.info("send failed: %s", reason)
        if request is None:
            return
        txn = self.transactions.find_client(request)
        if txn is not None:
            self.transactions.transport_error(txn, self.loop.time(), reason)

    def _send_response_message(self, response: Response, peer: Peer | None) -> None:
        """RFC 3261 §18.2.2: the request's connection if open, else the Via rules."""
        data = bytes(response)
        if peer is not None and peer.transport.upper() in RELIABLE:
            conn = self.transport.lookup(peer.transport, (peer.host, peer.port))
            if conn is not None:
                try:
                    conn.send(data)
                    self.stats.sent += 1
                    return
                except TransportError:
                    pass
        if not response.via:
            logger.info("response %d without Via dropped", response.status)
            return
        self._send_bytes(data, response_destination(response.via[0]))

    def send_response(self, transaction: ServerTransaction, response: Response) -> None:
        """Answer through a server transaction (it retransmits as §17.2 says)."""
        if self.user_agent and "Server" not in response.headers:
            response.headers.add("Server", self.user_agent)
        self._respond(transaction, response, self.loop.time())
        self.pump()

    def _respond(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        self.transactions.send_response(transaction, response, now)
        if self.dialogs is not None:
            self.dialogs.response_sent(transaction.request, response, now, transaction.peer)

    def send_stateless(
        self,
        message: Request | Response,
        destination: Destination | None = None,
        *,
        connection: Connection | None = None,
    ) -> None:
        """Send without a transaction: a proxy's forwarded response (§16.7, §18.2.2)
        or a stateless request (a 2xx ACK, a stateless proxy's forward)."""
        if isinstance(message, Response) and destination is None and connection is None:
            self._send_response_message(message, None)
            return
        if destination is None:
            if connection is None:
                raise LocalSipError("a stateless request needs a destination or a connection")
            destination = Destination(connection.name, connection.peer[0], connection.peer[1])
        self._send_bytes(bytes(message), destination, connection=connection)

    def send_stateless_bytes(self, data: bytes, destination: Destination) -> None:
        """Send already rendered bytes (a re-sent ACK, a forwarded message)."""
        self._send_bytes(data, destination)

    # -- requests from the TU ----------------------------------------------------------
    def via_for(self, transport: str, *, ipv6: bool = False, branch: str | None = None) -> Via:
        """Our Via for a request sent over ``transport`` (with ``rport``, RFC 3581 §3)."""
        listener = self.transport.listener_for(transport, ipv6) or self.transport.listener_for(
            "UDP", ipv6
        )
        if listener is None:
            raise LocalSipError(f"no {transport} listener to name in Via")
        host = listener.host
        if host in ("0.0.0.0", "::"):
            host = "::1" if ipv6 else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        params: dict[str, str | None] = {"branch": branch or new_branch(), "rport": None}
        return Via(transport.upper(), host, listener.port, params)

    def contact_uri(
        self, transport: str = "UDP", *, user: str | None = None, ipv6: bool = False
    ) -> str:
        """A Contact URI naming one of our listeners."""
        listener = self.transport.listener_for(transport, ipv6)
        if listener is None:
            raise LocalSipError(f"no {transport} listener for a Contact")
        host = listener.host
        if ":" in host:
            host = f"[{host}]"
        userpart = f"{user}@" if user else ""
        scheme = "sips" if transport.upper() in ("TLS", "WSS") else "sip"
        param = "" if transport.upper() == "UDP" else f";transport={transport.lower()}"
        return f"{scheme}:{userpart}{host}:{listener.port}{param}"

    def resolve_now(self, request: Request) -> Destination | None:
        """The next hop of ``request`` (§8.1.2) when no DNS is needed, else None."""
        uri = next_hop(request)
        transport = choose_transport(uri, len(bytes(request)) + 80, mtu_limit=self.mtu_limit)
        dest = uri_destination(uri, transport)
        return dest if is_ip_literal(dest.host) else None

    async def resolve(self, request: Request) -> Destination:
        """The next hop of ``request`` (§8.1.2) as one transport and address: the first
        of :meth:`locate`."""
        return (await self.locate(request))[0]

    async def locate(self, request: Request) -> list[Destination]:
        """Every destination to try for ``request``, best first (RFC 3263 §4).

        An IP literal next hop gives one destination; a name goes through the
        :attr:`locator` (NAPTR/SRV/A) or, without one, A/AAAA lookups. Targets
        blocked by a 503's Retry-After (:attr:`blocklist`) are left out; raises
        :class:`TransportError` when nothing is left.
        """
        dest = self.resolve_now(request)
        if dest is not None:
            return [dest]
        uri = next_hop(request)
        if self.locator is not None:
            targets = await self.locator.locate(uri)
            found = [
                Destination(t.transport.upper(), t.address, t.port, server_name=t.domain)
                for t in targets
            ]
        else:
            transport = choose_transport(uri, len(bytes(request)) + 80, mtu_limit=self.mtu_limit)
            dest = uri_destination(uri, transport)
            addresses = await self._resolver(dest.host, dest.port)
            found = [
                Destination(transport, address, dest.port, server_name=dest.server_name)
                for address in dict.fromkeys(addresses)
            ]
        if not found:
            raise TransportError(f"cannot locate {uri}")
        usable = self.blocklist.usable(found, self.loop.time())
        if not usable:
            raise TransportError(f"every server for {uri} asked us to wait (503 Retry-After)")
        return usable

    async def _getaddrinfo(self, host: str, port: int) -> list[str]:
        infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        return [str(info[4][0]) for info in infos]

    async def prepare(
        self,
        request: Request,
        destination: Destination | None = None,
        *,
        connection: Connection | None = None,
        add_via: bool | None = None,
    ) -> Destination:
        """Pick the destination, add our Via, apply the §18.1.1 MTU rule."""
        if connection is not None and destination is None:
            destination = Destination(connection.name, connection.peer[0], connection.peer[1])
        if destination is None:
            destination = await self.resolve(request)
        return self._prepare_now(request, destination, connection, add_via)

    def _prepare_now(
        self,
        request: Request,
        destination: Destination,
        connection: Connection | None,
        add_via: bool | None,
    ) -> Destination:
        if add_via is None:
            add_via = not request.headers.get("Via")
        if add_via:
            via = self.via_for(destination.transport, ipv6=is_ipv6(destination.host))
            request.headers.prepend("Via", str(via))
        if self.user_agent and "User-Agent" not in request.headers:
            request.headers.add("User-Agent", self.user_agent)
        if (
            destination.transport == "UDP"
            and connection is None
            and len(bytes(request)) > self.mtu_limit
        ):
            destination = Destination(
                "TCP", destination.host, destination.port, destination.server_name
            )
            if add_via:
                top = request.via[0]
                tcp = Via("TCP", top.host, top.port, dict(top.params), top.protocol)
                request.via = [tcp, *request.via[1:]]
        return destination

    async def send_request(
        self,
        request: Request,
        destination: Destination | None = None,
        *,
        connection: Connection | None = None,
        add_via: bool | None = None,
        on_provisional: ProvisionalCallback | None = None,
    ) -> Response:
        """Send ``request`` in a new client transaction; return its final response.

        A 408 is returned when the transaction times out (Timer B/F) and a
        503 when the transport fails (RFC 3261 §8.1.3.1, §17.1.4).
        """
        txn = await self.start_request(
            request,
            destination,
            connection=connection,
            add_via=add_via,
            on_provisional=on_provisional,
        )
        return await self.wait_final(txn)

    async def start_request(
        self,
        request: Request,
        destination: Destination | None = None,
        *,
        connection: Connection | None = None,
        add_via: bool | None = None,
        on_provisional: ProvisionalCallback | None = None,
    ) -> ClientTransaction:
        """Like :meth:`send_request` but return the transaction at once (to CANCEL it)."""
        if request.method == "ACK":
            raise LocalSipError("an ACK is sent with send_ack(), outside transactions")
        plan: FailoverPlan | None = None
        if destination is None and connection is None:
            destination = self.resolve_now(request)
            if destination is None:  # a name: RFC 3263 targets, failed over in _finish
                destinations = await self.locate(request)
                destination = destinations[0]
                own_via = add_via if add_via is not None else not request.headers.get("Via")
                plan = FailoverPlan(destinations[1:], own_via, destination)
        destination = await self.prepare(
            request, destination, connection=connection, add_via=add_via
        )
        now = self.loop.time()
        pending = _Pending(self.loop.create_future(), on_provisional, failover=plan)
        txn = self._launch(request, destination, connection, pending, now)
        if plan is not None:
            plan.current_destination = destination
            plan.origin = plan.current = txn
        self.pump()
        return txn

    def _launch(
        self,
        request: Request,
        destination: Destination,
        connection: Connection | None,
        pending: _Pending,
        now: float,
    ) -> ClientTransaction:
        """Start one client transaction for ``request`` and register its waiter."""
        if connection is not None:
            peer = Peer(connection.name.lower(), connection.peer[0], connection.peer[1])
        else:
            peer = Peer(destination.transport.lower(), destination.host, destination.port)
            if destination.server_name and destination.transport in _SECURE:
                key = (destination.transport, destination.host, destination.port)
                self._server_names[key] = destination.server_name
        txn = self.transactions.send_request(request, peer, now)
        self._pending[id(txn)] = pending
        if self.dialogs is not None:
            self.dialogs.request_sent(request, now)
        return txn

    def current_transaction(self, txn: ClientTransaction) -> ClientTransaction:
        """The transaction now carrying the request ``txn`` started (after failover)."""
        plan = self._moved.get(id(txn))
        if plan is not None and plan.current is not None:
            return plan.current
        return txn

    async def wait_final(self, txn: ClientTransaction) -> Response:
        """The final response of a transaction from :meth:`start_request`."""
        pending = self._pending.get(id(txn))
        if pending is None:
            plan = self._moved.get(id(txn))
            if plan is not None:
                if plan.final is not None:
                    return plan.final
                if plan.current is not None:
                    pending = self._pending.get(id(plan.current))
        if pending is None:
            return txn.last_response or make_response(txn.request, *TIMEOUT_STATUS)
        return await pending.future

    def cancel(self, txn: ClientInviteTransaction) -> None:
        """CANCEL a pending INVITE (§9.1); its final response arrives as usual (487).

        After a failover ``txn`` may be an earlier attempt: the CANCEL goes to
        the current one, and no further target is tried.
        """
        current = self.current_transaction(txn)
        pending = self._pending.get(id(current))
        if pending is not None and pending.failover is not None:
            pending.failover.cancelled = True
        if isinstance(current, ClientInviteTransaction):
            self.transactions.cancel(current, self.loop.time())
        self.pump()

    async def send_ack(
        self, ack: Request, destination: Destination | None = None, *, add_via: bool | None = None
    ) -> Destination:
        """Send the ACK of a 2xx, outside any transaction (§13.2.2.4)."""
        destination = await self.prepare(ack, destination, add_via=add_via)
        self._send_bytes(bytes(ack), destination)
        return destination

    async def _send_layer_request(self, request: Request) -> None:
        """A request the dialog layer originated (PRACK, BYE after a lost ACK)."""
        try:
            response = await self.send_request(request)
        except (TransportError, LocalSipError, ValueError) as exc:
            logger.info("%s from the dialog layer not sent: %s", request.method, exc)
            return
        logger.debug("%s from the dialog layer: %d", request.method, response.status)

    # -- misc ---------------------------------------------------------------------------
    def _on_connection_closed(self, conn: Connection) -> None:
        logger.debug("%r closed", conn)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
