"""RFC 4475 torture tests, datagram semantics (``parse_message`` gets one whole datagram).

Each message in ``tests/data/rfc4475`` is handled the way its INDEX row says.
``OUTCOME`` is our decision per message ("accept" or the status we reject
with); ``allowed_outcomes`` derives what the RFC permits from the INDEX
``expected`` column, and the first test checks that our decision is one of
them. Stream framing of clerr/ncl/mcl01 is the framer's business (helper B's
``tests/unit/test_framer.py``); here they are UDP datagrams.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from trunkline.sip import Request, Response, SipParseError, parse_message
from trunkline.sip.uri import SipUri

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"

with (DATA / "INDEX.tsv").open(newline="") as f:
    ROWS = {row["name"]: row for row in csv.DictReader(f, delimiter="\t")}

OUTCOME: dict[str, str | int] = {
    # §3.1.1 valid messages
    **dict.fromkeys(
        [
            "wsinv",
            "intmeth",
            "esc01",
            "escnull",
            "esc02",
            "lwsdisp",
            "longreq",
            "dblreq",
            "semiuri",
            "transports",
            "mpart01",
            "unreason",
            "noreason",
        ],
        "accept",
    ),
    # §3.1.2 invalid messages
    "badinv01": 400,
    "clerr": 400,
    "ncl": 400,
    "scalar02": 400,
    "scalarlg": 400,
    "quotbal": 400,
    "ltgtruri": 400,
    "lwsruri": 400,
    "lwsstart": "accept",  # extra SP ignored, never forwarded (test below)
    "trws": "accept",  # idem
    "escruri": 400,
    "baddate": "accept",  # Date is not interpreted by the core
    "regbadct": 400,
    "badaspec": 400,
    "baddn": 400,
    "badvers": 505,
    "mismatch01": 400,
    "mismatch02": 400,  # 501 preferred, but the parser cannot know which methods exist
    "bigcode": 400,
    # §3.2, §3.3: parse; the problem is above the parser ...
    **dict.fromkeys(
        [
            "badbranch",
            "bext01",
            "invut",
            "regaut01",
            "bcast",
            "zeromf",
            "cparam01",
            "cparam02",
            "regescrt",
            "sdp01",
            "unksm2",
        ],
        "accept",
    ),
    # ... except the ones we answer at once
    "insuf": 400,
    "unkscm": 416,
    "novelsc": 416,
    "multi01": 400,
    "mcl01": 400,
    # §3.4
    "inv2543": "accept",
    "test": 400,
}


def allowed_outcomes(expected: str) -> set[str | int]:
    """What the RFC allows for an INDEX ``expected`` value."""
    codes: set[str | int] = {int(c) for c in re.findall(r"\b[1-6][0-9][0-9]\b", expected)}
    if expected.startswith("valid-syntax") or expected.startswith("valid ("):
        if expected.startswith("valid (") and not codes:
            return {"accept"}
        return {"accept"} | codes
    if expected == "valid":
        return {"accept"}
    if expected.startswith("invalid-may-reject"):
        liberal: set[str | int] = {"accept", 400}
        return liberal | codes
    if expected.startswith("invalid-response"):
        return {400}  # a response we cannot parse is discarded
    if expected.startswith("invalid-framing"):
        return {400}
    if expected.startswith("invalid-"):
        head = expected.split(" ", 1)[0]
        number = re.search(r"[1-6][0-9][0-9]", head)
        return ({int(number.group())} if number else set()) | codes
    if expected == "not-in-RFC":
        return {400}
    raise AssertionError(f"unknown expectation {expected!r}")


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def test_every_message_has_a_decision() -> None:
    assert set(OUTCOME) == set(ROWS)
    assert len(ROWS) == 50


@pytest.mark.parametrize("name", sorted(ROWS))
def test_decision_is_allowed_by_the_rfc(name: str) -> None:
    assert OUTCOME[name] in allowed_outcomes(ROWS[name]["expected"])


@pytest.mark.parametrize("name", sorted(ROWS))
def test_message_handled_as_decided(name: str) -> None:
    data = load(name)
    outcome = OUTCOME[name]
    if outcome == "accept":
        msg = parse_message(data)
        again = parse_message(bytes(msg))
        assert type(again) is type(msg)
        assert again.headers == msg.headers
        assert again.body == msg.body
        if isinstance(msg, Request):
            assert isinstance(again, Request)
            assert (again.method, again.uri_text) == (msg.method, msg.uri_text)
        else:
            assert isinstance(msg, Response) and isinstance(again, Response)
            assert (again.status, again.reason) == (msg.status, msg.reason)
    else:
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert info.value.status == outcome
        assert info.value.reason


@pytest.mark.parametrize("name", sorted(n for n, o in OUTCOME.items() if o == "accept"))
def test_accepted_message_survives_an_edit(name: str) -> None:
    """After an edit, lines are re-rendered and the result parses to the same headers."""
    msg = parse_message(load(name))
    msg.headers.prepend("Via", "SIP/2.0/UDP proxy.example.net;branch=z9hG4bKedit")
    had_length = "Content-Length" in msg.headers
    again = parse_message(bytes(msg))
    if not had_length:
        # Rendering adds the Content-Length a stream transport needs.
        assert again.content_length == len(msg.body)
        assert again.headers.remove("l") == 1
    assert again.headers == msg.headers
    assert again.via[0].host == "proxy.example.net"
    assert again.body == msg.body


def test_untouched_message_is_written_back_byte_for_byte() -> None:
    for name, outcome in OUTCOME.items():
        if outcome == "accept" and name not in ("dblreq", "lwsstart", "trws"):
            data = load(name)
            assert bytes(parse_message(data)) == data, name


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("lwsstart", b"INVITE sip:user@example.com SIP/2.0\r\n"),
        ("trws", b"OPTIONS sip:remote-target@example.com SIP/2.0\r\n"),
    ],
)
def test_extra_sp_in_request_line_is_not_forwarded(name: str, line: bytes) -> None:
    """§3.1.2.9-10: a liberal element ignores the extra SP and must not forward it."""
    data = load(name)
    assert not data.startswith(line)
    msg = parse_message(data)
    out = bytes(msg)
    assert out.startswith(line)
    assert out[len(line) :] == data[data.index(b"\r\n") + 2 :]


def test_wsinv_folding_and_odd_spellings() -> None:
    msg = parse_message(load("wsinv"))
    assert isinstance(msg, Request)
    assert msg.to_tag == "1918181833n"
    assert msg.from_tag == "98asjd8"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.max_forwards == 68
    assert (msg.cseq.number, msg.cseq.method) == (9, "INVITE")
    assert [v.transport for v in msg.via] == ["UDP", "TCP", "UDP"]
    assert [v.branch for v in msg.via] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert msg.via[1].host == "spindle.example.com"
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.contact[0].display_name == 'Quoted string ""'
    assert msg.contact[0].q == 0.33
    assert msg.contact[0].params["newparam"] == "newvalue"
    assert "secondparam" in msg.contact[0].params
    assert msg.route[0].uri_text == "sip:services.example.com;lr;unknownwith=value;unknown-no-value"
    assert msg.content_length == 150 == len(msg.body)


def test_intmeth_unusual_characters() -> None:
    msg = parse_message(load("intmeth"))
    assert isinstance(msg, Request)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.cseq.method == msg.method
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.from_tag == "_token~1'+`*%!-."
    assert msg.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_escapes_kept_in_headers() -> None:
    msg = parse_message(load("esc01"))
    assert isinstance(msg, Request)
    uri = msg.uri
    assert isinstance(uri, SipUri)
    assert uri.user == "sips:user@example.com"
    assert msg.contact[0].uri_text.startswith("sip:cal%6Cer@host5.example.net")


def test_escnull_registers_two_distinct_contacts() -> None:
    msg = parse_message(load("escnull"))
    contacts = msg.contact
    assert len(contacts) == 2
    assert contacts[0].uri != contacts[1].uri
    first, second = (c.uri for c in contacts)
    assert isinstance(first, SipUri) and isinstance(second, SipUri)
    assert (first.user, second.user) == ("\x00", "\x00\x00")
    to_uri = msg.to.uri
    assert isinstance(to_uri, SipUri)
    assert to_uri.user == "null-\x00-null"


def test_esc02_percent_is_not_an_escape_in_method_or_header_name() -> None:
    msg = parse_message(load("esc02"))
    assert isinstance(msg, Request)
    assert msg.method == "RE%47IST%45R"
    assert msg.method != "REGISTER"
    assert msg.to.display_name == "%Z%45"
    assert [c.uri_text for c in msg.contact] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert msg.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_display_name_without_space() -> None:
    msg = parse_message(load("lwsdisp"))
    assert msg.from_.display_name == "caller"


def test_longreq_long_values_not_truncated() -> None:
    data = load("longreq")
    msg = parse_message(data)
    assert len(msg.via) > 30
    assert len(msg.from_tag or "") > 100
    assert len(msg.call_id) > 100
    assert bytes(msg) == data


def test_dblreq_trailing_octets_discarded() -> None:
    data = load("dblreq")
    msg = parse_message(data)
    assert isinstance(msg, Request)
    assert msg.method == "REGISTER"
    assert msg.body == b""
    out = bytes(msg)
    assert b"INVITE" not in out
    assert len(data) - len(out) == 450


def test_semiuri_user_part_contains_semicolon() -> None:
    msg = parse_message(load("semiuri"))
    assert isinstance(msg, Request)
    uri = msg.uri
    assert isinstance(uri, SipUri)
    assert uri.user == "user;par=u@example.net"
    assert uri.host == "example.com"
    assert msg.headers.get_all("Accept")[2] == "multipart/mixed"
    assert len(msg.headers.get_all("Accept")) == 6


def test_transports_unknown_transports_accepted() -> None:
    msg = parse_message(load("transports"))
    assert [v.transport for v in msg.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_binary_body_framed_by_content_length() -> None:
    msg = parse_message(load("mpart01"))
    assert len(msg.body) == msg.content_length
    assert b"\x00" in msg.body
    assert msg.content_type == "multipart/mixed"
    assert msg.headers.get("Content-Type") == "multipart/mixed;boundary=7a9cbec02ceef655"


def test_unreason_and_noreason() -> None:
    msg = parse_message(load("unreason"))
    assert isinstance(msg, Response)
    assert msg.status == 200
    assert msg.reason.startswith("= 2**3 * 5**2")
    assert "сто девяносто девять" in msg.reason
    empty = parse_message(load("noreason"))
    assert isinstance(empty, Response)
    assert (empty.status, empty.reason) == (100, "")


def test_inv2543_rfc2543_syntax_accepted() -> None:
    data = load("inv2543")
    msg = parse_message(data)
    assert msg.max_forwards is None
    assert msg.via[0].branch is None
    assert msg.from_tag is None
    assert msg.content_length is None
    assert msg.body == data[data.index(b"\r\n\r\n") + 4 :]


def test_contact_params_vs_uri_params() -> None:
    cparam01 = parse_message(load("cparam01")).contact[0]
    assert "unknownparam" in cparam01.params
    assert cparam01.uri_text == "sip:+19725552222@gw1.example.net"
    cparam02 = parse_message(load("cparam02")).contact[0]
    assert "unknownparam" not in cparam02.params
    uri = cparam02.uri
    assert isinstance(uri, SipUri)
    assert "unknownparam" in uri.params
    regescrt = parse_message(load("regescrt")).contact[0]
    assert regescrt.uri_text == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def test_semantic_problems_are_visible_to_the_layers_above() -> None:
    assert parse_message(load("zeromf")).max_forwards == 0
    bext01 = parse_message(load("bext01"))
    assert bext01.require == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert bext01.proxy_require == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    assert parse_message(load("invut")).content_type == "application/unknownformat"
    assert parse_message(load("badbranch")).via[0].branch == "z9hG4bK"
    bcast = parse_message(load("bcast"))
    assert bcast.via[1].host == "255.255.255.255"
    assert parse_message(load("unksm2")).to.uri_text == "isbn:2983792873"


def test_reasons_are_precise() -> None:
    reasons = {}
    for name in ("insuf", "multi01", "mismatch01", "badvers", "clerr", "mcl01", "unkscm"):
        with pytest.raises(SipParseError) as info:
            parse_message(load(name))
        reasons[name] = info.value.reason
    assert reasons["insuf"] == "Missing Call-ID header"
    assert reasons["multi01"] == "Multiple Call-ID headers"
    assert reasons["mismatch01"] == "CSeq method does not match the request method"
    assert reasons["clerr"] == "Content-Length larger than the message body"
    assert reasons["mcl01"] == "Multiple Content-Length headers"
    assert "nobodyKnowsThisScheme" in reasons["unkscm"]


def test_baddn_rejected_for_the_display_name_once_terminated() -> None:
    """The archive's baddn lacks the final CRLF; with it, the display name is the fault."""
    with pytest.raises(SipParseError) as info:
        parse_message(load("baddn") + b"\r\n")
    assert info.value.status == 400
    assert "display name" in info.value.reason
