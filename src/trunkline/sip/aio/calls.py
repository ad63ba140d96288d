"""INVITE dialogs on top of :class:`~.endpoint.SipEndpoint`: call, answer, BYE.

:class:`CallManager` is the smallest useful transaction user for calls. The
dialog rules themselves live in the endpoint's sans-IO
:class:`~trunkline.sip.dialog_table.DialogLayer`, which the endpoint drives:
the UAS core retransmits its 2xx from T1 doubling to T2 until the ACK and
gives up after 64*T1 with a BYE (RFC 3261 §13.3.1.4); the UAC core ACKs every
2xx and every retransmission of it (§13.2.2.4); requests in unknown dialogs
get 481 and out-of-order ones 500 (§12.2.2). This module adds the
application-facing objects:

- :class:`IncomingCall`: a new INVITE; ``ring()`` (180), ``answer(sdp)``
  (200, returns the :class:`Call`) or ``reject(486)``; ``cancelled`` turns
  true when a CANCEL won the race (the endpoint answered 487, §9.2). The 18x
  and the 2xx make the (early) dialog, so both copy the INVITE's
  Record-Route in order and carry our Contact (§12.1.1,
  :func:`dialog_response_headers`).
- :meth:`CallManager.invite`: place a call, returns the confirmed
  :class:`Call` or raises :class:`CallFailedError` with the final response.
- :meth:`Call.bye`: hang up (§15.1.1); a BYE from the peer is answered 200
  and sets :attr:`Call.ended` (§15.1.2).

Requests in a dialog whose route set is empty go back over the connection
the dialog came on while it is open, which is what clients behind NAT and
browsers (Contact host ``.invalid``, RFC 7118 §5) need.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from trunkline.sip.aio.endpoint import SipEndpoint
from trunkline.sip.aio.incoming import IncomingRequest, Source
from trunkline.sip.aio.routing import Destination
from trunkline.sip.aio.transport import Connection
from trunkline.sip.builder import make_request, make_response, new_tag
from trunkline.sip.dialog import Dialog, DialogId, has_sdp
from trunkline.sip.dialog_table import DialogLayer
from trunkline.sip.errors import LocalSipError
from trunkline.sip.events import DialogStateChanged, Event
from trunkline.sip.headers import NameAddr
from trunkline.sip.message import Request, Response

logger = logging.getLogger("trunkline.sip.calls")

InviteHandler = Callable[["IncomingCall"], Awaitable[None]]


def record_route_headers(request: Request) -> list[tuple[str, str]]:
    """The request's Record-Route values, in order, for a dialog-creating response.

    RFC 3261 §12.1.1: "When a UAS responds to a request with a response that
    establishes a dialog (such as a 2xx to INVITE), the UAS MUST copy all
    Record-Route header field values from the request into the response
    (including the URIs, URI parameters, and any Record-Route header field
    parameters, whether they are known or unknown to the UAS) and MUST
    maintain the order of those values."
    """
    return [("Record-Route", value) for value in request.headers.get_all("Record-Route")]


def dialog_response_headers(request: Request, contact: str) -> list[tuple[str, str]]:
    """Record-Route copies and our Contact: what every 101-199 and 2xx to INVITE needs (§12.1.1)."""
    return [*record_route_headers(request), ("Contact", contact)]


class CallFailedError(Exception):
    """The INVITE got a final non-2xx response (408 when it timed out)."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"{response.status} {response.reason}")
        self.response = response


