"""The vocabulary of a phone: its configuration, its events and how they read.

:class:`PhoneConfig` is where a :class:`~trunkline.ua.phone.Phone` listens and
how it calls; the events it puts on :attr:`~trunkline.ua.phone.Phone.events`
are frozen dataclasses (:class:`IncomingCall`, :class:`RegistrationUpdate`,
:class:`TransferRequested`, and every :class:`~trunkline.ua.callevents.CallEvent`
of its calls); :func:`describe` is the one line the CLI prints for each, and
:func:`aor_for` the address-of-record a user has at a server (RFC 3261 §10.2).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trunkline.ua.callevents import CallConfig, CallEnded, CallEvent
from trunkline.ua.registration import (
    Account,
    Registered,
    RegistrationEvent,
    RegistrationFailed,
)
from trunkline.ua.transfer import ReferTarget

if TYPE_CHECKING:
    from trunkline.ua.call import Call

__all__ = [
    "TRANSPORTS",
    "IncomingCall",
    "PhoneConfig",
    "PhoneEvent",
    "RegistrationUpdate",
    "TransferRequested",
    "aor_for",
    "describe",
    "sip_uri",
]

TRANSPORTS = ("udp", "tcp", "tls", "ws")


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new call is ringing here; ``waiting`` when another call is up (call waiting)."""

    call: Call
    waiting: bool


@dataclass(frozen=True, slots=True)
class RegistrationUpdate:
    """A registration event of one account."""

    account: Account
    event: RegistrationEvent


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """The peer of ``call`` transferred us (REFER); ``new_call`` is being placed."""

    call: Call
    new_call: Call
    target: ReferTarget


PhoneEvent = IncomingCall | RegistrationUpdate | TransferRequested | CallEvent


@dataclass(frozen=True)
class PhoneConfig:
    """Where the phone listens and how it calls.

    ``identity`` is our From (an AOR such as ``sip:alice@example.com``); by
    default ``sip:<user>@<host>``. ``outbound_proxy`` is pre-loaded as a
    loose Route on every out-of-dialog request (RFC 3261 §8.1.2).
    """

    host: str = "127.0.0.1"
    port: int = 0
    transport: str = "udp"
    user: str = "trunkline"
    display_name: str | None = None
    identity: str | None = None
    password: str | None = None
    auth_user: str | None = None
    outbound_proxy: str | None = None
    auto_answer: bool = False
    answer_delay: float = 0.0
    call: CallConfig = field(default_factory=CallConfig)
    ssl_context: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    keepalive_interval: float | None = None
    contact_address: tuple[str, int] | None = None
    """Public (host, port) for our Contact when a NAT or port forward is in front of us."""
    stun_server: str | None = None
    """``host[:port]`` of a STUN server (RFC 5389): at start the UDP SIP socket learns
    its public address there for the Contact, and every call's RTP socket its own
    for the SDP. Ignored when ``contact_address`` is set."""


def sip_uri(uri: str) -> str:
    """``uri`` with a ``sip:`` scheme when it was given as a bare host[:port]."""
    return uri if uri.startswith(("sip:", "sips:")) else f"sip:{uri}"


def aor_for(user: str, server: str) -> str:
    """``sip:user@`` the domain of ``server`` (a SIP URI or a bare host[:port]).

    An address-of-record names a user at a domain (RFC 3261 §10.2: the To of a
    REGISTER); the server's port is where to send, not part of the AOR.
    """
    scheme, _, rest = sip_uri(server).partition(":")
    hostport = rest.split(";", 1)[0].split("?", 1)[0].split("@")[-1]
    if hostport.startswith("["):
        host = hostport[: hostport.find("]") + 1]
    else:
        host = hostport.split(":", 1)[0]
    return f"{scheme}:{user}@{host}"


def describe(event: PhoneEvent) -> str:
    """One human line for an event (the CLI prints these)."""
    if isinstance(event, IncomingCall):
        waiting = " (call waiting)" if event.waiting else ""
        return f"incoming call from {event.call.remote_display}{waiting}"
    if isinstance(event, RegistrationUpdate):
        inner = event.event
        if isinstance(inner, Registered):
            return f"registered {event.account.aor} (expires {inner.expires}s)"
        if isinstance(inner, RegistrationFailed):
            return f"registration of {event.account.aor} failed: {inner.status} {inner.reason}"
        return f"unregistered {event.account.aor}"
    if isinstance(event, CallEnded):
        status = f" ({event.reason})" if event.reason else ""
        return f"call {event.result.value}{status}"
    if isinstance(event, TransferRequested):
        kind = "attended" if event.target.attended else "blind"
        return f"transferred ({kind}) to {event.target.uri}"
    return str(event)
