"""The four SIP transaction state machines (RFC 3261 §17, amended by RFC 6026).

* :class:`ClientInviteTransaction`: Figure 5 of §17.1.1 with the RFC 6026
  "Accepted" state (Timer M) that passes 2xx retransmissions to the TU.
* :class:`ClientNonInviteTransaction`: Figure 6 of §17.1.2.
* :class:`ServerInviteTransaction`: Figure 7 of §17.2.1 with the RFC 6026
  "Accepted" state (Timer L), and the automatic 100 Trying after 200 ms.
* :class:`ServerNonInviteTransaction`: Figure 8 of §17.2.2.

The machines are sans-IO: every entry point takes ``now``; timers are
deadlines (``get_timer()`` / ``handle_timer(now)``); messages to send go to
an :class:`~trunkline.sip.events.Outbox` as
:class:`~trunkline.sip.events.Transmit` and what the TU must hear as
:class:`~trunkline.sip.events.Event`. On reliable transports the
retransmission timers (A, E, G) are never armed and D, I, J, K are zero.
Matching messages to transactions lives in
:mod:`trunkline.sip.transaction_table`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import ClassVar

from trunkline.sip.builder import make_response
from trunkline.sip.errors import LocalSipError
from trunkline.sip.events import (
    Outbox,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransactionTransportError,
    Transmit,
)
from trunkline.sip.headers import Headers
from trunkline.sip.message import Request, Response
from trunkline.sip.timers import DEFAULT_TIMERS, Deadlines, TimerConfig

logger = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"
"""Branch prefix of RFC 3261 compliant requests (§8.1.1.7)."""


class TransactionState(enum.Enum):
    """The states of Figures 5-8 of RFC 3261 §17 plus RFC 6026 "Accepted"."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"

    # Identity hashing in C: Enum's own __hash__ is a Python call on every
    # transition-table lookup (members are singletons, so equality is identity).
    __hash__ = object.__hash__


S = TransactionState


NON_INVITE_TRANSITIONS: dict[TransactionState, frozenset[TransactionState]] = {
    S.TRYING: frozenset({S.PROCEEDING, S.COMPLETED, S.TERMINATED}),
    S.PROCEEDING: frozenset({S.COMPLETED, S.TERMINATED}),
    S.COMPLETED: frozenset({S.TERMINATED}),
    S.TERMINATED: frozenset(),
}
"""The non-INVITE state diagram, the same for client and server (RFC 3261 Figures 6 and 8)."""


class Transaction:
    """What the four machines share: state, deadlines, outbox, logging."""

    TRANSITIONS: ClassVar[dict[TransactionState, frozenset[TransactionState]]] = {}
    INITIAL: ClassVar[TransactionState]

    def __init__(
        self,
        request: Request,
        *,
        peer: Peer | None = None,
        reliable: bool | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
        outbox: Outbox | None = None,
    ) -> None:
        self.request = request
        self.peer = peer
        self.reliable = reliable if reliable is not None else (peer is not None and peer.reliable)
        self.timers = timers
        self.outbox = outbox if outbox is not None else Outbox()
        self.state = self.INITIAL
        self.deadlines = Deadlines()
        top = request.top_via
        self.branch: str = (top.branch or "") if top is not None else ""
        self.method: str = request.method
        self.on_change: Callable[[Transaction], None] | None = None
        """Called after every entry point; the table uses it to re-file timers."""

    # -- driver interface -------------------------------------------------

    def get_timer(self) -> float | None:
        """The next deadline of this transaction, or None."""
        return self.deadlines.earliest()

    def handle_timer(self, now: float) -> None:
        """Fire every timer that is due at ``now``."""
        self._fire_due(now)
        self._changed()

    def transport_error(self, now: float, reason: str = "transport error") -> None:
        """The transport failed to send one of our messages (§17.1.4, §17.2.4)."""
        if self.state is not S.TERMINATED:
            self.outbox.events.append(TransactionTransportError(self, reason))
            self._terminate()
        self._changed()

    @property
    def terminated(self) -> bool:
        """True once the machine reached Terminated."""
        return self.state is S.TERMINATED

    # -- internals ----------------------------------------------------------

    def _fire_due(self, now: float) -> None:
        for name in self.deadlines.pop_due(now):
            if self.state is S.TERMINATED:
                return
            self._fire(name, now)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def _fire(self, name: str, now: float) -> None:
        raise NotImplementedError  # pragma: no cover - every machine overrides

    def _set_state(self, new: TransactionState) -> None:
        old = self.state
        if new not in self.TRANSITIONS[old]:
            raise LocalSipError(
                f"{type(self).__name__}: illegal transition {old.value} -> {new.value}"
            )
        self.state = new
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s %s Call-ID %s: %s -> %s",
                type(self).__name__,
                self.method,
                self.branch,
                self.request.call_id,
                old.value,
                new.value,
            )

    def _terminate(self) -> None:
        self._set_state(S.TERMINATED)
        self.deadlines.clear()
        self.outbox.events.append(TransactionTerminated(self))

    def _send(self, message: Request | Response) -> None:
        self.outbox.transmits.append(Transmit(message, self.peer))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.branch} {self.state.value}>"


