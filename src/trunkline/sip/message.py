"""SIP requests and responses: parse from bytes, serialize back (RFC 3261 §7).

:func:`parse_message` takes one whole message (a UDP datagram, or what the
stream framer cut out, RFC 3261 §18.3) and returns a :class:`Request` or a
:class:`Response`, or raises :class:`~trunkline.sip.errors.SipParseError`
carrying the status to answer with; it never raises anything else and runs in
time linear in the input (bounded by :class:`Limits`).

Parsing is lazy where it can be: the head is split into header lines once,
each line keeps its original text, and typed views (``msg.via``,
``msg.route``, ... in :mod:`trunkline.sip.views`) are parsed on first access
and cached. The headers every element needs to accept a message at all are
checked eagerly (§8.1.1, §8.2.2, RFC 4475 §3.1.2 and §3.3): Via, From, To,
Call-ID, CSeq (method must match the request's), Max-Forwards,
Content-Length, and Contact on REGISTER.
An untouched message serializes to exactly the bytes it was parsed from
(minus trailing octets beyond Content-Length, RFC 4475 §3.1.1.8; and with a
canonical Request-Line when extra SP was tolerated, RFC 4475 §3.1.2.9-10);
after an edit only edited lines are rendered anew, the others keep their text.
A message over :attr:`Limits.max_message` is 513, or 413 when its header
section fits and only the body is too large (RFC 3261 §21.4.11).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self

from trunkline.sip.errors import SipParseError
from trunkline.sip.grammar import INTERN_LIMIT, is_digits, split_host_port
from trunkline.sip.headerfields import _KEY_BY_NAME, Headers, Values, canonical_key, unfold
from trunkline.sip.headers import (
    CSeq,
    parse_contacts,
    parse_vias,
)
from trunkline.sip.nameaddr import intern_name_addr
from trunkline.sip.statuses import reason_phrase
from trunkline.sip.uri import Uri, parse_uri
from trunkline.sip.views import (
    HeaderViews,
    _parse_call_id,
    _parse_content_length,
    _parse_max_forwards,
    _single,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "Message",
    "Request",
    "Response",
    "parse_message",
]

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+[ \t]*")
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_SIP_URI_FAST_RE = re.compile(
    r"sips?:(?:[A-Za-z0-9\-_.!~*'()&=+$,;/%]+@)?[A-Za-z0-9\-.]+(?::[0-9]{1,4})?"
    r"(?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$%=]*)*"
)
_STATUS_RE = re.compile(r"[1-6][0-9][0-9]")
_URIS: dict[str, Uri] = {}
_CSEQS: dict[str, CSeq] = {}
"""CSeq values by text: most calls' requests say ``1 INVITE``, ``2 BYE``... (interned, as
From and To are: a named tuple stays tracked by the garbage collector, a shared one costs once)."""
_WS = " \t"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a peer may send; exceeding one gives 513 (RFC 3261 §21.5.14).

    A message whose header section fits ``max_message`` but whose body does
    not gives 413 Request Entity Too Large instead (§21.4.11).
    """

    max_message: int = 65535
    max_headers: int = 256
    max_line: int = 8192


DEFAULT_LIMITS = Limits()


