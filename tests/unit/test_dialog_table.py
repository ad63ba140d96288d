"""Call flows through transaction + dialog layers on a fake clock (RFC 3261 §12-§15,
RFC 3262, RFC 3311, RFC 4028)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from trunkline.sip.builder import make_request, make_response
from trunkline.sip.dialog import Dialog, DialogState, Role
from trunkline.sip.dialog_table import DialogLayer, ResponseVerdict, Verdict
from trunkline.sip.events import (
    AckTimedOut,
    DialogStateChanged,
    Event,
    GlareRetryDue,
    Peer,
    PrackTimedOut,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    SessionExpired,
    SessionRefreshDue,
    TransactionTimedOut,
)
from trunkline.sip.headers import Via
from trunkline.sip.message import Message, Request, Response, parse_message
from trunkline.sip.sessiontimer import SessionTimerConfig
from trunkline.sip.transaction import ClientTransaction, ServerTransaction
from trunkline.sip.transaction_table import TransactionLayer

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
    b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
)
AUTO_OK = frozenset({"BYE", "PRACK", "INFO", "UPDATE"})


@dataclass
class Phone:
    """A UA core: a transaction layer plus a dialog layer, driven by hand."""

    name: str
    peer: Peer
    seed: int = 1
    session_timer: SessionTimerConfig | None = None
    txns: TransactionLayer = field(init=False)
    dialogs: DialogLayer = field(init=False)
    other: Phone | None = None
    requests: list[tuple[Request, ServerTransaction | None, Verdict]] = field(default_factory=list)
    responses: list[tuple[Response, ResponseVerdict]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    timed: list[tuple[float, Event]] = field(default_factory=list)
    auto_ok: frozenset[str] = AUTO_OK

    def __post_init__(self) -> None:
        self.txns = TransactionLayer(auto_trying=False)
        self.dialogs = DialogLayer(
            rng=random.Random(self.seed),
            local_via=Via("UDP", self.peer.host, self.peer.port, {}),
            session_timer=self.session_timer,
        )

    @property
    def contact(self) -> str:
        return f"<sip:{self.name}@{self.peer.host}:{self.peer.port}>"

    def send(self, request: Request, now: float) -> ClientTransaction | None:
        assert self.other is not None
        self.dialogs.request_sent(request, now)
        if request.method == "ACK":
            self.txns.send_ack(request, self.other.peer)
            return None
        return self.txns.send_request(request, self.other.peer, now)

    def respond(
        self,
        request: Request,
        status: int,
        now: float,
        *,
        tag: str | None = None,
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = (),
        reliable: bool = False,
    ) -> Response:
        txn = self.txns.find_server(request)
        assert txn is not None
        extra = [*headers]
        if status > 100 and not any(n == "Contact" for n, _ in extra):
            extra.append(("Contact", self.contact))
        response = make_response(
            request,
            status,
            to_tag=tag or f"{self.name}-tag",
            headers=extra,
            body=body,
            content_type="application/sdp" if body else None,
        )
        if reliable:
            response = self.dialogs.make_reliable(request, response)
        self.txns.send_response(txn, response, now)
        self.dialogs.response_sent(request, response, now, txn.peer)
        return response

    def process(self, now: float) -> None:
        for event in self.txns.drain_events():
            if isinstance(event, RequestReceived):
                verdict = self.dialogs.request_received(event.request, now)
                self.requests.append((event.request, event.transaction, verdict))
                if event.request.method == "ACK":
                    continue
                if verdict.status is not None:
                    self.respond(event.request, verdict.status, now, headers=verdict.headers)
                elif event.request.method in self.auto_ok:
                    self.respond(event.request, 200, now, headers=verdict.headers)
            elif isinstance(event, ResponseReceived):
                rv = self.dialogs.response_received(event.response, now)
                self.responses.append((event.response, rv))
            elif isinstance(event, TransactionTimedOut) and isinstance(
                event.transaction, ClientTransaction
            ):
                self.dialogs.request_timed_out(event.transaction.request, now)
        for event in self.dialogs.drain_events():
            self.events.append(event)
            self.timed.append((now, event))
            if isinstance(event, SendRequest):
                self.send(event.request, now)

    def got(self, method: str) -> list[Request]:
        return [r for r, _, _ in self.requests if r.method == method]

    def statuses(self, method: str | None = None) -> list[int]:
        return [r.status for r, _ in self.responses if method is None or r.cseq.method == method]


@dataclass
class Wire:
    """Two phones on a fake clock and a lossless network (unless ``drop``)."""

    a: Phone
    b: Phone
    now: float = 0.0
    drop: Callable[[Phone, Message], bool] = lambda _phone, _msg: False
    log: list[tuple[float, str, str]] = field(default_factory=list)

    def flush(self) -> None:
        for _ in range(200):
            moved = False
            for src, dst in ((self.a, self.b), (self.b, self.a)):
                src.process(self.now)
                for out in src.txns.drain_transmits() + src.dialogs.drain_transmits():
                    moved = True
                    msg = parse_message(bytes(out.message))
                    label = msg.method if isinstance(msg, Request) else str(msg.status)
                    self.log.append((self.now, src.name, f"{label} {msg.cseq.method}"))
                    if self.drop(src, msg):
                        continue
                    if isinstance(msg, Request):
                        dst.txns.receive_request(msg, src.peer, self.now)
                    else:
                        dst.txns.receive_response(msg, self.now)
            if not moved:
                self.a.process(self.now)
                self.b.process(self.now)
                if not any(
                    p.txns.outbox.transmits or p.dialogs.outbox.transmits for p in (self.a, self.b)
                ):
                    return
        raise AssertionError("the flow did not settle")

    def layers(self) -> list[TransactionLayer | DialogLayer]:
        return [self.a.txns, self.a.dialogs, self.b.txns, self.b.dialogs]

    def advance(self, until: float) -> None:
        for _ in range(5000):
            timers = [t for layer in self.layers() if (t := layer.get_timer()) is not None]
            if not timers or min(timers) > until:
                break
            self.now = max(self.now, min(timers))
            for layer in self.layers():
                layer.handle_timer(self.now)
            self.flush()
        self.now = until
        self.flush()

    def sent(self, who: str, what: str) -> list[float]:
        return [t for t, name, label in self.log if name == who and label == what]


def client_and_server(**kwargs: SessionTimerConfig | None) -> Wire:
    alice = Phone("alice", Peer("udp", "192.0.2.1", 5060), seed=1, **kwargs)  # type: ignore[arg-type]
    bob = Phone("bob", Peer("udp", "192.0.2.2", 5060), seed=2, **kwargs)  # type: ignore[arg-type]
    alice.other, bob.other = bob, alice
    return Wire(alice, bob)


def new_invite(
    wire: Wire, *, body: bytes = SDP, headers: tuple[tuple[str, str], ...] = ()
) -> Request:
    a = wire.a
    return make_request(
        "INVITE",
        "sip:bob@192.0.2.2",
        from_="<sip:alice@atlanta.example.com>",
        to="<sip:bob@biloxi.example.com>",
        via=Via("UDP", a.peer.host, a.peer.port, {}),
        contact=a.contact,
        body=body,
        content_type="application/sdp" if body else None,
        extra_headers=headers,
    )


def establish(wire: Wire, headers: tuple[tuple[str, str], ...] = ()) -> tuple[Dialog, Dialog]:
    """INVITE / 180 / 200 / ACK; returns (alice's dialog, bob's dialog)."""
    invite = new_invite(wire, headers=headers)
    wire.a.send(invite, wire.now)
    wire.flush()
    [got] = wire.b.got("INVITE")
    verdict = wire.b.requests[-1][2]
    wire.b.respond(got, 180, wire.now)
    wire.flush()
    wire.b.respond(got, 200, wire.now, body=SDP, headers=verdict.headers)
    wire.flush()
    da = wire.a.dialogs.find(wire.a.responses[-1][0])
    [db] = list(wire.b.dialogs.dialogs.values())
    assert da is not None
    return da, db


# -- dialog creation and the 2xx/ACK rules -------------------------------------------


def test_basic_call_early_then_confirmed_then_bye() -> None:
    wire = client_and_server()
    da, db = establish(wire)
    assert da.state is DialogState.CONFIRMED and db.state is DialogState.CONFIRMED
    assert da.id.local_tag == db.id.remote_tag and da.id.remote_tag == db.id.local_tag
    changes = [(e.state, e.reason) for e in wire.a.events if isinstance(e, DialogStateChanged)]
    assert changes == [
        (DialogState.EARLY, "180 received"),
        (DialogState.CONFIRMED, "2xx received"),
    ]
    assert len(wire.b.got("ACK")) == 1
    wire.advance(40.0)
    assert wire.sent("bob", "200 INVITE") == [0.0]  # the ACK stopped the 2xx retransmissions
    bye = da.create_request("BYE", via=wire.a.dialogs.local_via)
    wire.a.send(bye, wire.now)
    wire.flush()
    assert da.terminated and db.terminated
    assert len(wire.a.dialogs) == 0 and len(wire.b.dialogs) == 0
    assert wire.a.statuses("BYE") == [200]


def test_uas_retransmits_2xx_until_ack_then_gives_up_with_bye() -> None:
    wire = client_and_server()
    wire.drop = lambda src, msg: isinstance(msg, Request) and msg.method == "ACK"
    invite = new_invite(wire)
    wire.a.send(invite, 0.0)
    wire.flush()
    wire.b.respond(wire.b.got("INVITE")[0], 200, 0.0, body=SDP)
    wire.flush()
    wire.advance(40.0)
    times = wire.sent("bob", "200 INVITE")
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    # §13.3.1.4: T1 doubling up to T2, for 64*T1.
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert all(g == 4.0 for g in gaps[3:])
    assert times[-1] < 32.0
    assert any(isinstance(e, AckTimedOut) for e in wire.b.events)
    assert wire.sent("bob", "BYE BYE") == [32.0]
    assert wire.a.got("BYE") and len(wire.a.dialogs) == 0 and len(wire.b.dialogs) == 0
    # The UAC ACKed every 2xx retransmission it got, with the same ACK.
    acks = [label for _, name, label in wire.log if name == "alice" and label == "ACK ACK"]
    assert len(acks) == len(times)


def test_uac_resends_the_same_ack_for_each_2xx() -> None:
    wire = client_and_server()
    establish(wire)
    [(_, ack_verdict)] = [(r, v) for r, v in wire.a.responses if r.status == 200]
    assert ack_verdict.fresh
    acks_before = len(wire.sent("alice", "ACK ACK"))
    ok = next(r for r, _ in wire.a.responses if r.status == 200)
    verdict = wire.a.dialogs.response_received(ok, wire.now)  # a 2xx retransmission
    assert not verdict.fresh
    [again] = wire.a.dialogs.drain_transmits()
    first_ack = wire.b.got("ACK")[0]
    assert isinstance(again.message, Request)
    assert bytes(again.message) == bytes(first_ack)
    assert again.peer is None
    assert acks_before == 1


def test_forked_invite_makes_one_early_dialog_per_tag() -> None:
    layer = DialogLayer()
    wire = client_and_server()
    invite = new_invite(wire)
    layer.request_sent(invite, 0.0)
    r1 = make_response(invite, 180, to_tag="fork1", headers=[("Contact", "<sip:bob@10.0.0.1>")])
    r2 = make_response(invite, 183, to_tag="fork2", headers=[("Contact", "<sip:bob@10.0.0.2>")])
    d1 = layer.response_received(r1, 0.1).dialog
    d2 = layer.response_received(r2, 0.2).dialog
    assert d1 is not None and d2 is not None and d1 is not d2
    assert {d.remote_tag for d in (d1, d2)} == {"fork1", "fork2"}
    assert d1.state is DialogState.EARLY and d2.state is DialogState.EARLY
    ok = make_response(
        invite,
        200,
        to_tag="fork2",
        headers=[("Contact", "<sip:bob@10.0.0.22>"), ("Record-Route", "<sip:p.example;lr>")],
    )
    assert layer.response_received(ok, 0.3).dialog is d2
    assert d2.state is DialogState.CONFIRMED
    assert str(d2.remote_target) == "sip:bob@10.0.0.22"
    assert [str(r) for r in d2.route_set] == ["<sip:p.example;lr>"]  # recomputed from the 2xx
    [ack] = layer.drain_transmits()
    assert isinstance(ack.message, Request) and ack.message.to_tag == "fork2"
    # A 2xx from the other fork makes a second confirmed dialog, ACKed too.
    ok1 = make_response(invite, 200, to_tag="fork1", headers=[("Contact", "<sip:bob@10.0.0.1>")])
    assert layer.response_received(ok1, 0.4).dialog is d1
    assert d1.state is DialogState.CONFIRMED
    assert len(layer.drain_transmits()) == 1


def test_failed_invite_ends_early_dialogs() -> None:
    layer = DialogLayer()
    wire = client_and_server()
    invite = new_invite(wire)
    layer.request_sent(invite, 0.0)
    for tag in ("f1", "f2"):
        layer.response_received(
            make_response(invite, 180, to_tag=tag, headers=[("Contact", "<sip:b@h>")]), 0.1
        )
    assert len(layer) == 2
    layer.response_received(make_response(invite, 486, to_tag="f1"), 0.2)
    assert len(layer) == 0
    reasons = [e.reason for e in layer.drain_events() if isinstance(e, DialogStateChanged)]
    assert reasons == ["180 received", "180 received", "486 to INVITE", "486 to INVITE"]


def test_request_in_unknown_dialog_gets_481_and_out_of_order_500() -> None:
    wire = client_and_server()
    da, db = establish(wire)
    stray = make_request(
        "INFO",
        "sip:bob@192.0.2.2",
        from_="<sip:alice@atlanta.example.com>;tag=nope",
        to="<sip:bob@biloxi.example.com>;tag=nada",
        via=wire.a.dialogs.local_via,
    )
    wire.a.send(stray, wire.now)
    wire.flush()
    assert wire.a.statuses("INFO") == [481]
    # Bob's remote CSeq is 1 (the INVITE): a request numbered 0 is out of order.
    old = da.create_request("OPTIONS", via=wire.a.dialogs.local_via, cseq=0)
    wire.a.send(old, wire.now)
    wire.flush()
    assert wire.a.statuses("OPTIONS") == [500]
    assert not db.terminated


def test_target_refresh_by_reinvite() -> None:
    wire = client_and_server()
    da, db = establish(wire)
    da.local_contact = "<sip:alice@198.51.100.1:5062>"
    reinvite = da.create_request(
        "INVITE", via=wire.a.dialogs.local_via, body=SDP, content_type="application/sdp"
    )
    wire.a.send(reinvite, wire.now)
    wire.flush()
    assert str(db.remote_target) == "sip:alice@198.51.100.1:5062"
    wire.b.respond(
        wire.b.got("INVITE")[-1],
        200,
        wire.now,
        body=SDP,
        headers=(("Contact", "<sip:bob@203.0.113.5>"),),
    )
    wire.flush()
    assert str(da.remote_target) == "sip:bob@203.0.113.5"
    assert len(wire.b.got("ACK")) == 2


# -- glare (§14) ---------------------------------------------------------------------


def test_reinvite_glare_491_and_retry_timers() -> None:
    wire = client_and_server()
    da, db = establish(wire)
    t0 = wire.now
    ra = da.create_request(
        "INVITE", via=wire.a.dialogs.local_via, body=SDP, content_type="application/sdp"
    )
    rb = db.create_request(
        "INVITE", via=wire.b.dialogs.local_via, body=SDP, content_type="application/sdp"
    )
    wire.a.send(ra, t0)
    wire.b.send(rb, t0)
    wire.flush()
    assert wire.a.statuses("INVITE")[-1] == 491 and wire.b.statuses("INVITE")[-1] == 491
    wire.advance(t0 + 10.0)
    retries = {
        phone.name: next((at, e) for at, e in phone.timed if isinstance(e, GlareRetryDue))
        for phone in (wire.a, wire.b)
    }
    at_a, due_a = retries["alice"]
    at_b, due_b = retries["bob"]
    assert due_a.dialog is da and due_a.method == "INVITE"
    assert due_b.dialog is db
    # §14.1: alice owns the Call-ID (2.1-4 s); bob does not (0-2 s).
    assert t0 + 2.1 <= at_a <= t0 + 4.0
    assert t0 <= at_b <= t0 + 2.0


@pytest.mark.parametrize("owner", [True, False])
def test_glare_wait_ranges(owner: bool) -> None:
    for seed in range(20):
        wire = client_and_server()
        wire.a.dialogs.rng = random.Random(seed)
        da, _ = establish(wire)
        if not owner:
            da.role = Role.UAS
        t0 = wire.now
        ra = da.create_request("INVITE", via=wire.a.dialogs.local_via)
        wire.a.dialogs.request_sent(ra, t0)
        wire.a.dialogs.response_received(make_response(ra, 491), t0)
        at = wire.a.dialogs.get_timer()
        assert at is not None
        wait = round(at - t0, 6)
        if owner:
            assert 2.1 <= wait <= 4.0
        else:
            assert 0.0 <= wait <= 2.0
        assert round(wait * 100) == pytest.approx(wait * 100)  # units of 10 ms
        wire.a.dialogs.handle_timer(at)
        assert any(isinstance(e, GlareRetryDue) for e in wire.a.dialogs.drain_events())


def test_second_reinvite_while_first_pending_gets_500_retry_after() -> None:
    wire = client_and_server()
    da, _db = establish(wire)
    wire.a.send(da.create_request("INVITE", via=wire.a.dialogs.local_via), wire.now)
    wire.flush()
    second = da.create_request("INVITE", via=wire.a.dialogs.local_via)
    da.outgoing_invite = None
    verdict = wire.b.dialogs.request_received(second, wire.now)
    assert verdict.status == 500
    [(name, value)] = verdict.headers
    assert name == "Retry-After" and 0 <= int(value) <= 10


# -- BYE / CANCEL races -----------------------------------------------------------------


def test_bye_on_early_dialog() -> None:
    wire = client_and_server()
    invite = new_invite(wire)
    wire.a.send(invite, 0.0)
    wire.flush()
    got = wire.b.got("INVITE")[0]
    wire.b.respond(got, 180, 0.0)
    wire.flush()
    [early] = list(wire.a.dialogs.dialogs.values())
    assert early.state is DialogState.EARLY
    wire.a.send(early.create_request("BYE", via=wire.a.dialogs.local_via), 0.1)
    wire.flush()
    assert wire.a.statuses("BYE") == [200]
    assert len(wire.b.dialogs) == 0 and early.terminated
    # The UAS then ends the INVITE with 487 (§15.1.2); nothing is left.
    wire.b.respond(got, 487, 0.2)
    wire.flush()
    assert wire.a.statuses("INVITE")[-1] == 487
    assert len(wire.a.dialogs) == 0


def test_cancel_wins_487_ends_early_dialog() -> None:
    wire = client_and_server()
    invite = new_invite(wire)
    client = wire.a.send(invite, 0.0)
    wire.flush()
    got = wire.b.got("INVITE")[0]
    wire.b.respond(got, 180, 0.0)
    wire.flush()
    assert client is not None
    cancel = wire.a.txns.cancel(client, 0.1)  # type: ignore[arg-type]
    assert cancel is not None
    wire.flush()
    [cancel_in] = wire.b.got("CANCEL")
    assert wire.b.txns.find_cancelled(cancel_in) is not None
    wire.b.respond(cancel_in, 200, 0.1)
    wire.b.respond(got, 487, 0.1)
    wire.flush()
    assert wire.a.statuses() == [180, 200, 487]
    assert len(wire.a.dialogs) == 0 and len(wire.b.dialogs) == 0


def test_cancel_after_2xx_does_nothing() -> None:
    wire = client_and_server()
    invite = new_invite(wire)
    client = wire.a.send(invite, 0.0)
    wire.flush()
    wire.b.respond(wire.b.got("INVITE")[0], 200, 0.0, body=SDP)
    wire.flush()
    assert wire.a.txns.cancel(client, 0.1) is None  # type: ignore[arg-type]
    wire.flush()
    assert wire.b.got("CANCEL") == []
    assert len(wire.a.dialogs) == 1


# -- RFC 3262: reliable provisional responses ----------------------------------------------


def test_prack_flow() -> None:
    wire = client_and_server()
    invite = new_invite(wire, headers=(("Supported", "100rel"),))
    wire.a.send(invite, 0.0)
    wire.flush()
    got = wire.b.got("INVITE")[0]
    ringing = wire.b.respond(got, 180, 0.0, reliable=True)
    assert "100rel" in ringing.require and ringing.rseq is not None
    wire.flush()
    [prack] = wire.b.got("PRACK")
    assert prack.rack is not None
    assert (prack.rack.rseq, prack.rack.cseq, prack.rack.method) == (ringing.rseq, 1, "INVITE")
    assert wire.a.statuses("PRACK") == [200]
    wire.advance(10.0)
    assert wire.sent("bob", "180 INVITE") == [0.0]  # PRACKed: no retransmission
    second = wire.b.respond(got, 183, 10.0, reliable=True)
    assert second.rseq == ringing.rseq + 1
    wire.flush()
    assert len(wire.b.got("PRACK")) == 2


def test_reliable_1xx_retransmitted_until_prack_then_gives_up() -> None:
    wire = client_and_server()
    wire.drop = lambda src, msg: isinstance(msg, Request) and msg.method == "PRACK"
    wire.a.send(new_invite(wire, headers=(("Supported", "100rel"),)), 0.0)
    wire.flush()
    wire.b.respond(wire.b.got("INVITE")[0], 180, 0.0, reliable=True)
    wire.flush()
    wire.advance(40.0)
    times = wire.sent("bob", "180 INVITE")
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]  # T1 doubling (RFC 3262 §3)
    assert any(isinstance(e, PrackTimedOut) for e in wire.b.events)
    # The UAC PRACKed only the first copy; the repeats were not fresh.
    fresh = [v.fresh for r, v in wire.a.responses if r.status == 180]
    assert fresh[0] and not any(fresh[1:])


def test_unmatched_prack_gets_481() -> None:
    wire = client_and_server()
    wire.a.send(new_invite(wire, headers=(("Supported", "100rel"),)), 0.0)
    wire.flush()
    got = wire.b.got("INVITE")[0]
    wire.b.respond(got, 180, 0.0, reliable=True)
    wire.flush()
    [early] = list(wire.a.dialogs.dialogs.values())
    bogus = early.create_request(
        "PRACK", via=wire.a.dialogs.local_via, extra_headers=[("RAck", "999 1 INVITE")]
    )
    wire.a.send(bogus, 0.5)
    wire.flush()
    assert wire.a.statuses("PRACK") == [200, 481]


def test_uac_ignores_out_of_order_rseq() -> None:
    layer = DialogLayer()
    wire = client_and_server()
    invite = new_invite(wire)
    layer.request_sent(invite, 0.0)

    def reliable(rseq: int) -> Response:
        return make_response(
            invite,
            183,
            to_tag="t",
            headers=[("Contact", "<sip:b@h>"), ("Require", "100rel"), ("RSeq", str(rseq))],
        )

    assert layer.response_received(reliable(10), 0.1).fresh
    assert layer.response_received(reliable(12), 0.2).fresh is False  # a gap
    assert layer.response_received(reliable(10), 0.3).fresh is False  # a repeat
    assert layer.response_received(reliable(11), 0.4).fresh
    pracks = [e.request for e in layer.drain_events() if isinstance(e, SendRequest)]
    assert [p.rack.rseq for p in pracks if p.rack is not None] == [10, 11]


# -- RFC 3311: UPDATE -----------------------------------------------------------------


def test_update_in_early_and_confirmed_dialogs() -> None:
    wire = client_and_server()
    wire.a.send(new_invite(wire, headers=(("Supported", "100rel"),)), 0.0)
    wire.flush()
    got = wire.b.got("INVITE")[0]
    wire.b.respond(got, 183, 0.0, reliable=True, body=SDP)  # answer in a reliable 1xx
    wire.flush()
    [early] = list(wire.a.dialogs.dialogs.values())
    assert not early.offer_answer.local_offer
    update = early.create_request(
        "UPDATE", via=wire.a.dialogs.local_via, body=SDP, content_type="application/sdp"
    )
    wire.a.send(update, 0.1)
    wire.flush()
    assert wire.a.statuses("UPDATE") == [200]
    wire.b.respond(got, 200, 0.2)
    wire.flush()
    assert early.state is DialogState.CONFIRMED
    update2 = early.create_request("UPDATE", via=wire.a.dialogs.local_via)
    wire.a.send(update2, 0.3)
    wire.flush()
    assert wire.a.statuses("UPDATE") == [200, 200]


def test_update_offer_overlap_rules() -> None:
    wire = client_and_server()
    da, db = establish(wire)
    wire.b.auto_ok = frozenset({"BYE", "PRACK"})  # bob holds UPDATEs unanswered
    offer = da.create_request(
        "UPDATE", via=wire.a.dialogs.local_via, body=SDP, content_type="application/sdp"
    )
    wire.a.send(offer, wire.now)
    wire.flush()
    assert db.offer_answer.remote_offer
    # Bob has an offer from alice he has not answered: a new offer from alice gets 500.
    again = da.create_request(
        "UPDATE", via=wire.a.dialogs.local_via, body=SDP, content_type="application/sdp"
    )
    verdict = wire.b.dialogs.request_received(again, wire.now)
    assert verdict.status == 500 and verdict.headers[0][0] == "Retry-After"
    # Alice has her offer outstanding: an offer from bob gets 491 there.
    bob_offer = db.create_request(
        "UPDATE", via=wire.b.dialogs.local_via, body=SDP, content_type="application/sdp"
    )
    assert wire.a.dialogs.request_received(bob_offer, wire.now).status == 491


# -- RFC 4028: session timers -------------------------------------------------------


def test_session_timer_refresh_and_expiry() -> None:
    config = SessionTimerConfig(session_expires=120, min_se=90)
    wire = client_and_server(session_timer=config)
    establish(wire, headers=tuple(config.request_headers()))
    ok = next(r for r, _ in wire.a.responses if r.status == 200)
    assert ok.session_expires is not None and ok.session_expires.param("refresher") == "uac"
    assert "timer" in ok.require
    t0 = wire.now
    da = next(iter(wire.a.dialogs.dialogs.values()))
    db = next(iter(wire.b.dialogs.dialogs.values()))
    assert wire.a.dialogs.session_timer_of(da) is not None
    # Alice refreshes at half the interval; nobody sends it, so bob hangs up at
    # 120 - min(32, 120/3) = 88 s.
    wire.advance(t0 + 60.0)
    refresh = [e for e in wire.a.events if isinstance(e, SessionRefreshDue)]
    assert len(refresh) == 1 and refresh[0].dialog is da
    wire.advance(t0 + 100.0)
    assert any(isinstance(e, SessionExpired) for e in wire.b.events)
    assert wire.sent("bob", "BYE BYE") == [pytest.approx(t0 + 88.0)]
    assert db.terminated and da.terminated


def test_session_refresh_restarts_the_timer() -> None:
    config = SessionTimerConfig(session_expires=120, min_se=90)
    wire = client_and_server(session_timer=config)
    da, db = establish(wire, headers=tuple(config.request_headers()))
    wire.advance(wire.now + 60.0)
    update = wire.a.dialogs.create_refresh(da)
    assert update.session_expires is not None
    assert str(update.session_expires) == "120;refresher=uac"
    wire.a.send(update, wire.now)
    wire.flush()
    assert wire.a.statuses("UPDATE") == [200]
    refreshed_at = wire.now
    wire.advance(wire.now + 80.0)  # past the first expiry, before the new one
    assert not db.terminated
    assert not any(isinstance(e, SessionExpired) for e in wire.b.events)
    # Alice's own timer restarted too: her next refresh is due 60 s after this one.
    due = [at for at, e in wire.a.timed if isinstance(e, SessionRefreshDue)]
    assert due[-1] == pytest.approx(refreshed_at + 60.0)
    assert len(due) == 2


def test_session_interval_too_small_gets_422() -> None:
    config = SessionTimerConfig(session_expires=1800, min_se=600)
    wire = client_and_server(session_timer=config)
    invite = new_invite(wire, headers=(("Supported", "timer"), ("Session-Expires", "300")))
    wire.a.send(invite, 0.0)
    wire.flush()
    [(resp, _)] = wire.a.responses
    assert resp.status == 422 and resp.headers.get("Min-SE") == "600"
    assert len(wire.b.dialogs) == 0


# -- delayed offer: the answer goes in the ACK -----------------------------------------


def test_delayed_offer_ack_carries_the_answer() -> None:
    wire = client_and_server()
    invite = new_invite(wire, body=b"")
    wire.a.send(invite, 0.0)
    wire.flush()
    wire.b.respond(wire.b.got("INVITE")[0], 200, 0.0, body=SDP)  # the offer
    wire.flush()
    [(ok, verdict)] = wire.a.responses
    assert ok.status == 200 and verdict.needs_ack and verdict.dialog is not None
    assert wire.b.got("ACK") == []  # the layer waits for the TU's answer
    dialog = verdict.dialog
    assert dialog.offer_answer.remote_offer
    ack = wire.a.dialogs.send_ack(dialog, ok.cseq.number, body=SDP, content_type="application/sdp")
    wire.flush()
    [got] = wire.b.got("ACK")
    assert got.body == SDP and bytes(got) == bytes(ack)
    [db] = list(wire.b.dialogs.dialogs.values())
    assert not db.offer_answer.local_offer and not dialog.offer_answer.remote_offer
    wire.advance(10.0)
    assert wire.sent("bob", "200 INVITE") == [0.0]  # that ACK stopped the retransmissions
    # A late 2xx copy gets the same ACK, answer included.
    assert not wire.a.dialogs.response_received(ok, 10.0).fresh
    [again] = wire.a.dialogs.drain_transmits()
    assert again.message is ack


def test_request_timeout_ends_the_dialog() -> None:
    wire = client_and_server()
    da, _ = establish(wire)
    wire.drop = lambda src, msg: src is wire.a and isinstance(msg, Request)
    wire.a.send(da.create_request("INFO", via=wire.a.dialogs.local_via), wire.now)
    wire.flush()
    wire.advance(wire.now + 40.0)
    assert da.terminated and "408" in da.termination_reason  # §12.2.1.2
    assert len(wire.a.dialogs) == 0


@pytest.mark.parametrize(
    ("contact", "from_"),
    [
        (None, "<sip:a@192.0.2.1>;tag=t1"),
        ("*", "<sip:a@192.0.2.1>;tag=t1"),
        ("<sip:a@192.0.2.1>", "<sip:a@192.0.2.1>"),
    ],
    ids=["no-contact", "star-contact", "no-from-tag"],
)
def test_initial_invite_without_contact_or_from_tag_gets_400(
    contact: str | None, from_: str
) -> None:
    """§12.1.1 / §8.1.1.8: no remote target (or no From tag) is the client's error: 400, not 500."""
    layer = DialogLayer(rng=random.Random(1))
    invite = make_request("INVITE", "sip:b@192.0.2.2", from_=from_, to="<sip:b@192.0.2.2>")
    invite.headers.set("From", from_)
    invite.headers.remove("Contact")
    if contact is not None:
        invite.headers.add("Contact", contact)
    verdict = layer.request_received(invite, 0.0)
    assert verdict.status == 400 and verdict.dialog is None
    assert not layer.dialogs


def test_initial_invite_with_contact_is_accepted() -> None:
    layer = DialogLayer(rng=random.Random(1))
    invite = make_request(
        "INVITE",
        "sip:b@192.0.2.2",
        from_="<sip:a@192.0.2.1>;tag=t1",
        to="<sip:b@192.0.2.2>",
        contact="<sip:a@192.0.2.1:5070>",
    )
    assert layer.request_received(invite, 0.0).accepted
