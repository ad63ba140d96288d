"""Stateful and stateless forwarding for the proxy server (RFC 3261 §16.6-16.11).

:class:`Forwarder` is the asyncio driver of the sans-IO
:class:`~trunkline.proxy.forking.ResponseContext`: one context per forwarded
request, its actions carried out on a :class:`~trunkline.sip.aio.endpoint.SipEndpoint`:

- ``SendBranch``: resolve the next hop (the registered flow or NAT binding,
  else RFC 3263), add Record-Route (§16.6 item 4; two entries when the
  transport changes, so both sides see an address they can reach) and our
  Via with the context's loop-detecting branch (item 8), start a client
  transaction; its provisionals and final response go back to the context;
- ``CancelBranch``: CANCEL the branch's INVITE (§9.1). A cancelled branch
  that stays silent counts as a 408 after ``CANCEL_GRACE`` (§16.8 ends with
  "the proxy MAY ... treat the transaction as if it had received a 408");
- ``SendUpstream``: the response goes through the server transaction; 2xx
  after the final response (and after a CANCEL's 487) go statelessly (§16.7
  step 9).

One timer per context (Timer C and the sequential-group timeout) on the loop.
Contexts run on loop time (monotonic), so ``now`` is ``loop.time()``.

Also here: the per-source transaction and dialog limits of
:class:`~trunkline.proxy.antiflood.AntiFlood`, the Contact of 1xx/2xx from
NATed callees rewritten to the binding they registered from (nathelper's
``fix_nated_contact`` on replies), dispatcher health reports from forwarded
requests, and the stateless paths: 2xx ACKs (§16.11) and responses matching
no client transaction (§16.7, §18.2.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from trunkline.proxy.antiflood import AntiFlood
from trunkline.proxy.dispatcher import Dispatcher, is_failover_status, retarget
from trunkline.proxy.forking import (
    TIMER_C,
    Action,
    CancelBranch,
    ResponseContext,
    SendBranch,
    SendUpstream,
)
from trunkline.proxy.nat import Origin, detect_nat, fix_contact
from trunkline.proxy.router import Target
from trunkline.proxy.status import ServerStats
from trunkline.proxy.validation import random_hex
from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint
from trunkline.sip.aio.routing import Destination
from trunkline.sip.aio.transport import Connection, TransportError
from trunkline.sip.builder import MAGIC_COOKIE
from trunkline.sip.errors import LocalSipError, SipParseError
from trunkline.sip.message import Request, Response
from trunkline.sip.transaction import ClientInviteTransaction, ClientTransaction, ServerTransaction
from trunkline.sip.via import Via

__all__ = ["CANCEL_GRACE", "TIMER_C", "Forwarder", "bracket", "split_hostport"]

log = logging.getLogger("trunkline.proxy.forwarder")

CANCEL_GRACE = 32.0
"""How long a cancelled branch may stay silent before it counts as a 408 (§16.8, 64*T1)."""

_DIALOG_FORMING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
_MAX_TRACKED_DIALOGS = 100_000


def bracket(host: str) -> str:
    """``host`` as it appears in a URI or Via: IPv6 in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def split_hostport(text: str) -> tuple[str, int]:
    """``host:port`` (IPv6 bracketed) into its parts."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(eq=False, slots=True)
class _Live:
    """A response context with what the server needs to execute it."""

    incoming: IncomingRequest
    context: ResponseContext
    inbound: str
    record_route: bool
    started: float
    source: str
    dispatch_set: str | None
    txns: dict[int, ClientTransaction] = field(default_factory=dict)
    cancel_wanted: set[int] = field(default_factory=set)
    upstream_final: bool = False
    established: bool = False
    timer: asyncio.TimerHandle | None = None
    timer_at: float | None = None
    graces: list[asyncio.TimerHandle] = field(default_factory=list)
    done: bool = False


class Forwarder:
    """Forwards requests for :class:`~trunkline.proxy.server.ProxyServer`; see the module doc.

    ``addresses`` is the server's advertised ``(host, port)`` per transport
    (shared, filled as listeners are bound).
    """

    def __init__(
        self,
        endpoint: SipEndpoint,
        addresses: dict[str, tuple[str, int]],
        stats: ServerStats,
        *,
        antiflood: AntiFlood | None = None,
        dispatcher: Dispatcher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.addresses = addresses
        self.stats = stats
        self.antiflood = antiflood
        self.dispatcher = dispatcher
        self.clock = clock
        self.contexts: dict[int, _Live] = {}
        """Running contexts by ``id()`` of their server transaction."""
        self._dialogs: dict[str, str] = {}
        """Call-ID -> caller's source address, for the per-source dialog limit."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rr_cache: dict[str, str] = {}

    # ------------------------------------------------------------------ admission

    def admit(self, request: Request, source: str) -> bool:
        """The per-source limits before a new context (False: answer 503)."""
        antiflood = self.antiflood
        if antiflood is None:
            return True
        now = self.clock()
        if not antiflood.transaction_started(source, now):
            return False
        if request.method == "INVITE" and request.to_tag is None:
            if not antiflood.dialog_started(source, now):
                antiflood.transaction_ended(source)
                return False
            if len(self._dialogs) < _MAX_TRACKED_DIALOGS:
                self._dialogs[request.call_id] = source
        return True

    def _dialog_over(self, call_id: str) -> None:
        source = self._dialogs.pop(call_id, None)
        if source is not None and self.antiflood is not None:
            self.antiflood.dialog_ended(source)

    # ------------------------------------------------------------------ contexts

    def start(
        self,
        incoming: IncomingRequest,
        request: Request,
        targets: Sequence[Target],
        *,
        record_route: bool,
        failover: frozenset[int] | None = None,
        dispatch_set: str | None = None,
    ) -> None:
        """Fork ``request`` (already pre-processed by the router) to ``targets`` (§16.6).

        The caller called :meth:`admit` first; every admitted request ends in
        :meth:`_finish` (which releases what admit counted).
        """
        source = incoming.source.host
        transaction = incoming.transaction
        if incoming.answered or transaction is None:  # cancelled (487) while routing
            self._release(request, source, established=False)
            return
        loop = self.endpoint.loop
        context = ResponseContext(request, targets, timer_c=TIMER_C, failover=failover)
        live = _Live(
            incoming,
            context,
            incoming.source.transport.upper(),
            record_route,
            loop.time(),
            source,
            dispatch_set,
        )
        if context.is_invite:
            incoming.respond(100, "Trying")  # §16.2: stop the upstream retransmissions
        self.contexts[id(transaction)] = live
        self.stats.forwarded += 1
        self._execute(live, context.start(live.started))

    def cancel(self, invite: ServerTransaction) -> bool:
        """§16.10: the INVITE was cancelled upstream; False when no context has it yet."""
        self.stats.cancels += 1
        live = self.contexts.get(id(invite))
        if live is None:
            return False
        self._execute(live, live.context.cancel(self.endpoint.loop.time()))
        return True

    def _execute(self, live: _Live, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendBranch):
                self._send_branch(live, action)
            elif isinstance(action, CancelBranch):
                self._cancel_branch(live, action.index)
            elif isinstance(action, SendUpstream):
                self._upstream(live, action.response)
        if live.context.finished:
            self._finish(live)
        else:
            self._arm(live)

    def _arm(self, live: _Live) -> None:
        """One timer per context: the earliest Timer C or group deadline."""
        when = live.context.get_timer()
        if when == live.timer_at:
            return
        if live.timer is not None:
            live.timer.cancel()
            live.timer = None
        live.timer_at = when
        if when is not None:
            live.timer = self.endpoint.loop.call_at(when, self._on_timer, live)

    def _on_timer(self, live: _Live) -> None:
        live.timer = None
        live.timer_at = None
        if not live.done:
            self._execute(live, live.context.handle_timer(self.endpoint.loop.time()))

    def _finish(self, live: _Live) -> None:
        if live.done:
            return
        live.done = True
        if live.timer is not None:
            live.timer.cancel()
        for handle in live.graces:
            handle.cancel()
        transaction = live.incoming.transaction
        if transaction is not None:
            self.contexts.pop(id(transaction), None)
        self._release(live.context.request, live.source, established=live.established)

    def _release(self, request: Request, source: str, *, established: bool) -> None:
        """Undo :meth:`admit`: the transaction is over; a call that failed is no dialog."""
        if self.antiflood is not None:
            self.antiflood.transaction_ended(source)
        method = request.method
        failed_call = method == "INVITE" and request.to_tag is None and not established
        if failed_call or method == "BYE":
            self._dialog_over(request.call_id)

    # ------------------------------------------------------------------ branches

    def _send_branch(self, live: _Live, send: SendBranch) -> None:
        """Start the branch's client transaction now; a task only when DNS is needed."""
        try:
            found = self._destination_now(send.request, send.target)
        except (TransportError, LocalSipError, SipParseError, ValueError, OSError) as exc:
            self._branch_error(live, send, exc)
            return
        if found is None:
            self.spawn(self._resolve_branch(live, send))
            return
        self._start_branch(live, send, *found)

    async def _resolve_branch(self, live: _Live, send: SendBranch) -> None:
        """The branch's next hop is a name: RFC 3263 first, then the transaction."""
        try:
            destination = await self.endpoint.resolve(send.request)
        except (TransportError, LocalSipError, SipParseError, ValueError, OSError) as exc:
            self._branch_error(live, send, exc)
            return
        if not live.done:
            self._start_branch(live, send, destination, None)

    def _start_branch(
        self,
        live: _Live,
        send: SendBranch,
        destination: Destination,
        connection: Connection | None,
    ) -> None:
        index, request, target = send.index, send.request, send.target
        try:
            self._stamp(request, live, destination.transport, send.branch)
            txn = self.endpoint.start_request_now(
                request,
                destination,
                connection=connection,
                add_via=False,
                on_provisional=partial(self._provisional, live, index, target),
                on_final=partial(self._final, live, send),
            )
        except (TransportError, LocalSipError, SipParseError, ValueError, OSError) as exc:
            self._branch_error(live, send, exc)
            return
        live.txns[index] = txn
        if index in live.cancel_wanted:
            self._cancel_txn(txn)

    def _branch_error(self, live: _Live, send: SendBranch, exc: Exception) -> None:
        log.info("branch to %s failed: %s", send.target.uri, exc)
        self._report(live, send.target, 503)
        loop = asyncio.get_running_loop()
        self._execute(live, live.context.branch_failed(send.index, 503, loop.time()))

    def _final(self, live: _Live, send: SendBranch, response: Response) -> None:
        """The branch's final response (a 408/503 made up for a timeout or transport error)."""
        if live.done:
            if 200 <= response.status < 300:  # a late 2xx still goes upstream (§16.7 step 9)
                self._upstream(live, _strip_via(response, send.branch))
            return
        target = send.target
        self._fix_nat(live, target, response)
        self._report(live, target, response.status)
        now = self.endpoint.loop.time()
        self._execute(live, live.context.receive_response(send.index, response, now))

    def _provisional(self, live: _Live, index: int, target: Target, response: Response) -> None:
        if live.done:
            return
        self._fix_nat(live, target, response)
        self._execute(
            live, live.context.receive_response(index, response, self.endpoint.loop.time())
        )

    def _cancel_branch(self, live: _Live, index: int) -> None:
        if not live.context.is_invite:
            return
        txn = live.txns.get(index)
        if txn is None:
            live.cancel_wanted.add(index)  # still resolving: cancelled once started
        else:
            self._cancel_txn(txn)
        loop = asyncio.get_running_loop()
        live.graces.append(loop.call_later(CANCEL_GRACE, self._give_up, live, index))

    def _cancel_txn(self, txn: ClientTransaction) -> None:
        if isinstance(txn, ClientInviteTransaction):
            with contextlib.suppress(LocalSipError):
                self.endpoint.cancel(txn)

    def _give_up(self, live: _Live, index: int) -> None:
        """A cancelled branch stayed silent: as if a 408 arrived (§16.8)."""
        if live.done:
            return
        txn = live.txns.get(index)
        actions = live.context.branch_failed(index, 408, self.endpoint.loop.time())
        if actions and txn is not None:
            self.endpoint.transactions.discard(txn)
        self._execute(live, actions)

    def _fix_nat(self, live: _Live, target: Target, response: Response) -> None:
        """A 1xx/2xx from a NATed callee: its Contact becomes the binding it registered from."""
        if (
            target.destination is None
            or target.route
            or response.status == 100
            or response.status >= 300
            or live.context.request.method not in _DIALOG_FORMING
        ):
            return
        host, port = split_hostport(target.destination)
        origin = Origin((target.transport or "udp").upper(), host, port)
        with contextlib.suppress(SipParseError):
            if detect_nat(response, origin).behind_nat:
                fix_contact(response, origin)

    def _report(self, live: _Live, target: Target, status: int) -> None:
        """Dispatcher health from forwarded traffic: 408/5xx count as a failure."""
        if live.dispatch_set is None or self.dispatcher is None:
            return
        with contextlib.suppress(LocalSipError):
            dset = self.dispatcher[live.dispatch_set]
            request_uri = live.context.request.uri
            for destination in dset.destinations:
                if retarget(request_uri, destination.uri) == target.uri:
                    dset.report(destination.uri, not is_failover_status(status), self.clock())
                    return

    def _upstream(self, live: _Live, response: Response) -> None:
        incoming = live.incoming
        status = response.status
        stats = self.stats
        if 200 <= status < 300:
            live.established = True
        if status < 200:
            if not incoming.answered:
                try:
                    incoming.send(response)
                except LocalSipError:
                    return
                stats.count_response(status)
            return
        if live.upstream_final or incoming.answered:  # already answered (or 487 to a CANCEL)
            if 200 <= status < 300:
                self.send_stateless_response(response)
            return
        live.upstream_final = True
        try:
            incoming.send(response)
        except LocalSipError:
            self.send_stateless_response(response)
        stats.count_response(status)
        method = live.context.request.method
        stats.observe_latency(method, self.endpoint.loop.time() - live.started)
        if method == "INVITE" and 200 <= status < 300:
            stats.dialog_started(response, self.clock())
        elif method == "BYE":
            stats.dialog_ended(live.context.request)

    # ------------------------------------------------------------------ next hop

    def _destination_now(
        self, request: Request, target: Target
    ) -> tuple[Destination, Connection | None] | None:
        """Where a branch goes: the registered flow or NAT binding, else §8.1.2 when
        the next hop is an address; None when it is a name (RFC 3263 needs DNS)."""
        endpoint = self.endpoint
        if target.destination is not None and not target.route:
            host, port = split_hostport(target.destination)
            transport = (target.transport or "udp").upper()
            connection = endpoint.transport.lookup(transport, (host, port))
            return Destination(transport, host, port), connection
        destination = endpoint.resolve_now(request)
        return None if destination is None else (destination, None)

    def _stamp(self, request: Request, live: _Live, outbound: str, branch: str) -> None:
        """Record-Route (§16.6 item 4) and our Via with the loop-detecting branch (item 8)."""
        headers = request.headers
        if live.record_route:
            inside = self.rr_value(live.inbound)
            outside = self.rr_value(outbound)
            headers.prepend("Record-Route", inside)
            if outside != inside:
                headers.prepend("Record-Route", outside)
        host, port = self.addresses.get(outbound) or self.addresses["UDP"]
        host = bracket(host)
        params = f";branch={branch};rport"
        via = Via.canonical(outbound, host, port, params)
        headers.prepend("Via", f"SIP/2.0/{outbound} {host}:{port}{params}", parsed=via)

    def rr_value(self, transport: str) -> str:
        """Our Record-Route entry for ``transport`` (cached: addresses do not change)."""
        value = self._rr_cache.get(transport)
        if value is None:
            host, port = self.addresses.get(transport) or self.addresses["UDP"]
            param = "" if transport == "UDP" else f";transport={transport.lower()}"
            value = f"<sip:{bracket(host)}:{port}{param};lr>"
            self._rr_cache[transport] = value
        return value

    # ------------------------------------------------------------------ stateless

    def forward_stateless(self, request: Request) -> None:
        """An ACK for a 2xx (or any request without a transaction): §16.11.

        Sent at once when the next hop is an address; a name is resolved in a task.
        """
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            return
        request.max_forwards = 70 if max_forwards is None else max_forwards - 1
        try:
            destination = self.endpoint.resolve_now(request)
        except (TransportError, ValueError, OSError) as exc:
            log.info("stateless %s not forwarded: %s", request.method, exc)
            return
        if destination is None:
            self.spawn(self._resolve_stateless(request))
        else:
            self._send_stateless(request, destination)

    async def _resolve_stateless(self, request: Request) -> None:
        try:
            destination = await self.endpoint.resolve(request)
        except (TransportError, ValueError, OSError) as exc:
            log.info("stateless %s not forwarded: %s", request.method, exc)
            return
        self._send_stateless(request, destination)

    def _send_stateless(self, request: Request, destination: Destination) -> None:
        endpoint = self.endpoint
        host, port = self.addresses.get(destination.transport) or self.addresses["UDP"]
        branch = MAGIC_COOKIE + random_hex(16)  # 128 bits, as builder.new_branch
        host = bracket(host)
        params = f";branch={branch}"
        via = Via.canonical(destination.transport, host, port, params)
        text = f"SIP/2.0/{destination.transport} {host}:{port}{params}"
        request.headers.prepend("Via", text, parsed=via)
        self.stats.stateless += 1
        endpoint.send_stateless(request, destination)

    def send_stateless_response(self, response: Response) -> None:
        if response.top_via is not None:
            self.stats.stateless += 1
            self.endpoint.send_stateless(response)

    # ------------------------------------------------------------------ tasks

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for live in list(self.contexts.values()):
            if live.timer is not None:
                live.timer.cancel()
            for handle in live.graces:
                handle.cancel()


def _strip_via(response: Response, branch: str) -> Response:
    vias = response.via
    if vias and vias[0].branch == branch:
        response.headers.pop_first("Via")
    return response