class Message(HeaderViews):
    """What requests and responses share: headers, body and the typed header views."""

    __slots__ = ("_body", "_raw", "_raw_version", "headers")

    headers: Headers
    _body: bytes
    _raw: bytes | None
    _raw_version: int

    is_request: bool = False
    is_response: bool = False

    def _init_content(
        self, headers: Headers | Iterable[tuple[str, str]] | None, body: bytes
    ) -> None:
        """Set the headers and body of a new, not yet rendered message."""
        self.headers = headers if isinstance(headers, Headers) else Headers(headers or ())
        self._body = bytes(body)
        self._raw = None
        self._raw_version = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, limits: Limits = DEFAULT_LIMITS) -> Self:
        """Parse bytes that must hold a message of this class (request or response)."""
        msg = parse_message(data, limits=limits)
        if not isinstance(msg, cls):
            wanted, got = ("request", "response") if cls.is_request else ("response", "request")
            raise SipParseError(f"Expected a {wanted}, got a {got}")
        return msg

    def _copy_content(self, clone: Self) -> Self:
        """``clone`` given independent headers and this message's body and bytes."""
        clone.headers = self.headers.copy()
        clone._body = self._body
        clone._raw = self._raw
        clone._raw_version = self._raw_version
        return clone

    # -------------------------------------------------------------- basics

    @property
    def body(self) -> bytes:
        """The message body (exactly Content-Length octets)."""
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = bytes(value)
        self._raw = None
        self.headers.set("Content-Length", str(len(self._body)))

    def _start_line(self) -> str:
        raise NotImplementedError

    def wire_size(self) -> int:
        """``len(bytes(self))``, without rendering an edited message whose text is ASCII.

        For the §18.1.1 transport choice made before the last edits (our Via,
        Record-Route): the message is then rendered once, to be sent.
        """
        raw = self._raw
        headers = self.headers
        if raw is not None and self._raw_version == headers._version:
            return len(raw)
        lines = headers._lines
        start = self._start_line()
        joined = "".join(lines)
        if not (start.isascii() and joined.isascii()):
            return len(bytes(self))  # UTF-8 or escaped octets: count them exactly
        size = len(start) + len(joined) + 2 * len(lines) + 4 + len(self._body)
        if "content-length" not in headers._index:
            size += len(f"Content-Length: {len(self._body)}\r\n")
        return size

    def __bytes__(self) -> bytes:
        """The message as bytes: the received octets until edited, then kept until the next edit.

        Rendering joins the start line with each header line's own text (as
        received, or as written by the edit), so only edited lines were
        rendered anew; the result is cached until the next edit.
        """
        raw = self._raw
        headers = self.headers
        if raw is not None and self._raw_version == headers._version:
            return raw
        lines = headers._lines
        text = self._start_line() + "\r\n" + "\r\n".join(lines)
        if lines:
            text += "\r\n"
        if "content-length" not in headers._index:
            text += f"Content-Length: {len(self._body)}\r\n"
        raw = (text + "\r\n").encode("utf-8", "surrogateescape") + self._body
        self._raw = raw
        self._raw_version = headers._version
        return raw


class Request(Message):
    """A SIP request (RFC 3261 §7.1). ``uri`` is parsed on first access."""

    __slots__ = ("_method", "_uri", "_uri_text")

    is_request = True

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        self._method = method
        self._set_uri(uri)
        self._init_content(headers, body)

    def _set_uri(self, uri: Uri | str) -> None:
        if isinstance(uri, str):
            self._uri: Uri | None = None
            self._uri_text = uri
        else:
            self._uri = uri
            self._uri_text = str(uri)

    @property
    def method(self) -> str:
        """The method, case-sensitive (RFC 3261 §7.1)."""
        return self._method

    @method.setter
    def method(self, value: str) -> None:
        self._method = value
        self._raw = None

    @property
    def uri(self) -> Uri:
        """The Request-URI, parsed by :func:`trunkline.sip.uri.parse_uri` on first access.

        The parsed value is shared among requests with the same Request-URI
        text (interned, :data:`~trunkline.sip.grammar.INTERN_LIMIT`): treat
        it as immutable and assign a new URI to change it.
        """
        uri = self._uri
        if uri is None:
            text = self._uri_text
            uri = _URIS.get(text)
            if uri is None:
                uri = parse_uri(text)
                if len(_URIS) >= INTERN_LIMIT:
                    _URIS.clear()
                _URIS[text] = uri
            self._uri = uri
        return uri

    @uri.setter
    def uri(self, value: Uri | str) -> None:
        self._set_uri(value)
        self._raw = None

    @property
    def uri_text(self) -> str:
        """The Request-URI as received."""
        return self._uri_text

    def _start_line(self) -> str:
        return f"{self._method} {self._uri_text} SIP/2.0"

    def copy(self) -> Request:
        """An independent copy (same bytes until edited)."""
        clone = Request.__new__(Request)
        clone._method = self._method
        clone._uri = self._uri
        clone._uri_text = self._uri_text
        return self._copy_content(clone)

    def __repr__(self) -> str:
        return f"<Request {self._method} {self._uri_text}>"


