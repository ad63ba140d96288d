"""parse_message, Request/Response, typed views, dirty tracking and limits."""

from __future__ import annotations

import contextlib
import time

import pytest

from trunkline.sip import (
    CSeq,
    Headers,
    Limits,
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    Via,
    parse_message,
)

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
    b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=3600\r\n"
    b"Supported: replaces, timer\r\n"
    b"Allow: INVITE, ACK, BYE\r\n"
    b"Content-Type: application/sdp; charset=utf-8\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

RESPONSE = (
    b"SIP/2.0 180 Ringing\r\n"
    b"v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    b"t: <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"f: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"i: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"l: 0\r\n"
    b"\r\n"
)


def minimal(start: bytes = b"OPTIONS sip:a@example.com SIP/2.0", extra: bytes = b"") -> bytes:
    method = start.split(b" ")[0] if not start.startswith(b"SIP/") else b"OPTIONS"
    return (
        start + b"\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"To: <sip:a@example.com>\r\n"
        b"From: <sip:b@example.com>;tag=1\r\n"
        b"Call-ID: c1\r\n"
        b"CSeq: 1 " + method + b"\r\n" + extra + b"Content-Length: 0\r\n\r\n"
    )


def test_request_api_contract() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert msg.is_request and not msg.is_response
    assert msg.method == "INVITE"
    assert str(msg.uri) == "sip:bob@biloxi.example.com"
    assert isinstance(msg.uri, SipUri)
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert (msg.cseq.number, msg.cseq.method) == (314159, "INVITE")
    assert msg.via[0].branch == "z9hG4bK776asdhds"
    assert msg.from_tag == "1928301774"
    assert msg.to_tag is None
    assert msg.max_forwards == 70
    assert msg.body == SDP
    assert [r.uri_text for r in msg.route] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert msg.contact[0].expires == 3600
    assert msg.supported == ["replaces", "timer"]
    assert msg.allow == ["INVITE", "ACK", "BYE"]
    assert msg.content_type == "application/sdp"
    assert msg.content_length == len(SDP)
    assert msg.record_route == []
    assert msg.require == [] and msg.proxy_require == [] and msg.unsupported == []
    assert msg.expires is None and msg.min_expires is None
    assert msg.event is None and msg.rseq is None and msg.rack is None
    assert bytes(msg) == INVITE
    assert Request.parse(INVITE).method == "INVITE"
    with pytest.raises(SipParseError):
        Response.parse(INVITE)


def test_response_with_compact_headers() -> None:
    msg = parse_message(RESPONSE)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (180, "Ringing")
    assert msg.to_tag == "a6c85cf"
    assert msg.via[0].received == "192.0.2.1"
    assert msg.headers.get("Call-ID") == msg.call_id
    assert msg.body == b""
    assert bytes(msg) == RESPONSE
    assert repr(msg) == "<Response 180 Ringing>"
    with pytest.raises(SipParseError):
        Request.parse(RESPONSE)


def test_more_typed_views() -> None:
    extra = (
        b"Expires: 300\r\nMin-Expires: 60\r\nEvent: presence;id=7\r\n"
        b"Subscription-State: active;expires=60\r\nSession-Expires: 1800;refresher=uac\r\n"
        b"RSeq: 5\r\nRAck: 5 1 INVITE\r\nReplaces: abc@h;to-tag=1;from-tag=2\r\n"
        b"Refer-To: <sip:c@example.com?Replaces=x>\r\nReferred-By: <sip:r@example.com>\r\n"
        b"Reply-To: Bob <sip:bob@example.com>\r\n"
        b"P-Asserted-Identity: <sip:+15551234@example.com>, <tel:+15551234>\r\n"
        b"Record-Route: <sip:rr1;lr>\r\nRecord-Route: <sip:rr2;lr>\r\n"
    )
    msg = parse_message(minimal(extra=extra))
    assert (msg.expires, msg.min_expires) == (300, 60)
    event = msg.event
    assert event is not None and event.value == "presence" and event.param("id") == "7"
    state = msg.subscription_state
    assert state is not None and state.param("expires") == "60"
    session = msg.session_expires
    assert session is not None and session.param("refresher") == "uac"
    assert msg.rseq == 5
    rack = msg.rack
    assert rack is not None and (rack.rseq, rack.cseq, rack.method) == (5, 1, "INVITE")
    replaces = msg.replaces
    assert replaces is not None and replaces.to_tag == "1"
    refer_to = msg.refer_to
    assert refer_to is not None and refer_to.uri_text == "sip:c@example.com?Replaces=x"
    assert msg.referred_by is not None
    reply_to = msg.reply_to
    assert reply_to is not None and reply_to.display_name == "Bob"
    assert [p.uri_text for p in msg.p_asserted_identity] == [
        "sip:+15551234@example.com",
        "tel:+15551234",
    ]
    assert [r.uri_text for r in msg.record_route] == ["sip:rr1;lr", "sip:rr2;lr"]


