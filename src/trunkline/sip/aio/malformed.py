"""Stateless error responses to requests that failed to parse (sans-IO).

RFC 3261 §8.2 and §16.3: a request that is malformed gets a 4xx/5xx answer
(400 Bad Request, 413, 416 Unsupported URI Scheme, 505 Version Not
Supported, 513 Message Too Large), the status a
:class:`~trunkline.sip.errors.SipParseError` carries. A response needs the
request's Via, From, To, Call-ID and CSeq (§8.2.6.2), and the message is
exactly the one our parser refused, so :func:`error_response` works on the
raw bytes: it checks that the start line has the shape of a request
(§7.1: ``Method SP Request-URI SP SIP-Version``) and copies those five
header fields verbatim (compact forms of §7.3.3 included, folded lines of
§7.3.1 unfolded). When any is missing, when the message is a response or
an ACK (never answered, §17.2.3), it returns None and the caller drops.
"""

from __future__ import annotations

import re
import secrets

__all__ = ["error_response", "looks_like_request"]

#: Long and compact (§7.3.3) names of the header fields a response copies.
_COPIED = {
    b"via": b"Via",
    b"v": b"Via",
    b"from": b"From",
    b"f": b"From",
    b"to": b"To",
    b"t": b"To",
    b"call-id": b"Call-ID",
    b"i": b"Call-ID",
    b"cseq": b"CSeq",
}
_REQUIRED = (b"Via", b"From", b"To", b"Call-ID", b"CSeq")

#: §25.1 ``token`` (a Method) and the start of a SIP-Version.
_TOKEN = re.compile(rb"[A-Za-z0-9.!%*_+`'~-]+")
_VERSION = re.compile(rb"SIP/", re.IGNORECASE)
_TO_TAG = re.compile(rb";\s*tag\s*=", re.IGNORECASE)
_ANGLE = re.compile(rb"<[^>]*>")
_UNSAFE_REASON = re.compile(r"[^\x20-\x7e]")


def _lines(data: bytes) -> list[bytes]:
    """Start line and header lines, leading CRLFs skipped (§7.5), folds joined (§7.3.1)."""
    head = data.lstrip(b"\r\n")
    for end in (b"\r\n\r\n", b"\n\n"):
        cut = head.find(end)
        if cut >= 0:
            head = head[:cut]
            break
    lines: list[bytes] = []
    for raw in head.replace(b"\r\n", b"\n").split(b"\n"):
        if raw[:1] in (b" ", b"\t") and lines:
            lines[-1] = lines[-1] + b" " + raw.strip(b" \t")
        else:
            lines.append(raw)
    return lines


def looks_like_request(start_line: bytes) -> str | None:
    """The method when ``start_line`` has the shape of a Request-Line (§7.1), else None."""
    parts = start_line.split()  # a Request-URI with LWS in it still names a request
    if len(parts) < 3 or _VERSION.match(parts[0]) or not _VERSION.match(parts[-1]):
        return None
    if not _TOKEN.fullmatch(parts[0]):
        return None
    return parts[0].decode("ascii")


def error_response(
    data: bytes, status: int, reason: str, *, server: str | None = None
) -> bytes | None:
    """A stateless ``status`` response to the malformed request ``data``, or None to drop.

    The To gets a tag when it has none (§8.2.6.2); the body is empty.
    """
    lines = _lines(data)
    if not lines:
        return None
    method = looks_like_request(lines[0])
    if method is None or method == "ACK":
        return None
    found: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        canonical = _COPIED.get(name.strip().lower())
        if canonical is None:
            continue
        value = value.strip(b" \t")
        if value:
            found.setdefault(canonical, []).append(value)
    if any(name not in found for name in _REQUIRED):
        return None
    to = found[b"To"][0]
    if not _TO_TAG.search(_ANGLE.sub(b"", to)):
        to += b";tag=" + secrets.token_hex(8).encode("ascii")
    phrase = _UNSAFE_REASON.sub("?", reason) or "Bad Request"
    out = [f"SIP/2.0 {status} {phrase}".encode()]
    out += [b"Via: " + via for via in found[b"Via"]]  # every Via, in order (§8.2.6.2)
    out.append(b"From: " + found[b"From"][0])
    out.append(b"To: " + to)
    out.append(b"Call-ID: " + found[b"Call-ID"][0])
    out.append(b"CSeq: " + found[b"CSeq"][0])
    if server:
        out.append(b"Server: " + server.encode("utf-8", "replace"))
    out.append(b"Content-Length: 0")
    return b"\r\n".join(out) + b"\r\n\r\n"
