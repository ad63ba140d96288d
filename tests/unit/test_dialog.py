"""The Dialog object: creation, route sets, request building, CSeq rules (RFC 3261 §12)."""

from __future__ import annotations

import pytest

from trunkline.sip.builder import make_request, make_response
from trunkline.sip.dialog import Dialog, DialogId, DialogState, OfferAnswerState, Role, has_sdp
from trunkline.sip.errors import LocalSipError
from trunkline.sip.headers import Via
from trunkline.sip.message import Request, Response
from trunkline.sip.uri import parse_uri

VIA = Via("UDP", "pc33.atlanta.example.com", 5060, {})


def invite(
    record_route: tuple[str, ...] = (), contact: str = "<sip:alice@pc33.atlanta.example.com>"
) -> Request:
    return make_request(
        "INVITE",
        "sip:bob@biloxi.example.com",
        from_="Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl",
        to="Bob <sip:bob@biloxi.example.com>",
        call_id="3848276298220188511@atlanta.example.com",
        cseq=1,
        via=VIA,
        contact=contact,
        extra_headers=[("Record-Route", rr) for rr in record_route],
    )


def answer(request: Request, status: int = 200, *, to_tag: str = "8321234356") -> Response:
    headers = [("Record-Route", rr) for rr in request.headers.get_all("Record-Route")]
    headers.append(("Contact", "<sip:bob@192.0.2.4>"))
    return make_response(request, status, to_tag=to_tag, headers=headers)


RR = ("<sip:p4.domain.example;lr>", "<sip:p3.middle.example>", "<sip:p2.example.com;lr>")


def test_uac_dialog_from_2xx() -> None:
    req = invite(record_route=RR)
    dialog = Dialog.from_uac(req, answer(req))
    assert dialog.role is Role.UAC and dialog.state is DialogState.CONFIRMED
    assert dialog.id == DialogId(
        "3848276298220188511@atlanta.example.com", "9fxced76sl", "8321234356"
    )
    # §12.1.2: the Record-Route in reverse order.
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.example.com;lr",
        "sip:p3.middle.example",
        "sip:p4.domain.example;lr",
    ]
    assert dialog.remote_target == parse_uri("sip:bob@192.0.2.4")
    assert (dialog.local_seq, dialog.remote_seq) == (1, None)
    assert dialog.owns_call_id
    assert dialog.local_contact == "<sip:alice@pc33.atlanta.example.com>"


def test_uac_early_dialog_from_1xx() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req, 180))
    assert dialog.state is DialogState.EARLY
    dialog.confirm()
    assert dialog.state is DialogState.CONFIRMED
    with pytest.raises(LocalSipError, match="illegal transition"):
        dialog._set_state(DialogState.EARLY)


def test_uac_dialog_needs_a_to_tag() -> None:
    req = invite()
    trying = make_response(req, 100)
    with pytest.raises(LocalSipError):
        Dialog.from_uac(req, trying)


def test_uas_dialog_keeps_record_route_order() -> None:
    req = invite(record_route=RR)
    dialog = Dialog.from_uas(req, answer(req))
    assert dialog.role is Role.UAS and not dialog.owns_call_id
    assert dialog.id == DialogId(req.call_id, "8321234356", "9fxced76sl")
    assert [str(r) for r in dialog.route_set] == list(RR)
    assert dialog.remote_target == parse_uri("sip:alice@pc33.atlanta.example.com")
    assert (dialog.local_seq, dialog.remote_seq) == (None, 1)
    assert dialog.local_contact == "<sip:bob@192.0.2.4>"


def test_request_without_route_set() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req))
    bye = dialog.create_request("BYE", via=VIA)
    assert bye.uri == parse_uri("sip:bob@192.0.2.4")
    assert bye.route == []
    assert (bye.cseq.number, bye.cseq.method) == (2, "BYE")
    assert bye.from_tag == "9fxced76sl" and bye.to_tag == "8321234356"
    assert bye.via[0].branch is not None and bye.via[0].branch.startswith("z9hG4bK")
    assert "Contact" not in bye.headers  # BYE is no target refresh