def test_auth_views_use_the_auth_module() -> None:
    extra = (
        b'WWW-Authenticate: Digest realm="atlanta.example.com", nonce="84a4cc6f", '
        b'qop="auth", algorithm=MD5\r\n'
        b'Authorization: Digest username="alice", realm="atlanta.example.com", nonce="84a4cc6f", '
        b'uri="sip:a@example.com", response="7587245234b3434cc3412213e5f113a5"\r\n'
    )
    msg = parse_message(minimal(extra=extra))
    challenge = msg.www_authenticate[0]
    assert challenge.scheme.lower() == "digest"
    credentials = msg.authorization[0]
    assert credentials.scheme.lower() == "digest"
    assert msg.proxy_authenticate == [] and msg.proxy_authorization == []


def test_typed_edit_marks_only_that_line_dirty() -> None:
    msg = parse_message(INVITE.replace(b"Max-Forwards: 70", b"max-forwards :  70"))
    msg.max_forwards = 69
    top = msg.via[0].with_params(received="192.0.2.9")
    msg.via = [Via("UDP", "proxy.example.net", 5060, {"branch": "z9hG4bKp"}), top]
    out = bytes(msg)
    assert b"Max-Forwards: 69\r\n" in out
    assert b"Via: SIP/2.0/UDP proxy.example.net:5060;branch=z9hG4bKp\r\n" in out
    assert b";rport;received=192.0.2.9\r\n" in out
    # untouched lines are written back exactly, odd spellings included
    assert b'To: "Bob" <sip:bob@biloxi.example.com>\r\n' in out
    assert b"Content-Type: application/sdp; charset=utf-8\r\n" in out
    again = parse_message(out)
    assert again.max_forwards == 69
    assert [v.host for v in again.via] == ["proxy.example.net", "pc33.atlanta.example.com"]
    assert again.body == SDP


def test_headers_edit_invalidates_cached_view() -> None:
    msg = parse_message(INVITE)
    assert msg.call_id.startswith("a84b")
    msg.headers.set("Call-ID", "new-id")
    assert msg.call_id == "new-id"
    msg.to = msg.to.with_tag("t9")
    assert msg.to_tag == "t9"
    msg.cseq = CSeq(2, "INVITE")
    assert msg.cseq.number == 2
    assert msg.headers.pop_first("Via") is not None
    assert msg.via == []
    msg.contact = []
    assert msg.contact == []
    msg.route = msg.route[1:]
    assert len(msg.route) == 1
    msg.record_route = [NameAddr(None, "sip:rr;lr")]
    msg.from_ = NameAddr("Eve", "sip:eve@example.com", {"tag": "e"})
    assert msg.from_tag == "e"
    msg.max_forwards = None
    assert msg.max_forwards is None
    msg.headers.add("Via", "SIP/2.0/TCP h2;branch=z9hG4bK2")
    again = parse_message(bytes(msg.copy()))
    assert (again.call_id, again.to_tag, again.cseq.number) == ("new-id", "t9", 2)
    assert again.via[0].transport == "TCP"


def test_start_line_and_body_edits() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    msg.uri = "sip:carol@chicago.example.com"
    msg.body = b"hello"
    out = bytes(msg)
    assert out.startswith(b"INVITE sip:carol@chicago.example.com SIP/2.0\r\n")
    assert out.endswith(b"Content-Length: 5\r\n\r\nhello")
    response = parse_message(RESPONSE)
    assert isinstance(response, Response)
    response.status = 183
    response.reason = "Session Progress"
    assert bytes(response).startswith(b"SIP/2.0 183 Session Progress\r\n")
    clone = response.copy()
    clone.headers.add("X-Clone", "1")
    assert b"X-Clone" not in bytes(response)
    request_clone = msg.copy()
    request_clone.method = "BYE"
    assert bytes(msg).startswith(b"INVITE ")


