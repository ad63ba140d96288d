"""The user agent library: what a softphone, the PBX and the WebRTC gateway use.

Sans-IO like the SIP core: :mod:`trunkline.ua.registration` keeps accounts
registered; the asyncio endpoint drives it.
"""

from __future__ import annotations

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
    "Registered",
    "RegistrationClient",
    "RegistrationEvent",
    "RegistrationFailed",
    "RegistrationState",
    "Unregistered",
]
