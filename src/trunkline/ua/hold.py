"""Hold, resume and the peer's re-offers of a call (RFC 3264 §8, RFC 6337 §5.3).

We hold by re-INVITE with ``a=sendonly`` and resume with ``a=sendrecv``
(RFC 3264 §8.4); one re-INVITE at a time (RFC 3261 §14.1), and a 408 or
481 to it means the dialog is gone. A peer's re-INVITE or UPDATE is an
offer answered per RFC 3264 §6.1 (its ``sendonly``, ``inactive`` or legacy
``c=0.0.0.0`` holds us); one without SDP gets our offer in the 200 and the
answer in the ACK (RFC 3261 §14.2). :class:`HoldMixin` is the part of
:class:`~trunkline.ua.call.Call` that does it.
"""

from __future__ import annotations

import logging

from trunkline.sip.aio.endpoint import IncomingRequest
from trunkline.sip.dialog import has_sdp
from trunkline.sip.errors import LocalSipError, SipError
from trunkline.sip.offeranswer import NegotiationError, process_answer
from trunkline.sip.sdp import Direction
from trunkline.ua.callevents import CallResult, CallState
from trunkline.ua.callmedia import parse_peer_sdp
from trunkline.ua.callpart import CallPart

__all__ = ["SDP", "HoldMixin"]

logger = logging.getLogger("trunkline.ua.call")

SDP = "application/sdp"


class HoldMixin(CallPart):
    """Hold and resume, and answering re-offers; mixed into :class:`~trunkline.ua.call.Call`."""

    async def hold(self) -> bool:
        """Put the peer on hold: re-INVITE with ``sendonly`` (RFC 3264 §8.4, RFC 6337 §5.3)."""
        if not self.is_active or self.local_hold:
            return False
        ok = await self._reoffer(Direction.SENDONLY)
        if ok:
            self.local_hold = True
            self._update_hold_state("hold")
        return ok

    async def resume(self) -> bool:
        """Take the call off hold: re-INVITE with ``sendrecv``."""
        if not self.is_active or not self.local_hold:
            return False
        ok = await self._reoffer(Direction.SENDRECV)
        if ok:
            self.local_hold = False
            self._update_hold_state("resume")
        return ok

    async def _reoffer(self, direction: Direction) -> bool:
        async with self._busy:
            if self.media is None or self.dialog is None:
                return False
            offer = self._new_offer(direction)
            try:
                response = await self._request("INVITE", body=bytes(offer), content_type=SDP)
            except (LocalSipError, OSError, ValueError) as exc:
                logger.info("call %s: re-INVITE not sent: %s", self.call_id, exc)
                self._offer = None
                return False
            if not 200 <= response.status < 300:
                self._offer = None
                if response.status in (408, 481):  # §14.1: the dialog is gone
                    self._finish(CallResult.FAILED, response.status, "re-INVITE failed")
                return False
            if has_sdp(response):
                self._take_answer(response.body)
            self._offer = None
            return True

    def _update_hold_state(self, reason: str) -> None:
        held = self.local_hold or self.remote_hold
        if held and self.state is CallState.CONNECTED:
            self._set_state(CallState.ON_HOLD, reason)
        elif not held and self.state is CallState.ON_HOLD:
            self._set_state(CallState.CONNECTED, reason)

    async def _reinvite(self, incoming: IncomingRequest) -> None:
        """A re-INVITE or UPDATE: answer its offer (hold, resume, new address; RFC 3264 §8)."""
        request = incoming.request
        headers: list[tuple[str, str]] = [
            ("Contact", self._contact_for(incoming)),
            *incoming.dialog_headers,
        ]
        if not has_sdp(request):
            if request.method == "UPDATE" or self.media is None:
                incoming.respond(200, headers=headers)
                return
            # An offerless re-INVITE: offer again in the 200, answer in the ACK.
            direction = Direction.SENDONLY if self.local_hold else Direction.SENDRECV
            body = bytes(self._new_offer(direction))
            incoming.respond(200, headers=headers, body=body, content_type=SDP)
            return
        if self.media is None:
            incoming.respond(488)
            return
        try:
            answer = self._answer_offer(parse_peer_sdp(request.body, self.call_id))
        except NegotiationError as exc:
            incoming.respond(exc.status, headers=[("Warning", f'{exc.warning or 399} - "{exc}"')])
            return
        except SipError:
            incoming.respond(400, "Bad SDP")
            return
        incoming.respond(200, headers=headers, body=bytes(answer.sdp), content_type=SDP)
        self._apply_media(answer.audio)
        self._update_hold_state("re-INVITE received")

    def _take_answer(self, body: bytes) -> None:
        assert self._offer is not None
        try:
            audio = process_answer(self._offer, parse_peer_sdp(body, self.call_id))
        except SipError as exc:
            logger.info("call %s: bad SDP answer: %s", self.call_id, exc)
            return
        self._offer = None
        self._apply_media(audio)
