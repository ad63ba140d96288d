"""RFC 5118 IPv6 torture tests, datagram semantics, from the CRLF ``wire/`` copies.

The RFC's archive declares a wrong Content-Length in its three SDP messages
(see ``tests/data/rfc5118/README.md``). To test IPv6 handling rather than
framing, :func:`fixed` rewrites Content-Length to the real body length for
those three (and only those); :func:`test_declared_lengths_as_archived`
checks what happens with the lengths as archived.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from trunkline.sip import Request, SipParseError, parse_message
from trunkline.sip.uri import SipUri

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc5118"

with (DATA / "INDEX.tsv").open(newline="") as f:
    ROWS = {row["name"]: row for row in csv.DictReader(f, delimiter="\t")}

WRONG_LENGTH = {"ipv6-in-sdp", "mult-ip-in-sdp", "ipv4-mapped-ipv6"}


def wire(name: str) -> bytes:
    return (DATA / ROWS[name]["wire_file"]).read_bytes()


def fixed(name: str) -> bytes:
    """The wire copy, with Content-Length set to the body length for the SDP messages."""
    data = wire(name)
    if name not in WRONG_LENGTH:
        return data
    head, _, body = data.partition(b"\r\n\r\n")
    assert len(body) == int(ROWS[name]["wire_body_bytes"])
    head = re.sub(rb"Content-Length: *\d+", b"Content-Length: %d" % len(body), head)
    return head + b"\r\n\r\n" + body


def test_index_complete() -> None:
    assert len(ROWS) == 12
    assert {
        name
        for name, row in ROWS.items()
        if row["declared_content_length"] not in ("0", row["wire_body_bytes"])
    } == WRONG_LENGTH


@pytest.mark.parametrize("name", sorted(ROWS))
def test_handled_as_the_rfc_expects(name: str) -> None:
    expected = ROWS[name]["expected"]
    data = fixed(name)
    if expected.startswith("invalid"):
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert info.value.status == 400
        return
    assert expected.startswith("valid")
    msg = parse_message(data)
    assert bytes(msg) == data
    again = parse_message(bytes(msg))
    assert again.headers == msg.headers
    assert again.body == msg.body
    assert isinstance(msg, Request)
    assert isinstance(msg.uri, SipUri)


def test_ipv6_good_references() -> None:
    msg = parse_message(fixed("ipv6-good"))
    assert isinstance(msg, Request)
    uri = msg.uri
    assert isinstance(uri, SipUri)
    assert uri.host == "[2001:db8::10]"
    assert msg.via[0].host.startswith("[2001:db8::")
    contact = msg.contact[0].uri
    assert isinstance(contact, SipUri)
    assert contact.host.startswith("[2001:db8::")


def test_ipv6_bad_rejected_with_reason() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(fixed("ipv6-bad"))
    assert info.value.status == 400
    assert "Request-URI" in info.value.reason


def test_port_ambiguous_and_unambiguous() -> None:
    ambiguous = parse_message(fixed("port-ambiguous"))
    assert isinstance(ambiguous, Request)
    uri = ambiguous.uri
    assert isinstance(uri, SipUri)
    assert (uri.host, uri.port) == ("[2001:db8::10:5070]", None)
    clear = parse_message(fixed("port-unambiguous"))
    assert isinstance(clear, Request)
    uri = clear.uri
    assert isinstance(uri, SipUri)
    assert (uri.host, uri.port) == ("[2001:db8::10]", 5070)


@pytest.mark.parametrize(
    ("name", "received"),
    [
        ("via-received-param-with-delim", "[2001:db8::9:255]"),
        ("via-received-param-no-delim", "2001:db8::9:255"),
    ],
)
def test_via_received_with_and_without_brackets(name: str, received: str) -> None:
    via = parse_message(fixed(name)).via[0]
    assert via.received == received
    assert via.host == "[2001:db8::9:1]"


def test_multiple_addresses_in_headers() -> None:
    vias = parse_message(fixed("mult-ip-in-header")).via
    assert [(v.host, v.port, v.transport) for v in vias] == [
        ("[2001:db8::9:1]", 6050, "UDP"),
        ("192.0.2.1", None, "UDP"),
        ("[2001:db8::9:255]", None, "TCP"),
    ]
    assert vias[2].received == "192.0.2.200"


def test_ipv4_mapped_and_abnf_colons() -> None:
    mapped = parse_message(fixed("ipv4-mapped-ipv6"))
    assert any("::ffff:192.0.2" in v.host for v in mapped.via)
    assert b"IN IP6 ::ffff:192.0.2.2" in mapped.body
    for name in ("ipv6-bug-abnf-3-colons", "ipv6-correct-abnf-2-colons"):
        msg = parse_message(fixed(name))
        assert isinstance(msg, Request)
        assert "192.0.2.1]" in msg.uri_text


def test_declared_lengths_as_archived() -> None:
    """Datagram rules applied to the archived lengths: too long -> 400, too short -> cut."""
    with pytest.raises(SipParseError) as info:
        parse_message(wire("ipv6-in-sdp"))  # declares 268, carries 251
    assert info.value.reason == "Content-Length larger than the message body"
    for name in ("mult-ip-in-sdp", "ipv4-mapped-ipv6"):
        msg = parse_message(wire(name))
        assert len(msg.body) == int(ROWS[name]["declared_content_length"])
        assert len(bytes(msg)) < len(wire(name))
