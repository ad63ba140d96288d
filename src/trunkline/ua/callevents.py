"""The vocabulary of a call: its states, results, events and configuration.

:class:`CallState` with its declared transitions (STYLE.md habit 2),
:class:`CallResult` and the status mapping scripts rely on (RFC 3261 §21:
486/600 busy, 404/604 not found, 603 declined, 408/480 no answer), the
events a :class:`~trunkline.ua.call.Call` emits (frozen dataclasses, past
tense) and :class:`CallConfig`, what a call offers and where its media lives.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trunkline.sip.offeranswer import PCMA, PCMU, TELEPHONE_EVENT, Codec

if TYPE_CHECKING:
    from trunkline.ua.call import Call

__all__ = [
    "TRANSITIONS",
    "CallConfig",
    "CallDirection",
    "CallEnded",
    "CallEvent",
    "CallResult",
    "CallState",
    "CallStateChanged",
    "DtmfReceived",
    "TransferProgress",
    "result_for_status",
]


class CallState(enum.Enum):
    """Where a call stands."""

    IDLE = "Idle"
    CALLING = "Calling"
    RINGING = "Ringing"
    EARLY = "Early"
    CONNECTED = "Connected"
    ON_HOLD = "OnHold"
    ENDED = "Ended"


_S = CallState
TRANSITIONS: Mapping[CallState, frozenset[CallState]] = {
    _S.IDLE: frozenset({_S.CALLING, _S.RINGING, _S.CONNECTED, _S.ENDED}),
    _S.CALLING: frozenset({_S.RINGING, _S.EARLY, _S.CONNECTED, _S.ENDED}),
    _S.RINGING: frozenset({_S.EARLY, _S.CONNECTED, _S.ENDED}),
    _S.EARLY: frozenset({_S.RINGING, _S.CONNECTED, _S.ENDED}),
    _S.CONNECTED: frozenset({_S.ON_HOLD, _S.ENDED}),
    _S.ON_HOLD: frozenset({_S.CONNECTED, _S.ENDED}),
    _S.ENDED: frozenset(),
}
"""Every legal ``old -> new`` move; anything else is a bug and raises."""


class CallDirection(enum.Enum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


class CallResult(enum.Enum):
    """How a call ended, in words a script can rely on."""

    COMPLETED = "completed"  # connected, then hung up by either side
    BUSY = "busy"  # 486, 600
    NOT_FOUND = "not found"  # 404, 604, 410, 484
    DECLINED = "declined"  # 603
    NO_ANSWER = "no answer"  # 408, 480, or our own ring timeout
    CANCELLED = "cancelled"  # we hung up (CANCEL) or the caller did before the answer
    REJECTED = "rejected"  # we rejected an incoming call
    AUTH_FAILED = "authentication failed"  # 401/407 we could not answer
    FAILED = "failed"  # any other failure; see the status


_RESULTS: dict[int, CallResult] = {
    486: CallResult.BUSY,
    600: CallResult.BUSY,
    404: CallResult.NOT_FOUND,
    410: CallResult.NOT_FOUND,
    484: CallResult.NOT_FOUND,
    604: CallResult.NOT_FOUND,
    603: CallResult.DECLINED,
    408: CallResult.NO_ANSWER,
    480: CallResult.NO_ANSWER,
    487: CallResult.CANCELLED,
    401: CallResult.AUTH_FAILED,
    407: CallResult.AUTH_FAILED,
}


def result_for_status(status: int) -> CallResult:
    """The :class:`CallResult` of a final non-2xx response to our INVITE."""
    return _RESULTS.get(status, CallResult.FAILED)


@dataclass(frozen=True, slots=True)
class CallStateChanged:
    call: Call
    old: CallState
    new: CallState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over; ``status`` is the final SIP status that ended it, if any."""

    call: Call
    result: CallResult
    status: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A digit from the peer, by ``method`` ``"rfc4733"`` or ``"info"``."""

    call: Call
    digit: str
    duration_ms: float
    method: str


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """A NOTIFY about a call we transferred (RFC 3515 §2.4.5): the referred call's status."""

    call: Call
    status: int
    reason: str


CallEvent = CallStateChanged | CallEnded | DtmfReceived | TransferProgress


@dataclass(frozen=True)
class CallConfig:
    """What a call offers and where its media lives.

    ``media_host`` is bound for RTP and written in SDP ``c=``. ``codecs`` in
    preference order; telephone-event is added when ``dtmf`` is on.
    """

    media_host: str = "127.0.0.1"
    codecs: tuple[Codec, ...] = (PCMU, PCMA)
    dtmf: bool = True
    rtp_port: int = 0
    ptime: int | None = None
    user_agent: str = "Trunkline"
    no_answer_timeout: float | None = None
    media_address_map: Callable[[tuple[str, int]], tuple[str, int]] | None = None
    """Maps our RTP (host, port) to the address announced in SDP: a port forward or a
    STUN (RFC 5389) mapping. Symmetric RTP (RFC 4961) does the rest."""
    stun_server: tuple[str, int] | None = None
    """A STUN server (resolved address): each call's RTP socket learns its public
    mapping there (RFC 5389 Binding) and announces it in SDP; on failure the
    local address (or ``media_address_map``) is used."""

    @property
    def offered_codecs(self) -> list[Codec]:
        codecs = list(self.codecs)
        if self.dtmf and not any(c.is_telephone_event for c in codecs):
            codecs.append(TELEPHONE_EVENT)
        return codecs