def test_locally_built_messages_render() -> None:
    request = Request(
        "OPTIONS",
        "sip:a@example.com",
        [("Via", "SIP/2.0/UDP h;branch=z9hG4bKx"), ("To", "<sip:a@example.com>")],
    )
    out = bytes(request)
    assert out.endswith(b"Content-Length: 0\r\n\r\n")
    assert repr(request) == "<Request OPTIONS sip:a@example.com>"
    response = Response(404, headers=Headers([("Content-Length", "0")]))
    assert bytes(response) == b"SIP/2.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    assert Response(299).reason == "OK"


def test_folding_and_utf8_round_trip() -> None:
    data = minimal(
        extra="Subject: first\r\n  second\r\n\tthird\r\nX-Name: Zoë ✓\r\n".encode(),
    )
    msg = parse_message(data)
    assert msg.headers.get("Subject") == "first second third"
    assert msg.headers.get("X-Name") == "Zoë ✓"
    assert bytes(msg) == data
    msg.headers.add("X-New", "1")
    out = bytes(msg)
    assert b"Subject: first\r\n  second\r\n\tthird\r\n" in out
    assert parse_message(out).headers.get("X-Name") == "Zoë ✓"


def test_invalid_utf8_survives_byte_for_byte() -> None:
    data = minimal(extra=b"X-Bin: \xff\xfe\x80\r\n")
    msg = parse_message(data)
    msg.headers.add("X-After", "1")
    assert b"X-Bin: \xff\xfe\x80\r\n" in bytes(msg)


def test_leading_crlf_ignored_and_trailing_octets_discarded() -> None:
    data = minimal()
    assert bytes(parse_message(b"\r\n\r\n" + data)) == data
    assert bytes(parse_message(data + b"garbage")) == data


