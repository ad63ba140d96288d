"""Client requests for :class:`~trunkline.sip.aio.endpoint.SipEndpoint`.

The TU's side of client transactions (RFC 3261 §8.1, §17.1): start one,
await its final response (408 on a timeout and 503 on a transport error,
§8.1.3.1), CANCEL it (§9.1), and fail over to the next RFC 3263 target on a
transport error, a timeout or a 503 (RFC 3263 §4.3, :mod:`.failover`) while
the TU's transaction handle stays valid.

:class:`ClientRequests` is a mixin of :class:`SipEndpoint`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from trunkline.sip.aio.failover import FailoverPlan, retry_after, retry_request, should_fail_over
from trunkline.sip.aio.routing import Destination
from trunkline.sip.aio.sending import SECURE_TRANSPORTS, Sender
from trunkline.sip.aio.trace import format_address
from trunkline.sip.aio.transport import Connection, TransportError
from trunkline.sip.builder import make_response
from trunkline.sip.errors import LocalSipError
from trunkline.sip.events import Peer
from trunkline.sip.message import Request, Response
from trunkline.sip.transaction import (
    ClientInviteTransaction,
    ClientTransaction,
    TransactionState,
)

__all__ = ["TIMEOUT_STATUS", "TRANSPORT_ERROR_STATUS", "ClientRequests", "ProvisionalCallback"]

logger = logging.getLogger("trunkline.sip.endpoint")

ProvisionalCallback = Callable[[Response], None]
FinalCallback = Callable[[Response], None]

#: §8.1.3.1 / §17.1.4: what the TU sees when the transaction fails locally.
TIMEOUT_STATUS = (408, "Request Timeout")
TRANSPORT_ERROR_STATUS = (503, "Service Unavailable")


@dataclass(slots=True)
class _Pending:
    """A client transaction the TU awaits (``future``) or is called back for (``on_final``)."""

    future: asyncio.Future[Response] | None
    on_provisional: ProvisionalCallback | None
    responses: list[Response] = field(default_factory=list)
    failover: FailoverPlan | None = None
    on_final: FinalCallback | None = None
    done: bool = False

    @property
    def finished(self) -> bool:
        """Resolved, abandoned, or its awaiting task was cancelled."""
        return self.done or (self.future is not None and self.future.done())

    def resolve(self, response: Response) -> None:
        """Hand over the final response, once."""
        self.done = True
        if self.on_final is not None:
            try:
                self.on_final(response)
            except Exception:  # the TU's bug must not stop the endpoint's pump
                logger.exception("final response callback failed")
        elif self.future is not None and not self.future.done():
            self.future.set_result(response)

    def abandon(self) -> None:
        """The endpoint closes: nobody will get a response."""
        self.done = True
        if self.future is not None and not self.future.done():
            self.future.cancel()


class ClientRequests(Sender):
    """The endpoint's client-transaction methods (a mixin of ``SipEndpoint``)."""

    _pending: dict[int, _Pending]
    _moved: dict[int, FailoverPlan]  # id(origin txn) -> its failover plan
    _closed: bool

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

    def start_request_now(
        self,
        request: Request,
        destination: Destination,
        *,
        on_final: FinalCallback,
        connection: Connection | None = None,
        add_via: bool | None = None,
        on_provisional: ProvisionalCallback | None = None,
    ) -> ClientTransaction:
        """Start a client transaction to a known ``destination`` without awaiting anything.

        The callback twin of :meth:`start_request` for a TU driven by events (a
        proxy): ``on_provisional`` gets each 1xx and ``on_final`` the final
        response, a 408 on a timeout or a 503 on a transport error
        (§8.1.3.1), from inside the endpoint's event handling. With a
        destination given there is no RFC 3263 failover.
        """
        if request.method == "ACK":
            raise LocalSipError("an ACK is sent with send_ack(), outside transactions")
        destination = self._prepare_now(request, destination, connection, add_via)
        pending = _Pending(None, on_provisional, on_final=on_final)
        txn = self._launch(request, destination, connection, pending, self.loop.time())
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
            if destination.server_name and destination.transport in SECURE_TRANSPORTS:
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
        if pending.future is None:
            raise LocalSipError("this transaction reports its final response to a callback")
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

    async def _send_layer_request(self, request: Request) -> None:
        """A request the dialog layer originated (PRACK, BYE after a lost ACK)."""
        try:
            response = await self.send_request(request)
        except (TransportError, LocalSipError, ValueError) as exc:
            logger.info("%s from the dialog layer not sent: %s", request.method, exc)
            return
        logger.debug("%s from the dialog layer: %d", request.method, response.status)

    def _finish(self, txn: ClientTransaction, response: Response, *, local: bool = False) -> bool:
        """Hand the final response to the TU, or fail over (RFC 3263 §4.3): True if moved.

        ``local`` marks a response made up for a timeout or a transport error.
        """
        pending = self._pending.pop(id(txn), None)
        if pending is None or pending.finished:
            return False
        plan = pending.failover
        if plan is not None:
            if self._fail_over(txn, pending, plan, response, local):
                return True
            plan.final = response
            origin = plan.origin
            if origin is not None and origin.state is TransactionState.TERMINATED:
                self._moved.pop(id(origin), None)
        pending.resolve(response)
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
