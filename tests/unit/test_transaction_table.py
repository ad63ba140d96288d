"""The transaction layer: matching (§17.1.3, §17.2.3), CANCEL (§9.2), merged requests."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from trunkline.sip.builder import make_response
from trunkline.sip.errors import LocalSipError
from trunkline.sip.events import (
    Event,
    MergedRequestRejected,
    Peer,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransactionTransportError,
)
from trunkline.sip.message import Request, Response, parse_message
from trunkline.sip.transaction import (
    ClientInviteTransaction,
    ServerInviteTransaction,
    ServerTransaction,
    TransactionState,
)
from trunkline.sip.transaction_table import TransactionLayer, server_key

ALICE = Peer("udp", "192.0.2.1", 5060)
BOB = Peer("udp", "192.0.2.2", 5060)


def request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bKnashds8",
    sent_by: str = "pc33.atlanta.example.com",
    cseq: int = 1,
    to_tag: str | None = None,
    from_tag: str = "1928301774",
    uri: str = "sip:bob@biloxi.example.com",
) -> Request:
    to = "<sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {sent_by};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: {to}\r\n"
        f"From: <sip:alice@atlanta.example.com>;tag={from_tag}\r\n"
        "Call-ID: a84b4c76e66710\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    return Request.parse(text.encode())


@dataclass
class Wire:
    """Two transaction layers joined by an in-memory, lossless "network".

    Every message crosses as bytes and is parsed again on the other side.
    """

    alice: TransactionLayer = field(default_factory=TransactionLayer)
    bob: TransactionLayer = field(default_factory=TransactionLayer)
    now: float = 0.0
    alice_events: list[Event] = field(default_factory=list)
    bob_events: list[Event] = field(default_factory=list)

    def flush(self) -> None:
        for _ in range(100):
            moved = False
            for src, dst, dst_peer in ((self.alice, self.bob, ALICE), (self.bob, self.alice, BOB)):
                for out in src.drain_transmits():
                    moved = True
                    msg = parse_message(bytes(out.message))
                    if isinstance(msg, Request):
                        dst.receive_request(msg, dst_peer, self.now)
                    else:
                        dst.receive_response(msg, self.now)
            self.alice_events += self.alice.drain_events()
            self.bob_events += self.bob.drain_events()
            if not moved:
                return

    def advance(self, until: float) -> None:
        """Run both layers' timers on a fake clock up to ``until``."""
        for _ in range(1000):
            timers = [t for t in (self.alice.get_timer(), self.bob.get_timer()) if t is not None]
            if not timers or min(timers) > until:
                break
            self.now = min(timers)
            self.alice.handle_timer(self.now)
            self.bob.handle_timer(self.now)
            self.flush()
        self.now = until


def client_and_server() -> Wire:
    return Wire()


def first(events: list[Event], kind: type) -> Event:
    return next(e for e in events if isinstance(e, kind))


def test_invite_call_flow_rejected() -> None:
    wire = client_and_server()
    client = wire.alice.send_request(request(), BOB, 0.0)
    wire.flush()
    got = first(wire.bob_events, RequestReceived)
    assert isinstance(got, RequestReceived)
    server = got.transaction
    assert isinstance(server, ServerInviteTransaction)
    wire.advance(0.25)  # 100 Trying went out on its own
    assert client.state is TransactionState.PROCEEDING
    wire.bob.send_response(server, make_response(server.request, 486, to_tag="b1"), wire.now)
    wire.flush()
    # The client's ACK matched the server transaction (same branch).
    assert server.state is TransactionState.CONFIRMED
    assert client.state is TransactionState.COMPLETED
    statuses = [e.response.status for e in wire.alice_events if isinstance(e, ResponseReceived)]
    assert statuses == [100, 486]
    wire.advance(40.0)
    assert len(wire.alice) == 0 and len(wire.bob) == 0
    assert wire.alice.get_timer() is None and wire.bob.get_timer() is None


