"""Typed header values, the Headers multi-list and the grammar helpers."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from trunkline.sip import SipParseError
from trunkline.sip.grammar import parse_params, parse_uint, quote, split_commas, unquote
from trunkline.sip.headerfields import COMPACT_FORMS, Headers, canonical_key
from trunkline.sip.headers import (
    Contact,
    CSeq,
    NameAddr,
    RAck,
    Replaces,
    TokenParams,
    Via,
    parse_contacts,
    parse_name_addrs,
    parse_tokens,
    parse_vias,
)
from trunkline.sip.uri import SipUri

# ----------------------------------------------------------------- grammar


def test_split_commas_respects_quotes_and_angle_brackets() -> None:
    assert split_commas("a, b ,c") == ["a", "b", "c"]
    assert split_commas('"Doe, John" <sip:j@x>, <sip:k@y;a=b,c>') == [
        '"Doe, John" <sip:j@x>',
        "<sip:k@y;a=b,c>",
    ]
    assert split_commas("<sip:a@x;p=1,2>, <sip:b@y>") == ["<sip:a@x;p=1,2>", "<sip:b@y>"]
    assert split_commas("single") == ["single"]
    with pytest.raises(SipParseError):
        split_commas("<sip:a@x, b")
    with pytest.raises(SipParseError):
        split_commas('"open, <sip:a@x>')


def test_params_with_lws_quotes_and_flags() -> None:
    assert parse_params(";a=1;B;c=x") == {"a": "1", "b": None, "c": "x"}
    assert parse_params(' ; tag = 12 ; q=0.5 ; x="a;b=c"') == {
        "tag": "12",
        "q": "0.5",
        "x": '"a;b=c"',
    }
    assert parse_params("") == {}
    for bad in (";;", ";a=", ";=b", "x;a", ';a="unterminated'):
        with pytest.raises(SipParseError):
            parse_params(bad)


def test_quote_unquote_round_trip() -> None:
    for text in ("plain", 'with "quotes"', "back\\slash", "Zoë ✓"):
        assert unquote(quote(text)) == text
    assert unquote('"a\\"b"') == 'a"b'
    assert unquote("token") == "token"


def test_parse_uint_bounds_and_leading_zeros() -> None:
    assert parse_uint("0068", "Max-Forwards", 255) == 68
    assert parse_uint("4294967295", "CSeq") == 2**32 - 1
    assert parse_uint("0000000000000000001", "CSeq") == 1
    for bad in ("4294967296", "-1", "", "1.0", "٣", "9" * 5000):
        with pytest.raises(SipParseError):
            parse_uint(bad, "CSeq")
    with pytest.raises(SipParseError, match="out of range"):
        parse_uint("256", "Max-Forwards", 255)


# --------------------------------------------------------------------- Via


def test_via_fast_and_slow_paths_agree() -> None:
    fast = Via.parse("SIP/2.0/UDP host.example.com:5060;branch=z9hG4bK1;rport;received=1.2.3.4")
    slow = Via.parse(
        "SIP / 2.0 / udp  host.example.com : 5060 ; branch = z9hG4bK1 ;rport;received=1.2.3.4"
    )
    assert fast == slow
    assert (fast.transport, fast.host, fast.port) == ("UDP", "host.example.com", 5060)
    assert fast.branch == "z9hG4bK1" == slow.branch
    assert fast.rport_requested and fast.rport is None
    assert fast.received == "1.2.3.4"
    assert fast.sent_by == "host.example.com:5060"


def test_via_properties() -> None:
    via = Via.parse("SIP/2.0/TCP [2001:db8::1];BRANCH=z9hG4bKx;rport=5062;maddr=224.0.0.1;ttl=16")
    assert via.host == "[2001:db8::1]"
    assert via.port is None
    assert via.branch == "z9hG4bKx"
    assert via.rport == 5062
    assert via.maddr == "224.0.0.1"
    assert via.ttl == 16
    assert via.params["branch"] == "z9hG4bKx"
    assert Via.parse("SIP/2.0/UDP h;ttl=300").ttl is None


def test_via_with_params_renders() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport")
    changed = via.with_params(received="192.0.2.1", rport="4000")
    assert str(changed) == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport=4000;received=192.0.2.1"
    assert str(via) == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;rport"
    assert str(changed.without_params("rport")) == (
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;received=192.0.2.1"
    )
    assert Via.parse(str(changed)) == changed


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ;branch=x",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host:port",
        "SIP/2.0/UDP [2001:db8::1",
        "SIP/2.0/UDP 2001:db8::1",
        "SIP/2.0/UDP host;;",
        "SIP/2.0 UDP host",
        "SIP/2.0/U(D)P host",
    ],
)
def test_via_rejects_malformed(text: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(text)


def test_parse_vias_splits_lines_and_rejects_empty_items() -> None:
    vias = parse_vias(["SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b:5070", "SIP/2.0/TLS c"])
    assert [v.host for v in vias] == ["a", "b", "c"]
    with pytest.raises(SipParseError):
        parse_vias(["SIP/2.0/UDP a;branch=x,,"])


# --------------------------------------------------------------- name-addr


def test_name_addr_forms() -> None:
    quoted = NameAddr.parse('"Alice \\"A\\"" <sip:alice@example.com>;tag=abc;x')
    assert quoted.display_name == 'Alice "A"'
    assert quoted.uri_text == "sip:alice@example.com"
    assert quoted.tag == "abc"
    assert quoted.params == {"tag": "abc", "x": None}
    plain = NameAddr.parse("Bob Smith <sip:bob@example.com>")
    assert plain.display_name == "Bob Smith"
    assert plain.tag is None
    spec = NameAddr.parse("sip:carol@example.com;tag=99")
    assert (spec.display_name, spec.uri_text, spec.tag) == (None, "sip:carol@example.com", "99")
    tight = NameAddr.parse("caller<sip:caller@example.com>")
    assert tight.display_name == "caller"
    utf8 = NameAddr.parse('"Zoë Ålvarez" <sip:z@example.com>')
    assert utf8.display_name == "Zoë Ålvarez"


def test_name_addr_uri_parsed_lazily() -> None:
    addr = NameAddr.parse("<sip:alice@example.com:5070;transport=tcp>;tag=1")
    uri = addr.uri
    assert isinstance(uri, SipUri)
    assert (uri.user, uri.host, uri.port, uri.transport) == ("alice", "example.com", 5070, "tcp")
    assert "tag" not in uri.params


def test_name_addr_tag_case_insensitive_and_exact() -> None:
    assert NameAddr.parse("<sip:a@b>;TAG=Xy").tag == "Xy"
    assert NameAddr.parse("<sip:a@b>;xtag=1").tag is None
    assert NameAddr.parse('<sip:a@b>;x="y;tag=2";tag=3').tag == "3"


def test_name_addr_render_and_with_tag() -> None:
    addr = NameAddr.parse("Bob <sip:bob@example.com>")
    tagged = addr.with_tag("t1")
    assert str(tagged) == "Bob <sip:bob@example.com>;tag=t1"
    assert str(addr) == "Bob <sip:bob@example.com>"
    assert str(NameAddr('Doe, "J"', "sip:j@x")) == '"Doe, \\"J\\"" <sip:j@x>'
    assert NameAddr.parse(str(tagged)) == tagged
    assert str(tagged.without_params("tag")) == str(addr)


@pytest.mark.parametrize(
    "text",
    [
        '"unterminated <sip:a@b>',
        "Bell, Alexander <sip:a@b>",
        "< sip:a@b >",
        "<sip:a@b",
        "sip:a@b?x=y",
        "no-scheme@example.com",
        '"A" sip:a@b',
        "<sip:a@b>;;",
        "",
    ],
)
def test_name_addr_rejects_malformed(text: str) -> None:
    with pytest.raises(SipParseError):
        NameAddr.parse(text)


def test_contacts_star_expires_q() -> None:
    contacts = parse_contacts(['<sip:a@x>;expires=60;q=0.7, "B" <sip:b@y>', "sip:c@z;expires=0"])
    assert [c.expires for c in contacts] == [60, None, 0]
    assert [c.q for c in contacts] == [0.7, None, None]
    assert not any(c.star for c in contacts)
    star = parse_contacts(["*"])
    assert star[0].star and str(star[0]) == "*"
    assert Contact.wildcard().star
    with pytest.raises(SipParseError):
        parse_contacts(["*, <sip:a@x>"])
    with pytest.raises(SipParseError):
        parse_contacts(["*, <sip:a@x>"])  # interned lines are checked again
    assert parse_contacts(["<sip:a@x>;q=0.7"])[0] is parse_contacts(["<sip:a@x>;q=0.7"])[0]
    assert Contact.parse("<sip:a@x>;expires=99999999999").expires is None
    assert Contact.parse("<sip:a@x>;q=2").q is None
    assert (
        str(Contact.parse("<sip:a@x>;expires=5").with_params(expires="10"))
        == "<sip:a@x>;expires=10"
    )


def test_shared_header_values_are_immutable() -> None:
    via = parse_vias(["SIP/2.0/UDP h:5060;branch=z9hG4bK1;rport"])[0]
    name_addr = NameAddr.parse('"A" <sip:a@x>;tag=1')
    contact = Contact.parse("<sip:a@x>;expires=5")
    for value, attr in (
        (via, "host"),
        (via, "port"),
        (name_addr, "display_name"),
        (contact, "star"),
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, attr, None)
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(value, attr)
    for value in (via, name_addr, contact):
        with pytest.raises(TypeError):
            value.params["x"] = "1"  # type: ignore[index]
        assert copy.copy(value) is value
        assert copy.deepcopy(value) is value
        back = pickle.loads(pickle.dumps(value))
        assert back == value
        assert str(back) == str(value)
    assert parse_vias(["SIP/2.0/UDP h:5060;branch=z9hG4bK1;rport"])[0] is via  # interned
    changed = via.with_params(rport="5060", received="10.0.0.1")
    assert via.rport is None and changed.rport == 5060
    assert str(via) == "SIP/2.0/UDP h:5060;branch=z9hG4bK1;rport"


def test_header_values_copy_the_params_they_are_given() -> None:
    params: dict[str, str | None] = {"tag": "1"}
    name_addr = NameAddr(None, "sip:a@x", params)
    via = Via("UDP", "h", 5060, params)
    params["tag"] = "2"
    assert name_addr.tag == "1"
    assert via.params == {"tag": "1"}


def test_route_lists() -> None:
    routes = parse_name_addrs(["<sip:p1.example.com;lr>, <sip:p2.example.com;lr>", "<sip:p3>"])
    assert [r.uri_text for r in routes] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
        "sip:p3",
    ]


# ------------------------------------------------------------ small values


def test_cseq_rack_tokens() -> None:
    assert CSeq.parse("0009 INVITE") == CSeq(9, "INVITE")
    assert str(CSeq(1, "BYE")) == "1 BYE"
    for bad in ("INVITE", "1", "1 2 3", "x INVITE", "4294967296 INVITE", "1 INV<ITE"):
        with pytest.raises(SipParseError):
            CSeq.parse(bad)
    assert RAck.parse("776656 1 INVITE") == RAck(776656, 1, "INVITE")
    assert str(RAck(1, 2, "INVITE")) == "1 2 INVITE"
    with pytest.raises(SipParseError):
        RAck.parse("1 INVITE")
    assert parse_tokens(["INVITE, ACK,BYE", "", "OPTIONS"]) == ["INVITE", "ACK", "BYE", "OPTIONS"]
    with pytest.raises(SipParseError):
        parse_tokens(["a b"])


def test_token_params_and_replaces() -> None:
    event = TokenParams.parse("presence;id=abc")
    assert (event.value, event.param("id")) == ("presence", "abc")
    state = TokenParams.parse('terminated;reason=timeout;x="q"')
    assert state.param("x") == "q"
    assert str(state) == 'terminated;reason=timeout;x="q"'
    replaces = Replaces.parse("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only")
    assert replaces.call_id == "98732@sip.example.com"
    assert (replaces.from_tag, replaces.to_tag, replaces.early_only) == (
        "r33th4x0r",
        "ff87ff",
        True,
    )
    with pytest.raises(SipParseError):
        Replaces.parse("abc;to-tag=1")
    for value in (event, replaces):
        with pytest.raises(TypeError):
            value.params["x"] = "1"  # type: ignore[index]
    given: dict[str, str | None] = {"id": "1"}
    built = TokenParams("dialog", given)
    given["id"] = "2"
    assert str(built) == "dialog;id=1"


# ------------------------------------------------------------------ Headers


def test_compact_forms_equal_long_forms() -> None:
    headers = Headers([(short, "x") for short in COMPACT_FORMS])
    for short, long in COMPACT_FORMS.items():
        assert canonical_key(short) == canonical_key(long) == long.lower()
        assert long in headers
        assert long.upper() in headers
    assert canonical_key(" Call-ID ") == "call-id"
    assert canonical_key("X-Custom") == "x-custom"


def test_headers_multi_list_operations() -> None:
    headers = Headers(
        [("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b"), ("X-A", "1"), ("v", "SIP/2.0/UDP c")]
    )
    assert headers.get("Via") == "SIP/2.0/UDP a"
    assert headers.get_all("v") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    assert headers.lines("via") == ["SIP/2.0/UDP a, SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    assert headers.pop_first("Via") == "SIP/2.0/UDP a"
    assert headers.get_all("Via") == ["SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    headers.prepend("Via", "SIP/2.0/UDP top")
    assert next(iter(headers)) == ("Via", "SIP/2.0/UDP top")
    headers.add("X-A", "2")
    assert headers.get_all("x-a") == ["1", "2"]
    headers.set("X-A", "3")
    assert headers.get_all("X-A") == ["3"]
    assert headers.remove("x-a") == 1
    assert "X-A" not in headers
    assert headers.remove("X-Missing") == 0
    assert headers.pop_first("X-Missing") is None
    headers.prepend("Record-Route", "<sip:p>")
    assert headers.keys()[0] == "record-route"
    assert headers.get("Nope", "default") == "default"


def test_headers_never_split_auth_or_date() -> None:
    headers = Headers(
        [
            ("WWW-Authenticate", 'Digest realm="a", nonce="b", qop="auth,auth-int"'),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("Allow", "INVITE, BYE"),
        ]
    )
    assert len(headers.get_all("www-authenticate")) == 1
    assert headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert headers.get_all("Allow") == ["INVITE", "BYE"]


def test_headers_edits_mark_dirty_and_render() -> None:
    headers = Headers([("To", "<sip:a@b>")])
    headers.dirty = False
    copy = headers.copy()
    headers.add("From", "<sip:c@d>;tag=1")
    assert headers.dirty
    assert headers.render() == "To: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\n"
    assert "From" not in copy
    assert copy != headers
    assert Headers([("t", "x")]) == Headers([("To", "x")])


def test_headers_copies_share_nothing_that_edits_change() -> None:
    headers = Headers(
        [("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("Route", "<sip:r1;lr>, <sip:r2;lr>")]
    )
    copy = headers.copy()
    copy.prepend("Via", "SIP/2.0/UDP b;branch=z9hG4bK2")
    assert copy.pop_first("Route") == "<sip:r1;lr>"
    copy.set("Max-Forwards", "69")
    assert headers.get_all("Via") == ["SIP/2.0/UDP a;branch=z9hG4bK1"]
    assert headers.get_all("Route") == ["<sip:r1;lr>", "<sip:r2;lr>"]
    assert "Max-Forwards" not in headers
    assert copy.render() == (
        "Via: SIP/2.0/UDP b;branch=z9hG4bK2\r\n"
        "Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"
        "Route: <sip:r2;lr>\r\n"
        "Max-Forwards: 69\r\n"
    )
    assert copy.keys() == ["via", "via", "route", "max-forwards"]
    copy.set_all("Via", [])
    assert "Via" not in copy and copy.keys() == ["route", "max-forwards"]


def test_via_canonical_equals_its_parse() -> None:
    for via in (
        Via.canonical("UDP", "192.0.2.1", 5060, ";branch=z9hG4bK-1;rport"),
        Via.canonical("TCP", "[2001:db8::1]", 5070, ";branch=z9hG4bK-2"),
    ):
        parsed = Via.parse(str(via))
        assert via == parsed and str(via) == str(parsed)
        assert (via.branch, via.rport_requested, via.sent_by) == (
            parsed.branch,
            parsed.rport_requested,
            parsed.sent_by,
        )


def test_prepend_with_parsed_item_updates_the_cached_view() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK-a")])
    headers._cache["via"] = parse_vias(headers.lines("Via"))
    ours = Via.canonical("UDP", "192.0.2.1", 5060, ";branch=z9hG4bK-b;rport")
    headers.prepend("Via", str(ours), parsed=ours)
    assert headers._cache["via"][0] is ours
    assert headers.get_all("Via") == [str(ours), "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK-a"]
    assert [str(v) for v in headers._cache["via"]] == headers.get_all("Via")


def test_name_addr_tag_found_once_and_for_copies() -> None:
    plain = NameAddr.parse("<sip:alice@example.com>")
    assert plain.tag is None and plain.tag is None
    tagged = plain.with_tag("abc")
    assert tagged.tag == "abc" and plain.tag is None
    assert NameAddr(None, "sip:bob@example.com", {"tag": "x"}).tag == "x"
    assert pickle.loads(pickle.dumps(tagged)).tag == "abc"
