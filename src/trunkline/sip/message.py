"""SIP requests and responses: parse from bytes, serialize back (RFC 3261 §7).

:func:`parse_message` takes one whole message (a UDP datagram, or what the
stream framer cut out, RFC 3261 §18.3) and returns a :class:`Request` or a
:class:`Response`, or raises :class:`~trunkline.sip.errors.SipParseError`
carrying the status to answer with; it never raises anything else and runs in
time linear in the input (bounded by :class:`Limits`).

Parsing is lazy where it can be: the head is split into header lines once
(one regular expression pass), each line keeps its original text, and typed
views (``msg.via``, ``msg.route``, ...) are parsed on first access and
cached. The headers every element needs to accept a message at all are
checked eagerly (§8.1.1, §8.2.2, RFC 4475 §3.1.2 and §3.3): Via, From, To,
Call-ID, CSeq (method must match), Max-Forwards, Content-Length, Contact.
An untouched message serializes to exactly the bytes it was parsed from
(minus trailing octets beyond Content-Length, RFC 4475 §3.1.1.8); after an
edit only edited lines are re-rendered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from trunkline.sip.errors import SipParseError
from trunkline.sip.grammar import is_digits, parse_uint
from trunkline.sip.headerfields import _KEY_BY_NAME, Headers, canonical_key, unfold
from trunkline.sip.headers import (
    Contact,
    CSeq,
    NameAddr,
    RAck,
    Replaces,
    TokenParams,
    Via,
    _split_host_port,
    parse_contacts,
    parse_name_addrs,
    parse_tokens,
    parse_vias,
)
from trunkline.sip.statuses import reason_phrase
from trunkline.sip.uri import Uri, parse_uri

if TYPE_CHECKING:
    from trunkline.sip.auth import Challenge, Credentials

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "Message",
    "Request",
    "Response",
    "parse_message",
]

T = TypeVar("T")

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+[ \t]*")
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_SIP_URI_FAST_RE = re.compile(
    r"sips?:(?:[A-Za-z0-9\-_.!~*'()&=+$,;/%]+@)?[A-Za-z0-9\-.]+(?::[0-9]{1,4})?"
    r"(?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$%=]*)*"
)
_STATUS_RE = re.compile(r"[1-6][0-9][0-9]")
_CALL_ID_RE = re.compile(r"[^\x00-\x20\x7f,]+")
_WS = " \t"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a peer may send; exceeding one gives 513 (RFC 3261 §21.5.14)."""

    max_message: int = 65535
    max_headers: int = 256
    max_line: int = 8192


DEFAULT_LIMITS = Limits()


