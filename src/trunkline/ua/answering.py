"""Answering an incoming call: ring, answer or reject (RFC 3261 §13.3.1, RFC 3264 §6).

180 Ringing opens an early dialog with our To tag (§12.1.1); 200 OK carries
our SDP answer (§13.3.1.4), or our offer when the INVITE had none (the answer
then comes in the ACK, §13.2.1); an offer without a usable codec is refused
with 488 (§13.3.1.1), a busy or declining user with 486 or 603; a CANCEL that
wins the race ends the call as ``CANCELLED`` (§9.2). :class:`AnsweringMixin`
is the part of :class:`~trunkline.ua.call.Call` that does it.
"""

from __future__ import annotations

from trunkline.sip.aio.calls import dialog_response_headers
from trunkline.sip.aio.endpoint import IncomingRequest
from trunkline.sip.builder import make_response
from trunkline.sip.dialog import DialogId
from trunkline.sip.errors import LocalSipError
from trunkline.sip.offeranswer import Answer, NegotiatedAudio, NegotiationError
from trunkline.sip.sdp import Direction, SessionDescription
from trunkline.sip.statuses import reason_phrase
from trunkline.ua.callevents import CallDirection, CallResult, CallState
from trunkline.ua.callpart import CallPart
from trunkline.ua.hold import SDP

__all__ = ["ALLOW", "AnsweringMixin"]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY"
"""The methods a call accepts in its dialog (``Allow``, RFC 3261 §20.5)."""


class AnsweringMixin(CallPart):
    """Ring, answer, reject an incoming call; mixed into :class:`~trunkline.ua.call.Call`."""

    @property
    def remote_display(self) -> str:
        """Who is calling (display name and URI) for an incoming call."""
        incoming = self.incoming_request
        if incoming is None:
            return self.remote_uri
        name = incoming.request.from_.display_name
        return f'"{name}" <{self.remote_uri}>' if name else self.remote_uri

    def peer_cancelled(self) -> None:
        """The caller's CANCEL won the race: the endpoint sent 200 and 487 (§9.2)."""
        if self.direction is CallDirection.INCOMING and self.state in (
            CallState.IDLE,
            CallState.RINGING,
            CallState.EARLY,
        ):
            self._finish(CallResult.CANCELLED, 487, "caller cancelled")

    def ring(self) -> None:
        """Send 180 Ringing (an early dialog with our To tag, §12.1.1)."""
        incoming = self.incoming_request
        if incoming is None or incoming.answered or self.state is CallState.ENDED:
            return
        headers = dialog_response_headers(incoming.request, self._contact_for(incoming))
        incoming.respond(180, to_tag=self._to_tag, headers=[*headers, ("Allow", ALLOW)])
        self._set_state(CallState.RINGING, "180 Ringing sent")

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an incoming call (486 Busy Here, 603 Decline, ...)."""
        incoming = self.incoming_request
        if incoming is None or self.state is CallState.ENDED:
            return
        if not incoming.answered:
            incoming.respond(status, reason, to_tag=self._to_tag)
        result = CallResult.REJECTED if status != 480 else CallResult.NO_ANSWER
        self._finish(result, status, f"{status} {reason or reason_phrase(status)} sent")

    async def answer(self) -> bool:
        """Answer with 200 OK and our SDP (§13.3.1.4); False if it is too late."""
        incoming = self.incoming_request
        if incoming is not None and incoming.cancelled:
            self.peer_cancelled()
        if incoming is None or incoming.answered or self.state is CallState.ENDED:
            return False
        try:
            await self._media.open()
        except OSError as exc:
            self.reject(500, f"media: {exc}")
            return False
        if incoming.answered or self.ended.is_set():  # cancelled meanwhile
            if incoming.cancelled:
                self.peer_cancelled()
            self._stop_media()
            return False
        assert self.media is not None
        audio: NegotiatedAudio | None = None
        if self._remote_offer is not None:
            try:
                answer = self._answer_offer(self._remote_offer)
            except NegotiationError as exc:
                self.reject(exc.status, "Not Acceptable Here")
                return False
            body = bytes(answer.sdp)
            audio = answer.audio
        else:  # late offer: we offer in the 200, the answer comes in the ACK (§13.2.1)
            body = bytes(self._new_offer())
        headers = [
            *dialog_response_headers(incoming.request, self._contact_for(incoming)),
            ("Allow", ALLOW),
            *incoming.dialog_headers,
        ]
        response = make_response(
            incoming.request,
            200,
            "OK",
            to_tag=self._to_tag,
            headers=headers,
            body=body,
            content_type=SDP,
        )
        incoming.send(response)
        request = incoming.request
        layer = self.endpoint.dialogs
        if layer is not None:
            self.dialog = layer.dialogs.get(
                DialogId(request.call_id, self._to_tag, request.from_tag or "")
            )
        if audio is not None:
            self._apply_media(audio)
        self._set_state(CallState.CONNECTED, "200 OK sent")
        return True

    def _answer_offer(self, offer: SessionDescription) -> Answer:
        direction = Direction.SENDONLY if self.local_hold else Direction.SENDRECV
        return self._media.answer(offer, direction)

    def _contact_for(self, incoming: IncomingRequest) -> str:
        if self.contact:
            return self.contact
        source = incoming.source
        ipv6 = ":" in source.host
        try:
            return f"<{self.endpoint.contact_uri(source.transport, ipv6=ipv6)}>"
        except LocalSipError:
            return f"<{self.endpoint.contact_uri('UDP', ipv6=ipv6)}>"