def test_invite_call_flow_accepted_and_ack_to_tu() -> None:
    wire = client_and_server()
    client = wire.alice.send_request(request(), BOB, 0.0)
    wire.flush()
    server = first(wire.bob_events, RequestReceived).transaction  # type: ignore[attr-defined]
    ok = make_response(server.request, 200, to_tag="b1")
    wire.bob.send_response(server, ok, 0.0)
    wire.flush()
    assert client.state is TransactionState.ACCEPTED
    assert server.state is TransactionState.ACCEPTED
    # The TU's ACK for the 2xx has its own branch: it reaches Bob's TU.
    ack = request("ACK", branch="z9hG4bKack1", to_tag="b1")
    wire.alice.send_ack(ack, BOB)
    wire.flush()
    acks = [e for e in wire.bob_events if isinstance(e, RequestReceived) and e.transaction is None]
    assert [e.request.method for e in acks] == ["ACK"]
    wire.advance(100.0)
    assert len(wire.alice) == 0 and len(wire.bob) == 0


def test_retransmission_absorbed_by_server_transaction() -> None:
    layer = TransactionLayer()
    first_txn = layer.receive_request(request("OPTIONS"), ALICE, 0.0)
    assert first_txn is not None
    assert layer.receive_request(request("OPTIONS"), ALICE, 0.5) is None
    assert [type(e) for e in layer.drain_events()] == [RequestReceived]
    assert len(layer) == 1


def test_server_matching_uses_sent_by_and_method() -> None:
    layer = TransactionLayer(reject_merged=False)
    a = layer.receive_request(request("OPTIONS"), ALICE, 0.0)
    b = layer.receive_request(request("OPTIONS", sent_by="other.example.com"), ALICE, 0.0)
    c = layer.receive_request(request("INFO", to_tag="t"), ALICE, 0.0)
    assert a is not None and b is not None and c is not None
    assert len({id(a), id(b), id(c)}) == 3
    assert server_key(request("ACK")) == server_key(request("INVITE"))


def test_client_matching_needs_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    invite = layer.send_request(request(), BOB, 0.0)
    assert isinstance(invite, ClientInviteTransaction)
    layer.receive_response(make_response(invite.request, 180, to_tag="b"), 0.1)
    cancel = layer.cancel(invite, 0.2)
    assert cancel is not None and cancel.request.method == "CANCEL"
    # The 200 for the CANCEL shares the branch but not the CSeq method.
    layer.receive_response(make_response(cancel.request, 200, to_tag="b"), 0.3)
    assert cancel.state is TransactionState.COMPLETED
    assert invite.state is TransactionState.PROCEEDING
    layer.receive_response(make_response(invite.request, 487, to_tag="b"), 0.4)
    assert invite.state is TransactionState.COMPLETED


def test_cancel_waits_for_a_provisional() -> None:
    layer = TransactionLayer()
    invite = layer.send_request(request(), BOB, 0.0)
    assert isinstance(invite, ClientInviteTransaction)
    layer.drain_transmits()
    assert layer.cancel(invite, 0.1) is None
    assert layer.drain_transmits() == []  # §9.1: not before a provisional
    layer.receive_response(make_response(invite.request, 100), 0.2)
    [out] = layer.drain_transmits()
    assert isinstance(out.message, Request) and out.message.method == "CANCEL"
    assert out.peer == BOB


def test_cancel_after_final_response_does_nothing() -> None:
    layer = TransactionLayer()
    invite = layer.send_request(request(), BOB, 0.0)
    assert isinstance(invite, ClientInviteTransaction)
    layer.receive_response(make_response(invite.request, 200, to_tag="b"), 0.1)
    layer.drain_transmits()
    assert layer.cancel(invite, 0.2) is None
    assert layer.drain_transmits() == []


def test_stray_response_goes_to_core() -> None:
    layer = TransactionLayer()
    response = make_response(request(), 200, to_tag="b")
    assert layer.receive_response(response, 0.0) is None
    [event] = layer.drain_events()
    assert isinstance(event, ResponseReceived) and event.transaction is None


def test_find_cancelled_rfc3261() -> None:
    layer = TransactionLayer()
    invite = layer.receive_request(request(), ALICE, 0.0)
    cancel = request("CANCEL")
    assert layer.find_cancelled(cancel) is invite
    assert layer.find_cancelled(request("CANCEL", branch="z9hG4bKother")) is None
    cancel_txn = layer.receive_request(cancel, ALICE, 0.1)
    assert cancel_txn is not None and cancel_txn is not invite


