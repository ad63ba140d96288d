"""The user agent library: what a softphone, the PBX and the WebRTC gateway use.

:mod:`trunkline.ua.registration` keeps accounts registered (sans-IO, like the
SIP core); :mod:`trunkline.ua.call` is one call (INVITE dialog, offer/answer,
media, hold, DTMF, transfer) with its vocabulary in
:mod:`trunkline.ua.callevents` and its audio in :mod:`trunkline.ua.callmedia`;
:mod:`trunkline.ua.transfer` holds the REFER/Replaces pieces,
:mod:`trunkline.ua.answering`, :mod:`trunkline.ua.calltransfer`,
:mod:`trunkline.ua.hold` and :mod:`trunkline.ua.dtmf` the answering, transfer,
hold and DTMF parts of a call; :mod:`trunkline.ua.stun` is the sans-IO STUN Binding (RFC 5389)
that :mod:`trunkline.ua.nat` runs on the phone's SIP and RTP sockets; and
:class:`~trunkline.ua.phone.Phone` ties them to one asyncio SIP endpoint
(its configuration and events: :mod:`trunkline.ua.phoneevents`).
"""

from __future__ import annotations

from trunkline.ua.call import Call
from trunkline.ua.callevents import (
    CallConfig,
    CallDirection,
    CallEnded,
    CallEvent,
    CallResult,
    CallState,
    CallStateChanged,
    DtmfReceived,
    TransferProgress,
)
from trunkline.ua.phone import IncomingCall, Phone, PhoneConfig, RegistrationUpdate
from trunkline.ua.registration import (
    Account,
    Registered,
    RegistrationClient,
    RegistrationEvent,
    RegistrationFailed,
    RegistrationState,
    Unregistered,
)

__all__ = [
    "Account",
    "Call",
    "CallConfig",
    "CallDirection",
    "CallEnded",
    "CallEvent",
    "CallResult",
    "CallState",
    "CallStateChanged",
    "DtmfReceived",
    "IncomingCall",
    "Phone",
    "PhoneConfig",
    "Registered",
    "RegistrationClient",
    "RegistrationEvent",
    "RegistrationFailed",
    "RegistrationState",
    "RegistrationUpdate",
    "TransferProgress",
    "Unregistered",
]
