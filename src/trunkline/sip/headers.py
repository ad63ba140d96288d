"""Typed SIP header values (RFC 3261 §20, §25.1 and the RFCs cited per class).

Each class parses one header-field *value* with ``parse(text)`` and renders it
with ``str()``. Parsing raises :class:`~trunkline.sip.errors.SipParseError`
(status 400) with a precise reason, never anything else.

The values are immutable: ``params`` is typed ``Mapping`` and must not be
changed in place, because a message caches its typed views. To change a header
build a new value (``via.with_params(received=ip)``, ``to.with_tag(tag)``) and
assign it through the message (``msg.via = [...]``, ``msg.to = ...``) or edit
``msg.headers``; either marks the header dirty so it is re-rendered.

The ordered multi-list of header fields, :class:`Headers`, lives in
:mod:`trunkline.sip.headerfields` and is re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Self

from trunkline.sip.errors import SipParseError
from trunkline.sip.grammar import (
    format_params,
    is_digits,
    is_token,
    needs_quote,
    parse_params,
    parse_uint,
    quote,
    scan_quoted,
    split_commas,
    unquote,
)
from trunkline.sip.headerfields import Headers
from trunkline.sip.uri import Uri, parse_uri

__all__ = [
    "CSeq",
    "Contact",
    "Headers",
    "NameAddr",
    "RAck",
    "Replaces",
    "TokenParams",
    "Via",
    "parse_contacts",
    "parse_name_addrs",
    "parse_tokens",
    "parse_vias",
]

_WS = " \t"
_HOST_RE = re.compile(r"[A-Za-z0-9\-._]+|\[[0-9A-Fa-f:.]+\]")
_PORT_RE = re.compile(r"[0-9]{1,5}")
_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")  # RFC 3261 §25.1 qvalue
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")
_BAD_DISPLAY_RE = re.compile(r'[\x00-\x08\x0a-\x1f\x7f"<>@,;:\\/\[\]?={}()]')
_BAD_ADDR_SPEC_RE = re.compile(r"[\s,?<>\"]")
_BAD_URI_RE = re.compile(r"[\s<>\"]")


def _port(text: str, what: str) -> int:
    if _PORT_RE.fullmatch(text) is None or int(text) > 65535:
        raise SipParseError(f"Invalid port in {what}")
    return int(text)


# --------------------------------------------------------------------------- Via

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_VALUE = r"[^\s;,\"=<>]+"
_CANON_PARAMS = rf"((?:;{_TOKEN}(?:={_VALUE})?)*)"
_VIA_FAST_RE = re.compile(
    rf"SIP/2\.0/({_TOKEN}) ([A-Za-z0-9\-._]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{{1,5}}))?{_CANON_PARAMS}"
)
_BRANCH_RE = re.compile(r";branch=([^;]+)", re.IGNORECASE)
_TAG_RE = re.compile(r";tag=([^;]+)", re.IGNORECASE)


class _Params:
    """Header parameters kept as text until first use (the hot path reads one or two)."""

    __slots__ = ("_params", "_params_text")

    _params: Mapping[str, str | None] | None
    _params_text: str

    def _init_params(self, params: Mapping[str, str | None] | str | None) -> None:
        if isinstance(params, str):
            # Canonical text (validated by the caller's regular expression).
            self._params = None
            self._params_text = params
        else:
            self._params = {} if params is None else params
            self._params_text = ""

    @property
    def params(self) -> Mapping[str, str | None]:
        """Parameters: lower-case names, values as written, None for ``;flag``."""
        params = self._params
        if params is None:
            params = self._params = parse_params(self._params_text)
        return params

    def _render_params(self) -> str:
        return self._params_text if self._params is None else format_params(self._params)


class Via(_Params):
    """One ``via-parm`` (RFC 3261 §20.42, §25.1), e.g. ``SIP/2.0/UDP h:5060;branch=z9..``.

    ``transport`` is upper-case; ``host`` keeps IPv6 brackets. RFC 3581
    ``rport`` and RFC 5118 §4.5 ``received`` with or without brackets are
    accepted. Immutable: use :meth:`with_params` to derive a changed copy.
    """

    __slots__ = ("host", "port", "protocol", "transport")

    transport: str
    host: str
    port: int | None
    protocol: str

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: Mapping[str, str | None] | str | None = None,
        protocol: str = "SIP/2.0",
    ) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.protocol = protocol
        self._init_params(params)

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one via-parm (no commas)."""
        m = _VIA_FAST_RE.fullmatch(text)
        if m is not None:
            transport, host, port, params = m.groups()
            if port is not None and int(port) > 65535:
                raise SipParseError("Invalid port in Via")
            return cls(
                transport if transport.isupper() else transport.upper(),
                host,
                None if port is None else int(port),
                params,
            )
        return cls._parse_slow(text)

    @classmethod
    def _parse_slow(cls, text: str) -> Via:
        # sent-protocol = protocol-name SLASH protocol-version SLASH transport,
        # where SLASH allows LWS on both sides (RFC 4475 §3.1.1.1 wsinv).
        parts = text.split("/", 2)
        if len(parts) != 3:
            raise SipParseError("Malformed Via header")
        name, version, rest = parts[0].strip(_WS), parts[1].strip(_WS), parts[2].lstrip(_WS)
        if not is_token(name) or not is_token(version):
            raise SipParseError("Malformed Via sent-protocol")
        end = 0
        n = len(rest)
        while end < n and rest[end] not in " \t;":
            end += 1
        transport = rest[:end]
        if not is_token(transport):
            raise SipParseError("Malformed Via transport")
        rest = rest[end:]
        semi = rest.find(";")
        sent_by = rest if semi < 0 else rest[:semi]
        params_text = "" if semi < 0 else rest[semi:]
        sent_by = "".join(sent_by.split())
        if not sent_by:
            raise SipParseError("Missing Via sent-by")
        host, port = _split_host_port(sent_by, "Via")
        return cls(
            transport.upper(),
            host,
            port,
            parse_params(params_text, "Via"),
            f"{name.upper()}/{version}",
        )

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (RFC 3261 §8.1.1.7), None when absent."""
        if self._params is None:
            m = _BRANCH_RE.search(self._params_text)
            return None if m is None else m.group(1)
        return self._params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (RFC 3261 §18.2.1)."""
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The ``rport`` value filled in by a server (RFC 3581 §4), else None."""
        value = self.params.get("rport")
        if value is None or not is_digits(value) or len(value) > 5:
            return None
        return int(value)

    @property
    def rport_requested(self) -> bool:
        """True when the client asked for ``rport`` (RFC 3581 §3)."""
        return "rport" in self.params

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter."""
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        """The ``ttl`` parameter (0-255), None when absent or invalid."""
        value = self.params.get("ttl")
        if value is None or not is_digits(value) or len(value) > 3 or int(value) > 255:
            return None
        return int(value)

    @property
    def sent_by(self) -> str:
        """``host`` or ``host:port`` as sent (used for transaction matching, §17.2.3)."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, **params: str | None) -> Via:
        """A copy with ``params`` added or replaced (``None`` gives a bare ``;name``)."""
        merged = dict(self.params)
        merged.update(params)
        return Via(self.transport, self.host, self.port, merged, self.protocol)

    def without_params(self, *names: str) -> Via:
        """A copy without the named parameters."""
        kept = {k: v for k, v in self.params.items() if k not in names}
        return Via(self.transport, self.host, self.port, kept, self.protocol)

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{self._render_params()}"

    def __repr__(self) -> str:
        return f"Via({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return (
            self.transport == other.transport
            and self.host.lower() == other.host.lower()
            and self.port == other.port
            and self.protocol == other.protocol
            and dict(self.params) == dict(other.params)
        )

    def __hash__(self) -> int:
        return hash((self.transport, self.host.lower(), self.port))


def _split_host_port(text: str, what: str) -> tuple[str, int | None]:
    """Split ``host [":" port]``; IPv6 references must be bracketed (RFC 5118 §4.2)."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise SipParseError(f"Unterminated IPv6 reference in {what}")
        host, rest = text[: close + 1], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"Malformed host in {what}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
    if _HOST_RE.fullmatch(host) is None:
        raise SipParseError(f"Malformed host in {what}")
    return host, None if port_text is None else _port(port_text, what)


