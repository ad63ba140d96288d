"""The fuzz invariant for SIP messages, shared by the atheris and in-process fuzzers.

For any bytes, :func:`exercise` must either finish or raise
:class:`~trunkline.sip.errors.SipParseError`; any other exception is a bug
(STYLE.md habit 4, h11's "parse or raise our error, never anything else").
A message that parses must also survive its typed views, serialization, an
edit, and a re-parse of what it serialized.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.fuzz.runner import Target
from trunkline.sip import Limits, SipParseError, parse_message

SEED_DIRS = (
    Path(__file__).resolve().parent.parent / "data" / "rfc4475",
    Path(__file__).resolve().parent.parent / "data" / "rfc5118" / "wire",
)

VIEWS = (
    "via",
    "from_",
    "to",
    "from_tag",
    "to_tag",
    "call_id",
    "cseq",
    "max_forwards",
    "contact",
    "route",
    "record_route",
    "refer_to",
    "referred_by",
    "reply_to",
    "p_asserted_identity",
    "expires",
    "min_expires",
    "content_length",
    "content_type",
    "allow",
    "supported",
    "require",
    "proxy_require",
    "unsupported",
    "event",
    "subscription_state",
    "session_expires",
    "rseq",
    "rack",
    "replaces",
    "www_authenticate",
    "proxy_authenticate",
    "authorization",
    "proxy_authorization",
)

TOKENS = [  # SIP-aware insertions for the mutator
    b"\r\n",
    b"\r\n ",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"\\",
    b"=",
    b"[",
    b"]",
    b"@",
    b"%00",
    b"sip:",
    b"SIP/2.0",
    b";branch=z9hG4bK",
    b";tag=",
    b"Via: SIP/2.0/UDP h\r\n",
    b"Content-Length: 9999\r\n",
    b"l: -1\r\n",
    b"CSeq: 1 X\r\n",
    b"Contact: *\r\n",
    b"\x00",
    b"\xff",
    "é".encode(),
]

LIMITS = Limits(max_message=65535, max_headers=256, max_line=8192)


def seeds() -> list[bytes]:
    """The RFC 4475 and RFC 5118 torture messages."""
    return [p.read_bytes() for d in SEED_DIRS for p in sorted(d.glob("*.dat"))]


def _touch_views(msg: object) -> None:
    for name in VIEWS:
        try:
            value = getattr(msg, name)
        except SipParseError:
            continue
        if isinstance(value, list):
            for item in value:
                str(item)
                for attr in ("params", "tag", "uri", "branch", "rport", "expires", "q"):
                    with contextlib.suppress(SipParseError):
                        getattr(item, attr, None)
    uri = getattr(msg, "uri_text", None)
    if uri is not None:
        with contextlib.suppress(SipParseError):
            str(msg.uri)  # type: ignore[attr-defined]


def exercise(data: bytes) -> None:
    """Parse ``data``; if it parses, use it every way the stack does."""
    try:
        msg = parse_message(data, limits=LIMITS)
    except SipParseError:
        return
    _touch_views(msg)
    out = bytes(msg)
    again = parse_message(out, limits=LIMITS)
    assert again.headers == msg.headers, "re-parse changed the headers"
    assert again.body == msg.body, "re-parse changed the body"
    msg.headers.prepend("Via", "SIP/2.0/UDP fuzz.invalid;branch=z9hG4bKfuzz")
    msg.headers.add("X-Fuzz", "1")
    edited = bytes(msg)
    try:
        reparsed = parse_message(edited, limits=Limits(max_message=2 * LIMITS.max_message))
    except SipParseError as exc:
        # Only a limit may stop an edited message that parsed before.
        assert exc.status == 513, f"edited message no longer parses: {exc}"
        return
    assert reparsed.via[0].host == "fuzz.invalid"
    _touch_views(reparsed)


MESSAGE = Target(
    "message",
    exercise,
    seeds,
    tokens=TOKENS,
    modules=(
        "trunkline.sip.grammar",
        "trunkline.sip.headerfields",
        "trunkline.sip.headers",
        "trunkline.sip.message",
        "trunkline.sip.uri",
    ),
)
"""The SIP message parser as a fuzz target (short runs and atheris alike)."""
