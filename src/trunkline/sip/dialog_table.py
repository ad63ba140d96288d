"""The dialog layer: every dialog of a UA core and its timers (RFC 3261 §12-§15).

:class:`DialogLayer` sits between the transaction layer and the application.
It never sends through a transaction itself; the driver tells it what went
past and executes what it returns::

    layer.request_sent(request, now)               # every request we send
    v = layer.response_received(response, now)     # every response we get
    v = layer.request_received(request, now)       # every request (and ACK) we get
    if v.status: answer v.status with v.headers    # 481, 500, 491, 422, PRACK's 481
    layer.response_sent(request, response, now, peer)   # every response we send
    for t in layer.drain_transmits(): ...          # ACKs, 2xx / reliable 1xx resends
    for e in layer.drain_events(): ...             # SendRequest, DialogStateChanged...
    layer.get_timer() / layer.handle_timer(now)

A :class:`~trunkline.sip.events.Transmit` with ``peer=None`` (the ACK of a
2xx) is routed from the request itself: Route, then Request-URI (RFC 3263).
A :class:`~trunkline.sip.events.SendRequest` asks for a new client
transaction (PRACK, BYE after a lost ACK or an expired session).

What it does, with the sections:

* UAC and UAS dialogs, early and confirmed, several early dialogs per
  forked INVITE (§12.1, §13.2.2.4); 481 for a request in an unknown dialog
  and 500 for an out-of-order CSeq (§12.2.2); target refresh.
* The UAC core ACKs every 2xx, retransmissions with the same ACK
  (§13.2.2.4); the UAS core retransmits its 2xx from T1 doubling to T2
  until the ACK and gives up after 64*T1 with a BYE (§13.3.1.4).
* re-INVITE glare: 491 while our INVITE is pending, 500 with Retry-After
  while theirs is; after a 491 the §14.1 wait (2.1-4 s for the Call-ID
  owner, else 0-2 s; the RNG is injectable).
* UPDATE offers (RFC 3311 §5.2): 491 when our offer is outstanding, 500 +
  Retry-After when theirs is.
* Reliable 1xx and PRACK (RFC 3262) through :mod:`trunkline.sip.prack`.
* Session timers (RFC 4028) through :mod:`trunkline.sip.sessiontimer`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from trunkline.sip.builder import make_response
from trunkline.sip.dialog import Dialog, DialogId, DialogState, has_sdp
from trunkline.sip.errors import LocalSipError, SipError
from trunkline.sip.events import (
    AckTimedOut,
    DialogStateChanged,
    Event,
    GlareRetryDue,
    Outbox,
    Peer,
    PrackTimedOut,
    SendRequest,
    SessionExpired,
    SessionRefreshDue,
    Transmit,
)
from trunkline.sip.headers import Via
from trunkline.sip.message import Request, Response
from trunkline.sip.prack import (
    ReliableProvisionalReceiver,
    ReliableProvisionalSender,
    is_reliable_provisional,
    rack_for,
)
from trunkline.sip.sessiontimer import (
    SessionTimer,
    SessionTimerAction,
    SessionTimerConfig,
    uac_negotiate,
    uas_negotiate,
)
from trunkline.sip.timers import DEFAULT_TIMERS, TimerConfig, TimerHeap

logger = logging.getLogger(__name__)

InviteKey = tuple[str, str, int]
"""(Call-ID, From tag, CSeq number) of an INVITE."""


@dataclass(frozen=True, slots=True)
class _Key:
    """Names one dialog-layer timer: its kind and what it belongs to."""

    kind: str
    dialog: DialogId | None = None
    invite: InviteKey | None = None
    cseq: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the dialog layer says about an incoming request.

    ``status`` set: answer the request with it (and ``headers``) and do not
    process it further. ``status`` None: go on; ``headers`` then belong in
    the 2xx (Session-Expires/Require of RFC 4028 §9).
    """

    dialog: Dialog | None
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def accepted(self) -> bool:
        """True when the TU should process the request."""
        return self.status is None


