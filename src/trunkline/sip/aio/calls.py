"""INVITE dialogs on top of :class:`~.endpoint.SipEndpoint`: call, answer, ACK, BYE.

:class:`CallManager` is the smallest useful transaction user for calls. It
wraps the sans-IO :class:`~trunkline.sip.dialog.Dialog` (RFC 3261 §12) and
adds the parts that need the clock and the network:

- UAS (§13.3): :class:`IncomingCall` rings (180) and answers (2xx); the 2xx is
  retransmitted with an interval starting at T1 and doubling up to T2 until
  the ACK arrives; without an ACK after 64*T1 the call is ended with BYE
  (§13.3.1.4). A CANCEL that wins the race ends the call with 487 (§9.2).
- UAC (§13.2): :meth:`CallManager.invite` sends the INVITE, builds the dialog
  from the 2xx and ACKs it outside the transaction, and ACKs every
  retransmission of that 2xx again (§13.2.2.4, RFC 6026 §7.2).
- In-dialog requests are matched by dialog id; BYE is answered 200 and ends
  the call (§15.1.2); a request for an unknown dialog gets 481 (§12.2.2).

Requests in a dialog whose route set is empty go back over the connection
the dialog came on when it is still open, which is what clients behind NAT
and browsers (Contact host ``.invalid``, RFC 7118 §5) need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint, Source
from trunkline.sip.aio.routing import Destination
from trunkline.sip.aio.transport import Connection
from trunkline.sip.builder import make_request, make_response, new_tag
from trunkline.sip.dialog import Dialog, DialogId
from trunkline.sip.errors import LocalSipError
from trunkline.sip.headers import NameAddr
from trunkline.sip.message import Request, Response
from trunkline.sip.transaction import ServerTransaction

logger = logging.getLogger("trunkline.sip.calls")

InviteHandler = Callable[["IncomingCall"], Awaitable[None]]


class CallFailed(Exception):
    """The INVITE got a final non-2xx response (or timed out: 408)."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"{response.status} {response.reason}")
        self.response = response


class Call:
    """One confirmed (or early, on the UAS side) INVITE dialog."""

    def __init__(
        self,
        manager: CallManager,
        dialog: Dialog,
        *,
        connection: Connection | None = None,
        destination: Destination | None = None,
    ) -> None:
        self.manager = manager
        self.dialog = dialog
        self.connection = connection
        self.destination = destination
        self.ended = asyncio.Event()
        self.ack_received = asyncio.Event()
        self.ack: bytes | None = None  # our ACK of the 2xx, re-sent on 2xx retransmissions
        self.ack_destination: Destination | None = None

    @property
    def id(self) -> DialogId:
        return self.dialog.id

    def __repr__(self) -> str:
        return f"<Call {self.dialog!r}>"

    def _route(self) -> tuple[Destination | None, Connection | None]:
        if not self.dialog.route_set and self.connection is not None and not self.connection.closed:
            return None, self.connection
        return self.destination if not self.dialog.route_set else None, None

    async def request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> Response:
        """Send ``method`` in this dialog (§12.2.1.1) and return the final response."""
        request = self.dialog.create_request(
            method, body=body, content_type=content_type, extra_headers=extra_headers
        )
        destination, connection = self._route()
        response = await self.manager.endpoint.send_request(
            request, destination, connection=connection
        )
        self.dialog.receive_response(response)
        return response

    async def bye(self) -> Response:
        """End the call with BYE (§15.1.1)."""
        self.manager._stop_retransmitting(self)
        self.dialog.terminate("BYE sent")
        try:
            return await self.request("BYE")
        finally:
            self.manager._forget(self)

    def _ended(self, reason: str) -> None:
        self.dialog.terminate(reason)
        self.ended.set()