def test_no_content_length_means_rest_of_datagram() -> None:
    data = minimal().replace(b"Content-Length: 0\r\n", b"") + b"body"
    msg = parse_message(data)
    assert msg.body == b"body"
    assert msg.content_length is None


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (minimal().replace(b"Call-ID: c1\r\n", b""), 400, "Missing Call-ID header"),
        (minimal().replace(b"CSeq: 1 OPTIONS\r\n", b""), 400, "Missing CSeq header"),
        (minimal().replace(b"To: <sip:a@example.com>\r\n", b""), 400, "Missing To header"),
        (
            minimal().replace(b"From: <sip:b@example.com>;tag=1\r\n", b""),
            400,
            "Missing From header",
        ),
        (
            minimal().replace(b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n", b""),
            400,
            "Missing Via header",
        ),
        (minimal(extra=b"i: c2\r\n"), 400, "Multiple Call-ID headers"),
        (minimal(extra=b"Max-Forwards: 256\r\n"), 400, "Max-Forwards out of range"),
        (minimal(extra=b"Max-Forwards: x\r\n"), 400, "Invalid Max-Forwards"),
        (
            minimal().replace(b"Content-Length: 0", b"Content-Length: 5"),
            400,
            "Content-Length larger than the message body",
        ),
        (
            minimal().replace(b"Content-Length: 0", b"Content-Length: -1"),
            400,
            "Invalid Content-Length",
        ),
        (minimal(b"OPTIONS sip:a@example.com SIP/3.0"), 505, "SIP Version Not Supported"),
        (minimal(b"OPTIONS sip:a@example.com HTTP/1.1"), 400, "Malformed SIP version"),
        (minimal(b"OPTIONS mailto:a@example.com SIP/2.0"), 416, "Unsupported URI scheme: mailto"),
        (minimal(b"OPTIONS sip:[::1 SIP/2.0"), 400, "Unterminated IPv6 reference in Request-URI"),
        (minimal(b"OPTIONS sip:a@example.com:70000 SIP/2.0"), 400, "Invalid port in Request-URI"),
        (minimal(b"OPTIONS sip:a@example.com extra SIP/2.0"), 400, "Malformed Request-Line"),
        (minimal(b"OPT<IONS sip:a@example.com SIP/2.0"), 400, "Malformed method in Request-Line"),
        (minimal(b"SIP/2.0 1000 Huge"), 400, "Invalid status code"),
        (minimal(b"SIP/2.0 099 Low"), 400, "Invalid status code"),
        (minimal(extra=b"Bad Header: x\r\n"), 400, "Malformed header line"),
        (minimal(extra=b"NoColon\r\n"), 400, "Malformed header line"),
        (minimal(extra=b"X-A: a\rb\r\n"), 400, "Bare CR or LF in header section"),
        (minimal(extra=b"X-A: a\nb\r\n"), 400, "Bare CR or LF in header section"),
        (
            b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: x\r\n",
            400,
            "Missing empty line after the header section",
        ),
        (b"", 400, "Missing empty line after the header section"),
    ],
)
def test_errors_carry_status_and_precise_reason(data: bytes, status: int, reason: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert (info.value.status, info.value.reason) == (status, reason)


def test_cseq_method_must_match() -> None:
    with pytest.raises(SipParseError, match="CSeq method"):
        parse_message(minimal(b"BYE sip:a@example.com SIP/2.0").replace(b"1 BYE", b"1 INVITE"))


def test_limits_give_513() -> None:
    data = minimal(extra=b"".join(b"X-%d: v\r\n" % i for i in range(20)))
    with pytest.raises(SipParseError) as info:
        parse_message(data, limits=Limits(max_headers=10))
    assert info.value.status == 513
    with pytest.raises(SipParseError) as info:
        parse_message(data, limits=Limits(max_message=100))
    assert info.value.status == 513
    with pytest.raises(SipParseError) as info:
        parse_message(
            minimal(extra=b"X-Long: " + b"a" * 200 + b"\r\n"), limits=Limits(max_line=100)
        )
    assert info.value.status == 513
    assert parse_message(data).call_id == "c1"


def test_only_the_body_too_large_gives_413() -> None:
    """§21.4.11: 413 when the header section fits and the body does not; else 513."""
    head = minimal(b"MESSAGE sip:a@example.com SIP/2.0")
    body = b"x" * 300
    data = head.replace(b"Content-Length: 0", b"Content-Length: 300") + body
    limit = Limits(max_message=len(head) + 100)
    with pytest.raises(SipParseError) as info:
        parse_message(data, limits=limit)
    assert info.value.status == 413
    with pytest.raises(SipParseError) as info:
        parse_message(data, limits=Limits(max_message=len(head) - 10))
    assert info.value.status == 513
    assert parse_message(data).body == body


def test_non_ascii_digits_are_not_numbers() -> None:
    extra = "Expires: ²\r\nContact: <sip:a@b>;expires=²;q=٣\r\n".encode()
    msg = parse_message(minimal(extra=extra))
    assert msg.expires is None
    assert (msg.contact[0].expires, msg.contact[0].q) == (None, None)
    via = Via.parse("SIP/2.0/UDP h;rport=²;ttl=²")
    assert (via.rport, via.ttl) == (None, None)
    with pytest.raises(SipParseError):
        parse_message(minimal(extra="Max-Forwards: ²\r\n".encode()))


def test_bytearray_and_memoryview_accepted() -> None:
    assert parse_message(bytearray(INVITE)).call_id == parse_message(memoryview(INVITE)).call_id


VIEWS = ("via", "contact", "route", "record_route", "p_asserted_identity", "allow", "to", "from_")


@pytest.mark.parametrize(
    "hostile",
    [
        b"X: " + b" " * 60000 + b"x\r\n",
        b"Subject: " + b'"' + b"\\\\" * 30000 + b"\r\n",
        b"Contact: " + b"<sip:a@b>;" * 6000 + b"\r\n",
        b"Route: " + b"<sip:a@b>," * 6000 + b"\r\n",
        b"Record-Route: " + b'"a\\' * 15000 + b"\r\n",
        b"Route: " + b"<<<<" * 15000 + b"\r\n",
        b"P-Asserted-Identity: " + b"a b " * 15000 + b"<sip:a@b>\r\n",
        b"Allow: " + b"INVITE, " * 7000 + b"\r\n",
        b"Via: " + b"SIP/2.0/UDP a," * 4000 + b"\r\n",
        b"Via: SIP/2.0/UDP a" + b";x" * 20000 + b"\r\n",
        b"X: a\r\n" + b" b\r\n" * 8000,
    ],
)
def test_hostile_inputs_fail_fast(hostile: bytes) -> None:
    """Quadratic or exponential behaviour on 60 kB of header would take seconds."""
    data = minimal(extra=hostile)
    started = time.perf_counter()
    try:
        msg = parse_message(data, limits=Limits(max_line=65535, max_headers=10000))
    except SipParseError:
        pass
    else:
        for view in VIEWS:
            with contextlib.suppress(SipParseError):
                getattr(msg, view)
        assert bytes(msg) == data
    assert time.perf_counter() - started < 0.5


# ------------------------------------------------------- the proxy's edits


def test_proxy_edits_keep_views_current_without_reparsing() -> None:
    """Via/Record-Route/Route edits update the cached views in place (RFC 3261 §16.6-16.7)."""
    msg = parse_message(
        minimal(b"BYE sip:a@example.com SIP/2.0", extra=b"Route: <sip:p1;lr>, <sip:p2;lr>\r\n")
    )
    before = msg.via
    msg.headers.prepend("Via", "SIP/2.0/TCP proxy.example.net:5070;branch=z9hG4bKp")
    assert [v.host for v in msg.via] == ["proxy.example.net", before[0].host]
    assert msg.via[1] is before[0]  # the old value was kept, not parsed again
    assert msg.headers.pop_first("Route") == "<sip:p1;lr>"
    assert [r.uri_text for r in msg.route] == ["sip:p2;lr"]
    msg.headers.add("Route", "<sip:p3;lr>")
    assert [r.uri_text for r in msg.route] == ["sip:p2;lr", "sip:p3;lr"]
    msg.headers.prepend("Record-Route", "<sip:rr;lr>")
    assert [r.uri_text for r in msg.record_route] == ["sip:rr;lr"]
    again = parse_message(bytes(msg))
    assert [str(v) for v in again.via] == [str(v) for v in msg.via]
    assert again.headers.get_all("Route") == ["<sip:p2;lr>", "<sip:p3;lr>"]
    # A malformed value is reported when the view is next read, not by the edit.
    msg.headers.prepend("Via", "not a via")
    with pytest.raises(SipParseError):
        msg.via  # noqa: B018


def test_bytes_are_cached_until_the_next_edit() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert bytes(msg) is msg._raw
    msg.headers.set("Max-Forwards", "69")
    first = bytes(msg)
    assert b"Max-Forwards: 69\r\n" in first and bytes(msg) is first
    msg.headers.pop_first("Via")
    assert bytes(msg) != first and bytes(msg).count(b"Via:") == first.count(b"Via:") - 1
    msg.uri = "sip:other@example.com"
    assert bytes(msg).startswith(b"INVITE sip:other@example.com SIP/2.0\r\n")
    # Swapping in another Headers object never serves the old bytes.
    msg.headers = msg.headers.copy()
    msg.headers.add("X-New", "1")
    assert b"X-New: 1\r\n" in bytes(msg)


def test_forward_copy_shares_parsed_views_and_stays_independent() -> None:
    original = parse_message(INVITE)
    assert isinstance(original, Request)
    via = original.via
    wire = bytes(original)
    copy = original.copy()
    assert copy.via[0] is via[0] and copy.from_ is original.from_
    copy.uri = "sip:bob@192.0.2.9:5062"
    copy.max_forwards = 69
    copy.headers.prepend("Record-Route", "<sip:proxy.example.net;lr>")
    copy.headers.prepend("Via", "SIP/2.0/UDP proxy.example.net;branch=z9hG4bKc;rport")
    assert bytes(original) == wire and original.via == via
    assert "Record-Route" not in original.headers
    out = parse_message(bytes(copy))
    assert isinstance(out, Request)
    assert out.uri_text == "sip:bob@192.0.2.9:5062" and out.max_forwards == 69
    assert len(out.via) == len(via) + 1 and out.via[1:] == via
    assert out.body == original.body


def test_equal_header_text_is_parsed_once() -> None:
    """One call's messages repeat From/To/Via: the parsed values are shared (interned)."""
    a = parse_message(INVITE)
    b = parse_message(INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 69"))
    assert a.from_ is b.from_ and a.to is b.to and a.via[0] is b.via[0]
    assert isinstance(a, Request) and isinstance(b, Request)
    assert a.uri is b.uri
    assert a.copy().uri is a.uri


def test_wire_size_counts_the_octets_bytes_would_give_without_rendering() -> None:
    msg = parse_message(INVITE)
    assert msg.wire_size() == len(INVITE)
    msg.headers.prepend("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy1")
    size = msg.wire_size()
    assert msg._raw is not None and msg._raw_version != msg.headers._version  # not rendered
    assert size == len(bytes(msg))
    # Non-ASCII text (UTF-8 display name, escaped octets) is counted in octets, not characters.
    msg.headers.add("Subject", "caf\u00e9 \udcff")
    assert msg.wire_size() == len(bytes(msg))
    msg.headers.remove("Content-Length")  # rendered with a Content-Length line added
    msg.headers.remove("Subject")
    assert msg.wire_size() == len(bytes(msg))
    for bare in (Request("OPTIONS", "sip:bob@example.com"), Response(200)):
        assert bare.wire_size() == len(bytes(bare))