@dataclass(frozen=True, slots=True)
class ResponseVerdict:
    """What the dialog layer says about a response to one of our requests.

    ``fresh`` is False for what the TU must not process again: a 2xx
    retransmission (already re-ACKed) or a repeated or out-of-order reliable
    1xx (RFC 3262 §4). ``needs_ack`` is True when a 2xx carried an offer
    (our INVITE had none): the TU sends the answer with :meth:`DialogLayer.send_ack`.
    """

    dialog: Dialog | None
    fresh: bool = True
    needs_ack: bool = False


@dataclass(slots=True)
class _UacInvite:
    request: Request
    offered: bool
    dialogs: dict[str, Dialog] = field(default_factory=dict)
    answer_seen: bool = False


@dataclass(slots=True)
class _UasInvite:
    request: Request
    peer: Peer | None = None
    tags: set[str] = field(default_factory=set)
    prack: ReliableProvisionalSender | None = None
    sdp_sent: bool = False


@dataclass(slots=True)
class _Answer:
    """A 2xx retransmitted by the UAS core until its ACK (§13.3.1.4)."""

    dialog: Dialog
    response: Response
    peer: Peer | None
    interval: float
    give_up: float


class DialogLayer:
    """The dialogs of one UA core and the timers that belong to them."""

    def __init__(
        self,
        timers: TimerConfig = DEFAULT_TIMERS,
        *,
        rng: random.Random | None = None,
        local_via: Via | None = None,
        session_timer: SessionTimerConfig | None = None,
        auto_prack: bool = True,
    ) -> None:
        self.timers = timers
        self.rng = rng if rng is not None else random.Random()
        self.local_via = local_via
        self.session_timer = session_timer
        self.auto_prack = auto_prack
        self.outbox = Outbox()
        self.dialogs: dict[DialogId, Dialog] = {}
        self._uac_invites: dict[InviteKey, _UacInvite] = {}
        self._uas_invites: dict[InviteKey, _UasInvite] = {}
        # 2xx awaiting their ACK, indexed by dialog then CSeq so ending a dialog
        # touches only its own entries (not every pending 2xx of the layer).
        self._answers: dict[DialogId, dict[int, _Answer]] = {}
        self._acks: dict[tuple[DialogId, int], Request] = {}
        self._receivers: dict[DialogId, ReliableProvisionalReceiver] = {}
        self._session_timers: dict[DialogId, SessionTimer] = {}
        self._glare_method: dict[DialogId, str] = {}
        self._uac_updates: dict[InviteKey, Request] = {}
        self._timers: TimerHeap[_Key] = TimerHeap()

    # -- outputs ------------------------------------------------------------

    def drain_transmits(self) -> list[Transmit]:
        """ACKs and response retransmissions to hand to the transport."""
        return self.outbox.drain_transmits()

    def drain_events(self) -> list[Event]:
        """Events for the TU, in order."""
        return self.outbox.drain_events()

    def find(self, message: Request | Response) -> Dialog | None:
        """The dialog ``message`` belongs to, seen from us."""
        if isinstance(message, Request):
            did = DialogId.of_incoming(message)
        else:
            did = DialogId.of_response(message)
        return self.dialogs.get(did) if did is not None else None

    def __len__(self) -> int:
        return len(self.dialogs)

    # -- UAC side -----------------------------------------------------------

    def request_sent(self, request: Request, now: float) -> Dialog | None:
        """Record a request we sent (before or after the transaction got it)."""
        method = request.method
        from_tag = request.from_tag
        if from_tag is None:
            raise LocalSipError("our requests carry a From tag")
        if method == "INVITE":
            key = (request.call_id, from_tag, request.cseq.number)
            self._uac_invites[key] = _UacInvite(request, has_sdp(request))
        to_tag = request.to_tag
        if to_tag is None:
            return None
        dialog = self.dialogs.get(DialogId(request.call_id, from_tag, to_tag))
        if dialog is None:
            return None
        if method in ("INVITE", "UPDATE"):
            dialog.outgoing_invite = request.cseq.number
            self._timers.set(_Key("glare", dialog.id), None)
        if method == "UPDATE":
            self._uac_updates[self._invite_key(request)] = request
        if method not in ("ACK", "CANCEL") and has_sdp(request):
            dialog.offer_answer.sent_sdp()
        if method == "BYE":
            self._end(dialog, "BYE sent")
        return dialog

    def response_received(self, response: Response, now: float) -> ResponseVerdict:
        """Follow a response to one of our requests (§12.1.2, §12.2.1.2, §13.2.2.4)."""
        from_tag = response.from_tag
        if from_tag is None:
            return ResponseVerdict(None)
        cseq = response.cseq
        if cseq.method == "INVITE":
            invite = self._uac_invites.get((response.call_id, from_tag, cseq.number))
            if invite is not None:
                return self._invite_response(invite, response, now)
        dialog = self.find(response)
        if dialog is None:
            return ResponseVerdict(None)
        status = response.status
        if cseq.method == "UPDATE" and status >= 200:
            update = self._uac_updates.pop((response.call_id, from_tag, cseq.number), None)
            self._outgoing_done(dialog, cseq.number, response, now)
            if update is not None and 200 <= status < 300:
                self._start_session_timer(dialog, update, response, we_are_uac=True, now=now)
        if 200 <= status < 300 and has_sdp(response):
            dialog.offer_answer.received_sdp()
        dialog.receive_response(response)
        if dialog.terminated:
            self._end(dialog, dialog.termination_reason)
        return ResponseVerdict(dialog)

    def _invite_response(
        self, invite: _UacInvite, response: Response, now: float
    ) -> ResponseVerdict:
        status = response.status
        to_tag = response.to_tag
        request = invite.request
        if to_tag is None:
            if status >= 300:
                self._invite_failed(invite, response, now)
            return ResponseVerdict(None)
        did = DialogId(request.call_id, self._from_tag(request), to_tag)
        dialog = self.dialogs.get(did)
        if status < 200:
            if status == 100:
                return ResponseVerdict(dialog)
            if dialog is None:
                dialog = self._new_uac_dialog(invite, response)
            else:
                dialog.refresh_target(response)
            if is_reliable_provisional(response):
                receiver = self._receivers.setdefault(did, ReliableProvisionalReceiver())
                if not receiver.accept(response):
                    return ResponseVerdict(dialog, fresh=False)
                if has_sdp(response) and not invite.answer_seen:
                    invite.answer_seen = dialog.offer_answer.received_sdp() == "answer"
                if self.auto_prack:
                    prack = dialog.create_request(
                        "PRACK", via=self.local_via, extra_headers=[("RAck", rack_for(response))]
                    )
                    self.outbox.events.append(SendRequest(prack, dialog))
            return ResponseVerdict(dialog)
        if status < 300:
            return self._invite_2xx(invite, dialog, did, response, now)
        self._invite_failed(invite, response, now)
        return ResponseVerdict(dialog)

    def _invite_2xx(
        self,
        invite: _UacInvite,
        dialog: Dialog | None,
        did: DialogId,
        response: Response,
        now: float,
    ) -> ResponseVerdict:
        cseq = response.cseq.number
        cached = self._acks.get((did, cseq))
        if cached is not None:
            self.outbox.transmits.append(Transmit(cached, None))  # §13.2.2.4: same ACK again
            return ResponseVerdict(dialog, fresh=False)
        if dialog is None:
            dialog = self._new_uac_dialog(invite, response)
        elif dialog.state is DialogState.EARLY:
            dialog.confirm()
            # §13.2.2.4: the route set is recomputed from the 2xx.
            dialog.route_set = list(reversed(response.record_route))
            dialog.refresh_target(response)
            self.outbox.events.append(DialogStateChanged(dialog, dialog.state, "2xx received"))
        else:
            dialog.receive_response(response)
        dialog.invite_cseq = cseq
        if dialog.outgoing_invite == cseq:
            dialog.outgoing_invite = None
        needs_ack = False
        if has_sdp(response) and not invite.answer_seen:
            kind = dialog.offer_answer.received_sdp()
            invite.answer_seen = True
            needs_ack = kind == "offer"
        self._start_session_timer(dialog, invite.request, response, we_are_uac=True, now=now)
        self._timers.set(
            _Key("uac-invite", invite=self._invite_key(invite.request)), now + self.timers.timeout
        )
        if needs_ack:
            return ResponseVerdict(dialog, needs_ack=True)
        self.send_ack(dialog, cseq)
        return ResponseVerdict(dialog)

    def send_ack(
        self,
        dialog: Dialog,
        cseq: int,
        *,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """Send (and remember) the ACK of the 2xx to INVITE ``cseq`` (§13.2.2.4)."""
        invite = self._uac_invites.get((dialog.call_id, dialog.local_tag, cseq))
        extra: list[tuple[str, str]] = []
        if invite is not None:
            # The ACK carries the INVITE's credentials (§22.1).
            for name in ("Authorization", "Proxy-Authorization"):
                extra += [(name, v) for v in invite.request.headers.lines(name)]
        ack = dialog.create_request(
            "ACK",
            cseq=cseq,
            via=self.local_via,
            body=body,
            content_type=content_type,
            extra_headers=extra,
        )
        if has_sdp(ack):
            dialog.offer_answer.sent_sdp()
        self._acks[(dialog.id, cseq)] = ack
        self.outbox.transmits.append(Transmit(ack, None))
        return ack

    def _invite_failed(self, invite: _UacInvite, response: Response, now: float) -> None:
        request = invite.request
        if request.to_tag is None:
            # A failed initial INVITE ends its early dialogs (§12.3).
            for early in list(invite.dialogs.values()):
                if early.state is DialogState.EARLY:
                    self._end(early, f"{response.status} to INVITE")
        else:
            dialog = self.dialogs.get(
                DialogId(request.call_id, self._from_tag(request), request.to_tag)
            )
            if dialog is not None:
                self._outgoing_done(dialog, request.cseq.number, response, now)
                if invite.offered:
                    dialog.offer_answer.local_offer = False
                dialog.receive_response(response)
                if dialog.terminated:
                    self._end(dialog, dialog.termination_reason)
        self._uac_invites.pop(self._invite_key(request), None)

    def _outgoing_done(self, dialog: Dialog, cseq: int, response: Response, now: float) -> None:
        """Our re-INVITE/UPDATE got its final response; 491 arms the §14.1 wait."""
        if dialog.outgoing_invite == cseq:
            dialog.outgoing_invite = None
        if response.status == 491:
            if dialog.owns_call_id:
                wait = self.rng.randint(210, 400) / 100.0
            else:
                wait = self.rng.randint(0, 200) / 100.0
            self._glare_method[dialog.id] = response.cseq.method
            self._timers.set(_Key("glare", dialog.id), now + wait)
        if response.status >= 300 and response.cseq.method == "UPDATE":
            dialog.offer_answer.local_offer = False

    def request_timed_out(self, request: Request, now: float) -> ResponseVerdict:
        """A client transaction timed out: handled as a 408 (§8.1.3.1, §12.2.1.2)."""
        return self.response_received(make_response(request, 408), now)

    def _new_uac_dialog(self, invite: _UacInvite, response: Response) -> Dialog:
        dialog = Dialog.from_uac(invite.request, response)
        dialog.invite_cseq = invite.request.cseq.number
        if invite.offered:
            dialog.offer_answer.local_offer = True
        self.dialogs[dialog.id] = dialog
        invite.dialogs[dialog.remote_tag] = dialog
        self.outbox.events.append(
            DialogStateChanged(dialog, dialog.state, f"{response.status} received")
        )
        return dialog

    # -- UAS side -----------------------------------------------------------

    def request_received(self, request: Request, now: float) -> Verdict:
        """Check a request we received (§12.2.2, §14.2, RFC 3311 §5.2, RFC 4028 §9)."""
        method = request.method
        did = DialogId.of_incoming(request)
        dialog = self.dialogs.get(did) if did is not None else None
        if method == "ACK":
            if dialog is not None:
                answer = self._pop_answer(dialog.id, request.cseq.number)
                if answer is not None:
                    self._timers.set(_Key("answer", dialog.id, cseq=request.cseq.number), None)
                    if has_sdp(request):
                        dialog.offer_answer.received_sdp()
            return Verdict(dialog)
        if method == "CANCEL":
            return Verdict(dialog)
        if did is None:
            if method == "INVITE":
                return self._initial_invite(request, now)
            return Verdict(None)
        if dialog is None:
            return Verdict(None, 481)  # §12.2.2
        if dialog.check_request(request) is not None:
            return Verdict(dialog, 500)
        offer = has_sdp(request)
        if method == "INVITE":
            if dialog.outgoing_invite is not None:
                return Verdict(dialog, 491)  # §14.2
            if dialog.incoming_invite is not None:
                return Verdict(dialog, 500, (("Retry-After", str(self.rng.randint(0, 10))),))
        if method == "UPDATE" and offer:
            if dialog.offer_answer.local_offer:
                return Verdict(dialog, 491)  # RFC 3311 §5.2
            if dialog.offer_answer.remote_offer:
                return Verdict(dialog, 500, (("Retry-After", str(self.rng.randint(0, 10))),))
        headers: tuple[tuple[str, str], ...] = ()
        if method in ("INVITE", "UPDATE") and self.session_timer is not None:
            decision = uas_negotiate(request, self.session_timer)
            if decision.status is not None:
                return Verdict(dialog, decision.status, tuple(decision.headers))
            headers = tuple(decision.headers)
        if method == "PRACK":
            status = self._prack_received(dialog, request)
            if status is not None:
                return Verdict(dialog, status)
        if method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"):
            dialog.refresh_target(request)
        if method == "INVITE":
            dialog.incoming_invite = request.cseq.number
            self._uas_invites[self._invite_key(request)] = _UasInvite(request)
        if offer:
            dialog.offer_answer.received_sdp()
        if method == "BYE":
            self._end(dialog, "BYE received")
        return Verdict(dialog, None, headers)

    def _initial_invite(self, request: Request, now: float) -> Verdict:
        # §12.1.1 / §8.1.1.8: a dialog-forming INVITE needs a From tag and a Contact
        # (the remote target); without them it is a bad request (400), not our failure.
        try:
            contacts = request.contact
        except SipError:
            contacts = []
        if request.from_tag is None or not contacts or contacts[0].star:
            return Verdict(None, 400)
        headers: tuple[tuple[str, str], ...] = ()
        if self.session_timer is not None:
            decision = uas_negotiate(request, self.session_timer)
            if decision.status is not None:
                return Verdict(None, decision.status, tuple(decision.headers))
            headers = tuple(decision.headers)
        self._uas_invites[self._invite_key(request)] = _UasInvite(request)
        return Verdict(None, None, headers)

    def _prack_received(self, dialog: Dialog, prack: Request) -> int | None:
        rack = prack.rack
        if rack is None:
            return 481
        invite = self._uas_invites.get((dialog.call_id, dialog.remote_tag, rack.cseq))
        if invite is None or invite.prack is None:
            return 481  # RFC 3262 §3
        status = invite.prack.receive_prack(prack)
        self._timers.set(
            _Key("prack", invite=self._invite_key(invite.request)), invite.prack.get_timer()
        )
        return None if status == 200 else status

    def make_reliable(self, request: Request, response: Response) -> Response:
        """Turn a 1xx to ``request`` into a reliable one (RFC 3262 §3)."""
        invite = self._uas_invites.setdefault(self._invite_key(request), _UasInvite(request))
        if invite.prack is None:
            invite.prack = ReliableProvisionalSender(request, timers=self.timers, rng=self.rng)
        return invite.prack.prepare(response)

    def response_sent(
        self, request: Request, response: Response, now: float, peer: Peer | None = None
    ) -> Dialog | None:
        """Record a response we sent to ``request`` (§12.1.1, §13.3.1.4)."""
        status = response.status
        method = request.method
        if method != "INVITE":
            dialog = self.find(request)
            if dialog is None:
                return None
            if method == "UPDATE" and status >= 200:
                if 200 <= status < 300:
                    if has_sdp(response):
                        dialog.offer_answer.sent_sdp()
                    self._start_session_timer(dialog, request, response, we_are_uac=False, now=now)
                elif has_sdp(request):
                    dialog.offer_answer.remote_offer = False
            elif method == "PRACK" and 200 <= status < 300 and has_sdp(response):
                dialog.offer_answer.sent_sdp()
            return dialog
        key = self._invite_key(request)
        invite = self._uas_invites.setdefault(key, _UasInvite(request))
        if peer is not None:
            invite.peer = peer
        to_tag = response.to_tag
        if status == 100 or to_tag is None:
            return None
        did = DialogId(request.call_id, to_tag, self._from_tag(request))
        dialog = self.dialogs.get(did)
        if dialog is None and status < 300:
            dialog = Dialog.from_uas(request, response)
            dialog.invite_cseq = request.cseq.number
            if has_sdp(request):
                dialog.offer_answer.remote_offer = True
            self.dialogs[did] = dialog
            invite.tags.add(to_tag)
            self.outbox.events.append(DialogStateChanged(dialog, dialog.state, f"{status} sent"))
        if dialog is None:
            self._uas_invites.pop(key, None)
            return None
        reliable = is_reliable_provisional(response)
        if has_sdp(response) and (reliable or status >= 200) and not invite.sdp_sent:
            dialog.offer_answer.sent_sdp()
            invite.sdp_sent = True
        if status < 200:
            if reliable and invite.prack is not None:
                invite.prack.sent(response, now)
                self._timers.set(_Key("prack", invite=key), invite.prack.get_timer())
            return dialog
        if invite.prack is not None:
            invite.prack.final_sent()
            self._timers.set(_Key("prack", invite=key), None)
        if dialog.incoming_invite == request.cseq.number:
            dialog.incoming_invite = None
        if status < 300:
            if dialog.state is DialogState.EARLY:
                dialog.confirm()
                self.outbox.events.append(
                    DialogStateChanged(dialog, dialog.state, f"{status} sent")
                )
            dialog.invite_cseq = request.cseq.number
            answer = _Answer(
                dialog, response, invite.peer, self.timers.t1, now + self.timers.timeout
            )
            self._answers.setdefault(did, {})[request.cseq.number] = answer
            self._timers.set(_Key("answer", did, cseq=request.cseq.number), now + answer.interval)
            self._start_session_timer(dialog, request, response, we_are_uac=False, now=now)
        elif request.to_tag is None:
            for tag in invite.tags:
                early = self.dialogs.get(DialogId(request.call_id, tag, self._from_tag(request)))
                if early is not None and early.state is DialogState.EARLY:
                    self._end(early, f"{status} sent")
        elif has_sdp(request):
            dialog.offer_answer.remote_offer = False
        self._uas_invites.pop(key, None)  # final: no more PRACKs for it
        return dialog

    # -- session timers -----------------------------------------------------

    def _start_session_timer(
        self, dialog: Dialog, request: Request, response: Response, *, we_are_uac: bool, now: float
    ) -> None:
        negotiated = uac_negotiate(request, response)
        if negotiated is None:
            return
        timer = self._session_timers.setdefault(dialog.id, SessionTimer())
        timer.start(negotiated, we_are_uac=we_are_uac, now=now)
        self._timers.set(_Key("session", dialog.id), timer.get_timer())

    def session_timer_of(self, dialog: Dialog) -> SessionTimer | None:
        """The running session timer of ``dialog``, if any."""
        return self._session_timers.get(dialog.id)

    def create_refresh(
        self,
        dialog: Dialog,
        method: str = "UPDATE",
        *,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A session refresh request (RFC 4028 §7.4, §10): UPDATE or re-INVITE.

        It asks for the negotiated interval again with ourselves as
        refresher (we send it, so we are its UAC). Without a body an UPDATE
        refreshes without touching the session (RFC 3311, RFC 4028 §10).
        """
        if method not in ("UPDATE", "INVITE"):
            raise LocalSipError("a session refresh is an UPDATE or a re-INVITE")
        timer = self._session_timers.get(dialog.id)
        config = self.session_timer or SessionTimerConfig()
        interval = (
            timer.negotiated.interval
            if timer is not None and timer.negotiated is not None
            else config.session_expires
        )
        headers = [
            ("Supported", "timer"),
            ("Session-Expires", f"{interval};refresher=uac"),
            ("Min-SE", str(config.min_se)),
        ]
        return dialog.create_request(
            method,
            via=self.local_via,
            body=body,
            content_type=content_type,
            extra_headers=headers,
        )

    # -- ending -------------------------------------------------------------

    def _end(self, dialog: Dialog, reason: str) -> None:
        dialog.terminate(reason)
        if self.dialogs.pop(dialog.id, None) is None:
            return
        did = dialog.id
        self._timers.set(_Key("glare", did), None)
        self._timers.set(_Key("session", did), None)
        self._session_timers.pop(did, None)
        self._receivers.pop(did, None)
        self._glare_method.pop(did, None)
        for cseq in self._answers.pop(did, {}):
            self._timers.set(_Key("answer", did, cseq=cseq), None)
        self.outbox.events.append(DialogStateChanged(dialog, dialog.state, reason))

    # -- timers -------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline of any dialog timer, or None."""
        return self._timers.earliest()

    def handle_timer(self, now: float) -> None:
        """Fire the dialog timers due at ``now``."""
        for key in self._timers.pop_due(now):
            did, ikey = key.dialog, key.invite
            if key.kind == "answer" and did is not None:
                self._fire_answer((did, key.cseq), now)
            elif key.kind == "glare" and did is not None:
                self._fire_glare(did)
            elif key.kind == "session" and did is not None:
                self._fire_session(did, now)
            elif key.kind == "prack" and ikey is not None:
                self._fire_prack(ikey, now)
            elif key.kind == "uac-invite" and ikey is not None:
                invite = self._uac_invites.pop(ikey, None)
                if invite is not None:
                    for tag in invite.dialogs:
                        did = DialogId(invite.request.call_id, self._from_tag(invite.request), tag)
                        self._acks.pop((did, invite.request.cseq.number), None)

    def _fire_answer(self, key: tuple[DialogId, int], now: float) -> None:
        answer = self._answers.get(key[0], {}).get(key[1])
        if answer is None:
            return
        if now >= answer.give_up:
            self._pop_answer(*key)
            dialog = answer.dialog
            logger.info("no ACK for 2xx in Call-ID %s: sending BYE", dialog.call_id)
            self.outbox.events.append(AckTimedOut(dialog, key[1]))
            bye = dialog.create_request("BYE", via=self.local_via)
            self.outbox.events.append(SendRequest(bye, dialog))
            self._end(dialog, "no ACK")
            return
        self.outbox.transmits.append(Transmit(answer.response, answer.peer))
        answer.interval = min(2 * answer.interval, self.timers.t2)
        self._timers.set(
            _Key("answer", key[0], cseq=key[1]), min(now + answer.interval, answer.give_up)
        )

    def _fire_glare(self, did: DialogId) -> None:
        dialog = self.dialogs.get(did)
        method = self._glare_method.pop(did, "INVITE")
        if dialog is not None:
            self.outbox.events.append(GlareRetryDue(dialog, method))

    def _fire_session(self, did: DialogId, now: float) -> None:
        dialog = self.dialogs.get(did)
        timer = self._session_timers.get(did)
        if dialog is None or timer is None:
            return
        action = timer.handle_timer(now)
        if action is SessionTimerAction.REFRESH:
            self.outbox.events.append(SessionRefreshDue(dialog))
        elif action is SessionTimerAction.EXPIRE:
            self.outbox.events.append(SessionExpired(dialog))
            bye = dialog.create_request("BYE", via=self.local_via)
            self.outbox.events.append(SendRequest(bye, dialog))
            self._end(dialog, "session expired")

    def _fire_prack(self, key: InviteKey, now: float) -> None:
        invite = self._uas_invites.get(key)
        if invite is None or invite.prack is None:
            return
        pending = invite.prack.unacked
        resends, gave_up = invite.prack.handle_timer(now)
        for response in resends:
            self.outbox.transmits.append(Transmit(response, invite.peer))
        if gave_up and pending is not None:
            dialog = self.dialogs.get(
                DialogId(
                    invite.request.call_id,
                    pending.response.to_tag or "",
                    self._from_tag(invite.request),
                )
            )
            if dialog is not None:
                self.outbox.events.append(PrackTimedOut(dialog, pending.rseq))
        self._timers.set(_Key("prack", invite=key), invite.prack.get_timer())

    # -- helpers ------------------------------------------------------------

    def _pop_answer(self, did: DialogId, cseq: int) -> _Answer | None:
        answers = self._answers.get(did)
        if answers is None:
            return None
        answer = answers.pop(cseq, None)
        if not answers:
            del self._answers[did]
        return answer

    @staticmethod
    def _from_tag(request: Request) -> str:
        tag = request.from_tag
        if tag is None:
            raise LocalSipError("a dialog-forming request needs a From tag")
        return tag

    @classmethod
    def _invite_key(cls, request: Request) -> InviteKey:
        return (request.call_id, cls._from_tag(request), request.cseq.number)