class IncomingCall:
    """A new INVITE handed to the application: ring, answer or reject it."""

    def __init__(self, manager: CallManager, incoming: IncomingRequest) -> None:
        self.manager = manager
        self.incoming = incoming
        self.request = incoming.request
        self.to_tag = new_tag()
        self.call: Call | None = None

    @property
    def cancelled(self) -> bool:
        return self.incoming.cancelled

    def ring(self, status: int = 180) -> None:
        """Send a provisional response (with our To tag: an early dialog, §12.1.1)."""
        if not self.incoming.answered:
            self.incoming.respond(status, to_tag=self.to_tag)

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Answer with a final error; the transaction retransmits it until ACK."""
        if not self.incoming.answered:
            self.incoming.respond(status, reason, to_tag=self.to_tag)

    def answer(self, body: bytes = b"", content_type: str = "application/sdp") -> Call | None:
        """Send 200 OK and start retransmitting it until the ACK (§13.3.1.4).

        Returns None when a CANCEL already ended the INVITE.
        """
        if self.incoming.answered:
            return None
        headers = [("Contact", self.manager.contact_for(self.incoming.source))]
        response = make_response(
            self.request,
            200,
            "OK",
            to_tag=self.to_tag,
            headers=headers,
            body=body,
            content_type=content_type if body else None,
        )
        dialog = Dialog.from_uas(self.request, response)
        call = Call(self.manager, dialog, connection=self.incoming.source.connection)
        self.call = call
        self.manager._calls[dialog.id] = call
        self.incoming.send(response)
        assert self.incoming.transaction is not None
        self.manager._retransmit_2xx(call, self.incoming.transaction, response)
        return call


class CallManager:
    """Calls of one endpoint; installs itself as the endpoint's request handler."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.on_invite: InviteHandler | None = None
        self.on_request: Callable[[IncomingRequest], Awaitable[None]] | None = None
        self.on_call_ended: Callable[[Call], None] | None = None
        self._calls: dict[DialogId, Call] = {}
        self._retransmits: dict[DialogId, asyncio.TimerHandle] = {}
        endpoint.on_request = self._on_request
        endpoint.on_stray_response = self._on_stray_response

    @property
    def calls(self) -> list[Call]:
        return list(self._calls.values())

    def contact_for(self, source: Source) -> str:
        """Our Contact for a dialog that came in over ``source`` (§8.1.1.8)."""
        transport = source.transport
        ipv6 = ":" in source.host
        try:
            return f"<{self.endpoint.contact_uri(transport, ipv6=ipv6)}>"
        except LocalSipError:
            return f"<{self.endpoint.contact_uri('UDP', ipv6=ipv6)}>"

    # -- UAC --------------------------------------------------------------------------
    async def invite(
        self,
        uri: str,
        *,
        from_: NameAddr | str,
        to: NameAddr | str,
        body: bytes = b"",
        content_type: str = "application/sdp",
        destination: Destination | None = None,
        transport: str = "UDP",
        on_provisional: Callable[[Response], None] | None = None,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> Call:
        """Place a call; returns the confirmed call, raises :class:`CallFailed`."""
        request = make_request(
            "INVITE",
            uri,
            from_=from_,
            to=to,
            contact=f"<{self.endpoint.contact_uri(transport)}>",
            body=body,
            content_type=content_type if body else None,
            extra_headers=extra_headers,
        )
        response = await self.endpoint.send_request(
            request, destination, on_provisional=on_provisional
        )
        if not 200 <= response.status < 300:
            raise CallFailed(response)
        dialog = Dialog.from_uac(request, response)
        call = Call(self, dialog, destination=destination)
        self._calls[dialog.id] = call
        await self._send_ack(call, request.cseq.number)
        return call

    async def _send_ack(self, call: Call, cseq: int) -> None:
        ack = call.dialog.create_request("ACK", cseq=cseq)
        destination, connection = call._route()
        if connection is not None:
            destination = Destination(connection.name, connection.peer[0], connection.peer[1])
        call.ack_destination = await self.endpoint.send_ack(ack, destination)
        call.ack = bytes(ack)

    def _on_stray_response(self, response: Response) -> None:
        """A 2xx retransmission (or a fork's 2xx) after the INVITE completed."""
        if response.cseq.method != "INVITE" or not 200 <= response.status < 300:
            return
        dialog_id = DialogId.of_response(response)
        call = self._calls.get(dialog_id) if dialog_id is not None else None
        if call is not None and call.ack is not None and call.ack_destination is not None:
            self.endpoint.send_stateless_bytes(call.ack, call.ack_destination)

    # -- UAS ----------------------------------------------------------------------------
    async def _on_request(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        dialog_id = DialogId.of_incoming(request)
        if dialog_id is None:
            if request.method == "INVITE" and self.on_invite is not None:
                await self.on_invite(IncomingCall(self, incoming))
            elif self.on_request is not None:
                await self.on_request(incoming)
            elif incoming.transaction is not None:
                if request.method == "OPTIONS":
                    incoming.respond(200)
                else:
                    incoming.respond(405 if request.method != "INVITE" else 480)
            return
        call = self._calls.get(dialog_id)
        if request.method == "ACK":
            if call is not None:
                self._stop_retransmitting(call)
                call.ack_received.set()
            return
        if call is None:
            if incoming.transaction is not None:
                incoming.respond(481, "Call/Transaction Does Not Exist")
            return
        status = call.dialog.check_request(request)
        if status is not None:
            incoming.respond(status)
            return
        if request.method == "BYE":
            incoming.respond(200)
            self._stop_retransmitting(call)
            call._ended("BYE received")
            self._forget(call)
        elif self.on_request is not None:
            await self.on_request(incoming)
        else:
            incoming.respond(200 if request.method in ("OPTIONS", "INFO") else 501)

    def _retransmit_2xx(self, call: Call, txn: ServerTransaction, response: Response) -> None:
        timers = self.endpoint.timers
        loop = self.endpoint.loop
        started = loop.time()
        interval = timers.t1

        def fire() -> None:
            nonlocal interval
            self._retransmits.pop(call.id, None)
            if call.ack_received.is_set() or call.dialog.terminated:
                return
            if loop.time() - started >= timers.timeout:
                logger.info("no ACK for the 2xx of %s: ending it with BYE", call.id.call_id)
                call._ended("ACK timeout")
                self.endpoint._spawn(self._bye_quietly(call))
                return
            if txn.terminated:
                self.endpoint.send_stateless(response)
            else:
                self.endpoint.send_response(txn, response)
            interval = min(2 * interval, timers.t2)
            self._retransmits[call.id] = loop.call_at(loop.time() + interval, fire)

        self._retransmits[call.id] = loop.call_at(started + interval, fire)

    async def _bye_quietly(self, call: Call) -> None:
        with contextlib.suppress(Exception):
            await call.bye()

    def _stop_retransmitting(self, call: Call) -> None:
        handle = self._retransmits.pop(call.id, None)
        if handle is not None:
            handle.cancel()

    def _forget(self, call: Call) -> None:
        if self._calls.pop(call.id, None) is not None and self.on_call_ended is not None:
            self.on_call_ended(call)
        call.ended.set()

    def close(self) -> None:
        """Stop every timer (the endpoint closes the sockets)."""
        for handle in self._retransmits.values():
            handle.cancel()
        self._retransmits.clear()

    def find(self, request: Request) -> Call | None:
        """The call an incoming in-dialog request belongs to."""
        dialog_id = DialogId.of_incoming(request)
        return self._calls.get(dialog_id) if dialog_id is not None else None