def parse_vias(values: Iterable[str]) -> list[Via]:
    """Parse Via header-field values (each possibly comma-separated), top first."""
    vias: list[Via] = []
    for value in values:
        if "," not in value:
            vias.append(Via.parse(value))
            continue
        items = split_commas(value)
        for item in items:
            if not item:
                raise SipParseError("Empty Via value")
            vias.append(Via.parse(item))
    return vias


# ---------------------------------------------------------------- name-addr


class NameAddr(_Params):
    """``name-addr`` / ``addr-spec`` with header parameters (RFC 3261 §20.10, §20.20).

    Used for From, To, Route, Record-Route, Refer-To, Referred-By, Reply-To,
    P-Asserted-Identity. ``display_name`` is the unquoted text (None when
    absent). The URI is parsed on first access of :attr:`uri` (by
    :func:`trunkline.sip.uri.parse_uri`); :attr:`uri_text` is the raw string.
    Immutable: derive changed copies with :meth:`with_tag`/:meth:`with_params`.
    """

    __slots__ = ("_uri", "_uri_text", "display_name")

    display_name: str | None

    def __init__(
        self,
        display_name: str | None,
        uri: Uri | str,
        params: Mapping[str, str | None] | str | None = None,
    ) -> None:
        self.display_name = display_name
        if isinstance(uri, str):
            self._uri: Uri | None = None
            self._uri_text = uri
        else:
            self._uri = uri
            self._uri_text = str(uri)
        self._init_params(params)

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse one value (no comma splitting)."""
        m = _NAME_ADDR_FAST_RE.fullmatch(text)
        if m is not None:
            return cls._from_groups(*m.groups())
        m = _ADDR_SPEC_FAST_RE.fullmatch(text)
        if m is not None:
            return cls(None, m.group(1), m.group(2))
        display, uri_text, params_text = _split_name_addr(text)
        return cls(display, uri_text, parse_params(params_text) if params_text else {})

    @classmethod
    def _from_groups(
        cls, quoted: str | None, plain: str | None, uri_text: str, params: str
    ) -> Self:
        """Build from the groups of the fast name-addr expression."""
        if quoted is not None:
            display = quoted if "\\" not in quoted else unquote(f'"{quoted}"')
        else:
            display = (plain or "").strip(_WS) or None
        return cls(display, uri_text, params)

    @classmethod
    def _parse_list_fast(cls, text: str) -> list[Self] | None:
        """Parse ``name-addr *(COMMA name-addr)`` in canonical form, or None to fall back."""
        result: list[Self] = []
        match = _NAME_ADDR_ITEM_RE.match
        pos = 0
        end = len(text)
        while pos < end:
            m = match(text, pos)
            if m is None:
                return None
            result.append(cls._from_groups(*m.group(1, 2, 3, 4)))
            pos = m.end()
        if not result or text.rstrip(_WS).endswith(","):
            return None
        return result

    @property
    def uri(self) -> Uri:
        """The parsed URI (SipUri, TelUri or AbsoluteUri); raises SipParseError."""
        if self._uri is None:
            self._uri = parse_uri(self._uri_text)
        return self._uri

    @property
    def uri_text(self) -> str:
        """The URI exactly as received (or as ``str(uri)`` when built from a Uri)."""
        return self._uri_text

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 §19.3)."""
        if self._params is None:
            m = _TAG_RE.search(self._params_text)
            return None if m is None else m.group(1)
        return self._params.get("tag")

    def with_tag(self, tag: str) -> Self:
        """A copy with ``;tag=`` set."""
        return self.with_params(tag=tag)

    def with_params(self, **params: str | None) -> Self:
        """A copy with ``params`` added or replaced."""
        merged = dict(self.params)
        merged.update(params)
        return self._copy(merged)

    def without_params(self, *names: str) -> Self:
        """A copy without the named parameters."""
        return self._copy({k: v for k, v in self.params.items() if k not in names})

    def _copy(self, params: Mapping[str, str | None]) -> Self:
        clone = self.__class__.__new__(self.__class__)
        clone.display_name = self.display_name
        clone._uri = self._uri
        clone._uri_text = self._uri_text
        clone._init_params(params)
        return clone

    def __str__(self) -> str:
        display = self.display_name
        if display is None:
            head = f"<{self._uri_text}>"
        elif needs_quote(display):
            head = f"{quote(display)} <{self._uri_text}>"
        else:
            head = f"{display} <{self._uri_text}>"
        return head + self._render_params()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return (
            self.display_name == other.display_name
            and self._uri_text == other._uri_text
            and dict(self.params) == dict(other.params)
        )

    def __hash__(self) -> int:
        return hash((self.display_name, self._uri_text))