# -- client transactions (§17.1) -------------------------------------------


class ClientTransaction(Transaction):
    """Base of the two client machines: sends the request on :meth:`start`."""

    last_response: Response | None = None

    def start(self, now: float) -> None:
        """Pass the request to the transport and arm the first timers."""
        self._start(now)
        self._changed()

    def receive_response(self, response: Response, now: float) -> None:
        """A response matched this transaction (§17.1.3)."""
        self._on_response(response, now)
        self._changed()

    def _start(self, now: float) -> None:
        raise NotImplementedError  # pragma: no cover

    def _on_response(self, response: Response, now: float) -> None:
        raise NotImplementedError  # pragma: no cover

    def _to_tu(self, response: Response) -> None:
        self.last_response = response
        self.outbox.events.append(ResponseReceived(response, self))


class ClientInviteTransaction(ClientTransaction):
    """INVITE client transaction: RFC 3261 §17.1.1, Figure 5; RFC 6026 §7.2.

    Timer A (retransmit, doubling from T1, unreliable only), B (64*T1
    timeout, in Calling), D (wait in Completed for response retransmissions:
    32 s unreliable, 0 reliable), M (RFC 6026: 64*T1 in Accepted, where 2xx
    retransmissions still reach the TU so it can re-ACK them).
    """

    INITIAL = S.CALLING
    TRANSITIONS: ClassVar[dict[TransactionState, frozenset[TransactionState]]] = {
        S.CALLING: frozenset({S.PROCEEDING, S.COMPLETED, S.ACCEPTED, S.TERMINATED}),
        S.PROCEEDING: frozenset({S.COMPLETED, S.ACCEPTED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.TERMINATED}),
        S.ACCEPTED: frozenset({S.TERMINATED}),
        S.TERMINATED: frozenset(),
    }

    def __init__(
        self,
        request: Request,
        *,
        peer: Peer | None = None,
        reliable: bool | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
        outbox: Outbox | None = None,
    ) -> None:
        if request.method != "INVITE":
            raise LocalSipError("ClientInviteTransaction needs an INVITE")
        super().__init__(request, peer=peer, reliable=reliable, timers=timers, outbox=outbox)
        self._interval_a = timers.t1
        self.ack: Request | None = None

    def _start(self, now: float) -> None:
        """Calling: send the INVITE, arm A (unreliable) and B (§17.1.1.2)."""
        self._send(self.request)
        if not self.reliable:
            self.deadlines.set("A", now + self._interval_a)
        self.deadlines.set("B", now + self.timers.timeout)

    def _on_response(self, response: Response, now: float) -> None:
        """Drive Figure 5 with a matching response."""
        status = response.status
        state = self.state
        if state in (S.CALLING, S.PROCEEDING):
            if status < 200:
                if state is S.CALLING:
                    self._set_state(S.PROCEEDING)
                    self.deadlines.cancel("A", "B")
                self._to_tu(response)
            elif status < 300:
                self._set_state(S.ACCEPTED)
                self.deadlines.cancel("A", "B")
                self.deadlines.set("M", now + self.timers.timeout)
                self._to_tu(response)
            else:
                self._set_state(S.COMPLETED)
                self.deadlines.cancel("A", "B")
                self.ack = self.make_ack(response)
                self._send(self.ack)
                self.deadlines.set("D", now + (0.0 if self.reliable else self.timers.timer_d))
                self._to_tu(response)
                if self.reliable:
                    self._fire_due(now)
        elif state is S.COMPLETED:
            if status >= 300 and self.ack is not None:
                self._send(self.ack)  # a retransmitted final response: re-ACK only
        elif state is S.ACCEPTED and 200 <= status < 300:
            self._to_tu(response)  # RFC 6026 §7.2: the TU ACKs each 2xx retransmission

    def make_ack(self, response: Response) -> Request:
        """The ACK for a non-2xx final response (RFC 3261 §17.1.1.3).

        Same Request-URI, Call-ID, From, CSeq number and top Via (so the same
        branch) as the INVITE; To from the response (it carries the tag);
        the INVITE's Route headers.
        """
        invite = self.request
        headers = Headers()
        headers.add("Via", str(invite.via[0]))
        for route in invite.headers.get_all("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        from_value = invite.headers.get("From")
        to_value = response.headers.get("To")
        call_id = invite.headers.get("Call-ID")
        if from_value is None or to_value is None or call_id is None:
            raise LocalSipError("cannot build an ACK without From, To and Call-ID")
        headers.add("From", from_value)
        headers.add("To", to_value)
        headers.add("Call-ID", call_id)
        headers.add("CSeq", f"{invite.cseq.number} ACK")
        headers.add("Content-Length", "0")
        return Request("ACK", invite.uri, headers=headers)

    def make_cancel(self) -> Request:
        """The CANCEL for this INVITE (RFC 3261 §9.1).

        Same Request-URI, Call-ID, From, To (without a tag the INVITE lacked),
        CSeq number, top Via (same branch) and Route as the INVITE.
        """
        invite = self.request
        headers = Headers()
        headers.add("Via", str(invite.via[0]))
        for route in invite.headers.get_all("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            value = invite.headers.get(name)
            if value is None:
                raise LocalSipError(f"cannot build a CANCEL without {name}")
            headers.add(name, value)
        headers.add("CSeq", f"{invite.cseq.number} CANCEL")
        headers.add("Content-Length", "0")
        return Request("CANCEL", invite.uri, headers=headers)

    def _fire(self, name: str, now: float) -> None:
        if name == "A" and self.state is S.CALLING:
            self._send(self.request)
            self._interval_a *= 2
            self.deadlines.set("A", now + self._interval_a)
        elif name == "B" and self.state is S.CALLING:
            self.outbox.events.append(TransactionTimedOut(self, "B"))
            self._terminate()
        elif (name == "D" and self.state is S.COMPLETED) or (
            name == "M" and self.state is S.ACCEPTED
        ):
            self._terminate()


class ClientNonInviteTransaction(ClientTransaction):
    """Non-INVITE client transaction: RFC 3261 §17.1.2, Figure 6.

    Timer E retransmits (T1 doubling, capped at T2; always T2 once a
    provisional arrived), F times out at 64*T1, K absorbs response
    retransmissions in Completed (T4 unreliable, 0 reliable).
    """

    INITIAL = S.TRYING
    TRANSITIONS = NON_INVITE_TRANSITIONS

    def __init__(
        self,
        request: Request,
        *,
        peer: Peer | None = None,
        reliable: bool | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
        outbox: Outbox | None = None,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalSipError(f"{request.method} cannot be a non-INVITE client transaction")
        super().__init__(request, peer=peer, reliable=reliable, timers=timers, outbox=outbox)
        self._interval_e = timers.t1

    def _start(self, now: float) -> None:
        """Trying: send the request, arm E (unreliable) and F (§17.1.2.2)."""
        self._send(self.request)
        if not self.reliable:
            self.deadlines.set("E", now + self._interval_e)
        self.deadlines.set("F", now + self.timers.timeout)

    def _on_response(self, response: Response, now: float) -> None:
        """Drive Figure 6 with a matching response."""
        status = response.status
        if self.state in (S.TRYING, S.PROCEEDING):
            if status < 200:
                if self.state is S.TRYING:
                    self._set_state(S.PROCEEDING)
                self._to_tu(response)
            else:
                self._set_state(S.COMPLETED)
                self.deadlines.cancel("E", "F")
                self._to_tu(response)
                self.deadlines.set("K", now + (0.0 if self.reliable else self.timers.t4))
                if self.reliable:
                    self._fire_due(now)
        # Completed: response retransmissions are absorbed.

    def _fire(self, name: str, now: float) -> None:
        if name == "E" and self.state in (S.TRYING, S.PROCEEDING):
            self._send(self.request)
            if self.state is S.TRYING:
                self._interval_e = min(2 * self._interval_e, self.timers.t2)
            else:
                self._interval_e = self.timers.t2
            self.deadlines.set("E", now + self._interval_e)
        elif name == "F" and self.state in (S.TRYING, S.PROCEEDING):
            self.outbox.events.append(TransactionTimedOut(self, "F"))
            self._terminate()
        elif name == "K" and self.state is S.COMPLETED:
            self._terminate()


# -- server transactions (§17.2) -------------------------------------------


class ServerTransaction(Transaction):
    """Base of the two server machines: the TU answers with :meth:`send_response`."""

    last_response: Response | None = None

    def start(self, now: float) -> None:
        """Enter the initial state; the request is already with the TU."""
        self._start(now)
        self._changed()

    def receive_request(self, request: Request, now: float) -> None:
        """A request matched this transaction (§17.2.3): a retransmission or ACK."""
        self._on_request(request, now)
        self._changed()

    def send_response(self, response: Response, now: float) -> None:
        """The TU passes a response to the transaction.

        Raises :class:`~trunkline.sip.errors.LocalSipError` when the state
        does not allow it (a second final response, a non-2xx in Accepted).
        """
        self._on_tu_response(response, now)
        self._changed()

    def _start(self, now: float) -> None:
        pass

    def _on_request(self, request: Request, now: float) -> None:
        raise NotImplementedError  # pragma: no cover

    def _on_tu_response(self, response: Response, now: float) -> None:
        raise NotImplementedError  # pragma: no cover

    def _respond(self, response: Response) -> None:
        self.last_response = response
        self._send(response)

    def _reject_from_tu(self, response: Response) -> None:
        raise LocalSipError(
            f"{type(self).__name__} in {self.state.value} cannot send {response.status}"
        )

    @property
    def response_to_tag(self) -> str | None:
        """The To tag of the last response sent (used by RFC 2543 ACK matching)."""
        return self.last_response.to_tag if self.last_response is not None else None


class ServerInviteTransaction(ServerTransaction):
    """INVITE server transaction: RFC 3261 §17.2.1, Figure 7; RFC 6026 §7.1.

    Proceeding sends 100 Trying itself if the TU says nothing for
    ``trying_delay`` (200 ms). A 2xx moves to Accepted (Timer L = 64*T1)
    where INVITE retransmissions are absorbed, further 2xx from the TU (its
    §13.3.1.4 retransmissions) are sent, and ACKs go to the TU. A 300-699
    moves to Completed: Timer G retransmits it (T1 doubling to T2, unreliable
    only) until the ACK or Timer H (64*T1); the ACK moves to Confirmed,
    which absorbs further ACKs for Timer I (T4 unreliable, 0 reliable).
    """

    INITIAL = S.PROCEEDING
    TRANSITIONS: ClassVar[dict[TransactionState, frozenset[TransactionState]]] = {
        S.PROCEEDING: frozenset({S.COMPLETED, S.ACCEPTED, S.TERMINATED}),
        S.COMPLETED: frozenset({S.CONFIRMED, S.TERMINATED}),
        S.CONFIRMED: frozenset({S.TERMINATED}),
        S.ACCEPTED: frozenset({S.TERMINATED}),
        S.TERMINATED: frozenset(),
    }

    def __init__(
        self,
        request: Request,
        *,
        peer: Peer | None = None,
        reliable: bool | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
        outbox: Outbox | None = None,
    ) -> None:
        if request.method != "INVITE":
            raise LocalSipError("ServerInviteTransaction needs an INVITE")
        super().__init__(request, peer=peer, reliable=reliable, timers=timers, outbox=outbox)
        self._interval_g = timers.t1
        self.ack: Request | None = None
        self.auto_trying = True
        """Send 100 Trying after ``trying_delay`` unless the TU answers first."""

    def _start(self, now: float) -> None:
        """Enter Proceeding; arm the 100 Trying timer (§17.2.1)."""
        if self.auto_trying:
            self.deadlines.set("Trying", now + self.timers.trying_delay)

    def _on_request(self, request: Request, now: float) -> None:
        """An INVITE retransmission or an ACK matched this transaction."""
        state = self.state
        if request.method == "INVITE":
            if state is S.PROCEEDING:
                if self.last_response is None:
                    self._send_trying()
                else:
                    self._send(self.last_response)
            elif state is S.COMPLETED and self.last_response is not None:
                self._send(self.last_response)
            # Accepted and Confirmed absorb INVITE retransmissions.
        elif request.method == "ACK":
            if state is S.COMPLETED:
                self.ack = request
                self._set_state(S.CONFIRMED)
                self.deadlines.cancel("G", "H")
                self.deadlines.set("I", now + (0.0 if self.reliable else self.timers.t4))
                if self.reliable:
                    self._fire_due(now)
            elif state is S.ACCEPTED:
                # RFC 6026 Figure 7: an ACK in Accepted is the TU's (it stops
                # the 2xx retransmissions of §13.3.1.4).
                self.outbox.events.append(RequestReceived(request, None, self.peer))

    def _on_tu_response(self, response: Response, now: float) -> None:
        """Pass a response from the TU through Figure 7."""
        status = response.status
        state = self.state
        if state is S.PROCEEDING:
            self.deadlines.cancel("Trying")
            self._respond(response)
            if status < 200:
                return
            if status < 300:
                self._set_state(S.ACCEPTED)
                self.deadlines.set("L", now + self.timers.timeout)
            else:
                self._set_state(S.COMPLETED)
                if not self.reliable:
                    self.deadlines.set("G", now + self._interval_g)
                self.deadlines.set("H", now + self.timers.timeout)
        elif state is S.ACCEPTED and 200 <= status < 300:
            self._respond(response)
        else:
            self._reject_from_tu(response)

    def _send_trying(self) -> None:
        trying = make_response(self.request, 100, "Trying")
        self._respond(trying)

    def _fire(self, name: str, now: float) -> None:
        if name == "Trying" and self.state is S.PROCEEDING and self.last_response is None:
            self._send_trying()
        elif name == "G" and self.state is S.COMPLETED and self.last_response is not None:
            self._send(self.last_response)
            self._interval_g = min(2 * self._interval_g, self.timers.t2)
            self.deadlines.set("G", now + self._interval_g)
        elif name == "H" and self.state is S.COMPLETED:
            self.outbox.events.append(TransactionTimedOut(self, "H"))
            self._terminate()
        elif (name == "I" and self.state is S.CONFIRMED) or (
            name == "L" and self.state is S.ACCEPTED
        ):
            self._terminate()


class ServerNonInviteTransaction(ServerTransaction):
    """Non-INVITE server transaction: RFC 3261 §17.2.2, Figure 8.

    Request retransmissions are absorbed in Trying, answered with the last
    provisional in Proceeding and with the final response in Completed,
    which lasts Timer J (64*T1 unreliable, 0 reliable).
    """

    INITIAL = S.TRYING
    TRANSITIONS = NON_INVITE_TRANSITIONS

    def __init__(
        self,
        request: Request,
        *,
        peer: Peer | None = None,
        reliable: bool | None = None,
        timers: TimerConfig = DEFAULT_TIMERS,
        outbox: Outbox | None = None,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalSipError(f"{request.method} cannot be a non-INVITE server transaction")
        super().__init__(request, peer=peer, reliable=reliable, timers=timers, outbox=outbox)

    def _on_request(self, request: Request, now: float) -> None:
        """A retransmission of the request matched this transaction."""
        if self.state in (S.PROCEEDING, S.COMPLETED) and self.last_response is not None:
            self._send(self.last_response)

    def _on_tu_response(self, response: Response, now: float) -> None:
        """Pass a response from the TU through Figure 8."""
        if self.state not in (S.TRYING, S.PROCEEDING):
            self._reject_from_tu(response)
            return
        self._respond(response)
        if response.status < 200:
            if self.state is S.TRYING:
                self._set_state(S.PROCEEDING)
            return
        self._set_state(S.COMPLETED)
        self.deadlines.set("J", now + (0.0 if self.reliable else self.timers.timeout))
        if self.reliable:
            self._fire_due(now)

    def _fire(self, name: str, now: float) -> None:
        if name == "J" and self.state is S.COMPLETED:
            self._terminate()


def is_rfc3261_branch(branch: str | None) -> bool:
    """True when ``branch`` starts with the magic cookie (RFC 3261 §8.1.1.7)."""
    return branch is not None and branch.startswith(MAGIC_COOKIE)
