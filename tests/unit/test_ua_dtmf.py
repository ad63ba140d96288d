"""DTMF INFO bodies (``application/dtmf-relay`` and ``application/dtmf``)."""

from __future__ import annotations

import pytest

from trunkline.sip.builder import make_request
from trunkline.ua.dtmf import DTMF_RELAY, dtmf_relay_body, parse_dtmf_info


@pytest.mark.parametrize(
    ("body", "ctype", "expected"),
    [
        (b"Signal=5\r\nDuration=160\r\n", DTMF_RELAY, ("5", 160.0)),
        (b"signal = #\nduration=250", "application/dtmf-relay; charset=x", ("#", 250.0)),
        (b"Signal=a\r\n", DTMF_RELAY, ("A", 0.0)),
        (b"9", "application/dtmf", ("9", 0.0)),
        (b"Signal=X\r\n", DTMF_RELAY, None),
        (b"Duration=100\r\n", DTMF_RELAY, None),
        (b"Signal=5", "text/plain", None),
    ],
)
def test_parse_dtmf_info(body: bytes, ctype: str, expected: tuple[str, float] | None) -> None:
    request = make_request(
        "INFO",
        "sip:bob@192.0.2.2",
        from_="<sip:a@192.0.2.1>",
        to="<sip:bob@192.0.2.2>;tag=b1",
        body=body,
        content_type=ctype,
    )
    assert parse_dtmf_info(request) == expected


def test_relay_body_round_trips() -> None:
    request = make_request(
        "INFO",
        "sip:bob@192.0.2.2",
        from_="<sip:a@192.0.2.1>",
        to="<sip:bob@192.0.2.2>;tag=b1",
        body=dtmf_relay_body("*", 120),
        content_type=DTMF_RELAY,
    )
    assert parse_dtmf_info(request) == ("*", 120.0)
