"""Reliable provisional responses and PRACK matching (RFC 3262 §3, §4)."""

from __future__ import annotations

import random

import pytest

from trunkline.sip.builder import make_request, make_response
from trunkline.sip.errors import LocalSipError
from trunkline.sip.message import Request, Response
from trunkline.sip.prack import (
    MAX_RSEQ,
    ReliableProvisionalReceiver,
    ReliableProvisionalSender,
    is_reliable_provisional,
    rack_for,
    requires_100rel,
    supports_100rel,
)
from trunkline.sip.timers import TimerConfig


def invite(*extra: tuple[str, str]) -> Request:
    return make_request(
        "INVITE",
        "sip:bob@example.com",
        from_="<sip:alice@example.com>",
        to="<sip:bob@example.com>",
        cseq=7,
        via="SIP/2.0/UDP 192.0.2.1:5060",
        extra_headers=extra,
    )


def prack(rack: str) -> Request:
    return make_request(
        "PRACK",
        "sip:alice@example.com",
        from_="<sip:alice@example.com>",
        to="<sip:bob@example.com>;tag=b",
        cseq=8,
        extra_headers=[("RAck", rack)],
    )


def test_option_tag_helpers() -> None:
    assert supports_100rel(invite(("Supported", "timer, 100rel")))
    assert supports_100rel(invite(("Require", "100rel")))
    assert not supports_100rel(invite())
    assert requires_100rel(invite(("Require", "100rel")))


def test_prepare_numbers_and_marks_responses() -> None:
    req = invite(("Supported", "100rel"))
    sender = ReliableProvisionalSender(req, rng=random.Random(5))
    first = sender.prepare(make_response(req, 180, to_tag="b"))
    assert is_reliable_provisional(first)
    assert first.require == ["100rel"]
    assert first.rseq is not None and 1 <= first.rseq <= MAX_RSEQ
    assert rack_for(first) == f"{first.rseq} 7 INVITE"
    sender.sent(first, 0.0)
    assert sender.busy
    with pytest.raises(LocalSipError):
        sender.prepare(make_response(req, 183, to_tag="b"))  # one at a time
    assert sender.receive_prack(prack(rack_for(first))) == 200
    second = sender.prepare(make_response(req, 183, to_tag="b"))
    assert second.rseq == first.rseq + 1
    with pytest.raises(LocalSipError):
        sender.prepare(make_response(req, 200, to_tag="b"))


def test_retransmission_schedule_and_give_up() -> None:
    req = invite()
    sender = ReliableProvisionalSender(req, timers=TimerConfig(t1=0.5))
    response = sender.prepare(make_response(req, 180, to_tag="b"))
    sender.sent(response, 0.0)
    times: list[float] = []
    gave_up = False
    for _ in range(50):
        at = sender.get_timer()
        if at is None:
            break
        resent, gave_up = sender.handle_timer(at)
        times += [at for _ in resent]
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert gave_up and not sender.busy


def test_prack_matching() -> None:
    req = invite()
    sender = ReliableProvisionalSender(req)
    response = sender.prepare(make_response(req, 180, to_tag="b"))
    sender.sent(response, 0.0)
    rseq = response.rseq
    assert rseq is not None
    assert sender.receive_prack(prack(f"{rseq + 1} 7 INVITE")) == 481
    assert sender.receive_prack(prack(f"{rseq} 6 INVITE")) == 481
    assert sender.receive_prack(prack(f"{rseq} 7 UPDATE")) == 481
    assert sender.receive_prack(prack(f"{rseq} 7 INVITE")) == 200
    assert sender.get_timer() is None
    assert sender.receive_prack(prack(f"{rseq} 7 INVITE")) == 200  # a retransmitted PRACK


def test_final_response_stops_retransmission() -> None:
    req = invite()
    sender = ReliableProvisionalSender(req)
    sender.sent(sender.prepare(make_response(req, 180, to_tag="b")), 0.0)
    sender.final_sent()
    assert sender.get_timer() is None and not sender.busy


def test_receiver_order() -> None:
    req = invite()

    def reliable(rseq: int) -> Response:
        return make_response(
            req, 180, to_tag="b", headers=[("Require", "100rel"), ("RSeq", str(rseq))]
        )

    receiver = ReliableProvisionalReceiver()
    assert receiver.accept(reliable(500))
    assert not receiver.accept(reliable(500))
    assert not receiver.accept(reliable(502))
    assert receiver.accept(reliable(501))
    assert not receiver.accept(make_response(req, 180, to_tag="b"))
    with pytest.raises(LocalSipError):
        rack_for(make_response(req, 180, to_tag="b"))
