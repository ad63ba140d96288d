"""Reliable provisional responses and PRACK (RFC 3262), sans-IO.

* :class:`ReliableProvisionalSender` (UAS, §3): numbers reliable 1xx with
  RSeq (random start, +1 each), retransmits the unacknowledged one with an
  interval starting at T1 and doubling, until a PRACK whose RAck matches
  (``rseq cseq method``) arrives; after 64*T1 the UAS gives up and should
  reject the INVITE with a 5xx. Reliable 1xx go one at a time: the next
  may be prepared once the previous one is PRACKed.
* :class:`ReliableProvisionalReceiver` (UAC, §4): accepts the first RSeq it
  sees, then only RSeq + 1; a repeat or an out-of-order RSeq is not
  acknowledged and not processed further.

Helpers say whether a peer supports or requires ``100rel`` and build the
RAck value of a PRACK.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from trunkline.sip.errors import LocalSipError
from trunkline.sip.headers import RAck
from trunkline.sip.message import Request, Response
from trunkline.sip.timers import DEFAULT_TIMERS, Deadlines, TimerConfig

OPTION_TAG = "100rel"
MAX_RSEQ = 2**31 - 1


def supports_100rel(request: Request) -> bool:
    """True when ``request`` lists 100rel in Supported or Require (§3)."""
    return OPTION_TAG in request.supported or OPTION_TAG in request.require


def requires_100rel(message: Request | Response) -> bool:
    """True when 100rel is in Require (a reliable 1xx, or a demanding INVITE)."""
    return OPTION_TAG in message.require


def is_reliable_provisional(response: Response) -> bool:
    """A 101-199 with ``Require: 100rel`` and an RSeq (§4)."""
    return 100 < response.status < 200 and requires_100rel(response) and response.rseq is not None


def rack_for(response: Response) -> str:
    """The RAck value acknowledging a reliable 1xx (§7.2)."""
    rseq = response.rseq
    if rseq is None:
        raise LocalSipError("not a reliable provisional response: no RSeq")
    return str(RAck(rseq, response.cseq.number, response.cseq.method))


@dataclass(slots=True)
class _Pending:
    response: Response
    rseq: int
    interval: float


class ReliableProvisionalSender:
    """The UAS side of RFC 3262 §3 for one INVITE."""

    def __init__(
        self,
        invite: Request,
        *,
        timers: TimerConfig = DEFAULT_TIMERS,
        rng: random.Random | None = None,
    ) -> None:
        self.invite = invite
        self.timers = timers
        self._next_rseq = (rng or random.Random()).randint(1, MAX_RSEQ // 2)
        self.unacked: _Pending | None = None
        self.deadlines = Deadlines()
        self.acked: list[int] = []

    @property
    def busy(self) -> bool:
        """True while a reliable 1xx waits for its PRACK (send no other, §3)."""
        return self.unacked is not None

    def prepare(self, response: Response) -> Response:
        """Add ``Require: 100rel`` and the next RSeq to a 1xx (§3).

        Raises :class:`LocalSipError` while an earlier reliable 1xx is not
        yet PRACKed: the UAS sends them one at a time.
        """
        if not 100 < response.status < 200:
            raise LocalSipError("only 101-199 responses can be sent reliably")
        if self.busy:
            raise LocalSipError("the previous reliable provisional response is not PRACKed yet")
        if OPTION_TAG not in response.require:
            response.headers.add("Require", OPTION_TAG)
        response.headers.set("RSeq", str(self._next_rseq))
        self._next_rseq += 1
        return response

    def sent(self, response: Response, now: float) -> None:
        """A prepared reliable 1xx went out: retransmit it until PRACKed."""
        rseq = response.rseq
        if rseq is None:
            raise LocalSipError("call prepare() first: the response has no RSeq")
        self.unacked = _Pending(response, rseq, self.timers.t1)
        self.deadlines.set("retransmit", now + self.timers.t1)
        self.deadlines.set("give-up", now + self.timers.timeout)

    def receive_prack(self, prack: Request) -> int:
        """Match a PRACK (§3): 200 when its RAck names the outstanding reliable
        1xx (or one already acknowledged: a PRACK retransmission), else 481.
        """
        rack = prack.rack
        if rack is None or rack.cseq != self.invite.cseq.number or rack.method != "INVITE":
            return 481
        pending = self.unacked
        if pending is not None and rack.rseq == pending.rseq:
            self.acked.append(pending.rseq)
            self.unacked = None
            self.deadlines.clear()
            return 200
        return 200 if rack.rseq in self.acked else 481

    def final_sent(self) -> None:
        """The INVITE got its final response: stop retransmitting (§3)."""
        self.unacked = None
        self.deadlines.clear()

    def get_timer(self) -> float | None:
        """The next retransmission or give-up deadline."""
        return self.deadlines.earliest()

    def handle_timer(self, now: float) -> tuple[list[Response], bool]:
        """Returns (responses to retransmit, gave_up)."""
        out: list[Response] = []
        for name in self.deadlines.pop_due(now):
            pending = self.unacked
            if pending is None:
                break
            if name == "give-up":
                self.final_sent()
                return out, True
            out.append(pending.response)
            pending.interval *= 2
            self.deadlines.set("retransmit", now + pending.interval)
        return out, False


class ReliableProvisionalReceiver:
    """The UAC side of RFC 3262 §4 for one early dialog."""

    def __init__(self) -> None:
        self.last_rseq: int | None = None

    def accept(self, response: Response) -> bool:
        """True when ``response`` is the next reliable 1xx in order (PRACK it).

        False for a retransmission or an RSeq that is not one higher than
        the last: such a response "MUST NOT be acknowledged with a PRACK,
        and MUST NOT be processed further" (§4).
        """
        rseq = response.rseq
        if rseq is None:
            return False
        if self.last_rseq is not None and rseq != self.last_rseq + 1:
            return False
        self.last_rseq = rseq
        return True
