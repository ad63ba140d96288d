"""The user agent library: what a softphone, the PBX and the WebRTC gateway use.

:mod:`trunkline.ua.registration` keeps accounts registered (sans-IO, like the
SIP core); :mod:`trunkline.ua.call` is one call (INVITE dialog, offer/answer,
media, hold, DTMF, transfer) with its vocabulary in
:mod:`trunkline.ua.callevents` and its audio in :mod:`trunkline.ua.callmedia`;
:mod:`trunkline.ua.transfer` holds the REFER/Replaces pieces; and
:class:`~trunkline.ua.phone.Phone` ties them to one asyncio SIP endpoint.
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