_NAME_ADDR_FAST_RE = re.compile(
    r'(?:"((?:[^"\\\x00-\x1f\x7f]|\\[^\r\n])*)"[ \t]*|([A-Za-z0-9\-.!%*_+`\'~ \t]*))'
    r'<([A-Za-z][A-Za-z0-9+\-.]*:[^<>\s"]*)>' + _CANON_PARAMS
)
_LIST_SEP = r"[ \t]*(?:,[ \t]*|\Z)"
_NAME_ADDR_ITEM_RE = re.compile(_NAME_ADDR_FAST_RE.pattern + _LIST_SEP)
_ADDR_SPEC_FAST_RE = re.compile(r'([A-Za-z][A-Za-z0-9+\-.]*:[^\s;,?<>"]+)' + _CANON_PARAMS)


def _split_name_addr(text: str) -> tuple[str | None, str, str]:
    """Split a value into (display name, URI text, parameter text)."""
    text = text.strip(_WS)
    display: str | None = None
    if text.startswith('"'):
        end = scan_quoted(text, 0)
        display = unquote(text[:end])
        lt = end
        n = len(text)
        while lt < n and text[lt] in _WS:
            lt += 1
        if lt >= n or text[lt] != "<":
            raise SipParseError("Expected '<' after quoted display name")
    else:
        lt = text.find("<")
        if lt < 0:
            # addr-spec: parameters after the URI belong to the header (§20.10),
            # and a URI with ',', '?' or ';' must have been in <> (RFC 4475 regbadct).
            semi = text.find(";")
            uri_text = text if semi < 0 else text[:semi].rstrip(_WS)
            if not uri_text or _BAD_ADDR_SPEC_RE.search(uri_text) is not None:
                raise SipParseError("Malformed addr-spec (URI must be enclosed in <>)")
            if _SCHEME_RE.match(uri_text) is None:
                raise SipParseError("Missing URI scheme")
            return None, uri_text, "" if semi < 0 else text[semi:]
        raw = text[:lt].strip(_WS)
        if raw:
            if _BAD_DISPLAY_RE.search(raw) is not None:
                raise SipParseError("Invalid character in display name")
            display = raw
    gt = text.find(">", lt + 1)
    if gt < 0:
        raise SipParseError("Unterminated '<' in name-addr")
    uri_text = text[lt + 1 : gt]
    if not uri_text or _BAD_URI_RE.search(uri_text) is not None:
        raise SipParseError("Malformed URI in name-addr")
    if _SCHEME_RE.match(uri_text) is None:
        raise SipParseError("Missing URI scheme")
    return display, uri_text, text[gt + 1 :]


