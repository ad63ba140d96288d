"""The four transaction machines on a fake clock (RFC 3261 §17, RFC 6026)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.sip.errors import LocalSipError
from trunkline.sip.events import (
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransactionTransportError,
)
from trunkline.sip.message import Request, Response
from trunkline.sip.timers import TimerConfig
from trunkline.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Transaction,
    TransactionState,
)

UDP = Peer("udp", "192.0.2.10", 5060)
TCP = Peer("tcp", "192.0.2.10", 5060)
S = TransactionState


def make_request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bK776asdhds",
    cseq: int = 314159,
    to_tag: str | None = None,
    routes: tuple[str, ...] = (),
) -> Request:
    """An RFC 3261 §24.2 style request, parsed from text."""
    to = "Bob <sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:bob@biloxi.example.com SIP/2.0",
        f"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch={branch}",
        "Via: SIP/2.0/UDP 10.1.1.1:5070;branch=z9hG4bKinner",
        *(f"Route: {r}" for r in routes),
        "Max-Forwards: 70",
        f"To: {to}",
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:alice@pc33.atlanta.example.com>",
        "Content-Length: 0",
    ]
    return Request.parse(("\r\n".join(lines) + "\r\n\r\n").encode())


def make_response(request: Request, status: int, to_tag: str | None = "a6c85cf") -> Response:
    """A response to ``request`` built from text (§8.2.6 fields)."""
    to = request.to
    if to_tag is not None and to.tag is None and status != 100:
        to = to.with_tag(to_tag)
    lines = [f"SIP/2.0 {status} Whatever"]
    lines += [f"Via: {v}" for v in request.via]
    lines += [
        f"From: {request.from_}",
        f"To: {to}",
        f"Call-ID: {request.call_id}",
        f"CSeq: {request.cseq}",
        "Content-Length: 0",
    ]
    return Response.parse(("\r\n".join(lines) + "\r\n\r\n").encode())


def sent_at(txn: Transaction, until: float) -> list[float]:
    """Step a fake clock through ``txn``'s deadlines up to ``until``.

    Returns the times at which a message was handed to the transport.
    """
    times: list[float] = []
    for _ in range(1000):
        at = txn.get_timer()
        if at is None or at > until:
            break
        txn.handle_timer(at)
        times.extend(at for _ in txn.outbox.drain_transmits())
    return times


def intervals(times: list[float], start: float = 0.0) -> list[float]:
    out: list[float] = []
    previous = start
    for t in times:
        out.append(round(t - previous, 6))
        previous = t
    return out


def kinds(txn: Transaction) -> list[type]:
    return [type(e) for e in txn.outbox.drain_events()]


# -- INVITE client (Figure 5) ----------------------------------------------


def test_invite_client_udp_retransmits_doubling_and_times_out_on_b() -> None:
    txn = ClientInviteTransaction(make_request(), peer=UDP)
    txn.start(0.0)
    assert [t.message for t in txn.outbox.drain_transmits()] == [txn.request]
    assert txn.state is S.CALLING
    times = sent_at(txn, 100.0)
    # Timer A: T1, 2*T1, 4*T1, ... (§17.1.1.2); Timer B at 64*T1 = 32 s.
    assert intervals(times) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert txn.state is S.TERMINATED
    events = txn.outbox.drain_events()
    assert isinstance(events[0], TransactionTimedOut) and events[0].timer == "B"
    assert isinstance(events[1], TransactionTerminated)
    assert txn.get_timer() is None


def test_invite_client_reliable_never_retransmits() -> None:
    txn = ClientInviteTransaction(make_request(), peer=TCP)
    txn.start(10.0)
    txn.outbox.drain_transmits()
    assert txn.get_timer() == 42.0
    assert sent_at(txn, 100.0) == []
    assert kinds(txn) == [TransactionTimedOut, TransactionTerminated]


def test_invite_client_custom_t1() -> None:
    txn = ClientInviteTransaction(make_request(), peer=UDP, timers=TimerConfig(t1=0.1))
    txn.start(0.0)
    txn.outbox.drain_transmits()
    assert intervals(sent_at(txn, 100.0)) == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    assert txn.terminated


def test_invite_client_provisional_stops_a_and_b() -> None:
    txn = ClientInviteTransaction(make_request(), peer=UDP)
    txn.start(0.0)
    sent_at(txn, 0.6)  # one retransmission
    ringing = make_response(txn.request, 180)
    txn.receive_response(ringing, 0.7)
    assert txn.state is S.PROCEEDING
    assert txn.get_timer() is None  # no A, no B in Proceeding
    [event] = txn.outbox.drain_events()
    assert isinstance(event, ResponseReceived) and event.response is ringing
    txn.receive_response(make_response(txn.request, 183), 1.0)
    assert txn.state is S.PROCEEDING
    assert kinds(txn) == [ResponseReceived]


def test_invite_client_non_2xx_acks_absorbs_retransmissions_and_waits_d() -> None:
    request = make_request(routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    txn = ClientInviteTransaction(request, peer=UDP)
    txn.start(0.0)
    txn.outbox.drain_transmits()
    busy = make_response(request, 486, to_tag="busy1")
    txn.receive_response(busy, 1.0)
    assert txn.state is S.COMPLETED
    [ack_out] = txn.outbox.drain_transmits()
    ack = ack_out.message
    assert isinstance(ack, Request)
    # §17.1.1.3: Request-URI, Call-ID, From, CSeq number, top Via, To from the
    # response, Route from the request.
    assert ack.method == "ACK"
    assert ack.uri == request.uri
    assert ack.call_id == request.call_id
    assert ack.from_ == request.from_
    assert (ack.cseq.number, ack.cseq.method) == (314159, "ACK")
    assert [str(v) for v in ack.via] == [str(request.via[0])]
    assert ack.to_tag == "busy1"
    assert [str(r) for r in ack.route] == [str(r) for r in request.route]
    assert kinds(txn) == [ResponseReceived]
    # A retransmitted 486 is re-ACKed with the same ACK and not passed up.
    txn.receive_response(make_response(request, 486, to_tag="busy1"), 5.0)
    assert [t.message for t in txn.outbox.drain_transmits()] == [ack]
    assert kinds(txn) == []
    assert txn.get_timer() == 33.0  # Timer D = 32 s on UDP
    txn.handle_timer(33.0)
    assert txn.terminated
    assert kinds(txn) == [TransactionTerminated]


def test_invite_client_reliable_non_2xx_terminates_at_once() -> None:
    txn = ClientInviteTransaction(make_request(), peer=TCP)
    txn.start(0.0)
    txn.receive_response(make_response(txn.request, 603), 0.5)
    assert txn.terminated  # Timer D = 0 on reliable transports
    assert kinds(txn) == [ResponseReceived, TransactionTerminated]
    assert [t.message.method for t in txn.outbox.drain_transmits()[1:]] == ["ACK"]  # type: ignore[union-attr]


def test_invite_client_2xx_accepted_passes_retransmissions_until_m() -> None:
    txn = ClientInviteTransaction(make_request(), peer=UDP)
    txn.start(0.0)
    ok = make_response(txn.request, 200)
    txn.receive_response(ok, 2.0)
    assert txn.state is S.ACCEPTED
    assert txn.get_timer() == 34.0  # Timer M = 64*T1 (RFC 6026 §7.2)
    txn.receive_response(make_response(txn.request, 200), 3.0)
    assert kinds(txn) == [ResponseReceived, ResponseReceived]
    txn.outbox.drain_transmits()
    assert sent_at(txn, 100.0) == []  # no ACK from the transaction for 2xx
    assert txn.terminated


def test_invite_client_transport_error() -> None:
    txn = ClientInviteTransaction(make_request(), peer=UDP)
    txn.start(0.0)
    txn.transport_error(0.1, "ICMP port unreachable")
    events = txn.outbox.drain_events()
    assert isinstance(events[0], TransactionTransportError)
    assert events[0].reason == "ICMP port unreachable"
    assert isinstance(events[1], TransactionTerminated)
    assert txn.terminated and txn.get_timer() is None


def test_invite_client_make_cancel() -> None:
    request = make_request(routes=("<sip:p1.example.com;lr>",))
    cancel = ClientInviteTransaction(request, peer=UDP).make_cancel()
    assert cancel.method == "CANCEL"
    assert cancel.uri == request.uri
    assert str(cancel.via[0]) == str(request.via[0]) and len(cancel.via) == 1
    assert (cancel.cseq.number, cancel.cseq.method) == (request.cseq.number, "CANCEL")
    assert cancel.to == request.to and cancel.from_ == request.from_
    assert [str(r) for r in cancel.route] == ["<sip:p1.example.com;lr>"]


def test_invite_client_rejects_other_methods() -> None:
    with pytest.raises(LocalSipError):
        ClientInviteTransaction(make_request("OPTIONS"))


# -- non-INVITE client (Figure 6) ---------------------------------------------


def test_non_invite_client_caps_at_t2_and_times_out_on_f() -> None:
    txn = ClientNonInviteTransaction(make_request("OPTIONS"), peer=UDP)
    txn.start(0.0)
    txn.outbox.drain_transmits()
    times = sent_at(txn, 100.0)
    gaps = intervals(times)
    assert gaps[:6] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert all(g == 4.0 for g in gaps[3:])
    assert times[-1] < 32.0
    assert txn.terminated
    events = txn.outbox.drain_events()
    assert isinstance(events[0], TransactionTimedOut) and events[0].timer == "F"


def test_non_invite_client_proceeding_retransmits_at_t2() -> None:
    txn = ClientNonInviteTransaction(make_request("BYE", to_tag="x"), peer=UDP)
    txn.start(0.0)
    txn.outbox.drain_transmits()
    txn.receive_response(make_response(txn.request, 100), 0.1)
    assert txn.state is S.PROCEEDING
    # E was armed at 0.5; it fires there, then every T2.
    times = sent_at(txn, 13.0)
    assert intervals(times, start=0.5)[1:] == [4.0, 4.0, 4.0]
    assert times[0] == 0.5


def test_non_invite_client_completed_waits_k() -> None:
    txn = ClientNonInviteTransaction(make_request("REGISTER"), peer=UDP)
    txn.start(0.0)
    txn.receive_response(make_response(txn.request, 200), 0.2)
    assert txn.state is S.COMPLETED
    assert txn.get_timer() == 5.2  # Timer K = T4
    txn.receive_response(make_response(txn.request, 200), 0.3)
    assert kinds(txn) == [ResponseReceived]  # the retransmission is absorbed
    txn.handle_timer(5.2)
    assert txn.terminated


def test_non_invite_client_reliable_k_is_zero() -> None:
    txn = ClientNonInviteTransaction(make_request("MESSAGE"), peer=TCP)
    txn.start(0.0)
    txn.receive_response(make_response(txn.request, 202), 0.2)
    assert txn.terminated
    assert kinds(txn) == [ResponseReceived, TransactionTerminated]


def test_non_invite_client_rejects_invite_and_ack() -> None:
    for method in ("INVITE", "ACK"):
        with pytest.raises(LocalSipError):
            ClientNonInviteTransaction(make_request(method))


# -- INVITE server (Figure 7) -------------------------------------------------


def test_invite_server_sends_100_after_200_ms() -> None:
    txn = ServerInviteTransaction(make_request(), peer=UDP)
    txn.start(0.0)
    assert txn.state is S.PROCEEDING
    assert txn.get_timer() == pytest.approx(0.2)
    txn.handle_timer(0.2)
    [out] = txn.outbox.drain_transmits()
    assert isinstance(out.message, Response) and out.message.status == 100
    assert out.message.to_tag is None  # §17.2.1: SHOULD NOT add a tag to 100
    assert out.peer == UDP


def test_invite_server_no_100_when_tu_answers_in_time() -> None:
    txn = ServerInviteTransaction(make_request(), peer=UDP)
    txn.start(0.0)
    ringing = make_response(txn.request, 180)
    txn.send_response(ringing, 0.1)
    assert txn.get_timer() is None
    assert [t.message for t in txn.outbox.drain_transmits()] == [ringing]
    # An INVITE retransmission gets the latest provisional again.
    txn.receive_request(make_request(), 0.5)
    assert [t.message for t in txn.outbox.drain_transmits()] == [ringing]


def test_invite_server_non_2xx_retransmits_on_g_until_h() -> None:
    txn = ServerInviteTransaction(make_request(), peer=UDP)
    txn.start(0.0)
    busy = make_response(txn.request, 486)
    txn.send_response(busy, 1.0)
    assert txn.state is S.COMPLETED
    txn.outbox.drain_transmits()
    times = sent_at(txn, 100.0)
    gaps = intervals(times, start=1.0)
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]  # G: T1 doubling, capped at T2
    assert all(g == 4.0 for g in gaps[3:])
    assert txn.terminated
    events = txn.outbox.drain_events()
    assert isinstance(events[0], TransactionTimedOut) and events[0].timer == "H"
    assert max(times) < 33.0


def test_invite_server_ack_confirms_then_i() -> None:
    txn = ServerInviteTransaction(make_request(), peer=UDP)
    txn.start(0.0)
    busy = make_response(txn.request, 486)
    txn.send_response(busy, 0.05)
    txn.outbox.drain_transmits()
    txn.receive_request(make_request(), 0.3)  # INVITE retransmission
    assert [t.message for t in txn.outbox.drain_transmits()] == [busy]
    ack = make_request("ACK", to_tag="a6c85cf")
    txn.receive_request(ack, 0.4)
    assert txn.state is S.CONFIRMED
    assert txn.ack is ack
    assert txn.get_timer() == pytest.approx(5.4)  # Timer I = T4
    txn.receive_request(ack, 0.5)  # absorbed
    assert txn.outbox.drain_transmits() == []
    txn.handle_timer(5.4)
    assert txn.terminated
    assert kinds(txn) == [TransactionTerminated]


def test_invite_server_reliable_no_g_and_i_zero() -> None:
    txn = ServerInviteTransaction(make_request(), peer=TCP)
    txn.start(0.0)
    txn.send_response(make_response(txn.request, 404), 0.0)
    assert txn.get_timer() == 32.0  # only H
    txn.receive_request(make_request("ACK", to_tag="a6c85cf"), 1.0)
    assert txn.terminated


def test_invite_server_accepted_state() -> None:
    txn = ServerInviteTransaction(make_request(), peer=UDP)
    txn.start(0.0)
    ok = make_response(txn.request, 200)
    txn.send_response(ok, 0.1)
    assert txn.state is S.ACCEPTED
    assert txn.get_timer() == pytest.approx(32.1)  # Timer L
    txn.outbox.drain_transmits()
    txn.receive_request(make_request(), 0.6)  # INVITE retransmission: absorbed
    assert txn.outbox.drain_transmits() == []
    txn.send_response(ok, 0.6)  # the TU's §13.3.1.4 retransmission goes out
    assert [t.message for t in txn.outbox.drain_transmits()] == [ok]
    ack = make_request("ACK", to_tag="a6c85cf")
    txn.receive_request(ack, 0.7)
    [event] = txn.outbox.drain_events()
    assert isinstance(event, RequestReceived) and event.request is ack
    assert event.transaction is None
    with pytest.raises(LocalSipError):
        txn.send_response(make_response(txn.request, 500), 0.8)
    txn.handle_timer(32.1)
    assert txn.terminated


def test_invite_server_retransmission_before_any_response_gets_100() -> None:
    txn = ServerInviteTransaction(make_request(), peer=UDP)
    txn.start(0.0)
    txn.receive_request(make_request(), 0.1)
    [out] = txn.outbox.drain_transmits()
    assert isinstance(out.message, Response) and out.message.status == 100


def test_invite_server_transport_error() -> None:
    txn = ServerInviteTransaction(make_request(), peer=UDP)
    txn.start(0.0)
    txn.send_response(make_response(txn.request, 486), 0.0)
    txn.transport_error(0.0, "no route")
    assert txn.terminated
    assert kinds(txn) == [TransactionTransportError, TransactionTerminated]


# -- non-INVITE server (Figure 8) -----------------------------------------------


def test_non_invite_server_flow_and_j() -> None:
    request = make_request("OPTIONS")
    txn = ServerNonInviteTransaction(request, peer=UDP)
    txn.start(0.0)
    assert txn.state is S.TRYING and txn.get_timer() is None
    txn.receive_request(request, 0.5)  # Trying absorbs retransmissions
    assert txn.outbox.drain_transmits() == []
    trying = make_response(request, 100)
    txn.send_response(trying, 0.6)
    assert txn.state is S.PROCEEDING
    txn.receive_request(request, 0.7)
    assert [t.message for t in txn.outbox.drain_transmits()] == [trying, trying]
    ok = make_response(request, 200)
    txn.send_response(ok, 1.0)
    assert txn.state is S.COMPLETED
    assert txn.get_timer() == 33.0  # Timer J = 64*T1 on UDP
    txn.receive_request(request, 2.0)
    assert [t.message for t in txn.outbox.drain_transmits()] == [ok, ok]
    with pytest.raises(LocalSipError):
        txn.send_response(make_response(request, 500), 3.0)
    txn.handle_timer(33.0)
    assert txn.terminated


def test_non_invite_server_reliable_j_is_zero() -> None:
    txn = ServerNonInviteTransaction(make_request("BYE", to_tag="x"), peer=TCP)
    txn.start(0.0)
    txn.send_response(make_response(txn.request, 200), 0.0)
    assert txn.terminated


# -- the declared transition tables --------------------------------------------


@pytest.mark.parametrize(
    "machine",
    [
        ClientInviteTransaction,
        ClientNonInviteTransaction,
        ServerInviteTransaction,
        ServerNonInviteTransaction,
    ],
)
def test_transition_tables_are_closed(machine: type[Transaction]) -> None:
    table = machine.TRANSITIONS
    assert machine.INITIAL in table
    for targets in table.values():
        assert targets <= set(table)
    assert table[S.TERMINATED] == frozenset()


def test_illegal_transition_raises() -> None:
    txn = ServerNonInviteTransaction(make_request("OPTIONS"), peer=UDP)
    with pytest.raises(LocalSipError, match="illegal transition"):
        txn._set_state(S.CONFIRMED)


# -- property tests: any input sequence keeps the machines consistent ---------

STATUSES = st.sampled_from([100, 180, 183, 200, 202, 302, 404, 486, 487, 500, 603])
PEERS = st.sampled_from([Peer("udp", "192.0.2.9", 5060), Peer("tcp", "192.0.2.9", 5060)])
STEPS = st.lists(
    st.tuples(st.sampled_from(["response", "timer", "retransmit", "ack", "error"]), STATUSES),
    max_size=25,
)


def check(txn: Transaction) -> None:
    assert txn.state in type(txn).TRANSITIONS
    if txn.state is TransactionState.TERMINATED:
        assert txn.get_timer() is None


@settings(max_examples=150, deadline=None)
@given(invite=st.booleans(), peer=PEERS, steps=STEPS)
def test_client_machines_stay_consistent(
    invite: bool, peer: Peer, steps: list[tuple[str, int]]
) -> None:
    request = make_request("INVITE" if invite else "OPTIONS")
    txn: Transaction
    if invite:
        txn = ClientInviteTransaction(request, peer=peer)
    else:
        txn = ClientNonInviteTransaction(request, peer=peer)
    txn.start(0.0)
    now = 0.0
    for action, status in steps:
        if action == "timer":
            at = txn.get_timer()
            if at is not None:
                now = at
                txn.handle_timer(now)
        elif action == "error":
            txn.transport_error(now, "test")
        else:
            assert isinstance(txn, ClientInviteTransaction | ClientNonInviteTransaction)
            txn.receive_response(make_response(request, status), now)
        check(txn)
    # Whatever happened, the machine ends by itself within 64*T1 + T4.
    for _ in range(200):
        at = txn.get_timer()
        if at is None:
            break
        txn.handle_timer(at)
    assert txn.terminated or txn.state is TransactionState.PROCEEDING


@settings(max_examples=150, deadline=None)
@given(invite=st.booleans(), peer=PEERS, steps=STEPS)
def test_server_machines_stay_consistent(
    invite: bool, peer: Peer, steps: list[tuple[str, int]]
) -> None:
    request = make_request("INVITE" if invite else "OPTIONS")
    txn: ServerInviteTransaction | ServerNonInviteTransaction
    if invite:
        txn = ServerInviteTransaction(request, peer=peer)
    else:
        txn = ServerNonInviteTransaction(request, peer=peer)
    txn.start(0.0)
    now = 0.0
    finals = 0
    for action, status in steps:
        if action == "timer":
            at = txn.get_timer()
            if at is not None:
                now = at
                txn.handle_timer(now)
        elif action == "error":
            txn.transport_error(now, "test")
        elif action == "retransmit":
            txn.receive_request(request, now)
        elif action == "ack":
            txn.receive_request(make_request("ACK", to_tag="a6c85cf"), now)
        else:
            try:
                txn.send_response(make_response(request, status), now)
            except LocalSipError:
                # Only a second final (or a non-2xx after a 2xx) is refused.
                assert finals > 0 or txn.terminated
            else:
                finals += status >= 200
        check(txn)
