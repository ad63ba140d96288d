"""Events and outputs of the sans-IO transaction and dialog layers.

The layers in :mod:`trunkline.sip.transaction_table` and
:mod:`trunkline.sip.dialog` never touch a socket. They return two kinds of
output, both plain slotted classes (built for every message, so without
a dataclass's frozen ``__init__``; treat them as immutable, as the type
checker does through ``Final``):

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
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from trunkline.sip.dialog import Dialog, DialogState
    from trunkline.sip.message import Request, Response
    from trunkline.sip.transaction import ClientTransaction, ServerTransaction, Transaction

RELIABLE_TRANSPORTS = frozenset({"tcp", "tls", "sctp", "tls-sctp", "ws", "wss"})


def _repr(obj: Any, names: tuple[str, ...]) -> str:
    fields = ", ".join(f"{name}={getattr(obj, name)!r}" for name in names)
    return f"{type(obj).__name__}({fields})"


class Peer:
    """Where a message goes to or came from: transport name, host and port.

    ``transport`` is lower-case (``udp``, ``tcp``, ``tls``, ``ws``, ``wss``).
    Reliability decides which retransmission timers run (RFC 3261 §17.1.1.2).
    Compared and hashed by value.
    """

    __slots__ = ("host", "port", "transport")
    __match_args__ = ("transport", "host", "port")

    def __init__(self, transport: str, host: str, port: int) -> None:
        self.transport: Final = transport
        self.host: Final = host
        self.port: Final = port

    @property
    def reliable(self) -> bool:
        """True for stream transports, which retransmit by themselves (§18)."""
        return self.transport.lower() in RELIABLE_TRANSPORTS

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Peer):
            return NotImplemented
        return (
            self.port == other.port
            and self.host == other.host
            and self.transport == other.transport
        )

    def __hash__(self) -> int:
        return hash((self.transport, self.host, self.port))

    def __repr__(self) -> str:
        return _repr(self, self.__match_args__)


class Transmit:
    """Hand ``message`` to the transport layer, addressed to ``peer``. Compared by value."""

    __slots__ = ("message", "peer")
    __match_args__ = ("message", "peer")

    def __init__(self, message: Request | Response, peer: Peer | None) -> None:
        self.message: Final = message
        self.peer: Final = peer

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Transmit):
            return NotImplemented
        return self.message == other.message and self.peer == other.peer

    def __hash__(self) -> int:
        return hash((self.message, self.peer))

    def __repr__(self) -> str:
        return _repr(self, self.__match_args__)


class Event:
    """Base class of everything the transaction and dialog layers report.

    Events compare by identity; ``__match_args__`` names their fields in order.
    """

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return _repr(self, self.__match_args__)


# -- transaction layer (RFC 3261 §17) --------------------------------------


class RequestReceived(Event):
    """A new request arrived (§17.2).

    ``transaction`` is the server transaction to answer through; it is None
    for an ACK, which is never a transaction of its own when it acknowledges
    a 2xx (§17.2.3, RFC 6026 §8.7).
    """

    __slots__ = ("peer", "request", "transaction")
    __match_args__ = ("request", "transaction", "peer")

    def __init__(
        self, request: Request, transaction: ServerTransaction | None, peer: Peer | None
    ) -> None:
        self.request: Final = request
        self.transaction: Final = transaction
        self.peer: Final = peer


class ResponseReceived(Event):
    """A response arrived for a client transaction (§17.1).

    ``transaction`` is None for a response that matched no transaction, which
    RFC 6026 §8.9 says must be passed to the core (a late 2xx retransmission,
    or a 2xx from another fork).
    """

    __slots__ = ("response", "transaction")
    __match_args__ = ("response", "transaction")

    def __init__(self, response: Response, transaction: ClientTransaction | None) -> None:
        self.response: Final = response
        self.transaction: Final = transaction


class TransactionTimedOut(Event):
    """Timer B, F or H fired: treat as a 408 (client) or a lost ACK (server)."""

    __slots__ = ("timer", "transaction")
    __match_args__ = ("transaction", "timer")

    def __init__(self, transaction: Transaction, timer: str) -> None:
        self.transaction: Final = transaction
        self.timer: Final = timer


class TransactionTransportError(Event):
    """The transport could not send a message of this transaction (§17.1.4)."""

    __slots__ = ("reason", "transaction")
    __match_args__ = ("transaction", "reason")

    def __init__(self, transaction: Transaction, reason: str) -> None:
        self.transaction: Final = transaction
        self.reason: Final = reason


class TransactionTerminated(Event):
    """The transaction reached Terminated and was removed from the table."""

    __slots__ = ("transaction",)
    __match_args__ = ("transaction",)

    def __init__(self, transaction: Transaction) -> None:
        self.transaction: Final = transaction


class MergedRequestRejected(Event):
    """A request arrived twice by different paths; answered 482 (§8.2.2.2)."""

    __slots__ = ("request",)
    __match_args__ = ("request",)

    def __init__(self, request: Request) -> None:
        self.request: Final = request


# -- dialog layer (RFC 3261 §12-§15, RFC 3262, RFC 3311, RFC 4028) ---------


class DialogStateChanged(Event):
    """A dialog was created, confirmed or terminated (§12).

    ``state`` is the dialog's state when this happened (the dialog object
    itself moves on).
    """

    __slots__ = ("dialog", "reason", "state")
    __match_args__ = ("dialog", "state", "reason")

    def __init__(self, dialog: Dialog, state: DialogState, reason: str = "") -> None:
        self.dialog: Final = dialog
        self.state: Final = state
        self.reason: Final = reason


class SendRequest(Event):
    """The dialog layer wants ``request`` sent in a new client transaction.

    Used for requests the layer originates itself: the BYE after a lost ACK
    (§13.3.1.4), a re-INVITE retried after 491 (§14.1), a PRACK (RFC 3262
    §4), a session refresh or the BYE on session expiry (RFC 4028 §10).
    """

    __slots__ = ("dialog", "request")
    __match_args__ = ("request", "dialog")

    def __init__(self, request: Request, dialog: Dialog | None) -> None:
        self.request: Final = request
        self.dialog: Final = dialog


class AckTimedOut(Event):
    """The UAS retransmitted its 2xx for 64*T1 without an ACK (§13.3.1.4)."""

    __slots__ = ("cseq", "dialog")
    __match_args__ = ("dialog", "cseq")

    def __init__(self, dialog: Dialog, cseq: int) -> None:
        self.dialog: Final = dialog
        self.cseq: Final = cseq


class PrackTimedOut(Event):
    """A reliable 1xx went unacknowledged for 64*T1 (RFC 3262 §3)."""

    __slots__ = ("dialog", "rseq")
    __match_args__ = ("dialog", "rseq")

    def __init__(self, dialog: Dialog, rseq: int) -> None:
        self.dialog: Final = dialog
        self.rseq: Final = rseq


class GlareRetryDue(Event):
    """The §14.1 wait after a 491 is over: the TU may resend its re-INVITE."""

    __slots__ = ("dialog", "method")
    __match_args__ = ("dialog", "method")

    def __init__(self, dialog: Dialog, method: str) -> None:
        self.dialog: Final = dialog
        self.method: Final = method


class SessionRefreshDue(Event):
    """We are the refresher and half the session interval passed (RFC 4028 §10)."""

    __slots__ = ("dialog",)
    __match_args__ = ("dialog",)

    def __init__(self, dialog: Dialog) -> None:
        self.dialog: Final = dialog


class SessionExpired(Event):
    """No session refresh arrived in time (RFC 4028 §10): send BYE."""

    __slots__ = ("dialog",)
    __match_args__ = ("dialog",)

    def __init__(self, dialog: Dialog) -> None:
        self.dialog: Final = dialog


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