class Message:
    """What requests and responses share: headers, body and typed header views."""

    __slots__ = ("_body", "_raw", "headers")

    headers: Headers
    _body: bytes
    _raw: bytes | None

    is_request: bool = False
    is_response: bool = False

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

    def __bytes__(self) -> bytes:
        raw = self._raw
        if raw is not None and not self.headers.dirty:
            return raw
        headers = self.headers
        text = self._start_line() + "\r\n" + headers.render()
        if "content-length" not in headers._get_index():
            text += f"Content-Length: {len(self._body)}\r\n"
        return (text + "\r\n").encode("utf-8", "surrogateescape") + self._body

    def _typed(self, key: str, parse: Callable[[list[str]], T]) -> T:
        cache = self.headers._cache
        try:
            return cache[key]  # type: ignore[no-any-return]
        except KeyError:
            value = parse(self.headers._lines_by_key(key))
            cache[key] = value
            return value

    # --------------------------------------------------------- typed views

    @property
    def via(self) -> list[Via]:
        """Via values, top first (RFC 3261 §20.42)."""
        try:
            return list(self.headers._cache["via"])
        except KeyError:
            return list(self._typed("via", parse_vias))

    @via.setter
    def via(self, value: Iterable[Via]) -> None:
        self.headers.set_all("Via", [str(v) for v in value])

    @property
    def from_(self) -> NameAddr:
        """The From header (§20.20); raises SipParseError(400) when absent."""
        try:
            return self.headers._cache["from"]  # type: ignore[no-any-return]
        except KeyError:
            return self._typed("from", _single_name_addr("From"))

    @from_.setter
    def from_(self, value: NameAddr) -> None:
        self.headers.set("From", str(value))

    @property
    def to(self) -> NameAddr:
        """The To header (§20.39); raises SipParseError(400) when absent."""
        try:
            return self.headers._cache["to"]  # type: ignore[no-any-return]
        except KeyError:
            return self._typed("to", _single_name_addr("To"))

    @to.setter
    def to(self, value: NameAddr) -> None:
        self.headers.set("To", str(value))

    @property
    def from_tag(self) -> str | None:
        """The From tag (§19.3)."""
        return self.from_.tag

    @property
    def to_tag(self) -> str | None:
        """The To tag (§19.3); None outside a dialog."""
        return self.to.tag

    @property
    def call_id(self) -> str:
        """The Call-ID (§20.8)."""
        try:
            return self.headers._cache["call-id"]  # type: ignore[no-any-return]
        except KeyError:
            return self._typed("call-id", _parse_call_id)

    @call_id.setter
    def call_id(self, value: str) -> None:
        self.headers.set("Call-ID", value)

    @property
    def cseq(self) -> CSeq:
        """The CSeq (§20.16)."""
        try:
            return self.headers._cache["cseq"]  # type: ignore[no-any-return]
        except KeyError:
            return self._typed("cseq", _parse_cseq)

    @cseq.setter
    def cseq(self, value: CSeq) -> None:
        self.headers.set("CSeq", str(value))

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (§20.22, 0-255); None when absent (RFC 2543 peers, RFC 4475 inv2543)."""
        return self._typed("max-forwards", _parse_max_forwards)

    @max_forwards.setter
    def max_forwards(self, value: int | None) -> None:
        if value is None:
            self.headers.remove("Max-Forwards")
        else:
            self.headers.set("Max-Forwards", str(value))

    @property
    def contact(self) -> list[Contact]:
        """Contact values (§20.10), possibly one ``*``."""
        return list(self._typed("contact", parse_contacts))

    @contact.setter
    def contact(self, value: Iterable[Contact | NameAddr]) -> None:
        self.headers.set_all("Contact", [str(v) for v in value])

    @property
    def route(self) -> list[NameAddr]:
        """Route values, in order (§20.34)."""
        return list(self._typed("route", parse_name_addrs))

    @route.setter
    def route(self, value: Iterable[NameAddr]) -> None:
        self.headers.set_all("Route", [str(v) for v in value])

    @property
    def record_route(self) -> list[NameAddr]:
        """Record-Route values, in order (§20.30)."""
        return list(self._typed("record-route", parse_name_addrs))

    @record_route.setter
    def record_route(self, value: Iterable[NameAddr]) -> None:
        self.headers.set_all("Record-Route", [str(v) for v in value])

    @property
    def refer_to(self) -> NameAddr | None:
        """Refer-To (RFC 3515 §2.1)."""
        return self._typed("refer-to", _optional_name_addr("Refer-To"))

    @property
    def referred_by(self) -> NameAddr | None:
        """Referred-By (RFC 3892 §3)."""
        return self._typed("referred-by", _optional_name_addr("Referred-By"))

    @property
    def reply_to(self) -> NameAddr | None:
        """Reply-To (§20.31)."""
        return self._typed("reply-to", _optional_name_addr("Reply-To"))

    @property
    def p_asserted_identity(self) -> list[NameAddr]:
        """P-Asserted-Identity values (RFC 3325 §9.1)."""
        return list(self._typed("p-asserted-identity", parse_name_addrs))

    @property
    def expires(self) -> int | None:
        """Expires in seconds (§20.19); None when absent or invalid (RFC 4475 scalar02)."""
        return self._typed("expires", _lenient_delta)

    @property
    def min_expires(self) -> int | None:
        """Min-Expires in seconds (§20.23)."""
        return self._typed("min-expires", _lenient_delta)

    @property
    def content_length(self) -> int | None:
        """Content-Length (§20.14); None when absent."""
        return self._typed("content-length", _parse_content_length)

    @property
    def content_type(self) -> str | None:
        """The media type of Content-Type, lower-case and without parameters."""
        return self._typed("content-type", _parse_content_type)

    @property
    def allow(self) -> list[str]:
        """Allow: methods (§20.5)."""
        return list(self._typed("allow", parse_tokens))

    @property
    def supported(self) -> list[str]:
        """Supported option tags (§20.37)."""
        return list(self._typed("supported", parse_tokens))

    @property
    def require(self) -> list[str]:
        """Require option tags (§20.32)."""
        return list(self._typed("require", parse_tokens))

    @property
    def proxy_require(self) -> list[str]:
        """Proxy-Require option tags (§20.29)."""
        return list(self._typed("proxy-require", parse_tokens))

    @property
    def unsupported(self) -> list[str]:
        """Unsupported option tags (§20.40)."""
        return list(self._typed("unsupported", parse_tokens))

    @property
    def event(self) -> TokenParams | None:
        """Event (RFC 6665 §8.2.1): ``value`` is the package, ``params['id']``."""
        return self._typed("event", _optional(TokenParams.parse, "Event"))

    @property
    def subscription_state(self) -> TokenParams | None:
        """Subscription-State (RFC 6665 §8.2.3): state plus expires/reason params."""
        return self._typed("subscription-state", _optional(TokenParams.parse, "Subscription-State"))

    @property
    def session_expires(self) -> TokenParams | None:
        """Session-Expires (RFC 4028 §4): delta-seconds plus ``refresher``."""
        return self._typed("session-expires", _optional(TokenParams.parse, "Session-Expires"))

    @property
    def rseq(self) -> int | None:
        """RSeq (RFC 3262 §7.1)."""
        return self._typed("rseq", _optional(lambda v: parse_uint(v, "RSeq"), "RSeq"))

    @property
    def rack(self) -> RAck | None:
        """RAck (RFC 3262 §7.2)."""
        return self._typed("rack", _optional(RAck.parse, "RAck"))

    @property
    def replaces(self) -> Replaces | None:
        """Replaces (RFC 3891 §6.1)."""
        return self._typed("replaces", _optional(Replaces.parse, "Replaces"))

    @property
    def www_authenticate(self) -> list[Challenge]:
        """WWW-Authenticate challenges, one per header line (§20.44)."""
        return list(self._typed("www-authenticate", _challenges))

    @property
    def proxy_authenticate(self) -> list[Challenge]:
        """Proxy-Authenticate challenges (§20.27)."""
        return list(self._typed("proxy-authenticate", _challenges))

    @property
    def authorization(self) -> list[Credentials]:
        """Authorization credentials, one per header line (§20.7)."""
        return list(self._typed("authorization", _credentials))

    @property
    def proxy_authorization(self) -> list[Credentials]:
        """Proxy-Authorization credentials (§20.28)."""
        return list(self._typed("proxy-authorization", _credentials))


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
        self.headers = headers if isinstance(headers, Headers) else Headers(headers or ())
        self._body = bytes(body)
        self._raw = None

    def _set_uri(self, uri: Uri | str) -> None:
        if isinstance(uri, str):
            self._uri: Uri | None = None
            self._uri_text = uri
        else:
            self._uri = uri
            self._uri_text = str(uri)

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, limits: Limits = DEFAULT_LIMITS
    ) -> Request:
        """Parse bytes that must hold a request."""
        msg = parse_message(data, limits=limits)
        if not isinstance(msg, Request):
            raise SipParseError("Expected a request, got a response")
        return msg

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
        """The Request-URI, parsed by :func:`trunkline.sip.uri.parse_uri` on first access."""
        if self._uri is None:
            self._uri = parse_uri(self._uri_text)
        return self._uri

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
        clone.headers = self.headers.copy()
        clone._body = self._body
        clone._raw = self._raw
        return clone

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
        self.headers = headers if isinstance(headers, Headers) else Headers(headers or ())
        self._body = bytes(body)
        self._raw = None

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, limits: Limits = DEFAULT_LIMITS
    ) -> Response:
        """Parse bytes that must hold a response."""
        msg = parse_message(data, limits=limits)
        if not isinstance(msg, Response):
            raise SipParseError("Expected a response, got a request")
        return msg

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
        clone.headers = self.headers.copy()
        clone._body = self._body
        clone._raw = self._raw
        return clone

    def __repr__(self) -> str:
        return f"<Response {self._status} {self._reason}>"


# ------------------------------------------------------------- typed parsers


def _single(values: list[str], name: str) -> str:
    if not values:
        raise SipParseError(f"Missing {name} header")
    if len(values) > 1:
        raise SipParseError(f"Multiple {name} headers")
    return values[0]


def _single_name_addr(name: str) -> Callable[[list[str]], NameAddr]:
    def parse(values: list[str]) -> NameAddr:
        return NameAddr.parse(_single(values, name))

    return parse


def _optional(parse: Callable[[str], T], name: str) -> Callable[[list[str]], T | None]:
    def parse_optional(values: list[str]) -> T | None:
        return None if not values else parse(_single(values, name))

    return parse_optional


def _optional_name_addr(name: str) -> Callable[[list[str]], NameAddr | None]:
    return _optional(NameAddr.parse, name)


def _parse_call_id(values: list[str]) -> str:
    value = _single(values, "Call-ID")
    if _CALL_ID_RE.fullmatch(value) is None:
        raise SipParseError("Malformed Call-ID header")
    return value


def _parse_cseq(values: list[str]) -> CSeq:
    return CSeq.parse(_single(values, "CSeq"))


def _parse_max_forwards(values: list[str]) -> int | None:
    if not values:
        return None
    return parse_uint(_single(values, "Max-Forwards"), "Max-Forwards", 255)


def _parse_content_length(values: list[str]) -> int | None:
    if not values:
        return None
    return parse_uint(_single(values, "Content-Length"), "Content-Length")


def _lenient_delta(values: list[str]) -> int | None:
    if len(values) != 1:
        return None
    value = values[0]
    if not is_digits(value) or len(value) > 10:
        return None
    number = int(value)
    return number if number <= 2**32 - 1 else None


def _parse_content_type(values: list[str]) -> str | None:
    if not values:
        return None
    media = _single(values, "Content-Type").split(";", 1)[0].strip()
    kind, slash, sub = media.partition("/")
    if not slash or _TOKEN_RE.fullmatch(kind.strip()) is None:
        raise SipParseError("Malformed Content-Type header")
    if _TOKEN_RE.fullmatch(sub.strip()) is None:
        raise SipParseError("Malformed Content-Type header")
    return f"{kind.strip()}/{sub.strip()}".lower()


def _challenges(values: list[str]) -> list[Challenge]:
    # Imported here: the auth module builds on messages (no import cycle at load time).
    from trunkline.sip.auth import Challenge  # noqa: PLC0415

    return [Challenge.parse(v) for v in values]


def _credentials(values: list[str]) -> list[Credentials]:
    from trunkline.sip.auth import Credentials  # noqa: PLC0415

    return [Credentials.parse(v) for v in values]


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
        _split_host_port(hostport, "Request-URI")
    elif lowered != "tel":
        raise SipParseError(f"Unsupported URI scheme: {scheme[:32]}", 416)


def _check_version(version: str) -> None:
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version) is not None:
            raise SipParseError("SIP Version Not Supported", 505)
        raise SipParseError("Malformed SIP version")


def _split_head(head: str, limits: Limits) -> tuple[list[str], dict[str, list[str]]]:
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
    index: dict[str, list[str]] = {}
    known = _KEY_BY_NAME.get
    for line in lines:
        name, colon, value = line.partition(":")
        key = known(name)
        if key is None:
            if not colon or _NAME_RE.fullmatch(name) is None:
                raise SipParseError("Malformed header line")
            key = canonical_key(name)
        value = unfold(value) if folded and "\r\n" in value else value.strip(_WS)
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)
    return lines, index


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
    raw_lines, index = _split_head(lines, limits) if lines else ([], {})
    headers = Headers._parsed(raw_lines, index)
    cache = headers._cache

    msg: Request | Response
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
        if len(parts) != 3 or not parts[1]:
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

    # Mandatory header fields (§8.1.1; RFC 4475 §3.3.1 insuf, §3.3.8 multi01).
    get = index.get
    call_id = _parse_call_id(get("call-id") or [])
    cseq = CSeq.parse(_single(get("cseq") or [], "CSeq"))
    if msg.is_request and cseq.method != msg._method:  # type: ignore[union-attr]
        raise SipParseError("CSeq method does not match the request method")
    from_ = NameAddr.parse(_single(get("from") or [], "From"))
    to = NameAddr.parse(_single(get("to") or [], "To"))
    via_lines = get("via")
    if not via_lines:
        raise SipParseError("Missing Via header")
    cache["call-id"] = call_id
    cache["cseq"] = cseq
    cache["from"] = from_
    cache["to"] = to
    cache["via"] = parse_vias(via_lines)
    cache["max-forwards"] = _parse_max_forwards(index.get("max-forwards", []))
    contact_lines = index.get("contact")
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
    else:
        msg._body = data[body_start:]
        msg._raw = data
    msg.headers = headers
    return msg