class Call:
    """One INVITE dialog, as the application sees it."""

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

    @property
    def id(self) -> DialogId:
        return self.dialog.id

    def __repr__(self) -> str:
        return f"<Call {self.dialog!r}>"

    def _route(self) -> tuple[Destination | None, Connection | None]:
        """Where in-dialog requests go: the dialog's flow, else the route set / target."""
        if self.dialog.route_set:
            return None, None
        if self.connection is not None and not self.connection.closed:
            return None, self.connection
        return self.destination, None

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
        return await self.manager.endpoint.send_request(request, destination, connection=connection)

    async def bye(self) -> Response:
        """Hang up with BYE (§15.1.1); the dialog ends as it is sent."""
        try:
            return await self.request("BYE")
        finally:
            self.manager._ended(self)


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
        """True once a CANCEL ended the INVITE (the endpoint sent 487)."""
        return self.incoming.cancelled

    def ring(self, status: int = 180) -> None:
        """Send a provisional response with our To tag (an early dialog, §12.1.1).

        It copies the Record-Route and carries a Contact, as the 2xx will: the
        early dialog's route set and remote target come from it (§12.1.2).
        """
        if not self.incoming.answered:
            contact = self.manager.contact_for(self.incoming.source)
            headers = dialog_response_headers(self.request, contact)
            self.incoming.respond(status, to_tag=self.to_tag, headers=headers)

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Answer with a final error; the transaction retransmits it until the ACK."""
        if not self.incoming.answered:
            self.incoming.respond(status, reason, to_tag=self.to_tag)

    def answer(self, body: bytes = b"", content_type: str = "application/sdp") -> Call | None:
        """Send 200 OK (retransmitted until the ACK, §13.3.1.4); None if already over."""
        if self.incoming.answered:
            return None
        headers = dialog_response_headers(
            self.request, self.manager.contact_for(self.incoming.source)
        )
        headers += list(self.incoming.dialog_headers)
        response = make_response(
            self.request,
            200,
            "OK",
            to_tag=self.to_tag,
            headers=headers,
            body=body,
            content_type=content_type if body else None,
        )
        self.incoming.send(response)
        from_tag = self.request.from_tag or ""
        dialog = self.manager.layer.dialogs.get(
            DialogId(self.request.call_id, self.to_tag, from_tag)
        )
        if dialog is None:
            return None
        call = Call(self.manager, dialog, connection=self.incoming.source.connection)
        self.call = call
        self.manager._calls[dialog.id] = call
        return call


class CallManager:
    """Calls of one endpoint; installs itself as the endpoint's request handler."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        if endpoint.dialogs is None:
            raise LocalSipError("CallManager needs an endpoint with a dialog layer")
        self.endpoint = endpoint
        self.layer: DialogLayer = endpoint.dialogs
        self.on_invite: InviteHandler | None = None
        self.on_request: Callable[[IncomingRequest], Awaitable[None]] | None = None
        self.on_call_ended: Callable[[Call], None] | None = None
        self._calls: dict[DialogId, Call] = {}
        self._previous_on_event = endpoint.on_event
        endpoint.on_request = self._on_request
        endpoint.on_ack = self._on_ack
        endpoint.on_event = self._on_event

    @property
    def calls(self) -> list[Call]:
        """The calls still up."""
        return list(self._calls.values())

    def contact_for(self, source: Source) -> str:
        """Our Contact for a dialog that came in over ``source`` (§8.1.1.8)."""
        ipv6 = ":" in source.host
        try:
            return f"<{self.endpoint.contact_uri(source.transport, ipv6=ipv6)}>"
        except LocalSipError:
            return f"<{self.endpoint.contact_uri('UDP', ipv6=ipv6)}>"

    # -- UAC ------------------------------------------------------------------
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
        """Place a call; returns the confirmed call or raises :class:`CallFailedError`."""
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
            raise CallFailedError(response)
        dialog = self.layer.find(response)
        if dialog is None:
            raise CallFailedError(response)
        if not body and has_sdp(response):
            # The 2xx carried the offer: the ACK must carry an answer (§13.2.2.4);
            # an empty one here, the application re-INVITEs with real media.
            self.layer.send_ack(dialog, request.cseq.number)
            self.endpoint.pump()
        call = Call(self, dialog, destination=destination)
        self._calls[dialog.id] = call
        return call

    # -- UAS and in-dialog requests --------------------------------------------------
    def _on_ack(self, incoming: IncomingRequest) -> bool:
        """An ACK in one of our dialogs, handled at once (no task); others go on."""
        dialog = incoming.dialog
        if dialog is None:
            return False
        call = self._calls.get(dialog.id)
        if call is not None:
            call.ack_received.set()
        return True

    async def _on_request(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        dialog = incoming.dialog
        if dialog is None and request.to_tag is None:
            if request.method == "INVITE" and self.on_invite is not None:
                await self.on_invite(IncomingCall(self, incoming))
            elif self.on_request is not None:
                await self.on_request(incoming)
            elif incoming.transaction is not None:
                status = 200 if request.method == "OPTIONS" else 405
                incoming.respond(480 if request.method == "INVITE" else status)
            return
        call = self._calls.get(dialog.id) if dialog is not None else None
        if request.method == "ACK":
            if call is not None:
                call.ack_received.set()
            return
        if incoming.transaction is None:
            return
        if request.method == "BYE":
            incoming.respond(200)
            if call is not None:
                self._ended(call)
        elif self.on_request is not None:
            await self.on_request(incoming)
        else:
            incoming.respond(200 if request.method in ("OPTIONS", "INFO") else 501)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, DialogStateChanged) and event.dialog.terminated:
            call = self._calls.get(event.dialog.id)
            if call is not None:
                self._ended(call)
        if self._previous_on_event is not None:
            self._previous_on_event(event)

    def _ended(self, call: Call) -> None:
        if self._calls.pop(call.id, None) is not None and self.on_call_ended is not None:
            self.on_call_ended(call)
        call.ended.set()

    def close(self) -> None:
        """Forget every call (the endpoint owns timers and sockets)."""
        for call in list(self._calls.values()):
            call.ended.set()
        self._calls.clear()
