"""The lexical pieces of SDP fields (RFC 8866 §9 grammar): numbers, tokens, ``proto``.

Every SDP value parser (:mod:`trunkline.sip.sdpfields`, :mod:`trunkline.sip.sdpcodecs`,
:mod:`trunkline.sip.sdpcrypto`, :mod:`trunkline.sip.sdp`) reads its fields with
these, and reports a bad one with :func:`fail`: a :class:`SipParseError` (400).
"""

from __future__ import annotations

import re

from trunkline.sip.errors import SipParseError

__all__ = [
    "DIGITS",
    "FRACTION",
    "PROTO",
    "TOKEN",
    "fail",
    "parse_int",
    "parse_proto",
    "parse_token",
    "split_fields",
]

DIGITS = re.compile(r"[0-9]{1,20}")
TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
PROTO = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+(?:/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)*")
FRACTION = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")


def fail(reason: str) -> SipParseError:
    return SipParseError(f"Bad SDP: {reason}", 400)


def parse_int(text: str, what: str, maximum: int | None = None) -> int:
    """Parse a decimal integer field (ASCII digits only, RFC 8866 §9)."""
    if not DIGITS.fullmatch(text):
        raise fail(f"{what} is not a number: {text[:40]!r}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise fail(f"{what} out of range: {value}")
    return value


def parse_token(text: str, what: str) -> str:
    if not TOKEN.fullmatch(text):
        raise fail(f"{what} is not a token: {text[:40]!r}")
    return text


def parse_proto(text: str) -> str:
    """``m=`` transport protocol: tokens joined by ``/`` (RFC 8866 §9, ``proto``)."""
    if not PROTO.fullmatch(text):
        raise fail(f"m= proto is malformed: {text[:40]!r}")
    return text


def split_fields(text: str, what: str, minimum: int, maximum: int | None = None) -> list[str]:
    parts = text.split()
    if len(parts) < minimum or (maximum is not None and len(parts) > maximum):
        raise fail(f"malformed {what}: {text[:60]!r}")
    return parts