def parse_name_addrs(values: Iterable[str]) -> list[NameAddr]:
    """Parse comma-separated name-addr lists (Route, Record-Route, P-Asserted-Identity)."""
    result: list[NameAddr] = []
    for value in values:
        fast = NameAddr._parse_list_fast(value)
        if fast is not None:
            result.extend(fast)
            continue
        for item in split_commas(value):
            if not item:
                raise SipParseError("Empty name-addr value")
            result.append(NameAddr.parse(item))
    return result


class Contact(NameAddr):
    """A Contact value (RFC 3261 §20.10): a name-addr with ``expires``/``q``, or ``*``."""

    __slots__ = ("star",)

    star: bool

    def __init__(
        self,
        display_name: str | None,
        uri: Uri | str,
        params: Mapping[str, str | None] | str | None = None,
        *,
        star: bool = False,
    ) -> None:
        super().__init__(display_name, uri, params)
        self.star = star

    @classmethod
    def parse(cls, text: str) -> Self:
        if text.strip(_WS) == "*":
            return cls(None, "*", star=True)
        return super().parse(text)

    @classmethod
    def wildcard(cls) -> Contact:
        """``Contact: *`` (REGISTER removing all bindings, §10.2.2)."""
        return cls(None, "*", star=True)

    def _copy(self, params: Mapping[str, str | None]) -> Self:
        clone = super()._copy(params)
        clone.star = self.star
        return clone

    @property
    def expires(self) -> int | None:
        """The ``expires`` parameter; None when absent or not a valid delta (RFC 4475 scalar02)."""
        value = self.params.get("expires")
        if value is None or not is_digits(value) or len(value) > 10:
            return None
        number = int(value)
        return number if number <= 2**32 - 1 else None

    @property
    def q(self) -> float | None:
        """The ``q`` parameter (``qvalue``, 0 to 1), None when absent or invalid."""
        value = self.params.get("q")
        if value is None or _QVALUE_RE.fullmatch(value) is None:
            return None
        return float(value)

    def __str__(self) -> str:
        return "*" if self.star else super().__str__()


