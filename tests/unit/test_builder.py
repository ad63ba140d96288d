"""Request and response builders (RFC 3261 §8.1.1, §8.2.6)."""

from __future__ import annotations

import re

import pytest

from trunkline.sip import LocalSipError, NameAddr, Request, Response, Via, parse_message
from trunkline.sip.builder import make_request, make_response, new_branch, new_call_id, new_tag
from trunkline.sip.uri import parse_uri


def test_identifiers_are_fresh_and_well_formed() -> None:
    branches = {new_branch() for _ in range(200)}
    assert len(branches) == 200
    assert all(re.fullmatch(r"z9hG4bK[0-9a-f]{32}", b) for b in branches)
    tags = {new_tag() for _ in range(200)}
    assert len(tags) == 200 and all(len(t) >= 8 for t in tags)
    assert re.fullmatch(r"[0-9a-f]{32}@host\.example", new_call_id("host.example"))
    assert "@" not in new_call_id()


def test_make_request_has_the_mandatory_headers() -> None:
    request = make_request(
        "INVITE",
        parse_uri("sip:bob@biloxi.example.com"),
        from_='"Alice" <sip:alice@atlanta.example.com>',
        to=NameAddr(None, "sip:bob@biloxi.example.com"),
        via=Via("UDP", "pc33.atlanta.example.com", 5060, {"rport": None}),
        contact="<sip:alice@192.0.2.1:5060>",
        body=b"v=0\r\n",
        content_type="application/sdp",
        extra_headers=[("Supported", "timer")],
        cseq=7,
    )
    parsed = parse_message(bytes(request))
    assert isinstance(parsed, Request)
    assert parsed.method == "INVITE"
    assert str(parsed.uri) == "sip:bob@biloxi.example.com"
    assert parsed.via[0].branch is not None and parsed.via[0].branch.startswith("z9hG4bK")
    assert parsed.via[0].rport_requested
    assert parsed.from_tag is not None and parsed.to_tag is None
    assert parsed.from_.display_name == "Alice"
    assert (parsed.cseq.number, parsed.cseq.method) == (7, "INVITE")
    assert parsed.max_forwards == 70
    assert parsed.contact[0].uri_text == "sip:alice@192.0.2.1:5060"
    assert parsed.supported == ["timer"]
    assert parsed.content_type == "application/sdp"
    assert parsed.body == b"v=0\r\n" and parsed.content_length == 5
    assert len(parsed.call_id) == 32


def test_make_request_keeps_given_branch_tag_and_call_id() -> None:
    request = make_request(
        "BYE",
        "sip:bob@192.0.2.4",
        from_="<sip:alice@atlanta.example.com>;tag=abc",
        to="<sip:bob@biloxi.example.com>;tag=def",
        call_id="call-1",
        via="SIP/2.0/TCP h;branch=z9hG4bKfixed",
    )
    assert request.via[0].branch == "z9hG4bKfixed"
    assert (request.from_tag, request.to_tag, request.call_id) == ("abc", "def", "call-1")
    two = [make_request("OPTIONS", "sip:x@y", from_="<sip:a@b>", to="<sip:x@y>") for _ in range(2)]
    assert two[0].call_id != two[1].call_id
    assert two[0].from_tag != two[1].from_tag
    assert two[0].via == []  # the transport layer adds the Via
    with pytest.raises(LocalSipError):
        make_request("MESSAGE", "sip:x@y", from_="<sip:a@b>", to="<sip:x@y>", body=b"hi")


INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1, SIP/2.0/UDP pc33.example.com"
    b";branch=z9hG4bKa;received=192.0.2.1\r\n"
    b"Via: SIP/2.0/UDP edge.example.com;branch=z9hG4bKe\r\n"
    b"Max-Forwards: 69\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"From: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Record-Route: <sip:p1.example.com;lr>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_make_response_copies_per_8_2_6() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    ringing = make_response(request, 180, to_tag="bobtag")
    parsed = parse_message(bytes(ringing))
    assert isinstance(parsed, Response)
    assert (parsed.status, parsed.reason) == (180, "Ringing")
    assert [v.branch for v in parsed.via] == ["z9hG4bKp1", "z9hG4bKa", "z9hG4bKe"]
    assert parsed.via[1].received == "192.0.2.1"
    assert parsed.from_tag == "1928301774"
    assert parsed.to_tag == "bobtag"
    assert parsed.to.display_name == "Bob"
    assert parsed.call_id == "a84b4c76e66710"
    assert (parsed.cseq.number, parsed.cseq.method) == (314159, "INVITE")
    assert parsed.content_length == 0
    assert "Record-Route" not in parsed.headers  # the dialog layer decides (§12.1.1)
    assert "Max-Forwards" not in parsed.headers


def test_make_response_tag_rules() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    trying = make_response(request, 100)
    assert trying.to_tag is None and trying.reason == "Trying"
    generated = make_response(request, 486)
    assert generated.to_tag is not None and generated.reason == "Busy Here"
    in_dialog = parse_message(
        INVITE.replace(b'"Bob" <sip:bob@biloxi.example.com>', b"<sip:b@x>;tag=k")
    )
    assert isinstance(in_dialog, Request)
    assert make_response(in_dialog, 200, to_tag="other").to_tag == "k"


def test_make_response_body_reason_and_errors() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    ok = make_response(
        request,
        200,
        "Fine",
        headers=[("Contact", "<sip:bob@192.0.2.4>")],
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    parsed = parse_message(bytes(ok))
    assert isinstance(parsed, Response)
    assert parsed.reason == "Fine"
    assert parsed.body == b"v=0\r\n"
    assert parsed.contact[0].uri_text == "sip:bob@192.0.2.4"
    with pytest.raises(LocalSipError):
        make_response(request, 700)
    with pytest.raises(LocalSipError):
        make_response(request, 200, body=b"x")
