"""Refer-To / Replaces / sipfrag helpers of RFC 3515 and RFC 3891 (no I/O)."""

from __future__ import annotations

import pytest

from trunkline.sip.errors import SipParseError
from trunkline.sip.headers import Replaces
from trunkline.ua.transfer import (
    ReferTarget,
    notify_headers,
    parse_sipfrag,
    refer_to_value,
    sipfrag,
)


def test_blind_refer_to() -> None:
    target = ReferTarget.parse("<sip:carol@example.com;transport=tcp>")
    assert str(target.uri) == "sip:carol@example.com;transport=tcp"
    assert target.replaces is None and not target.attended
    assert target.extra_headers == ()


def test_attended_refer_to_round_trips_replaces() -> None:
    # RFC 3891 §7 shape: the Replaces value is %-escaped inside the URI.
    replaces = Replaces(
        "425928@bobster.example.org",
        "7743",
        "6472",
        params={"to-tag": "7743", "from-tag": "6472"},
    )
    value = refer_to_value("sip:alice@phone1.example.com", replaces)
    assert "?Replaces=425928%40bobster.example.org%3Bto-tag%3D7743%3Bfrom-tag%3D6472" in value
    target = ReferTarget.parse(value)
    assert target.attended
    assert target.replaces is not None
    assert target.replaces.call_id == "425928@bobster.example.org"
    assert (target.replaces.to_tag, target.replaces.from_tag) == ("7743", "6472")
    assert str(target.uri) == "sip:alice@phone1.example.com"
    assert target.extra_headers == (("Replaces", str(replaces)),)


def test_refer_to_must_be_sip() -> None:
    with pytest.raises(SipParseError):
        ReferTarget.parse("<tel:+15551234567>")


@pytest.mark.parametrize(
    ("status", "reason", "text"),
    [
        (100, None, "SIP/2.0 100 Trying"),
        (200, None, "SIP/2.0 200 OK"),
        (486, "Busy", "SIP/2.0 486 Busy"),
    ],
)
def test_sipfrag_round_trip(status: int, reason: str | None, text: str) -> None:
    body = sipfrag(status, reason)
    assert body == (text + "\r\n").encode()
    assert parse_sipfrag(body) == (status, text.split(" ", 2)[2])


@pytest.mark.parametrize(
    "body", [b"", b"hello", b"SIP/2.0 abc OK", b"SIP/2.0 99 Low", b"HTTP 200 OK"]
)
def test_bad_sipfrag(body: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_sipfrag(body)


def test_notify_headers_follow_the_status() -> None:
    assert notify_headers(180) == [("Event", "refer"), ("Subscription-State", "active;expires=60")]
    assert notify_headers(503)[1] == ("Subscription-State", "terminated;reason=noresource")