class Response(Message):
    """A SIP response (RFC 3261 §7.2)."""

    __slots__ = ("_reason", "_status")

    is_response = True

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        self._status = status
        self._reason = reason_phrase(status) if reason is None else reason
        self._init_content(headers, body)

    @property
    def status(self) -> int:
        """The status code, 100-699."""
        return self._status

    @status.setter
    def status(self, value: int) -> None:
        self._status = value
        self._raw = None

    @property
    def reason(self) -> str:
        """The reason phrase (may be empty, may be UTF-8, RFC 4475 §3.1.1.12-13)."""
        return self._reason

    @reason.setter
    def reason(self, value: str) -> None:
        self._reason = value
        self._raw = None

    def _start_line(self) -> str:
        return f"SIP/2.0 {self._status} {self._reason}"

    def copy(self) -> Response:
        """An independent copy (same bytes until edited)."""
        clone = Response.__new__(Response)
        clone._status = self._status
        clone._reason = self._reason
        return self._copy_content(clone)

    def __repr__(self) -> str:
        return f"<Response {self._status} {self._reason}>"


# ------------------------------------------------------------------ parsing


def _check_request_uri(uri: str) -> None:
    """Cheap Request-URI checks that must answer at once (416, IPv6 brackets, headers).

    The full parse (:func:`trunkline.sip.uri.parse_uri`) happens on first use.
    """
    if _SIP_URI_FAST_RE.fullmatch(uri) is not None:
        return
    scheme, colon, rest = uri.partition(":")
    if not colon or _SCHEME_RE.fullmatch(scheme) is None or not rest:
        raise SipParseError("Malformed Request-URI")
    lowered = scheme.lower()
    if lowered in ("sip", "sips"):
        at = rest.rfind("@")
        if at == 0:
            raise SipParseError("Empty user part in Request-URI")
        hostport = rest[at + 1 :]
        if "?" in hostport:
            # §19.1.5: headers are not allowed in a Request-URI (RFC 4475 escruri).
            raise SipParseError("Request-URI must not contain headers")
        semi = hostport.find(";")
        if semi >= 0:
            hostport = hostport[:semi]
        split_host_port(hostport, "Request-URI")
    elif lowered != "tel":
        raise SipParseError(f"Unsupported URI scheme: {scheme[:32]}", 416)


def _check_version(version: str) -> None:
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version) is not None:
            raise SipParseError("SIP Version Not Supported", 505)
        raise SipParseError("Malformed SIP version")