def test_rfc2543_matching_and_ack_by_to_tag() -> None:
    layer = TransactionLayer()
    old = request(branch="1234oldstyle")
    txn = layer.receive_request(old, ALICE, 0.0)
    assert isinstance(txn, ServerInviteTransaction)
    assert layer.receive_request(request(branch="1234oldstyle"), ALICE, 0.1) is None
    assert layer.find_cancelled(request("CANCEL", branch="1234oldstyle")) is txn
    layer.send_response(txn, make_response(old, 404, to_tag="t404"), 0.2)
    # An ACK with another To tag is not this transaction's.
    layer.receive_request(request("ACK", branch="1234oldstyle", to_tag="zzz"), ALICE, 0.3)
    assert txn.state is TransactionState.COMPLETED
    layer.receive_request(request("ACK", branch="1234oldstyle", to_tag="t404"), ALICE, 0.4)
    assert txn.state is TransactionState.CONFIRMED


def test_merged_request_gets_482() -> None:
    layer = TransactionLayer()
    layer.receive_request(request(), ALICE, 0.0)
    layer.drain_transmits()
    layer.drain_events()
    # The same request forked by a proxy and arriving by another path.
    assert (
        layer.receive_request(request(branch="z9hG4bKpath2", sent_by="p2.example.com"), ALICE, 0.1)
        is None
    )
    [out] = layer.drain_transmits()
    assert isinstance(out.message, Response) and out.message.status == 482
    assert [type(e) for e in layer.drain_events()] == [MergedRequestRejected]


def test_merged_detection_off_for_proxies() -> None:
    layer = TransactionLayer(reject_merged=False)
    layer.receive_request(request(), ALICE, 0.0)
    second = layer.receive_request(request(branch="z9hG4bKpath2"), ALICE, 0.1)
    assert isinstance(second, ServerTransaction)


def test_layer_timers_and_cleanup() -> None:
    layer = TransactionLayer()
    a = layer.send_request(request("OPTIONS", branch="z9hG4bKa"), BOB, 0.0)
    b = layer.send_request(request("OPTIONS", branch="z9hG4bKb"), BOB, 0.1)
    assert layer.get_timer() == 0.5
    layer.handle_timer(0.5)
    assert layer.get_timer() == pytest.approx(0.6)
    layer.receive_response(make_response(a.request, 200), 0.55)
    assert layer.get_timer() == pytest.approx(0.6)  # a now waits on K = 5.55
    for _ in range(100):
        at = layer.get_timer()
        if at is None:
            break
        layer.handle_timer(at)
    assert a.terminated and b.terminated and len(layer) == 0
    events = layer.drain_events()
    assert sum(isinstance(e, TransactionTimedOut) for e in events) == 1
    assert sum(isinstance(e, TransactionTerminated) for e in events) == 2


def test_transport_error_via_layer() -> None:
    layer = TransactionLayer()
    txn = layer.send_request(request("OPTIONS"), BOB, 0.0)
    layer.transport_error(txn, 0.0, "connection refused")
    assert len(layer) == 0 and layer.get_timer() is None
    assert isinstance(layer.drain_events()[0], TransactionTransportError)


def test_send_request_refuses_ack_and_duplicate_branch() -> None:
    layer = TransactionLayer()
    with pytest.raises(LocalSipError):
        layer.send_request(request("ACK"), BOB, 0.0)
    layer.send_request(request("OPTIONS"), BOB, 0.0)
    with pytest.raises(LocalSipError):
        layer.send_request(request("OPTIONS"), BOB, 0.0)


def test_request_without_via_is_a_parse_error() -> None:
    from trunkline.sip.errors import SipParseError

    bare = Request(  # the parser refuses this; a hand-built one reaches the layer
        "OPTIONS",
        "sip:bob@example.com",
        [
            ("To", "<sip:bob@example.com>"),
            ("From", "<sip:a@example.com>;tag=1"),
            ("Call-ID", "x"),
            ("CSeq", "1 OPTIONS"),
        ],
    )
    with pytest.raises(SipParseError):
        TransactionLayer().receive_request(bare, ALICE, 0.0)


def test_reliable_transport_server_transaction_ends_at_once() -> None:
    tcp = Peer("tcp", "192.0.2.1", 5060)
    layer = TransactionLayer()
    txn = layer.receive_request(request("OPTIONS"), tcp, 0.0)
    assert txn is not None and txn.reliable
    layer.send_response(txn, make_response(txn.request, 200), 0.0)
    assert txn.terminated and len(layer) == 0  # Timer J = 0
    client = layer.send_request(request("INVITE", branch="z9hG4bKtcp"), tcp, 0.0)
    assert client.reliable and layer.get_timer() == 32.0  # only Timer B, no A