def parse_contacts(values: Iterable[str]) -> list[Contact]:
    """Parse Contact values; ``*`` must stand alone (§10.3 step 6 checks the rest)."""
    result: list[Contact] = []
    for value in values:
        fast = Contact._parse_list_fast(value)
        if fast is not None:
            result.extend(fast)
            continue
        for item in split_commas(value):
            if not item:
                raise SipParseError("Empty Contact value")
            result.append(Contact.parse(item))
    if len(result) > 1 and any(c.star for c in result):
        raise SipParseError("Contact '*' mixed with other contacts")
    return result


# ------------------------------------------------------------ small values


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 1*DIGIT LWS Method`` (RFC 3261 §20.16); number below 2**32."""

    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2:
            raise SipParseError("Malformed CSeq header")
        number = parse_uint(parts[0], "CSeq number")
        if not is_token(parts[1]):
            raise SipParseError("Malformed CSeq method")
        return cls(number, parts[1])

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


@dataclass(frozen=True, slots=True)
class RAck:
    """``RAck: response-num LWS CSeq-num LWS Method`` (RFC 3262 §7.2)."""

    rseq: int
    cseq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> RAck:
        parts = text.split()
        if len(parts) != 3 or not is_token(parts[2]):
            raise SipParseError("Malformed RAck header")
        return cls(parse_uint(parts[0], "RAck"), parse_uint(parts[1], "RAck"), parts[2])

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


@dataclass(frozen=True, slots=True)
class TokenParams:
    """A token (or other word) followed by parameters.

    The shape of Event (RFC 6665 §8.2.1), Subscription-State (§8.2.3),
    Session-Expires (RFC 4028 §4), Content-Disposition (RFC 3261 §20.11) and
    Reason (RFC 3326): ``value`` is as written, ``params`` lower-cased names.
    """

    value: str
    params: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> TokenParams:
        text = text.strip(_WS)
        semi = text.find(";")
        value = (text if semi < 0 else text[:semi]).rstrip(_WS)
        if not value or any(ch in value for ch in ' \t"<>,'):
            raise SipParseError("Malformed header value")
        return cls(value, parse_params(text[semi:]) if semi >= 0 else {})

    def param(self, name: str) -> str | None:
        """A parameter's text with quotes removed."""
        value = self.params.get(name)
        return None if value is None else unquote(value)

    def __str__(self) -> str:
        return self.value + format_params(self.params)


@dataclass(frozen=True, slots=True)
class Replaces:
    """``Replaces: call-id;to-tag=..;from-tag=..[;early-only]`` (RFC 3891 §6.1)."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False
    params: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Replaces:
        text = text.strip(_WS)
        semi = text.find(";")
        if semi <= 0:
            raise SipParseError("Malformed Replaces header")
        call_id = text[:semi].rstrip(_WS)
        params = parse_params(text[semi:], "Replaces")
        to_tag = params.get("to-tag")
        from_tag = params.get("from-tag")
        if not call_id or to_tag is None or from_tag is None:
            raise SipParseError("Replaces needs a Call-ID, to-tag and from-tag")
        return cls(call_id, to_tag, from_tag, "early-only" in params, params)

    def __str__(self) -> str:
        return self.call_id + format_params(self.params)


def parse_tokens(values: Iterable[str]) -> list[str]:
    """A comma-separated token list (Allow, Supported, Require, ...); empties skipped."""
    tokens: list[str] = []
    for value in values:
        for part in value.split(","):
            item = part.strip()
            if item:
                if not is_token(item):
                    raise SipParseError(f"Invalid token {item[:40]!r}")
                tokens.append(item)
    return tokens


def parse_delta(value: str | None, what: str) -> int | None:
    """A ``delta-seconds`` header (Expires, Min-Expires); None when absent."""
    if value is None:
        return None
    return parse_uint(value, what)
