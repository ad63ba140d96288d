"""Events and outputs of the sans-IO transaction and dialog layers.

The layers in :mod:`trunkline.sip.transaction_table` and
:mod:`trunkline.sip.dialog` never touch a socket. They return two kinds of
output, both frozen dataclasses:

* :class:`Transmit`: a message to hand to the transport layer, with the
  :class:`Peer` it should go to (RFC 3261 §18). For client transactions the
  peer is the destination the TU resolved (RFC 3263); for server transactions
  it is the source of the request, and the transport applies the response
  rules of §18.2.2 (``received``/``rport``).
* :class:`Event`: something the transaction user (TU) must know about, named
  in the past tense (STYLE.md habit 3).

The asyncio driver (``sip/aio/endpoint.py``) drains both queues after every
call into a layer and re-arms one timer at ``layer.get_timer()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trunkline.sip.dialog import Dialog, DialogState
    from trunkline.sip.message import Request, Response
    from trunkline.sip.transaction import ClientTransaction, ServerTransaction, Transaction

RELIABLE_TRANSPORTS = frozenset({"tcp", "tls", "sctp", "tls-sctp", "ws", "wss"})


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message goes to or came from: transport name, host and port.

    ``transport`` is lower-case (``udp``, ``tcp``, ``tls``, ``ws``, ``wss``).
    Reliability decides which retransmission timers run (RFC 3261 §17.1.1.2).
    """

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        """True for stream transports, which retransmit by themselves (§18)."""
        return self.transport.lower() in RELIABLE_TRANSPORTS


@dataclass(frozen=True, slots=True)
class Transmit:
    """Hand ``message`` to the transport layer, addressed to ``peer``."""

    message: Request | Response
    peer: Peer | None


class Event:
    """Base class of everything the transaction and dialog layers report."""

    __slots__ = ()


# -- transaction layer (RFC 3261 §17) --------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class RequestReceived(Event):
    """A new request arrived (§17.2).

    ``transaction`` is the server transaction to answer through; it is None
    for an ACK, which is never a transaction of its own when it acknowledges
    a 2xx (§17.2.3, RFC 6026 §8.7).
    """

    request: Request
    transaction: ServerTransaction | None
    peer: Peer | None


@dataclass(frozen=True, slots=True, eq=False)
class ResponseReceived(Event):
    """A response arrived for a client transaction (§17.1).

    ``transaction`` is None for a response that matched no transaction, which
    RFC 6026 §8.9 says must be passed to the core (a late 2xx retransmission,
    or a 2xx from another fork).
    """

    response: Response
    transaction: ClientTransaction | None


@dataclass(frozen=True, slots=True, eq=False)
class TransactionTimedOut(Event):
    """Timer B, F or H fired: treat as a 408 (client) or a lost ACK (server)."""

    transaction: Transaction
    timer: str


@dataclass(frozen=True, slots=True, eq=False)
class TransactionTransportError(Event):
    """The transport could not send a message of this transaction (§17.1.4)."""

    transaction: Transaction
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class TransactionTerminated(Event):
    """The transaction reached Terminated and was removed from the table."""

    transaction: Transaction


@dataclass(frozen=True, slots=True, eq=False)
class MergedRequestRejected(Event):
    """A request arrived twice by different paths; answered 482 (§8.2.2.2)."""

    request: Request


# -- dialog layer (RFC 3261 §12-§15, RFC 3262, RFC 3311, RFC 4028) ---------


@dataclass(frozen=True, slots=True, eq=False)
class DialogStateChanged(Event):
    """A dialog was created, confirmed or terminated (§12).

    ``state`` is the dialog's state when this happened (the dialog object
    itself moves on).
    """

    dialog: Dialog
    state: DialogState
    reason: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class SendRequest(Event):
    """The dialog layer wants ``request`` sent in a new client transaction.

    Used for requests the layer originates itself: the BYE after a lost ACK
    (§13.3.1.4), a re-INVITE retried after 491 (§14.1), a PRACK (RFC 3262
    §4), a session refresh or the BYE on session expiry (RFC 4028 §10).
    """

    request: Request
    dialog: Dialog | None


@dataclass(frozen=True, slots=True, eq=False)
class AckTimedOut(Event):
    """The UAS retransmitted its 2xx for 64*T1 without an ACK (§13.3.1.4)."""

    dialog: Dialog
    cseq: int


@dataclass(frozen=True, slots=True, eq=False)
class PrackTimedOut(Event):
    """A reliable 1xx went unacknowledged for 64*T1 (RFC 3262 §3)."""

    dialog: Dialog
    rseq: int


@dataclass(frozen=True, slots=True, eq=False)
class GlareRetryDue(Event):
    """The §14.1 wait after a 491 is over: the TU may resend its re-INVITE."""

    dialog: Dialog
    method: str


@dataclass(frozen=True, slots=True, eq=False)
class SessionRefreshDue(Event):
    """We are the refresher and half the session interval passed (RFC 4028 §10)."""

    dialog: Dialog


@dataclass(frozen=True, slots=True, eq=False)
class SessionExpired(Event):
    """No session refresh arrived in time (RFC 4028 §10): send BYE."""

    dialog: Dialog


@dataclass(slots=True)
class Outbox:
    """The two output queues shared by a layer and the machines it owns."""

    transmits: list[Transmit] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def drain_transmits(self) -> list[Transmit]:
        """Return and forget every queued :class:`Transmit`."""
        out, self.transmits = self.transmits, []
        return out

    def drain_events(self) -> list[Event]:
        """Return and forget every queued :class:`Event`."""
        out, self.events = self.events, []
        return out