def _split_head(
    head: str, limits: Limits
) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, Values]]:
    """Split and index the header lines that follow the start line (RFC 3261 §7.3).

    ``head`` is the header section without the start line and without the
    final CRLF CRLF. Folded lines (§7.3.1) are joined (keeping their CRLFs in
    the raw line); the index maps each canonical name to its unfolded values.
    """
    lines = head.split("\r\n")
    separators = len(lines) - 1
    if head.count("\r") != separators or head.count("\n") != separators:
        raise SipParseError("Bare CR or LF in header section")
    if len(lines) > limits.max_headers:
        raise SipParseError("Too many header fields", 513)
    folded = "\r\n " in head or "\r\n\t" in head or lines[0][:1] in (" ", "\t")
    if folded:
        lines = _unfold(lines)
    if len(head) > limits.max_line and max(map(len, lines)) > limits.max_line:
        raise SipParseError("Header line too long", 513)
    index: dict[str, Values] = {}
    keys: list[str] = []
    add_key = keys.append
    known = _KEY_BY_NAME.get
    for line in lines:
        name, colon, value = line.partition(":")
        key = known(name)
        if key is None:
            if not colon or _NAME_RE.fullmatch(name) is None:
                raise SipParseError("Malformed header line")
            key = canonical_key(name)
        add_key(key)
        value = unfold(value) if folded and "\r\n" in value else value.strip(_WS)
        values = index.get(key)
        index[key] = (value,) if values is None else (*values, value)
    return tuple(lines), tuple(keys), index


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (starting with SP/HT) to the line before, keeping CRLFs."""
    out: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not out:
                raise SipParseError("Header section starts with a continuation line")
            out[-1] += "\r\n" + line
        else:
            out.append(line)
    return out


def parse_message(
    data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS
) -> Request | Response:
    """Parse one whole SIP message (RFC 3261 §7); raise SipParseError otherwise.

    Octets after the body that Content-Length announces are discarded
    (§18.3; RFC 4475 §3.1.1.8); without Content-Length the body is the rest
    of the datagram (RFC 4475 §3.4.1).
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) > limits.max_message:
        end = data.find(b"\r\n\r\n", 0, limits.max_message)
        if end >= 0 and end + 4 <= limits.max_message:
            # The header section fits; only the body is too big (§21.4.11).
            raise SipParseError("Request Entity Too Large", 413)
        raise SipParseError("Message Too Large", 513)
    if data[:1] in (b"\r", b"\n"):
        # §7.5: ignore CRLFs before the start line.
        data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise SipParseError("Missing empty line after the header section")
    head = data[:end].decode("utf-8", "surrogateescape")
    first = head.find("\r\n")
    if first < 0:
        start_line, lines = head, ""
    else:
        start_line, lines = head[:first], head[first + 2 :]
    if len(start_line) > limits.max_line:
        raise SipParseError("Start line too long", 513)
    raw_lines, keys, index = _split_head(lines, limits) if lines else ((), (), {})
    headers = Headers._parsed(raw_lines, keys, index)
    cache = headers._cache

    msg: Request | Response
    method_text: str | None = None
    canonical = True
    if start_line.startswith("SIP/"):
        version, _, rest = start_line.partition(" ")
        _check_version(version)
        code, _, reason = rest.partition(" ")
        if _STATUS_RE.fullmatch(code) is None:
            raise SipParseError("Invalid status code")
        response = Response.__new__(Response)
        response._status = int(code)
        response._reason = reason
        msg = response
    else:
        parts = start_line.split(" ")
        canonical = len(parts) == 3 and bool(parts[1])
        if not canonical:
            # RFC 4475 §3.1.2.9-10 (lwsstart, trws): extra SP may be ignored, but
            # must not be forwarded: the Request-Line is re-rendered (see below).
            parts = [part for part in parts if part]
            if len(parts) != 3:
                raise SipParseError("Malformed Request-Line")
        method, uri, version = parts
        if _TOKEN_RE.fullmatch(method) is None:
            raise SipParseError("Malformed method in Request-Line")
        _check_version(version)
        _check_request_uri(uri)
        request = Request.__new__(Request)
        request._method = method
        request._uri = None
        request._uri_text = uri
        msg = request
        method_text = method

    # Mandatory header fields (§8.1.1; RFC 4475 §3.3.1 insuf, §3.3.8 multi01).
    get = index.get
    call_id = _parse_call_id(get("call-id") or ())
    cseq_text = _single(get("cseq") or (), "CSeq")
    cseq = _CSEQS.get(cseq_text)
    if cseq is None:
        number, space, cseq_method = cseq_text.partition(" ")
        if space and method_text == cseq_method and len(number) < 10 and is_digits(number):
            # The usual request: the method is already known to be a token.
            cseq = CSeq(int(number), cseq_method)
        else:
            cseq = CSeq.parse(cseq_text)
        if len(_CSEQS) >= INTERN_LIMIT:
            _CSEQS.clear()
        _CSEQS[cseq_text] = cseq
    if method_text is not None and cseq.method != method_text:
        raise SipParseError("CSeq method does not match the request method")
    from_ = intern_name_addr(_single(get("from") or (), "From"))
    to = intern_name_addr(_single(get("to") or (), "To"))
    via_lines = get("via")
    if not via_lines:
        raise SipParseError("Missing Via header")
    cache["call-id"] = call_id
    cache["cseq"] = cseq
    cache["from"] = from_
    cache["to"] = to
    cache["via"] = parse_vias(via_lines)
    cache["max-forwards"] = _parse_max_forwards(index.get("max-forwards", ()))
    if method_text == "REGISTER":
        # A registrar binds these (RFC 4475 §3.1.2.13 regbadct); elsewhere the
        # Contact is parsed on first use, like every URI.
        contact_lines = get("contact")
        if contact_lines:
            cache["contact"] = parse_contacts(contact_lines)

    body_start = end + 4
    length_lines = index.get("content-length")
    if length_lines:
        length = _parse_content_length(length_lines)
        assert length is not None
        body_end = body_start + length
        if body_end > len(data):
            raise SipParseError("Content-Length larger than the message body")
        msg._body = data[body_start:body_end]
        msg._raw = data if body_end == len(data) else data[:body_end]
        msg._raw_version = headers._version
    else:
        msg._body = data[body_start:]
        msg._raw = data
        msg._raw_version = headers._version
    msg.headers = headers
    if not canonical:
        # Forward a canonical Request-Line, everything else as received.
        raw = msg._raw
        assert raw is not None and isinstance(msg, Request)
        msg._raw = msg._start_line().encode("utf-8", "surrogateescape") + raw[raw.find(b"\r\n") :]
    return msg
