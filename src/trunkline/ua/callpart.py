"""What every part of a call may use of the whole: the base of the call's mixins.

:class:`~trunkline.ua.call.Call` is assembled from parts, one concept each:
answering (:mod:`trunkline.ua.answering`), transfer
(:mod:`trunkline.ua.calltransfer`), hold and re-offers (:mod:`trunkline.ua.hold`)
and DTMF (:mod:`trunkline.ua.dtmf`). :class:`CallPart` declares, for the type
checker only, the state and the operations those parts share and that the call
itself (or another part) defines, so that each part is checked against one
declaration instead of repeating it. At run time it is an empty class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from trunkline.media.session import MediaSession
    from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint
    from trunkline.sip.dialog import Dialog
    from trunkline.sip.message import Response
    from trunkline.sip.offeranswer import Answer, NegotiatedAudio
    from trunkline.sip.sdp import Direction, SessionDescription
    from trunkline.ua.call import Call
    from trunkline.ua.callevents import CallDirection, CallEvent, CallResult, CallState
    from trunkline.ua.callmedia import CallMedia

__all__ = ["CallPart"]


class CallPart:
    """The base of every mixin of :class:`~trunkline.ua.call.Call` (declarations only)."""

    if TYPE_CHECKING:
        endpoint: SipEndpoint
        direction: CallDirection
        state: CallState
        call_id: str
        dialog: Dialog | None
        remote_uri: str
        contact: str
        local_hold: bool
        remote_hold: bool
        incoming_request: IncomingRequest | None
        ended: asyncio.Event
        _media: CallMedia
        _offer: SessionDescription | None
        _remote_offer: SessionDescription | None
        _to_tag: str
        _busy: asyncio.Lock
        _transfer_status: asyncio.Queue[tuple[int, str]] | None

        @property
        def media(self) -> MediaSession | None: ...

        @property
        def is_active(self) -> bool: ...

        def _set_state(self, new: CallState, reason: str = "") -> None: ...

        def _emit(self, event: CallEvent) -> None: ...

        def _finish(self, result: CallResult, status: int | None, reason: str) -> None: ...

        def _apply_media(self, audio: NegotiatedAudio) -> None: ...

        def _stop_media(self) -> None: ...

        def _new_offer(self, direction: Direction = ...) -> SessionDescription: ...

        def _answer_offer(self, offer: SessionDescription) -> Answer: ...

        def _contact_for(self, incoming: IncomingRequest) -> str: ...

        async def hangup(self) -> None: ...

        async def _request(
            self,
            method: str,
            *,
            body: bytes = b"",
            content_type: str | None = None,
            extra_headers: Sequence[tuple[str, str]] = (),
        ) -> Response: ...

    def _as_call(self) -> Call:
        """This part as the call it lives in (for events that name the call)."""
        return cast("Call", self)
