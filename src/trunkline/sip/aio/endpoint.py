"""The asyncio SIP endpoint: transports + transaction layer + the TU's async API.

:class:`SipEndpoint` binds transports (:mod:`.transport`), parses what they
deliver, stamps ``received``/``rport`` (RFC 3261 §18.2.1, RFC 3581), drives
the sans-IO :class:`~trunkline.sip.transaction_table.TransactionLayer` with
``loop.time()`` and arms one ``loop.call_at`` for its earliest deadline, and
sends what the layer emits per §18 (responses per §18.2.2; requests to the
next hop of §8.1.2, switched from UDP to TCP above 1300 bytes, §18.1.1).

The transaction user (a softphone, a proxy, a PBX) sees::

    endpoint.on_request = handler          # def or async def handler(incoming: IncomingRequest)
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

A request that fails to parse is answered statelessly with the status its
:class:`~trunkline.sip.errors.SipParseError` carries when Via, From, To,
Call-ID and CSeq can be copied (§8.2, :mod:`.malformed`), else dropped. A UDP
datagram that cannot start a SIP message (STUN) first goes to
:meth:`SipEndpoint.on_foreign_datagram`.

The endpoint is split by concept: sending and addressing in :mod:`.sending`,
client transactions and failover in :mod:`.client`, what the TU is handed in
:mod:`.incoming`; every public name stays importable from here. Dialogs
(INVITE/ACK/BYE with 2xx retransmission, RFC 3261 §12-§15) are in
:mod:`trunkline.sip.aio.calls`, built on the same API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from trunkline import logcontext
from trunkline.sip.aio import websocket as _websocket  # registers WS and WSS
from trunkline.sip.aio.client import (
    TIMEOUT_STATUS,
    TRANSPORT_ERROR_STATUS,
    ClientRequests,
    ProvisionalCallback,
    _Pending,
)
from trunkline.sip.aio.failover import FailoverPlan, TargetBlocklist
from trunkline.sip.aio.incoming import EndpointStats, IncomingRequest, Source
from trunkline.sip.aio.malformed import error_response
from trunkline.sip.aio.routing import Destination, stamp_received
from trunkline.sip.aio.sending import Resolver
from trunkline.sip.aio.trace import format_address
from trunkline.sip.aio.transport import Connection, Inbound, Listener, TransportLayer
from trunkline.sip.builder import make_response
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
)
from trunkline.sip.message import Request, Response, parse_message
from trunkline.sip.timers import DEFAULT_TIMERS, TimerConfig
from trunkline.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    TransactionState,
)
from trunkline.sip.transaction_table import TransactionLayer

__all__ = [
    "TIMEOUT_STATUS",
    "TRANSPORT_ERROR_STATUS",
    "Destination",
    "EndpointStats",
    "IncomingRequest",
    "ProvisionalCallback",
    "Resolver",
    "SipEndpoint",
    "Source",
]

logger = logging.getLogger("trunkline.sip.endpoint")

assert _websocket.SIP_SUBPROTOCOL == "sip"

RequestHandler = Callable[[IncomingRequest], Awaitable[None] | None]
"""The TU's request handler: a coroutine function (run in a task), or a plain function
that handles the request at once and returns None (no task: the proxy's fast path) or
an awaitable for the part that must wait (run in a task)."""
StrayResponseHandler = Callable[[Response], None]
ForeignDatagramHandler = Callable[[bytes, Source], bool]


#: Bytes a SIP message can start with: a §25.1 token character (a Method, or
#: "SIP/2.0" of a status line) or the CRLF that §7.5 says to skip.
_SIP_FIRST_BYTES = frozenset(
    bytes([c])
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~\r\n"
)


def _source_of(inbound: Inbound) -> Source:
    peer = inbound.peer
    return Source(inbound.transport, peer[0], peer[1], inbound.local, inbound.connection)


class SipEndpoint(ClientRequests):
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
        self._current_size = 0
        self._pumping = False
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
        reuse_port: bool = False,
    ) -> Listener:
        """Bind a transport; port 0 picks a free one (read it from the result).
        ``reuse_port`` shares the port with other processes (``SO_REUSEPORT``)."""
        return await self.transport.listen(
            transport, host, port, ssl_context=ssl_context, reuse_port=reuse_port
        )

    async def close(self) -> None:
        """Stop timers, fail pending requests, close every socket."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for pending in self._pending.values():
            pending.abandon()
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
        data = inbound.data
        if inbound.transport == "UDP" and data[:1] not in _SIP_FIRST_BYTES:
            source = _source_of(inbound)
            if self.on_foreign_datagram(data, source):
                self.stats.foreign += 1
                return
        try:
            message = parse_message(data)
            if isinstance(message, Request):
                source = _source_of(inbound)
                self._current_source = source
                self._current_size = len(data)
                self._receive_request(message, source)
            else:  # a response goes by its Via (§18.2.2): its source is not needed
                self._receive_response(message)
        except SipParseError as exc:
            self._current_source = None
            self._reject_malformed(data, _source_of(inbound), exc)
            return
        try:
            self.pump()
        finally:
            self._current_source = None

    def on_foreign_datagram(self, data: bytes, source: Source) -> bool:
        """A UDP datagram whose first byte cannot start a SIP message (RFC 3261 §7).

        The public hook for protocols sharing the SIP socket, e.g. STUN
        (RFC 5389 §6: its first two bits are zero; RFC 7983 §7 demultiplexing).
        Return True when the datagram was consumed; False (this default) parses
        it as SIP, which drops it as malformed.
        """
        return False

    def _reject_malformed(self, data: bytes, source: Source, exc: SipParseError) -> None:
        """RFC 3261 §8.2, §16.3: answer a malformed request statelessly with the status
        its :class:`SipParseError` carries (400, 413, 416, 505, 513) when the start
        line is a request and Via/From/To/Call-ID/CSeq can be copied; else drop.
        The answer goes back where the request came from (as ``rport`` would,
        RFC 3581 §4): the Via itself may be what is malformed."""
        self.stats.malformed += 1
        reply = error_response(data, exc.status, exc.reason, server=self.user_agent)
        logger.info(
            "%s a malformed message from %s %s: %s",
            "rejected" if reply is not None else "dropped",
            source.transport,
            format_address(source.address),
            exc,
        )
        if reply is None:
            return
        self.stats.rejected += 1
        destination = Destination(source.transport.upper(), source.host, source.port)
        self._send_bytes(reply, destination, connection=source.connection)

    def _receive_request(self, request: Request, source: Source) -> None:
        # parse_message checked what every layer needs (Via, Call-ID, CSeq and its
        # method, From, To: §8.2, RFC 4475), so a malformed one raised already.
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
        incoming = IncomingRequest(self, cancel, txn, source, wire_size=self._current_size)
        self.handle_cancel(incoming, invite)

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
        # Via, Call-ID and CSeq were checked by parse_message.
        self.stats.responses += 1
        self.transactions.receive_response(response, self.loop.time())

    # -- the pump: transmits out, events up, one timer ---------------------------------
    def pump(self) -> None:
        """Send what the layers queued, hand events to the TU, re-arm the timer.

        A TU that answers or forwards from inside an event (a synchronous
        handler) calls back in here: the running pump's loop picks up what it
        queued, so the nested call returns at once.
        """
        if self._pumping:
            return
        self._pumping = True
        try:
            self._pump()
        finally:
            self._pumping = False
        self.rearm()

    def _pump(self) -> None:
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
            # The Call-ID on every log line of the handling (and of the tasks it starts).
            token = logcontext.call_id.set(event.request.call_id)
            try:
                self._deliver_request(event.request, event.transaction, source)
            finally:
                logcontext.call_id.reset(token)
        elif isinstance(event, ResponseReceived):
            token = logcontext.call_id.set(event.response.call_id)
            try:
                if self.dialogs is not None:
                    verdict = self.dialogs.response_received(event.response, self.loop.time())
                    if not verdict.fresh:
                        return  # a 2xx retransmission, re-ACKed by the dialog layer (§13.2.2.4)
                self._deliver_response(event.response, event.transaction)
            finally:
                logcontext.call_id.reset(token)
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
        size = self._current_size if source is self._current_source else 0
        incoming = IncomingRequest(self, request, txn, source, wire_size=size)
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
        try:
            pending = handler(incoming)
        except Exception:
            self._handler_failed(incoming)
            return
        if pending is not None:  # a coroutine (or the rest of the work): in a task
            self._spawn(self._run_handler(pending, incoming))

    async def _run_handler(self, pending: Awaitable[None], incoming: IncomingRequest) -> None:
        try:
            await pending
        except Exception:
            self._handler_failed(incoming)

    def _handler_failed(self, incoming: IncomingRequest) -> None:
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

    # -- misc ---------------------------------------------------------------------------
    def _on_connection_closed(self, conn: Connection) -> None:
        logger.debug("%r closed", conn)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