def test_loose_routing_request() -> None:
    req = invite(record_route=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    dialog = Dialog.from_uac(req, answer(req))
    reinvite = dialog.create_request("INVITE")
    # §12.2.1.1: first route has lr -> Request-URI is the remote target.
    assert reinvite.uri == parse_uri("sip:bob@192.0.2.4")
    assert [str(r) for r in reinvite.route] == [
        "<sip:p2.example.com;lr>",
        "<sip:p1.example.com;lr>",
    ]
    assert reinvite.headers.get("Contact") == "<sip:alice@pc33.atlanta.example.com>"
    assert reinvite.via == []  # no via given: the transport adds it


def test_strict_routing_request() -> None:
    req = invite(record_route=("<sip:p1.example.com;lr>", "<sip:strict.example.com;method=INVITE>"))
    dialog = Dialog.from_uac(req, answer(req))
    bye = dialog.create_request("BYE")
    # §12.2.1.1: the strict router's URI becomes the Request-URI (method
    # parameter stripped); the rest of the route set, then the remote target.
    assert bye.uri == parse_uri("sip:strict.example.com")
    assert [str(r) for r in bye.route] == [
        "<sip:p1.example.com;lr>",
        "<sip:bob@192.0.2.4>",
    ]


def test_cseq_increments_and_ack_reuses() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req))
    assert dialog.create_request("INFO").cseq.number == 2
    assert dialog.create_request("UPDATE").cseq.number == 3
    assert dialog.create_request("ACK", cseq=1).cseq.number == 1
    with pytest.raises(LocalSipError):
        dialog.create_request("ACK")
    uas = Dialog.from_uas(req, answer(req))
    assert uas.create_request("BYE").cseq.number == 1  # local CSeq was empty


def test_remote_cseq_out_of_order_gets_500() -> None:
    req = invite()
    dialog = Dialog.from_uas(req, answer(req))
    reinvite = make_request(
        "INVITE",
        "sip:bob@192.0.2.4",
        from_=str(req.from_),
        to=str(req.to.with_tag("8321234356")),
        call_id=req.call_id,
        cseq=5,
        contact="<sip:alice@198.51.100.7>",
    )
    assert dialog.check_request(reinvite) is None
    assert dialog.remote_seq == 5
    old = make_request(
        "INFO",
        "sip:bob@192.0.2.4",
        from_=str(req.from_),
        to=str(req.to.with_tag("8321234356")),
        call_id=req.call_id,
        cseq=4,
    )
    assert dialog.check_request(old) == 500
    ack = make_request(
        "ACK",
        "sip:bob@192.0.2.4",
        from_=str(req.from_),
        to=str(req.to),
        call_id=req.call_id,
        cseq=1,
    )
    assert dialog.check_request(ack) is None  # ACK is not counted
    dialog.refresh_target(reinvite)
    assert dialog.remote_target == parse_uri("sip:alice@198.51.100.7")


def test_uac_target_refresh_from_2xx_and_481_ends() -> None:
    req = invite()
    dialog = Dialog.from_uac(req, answer(req))
    reinvite = dialog.create_request("INVITE")
    ok = make_response(reinvite, 200, headers=[("Contact", "<sip:bob@203.0.113.9>")])
    dialog.receive_response(ok)
    assert dialog.remote_target == parse_uri("sip:bob@203.0.113.9")
    info = dialog.create_request("INFO")
    dialog.receive_response(make_response(info, 200, headers=[("Contact", "<sip:x@1.2.3.4>")]))
    assert dialog.remote_target == parse_uri("sip:bob@203.0.113.9")  # INFO refreshes nothing
    dialog.receive_response(make_response(dialog.create_request("INFO"), 481))
    assert dialog.terminated and "481" in dialog.termination_reason
    with pytest.raises(LocalSipError):
        dialog.create_request("INFO")
    assert dialog.create_request("BYE").method == "BYE"


def test_offer_answer_bookkeeping() -> None:
    state = OfferAnswerState()
    assert state.sent_sdp() == "offer"
    assert state.local_offer and not state.remote_offer
    assert state.received_sdp() == "answer"
    assert state.received_sdp() == "offer"
    assert state.remote_offer
    assert state.sent_sdp() == "answer"
    assert not state.local_offer and not state.remote_offer


def test_has_sdp() -> None:
    with_sdp = make_request(
        "INVITE",
        "sip:b@x",
        from_="<sip:a@x>",
        to="<sip:b@x>",
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    assert has_sdp(with_sdp)
    assert not has_sdp(invite())
