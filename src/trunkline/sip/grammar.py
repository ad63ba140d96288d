"""Tokenizer helpers shared by the SIP header parsers (RFC 3261 §25.1).

Everything here is linear in the length of its input: scanners walk the text
once and regular expressions have no nested or overlapping quantifiers, so a
hostile peer cannot make parsing super-linear (RFC 3261 §26.1.5 asks elements
to survive malformed input; STYLE.md habit 4 asks for our own error only).

Conventions used by the typed header values:

* parameters are an ordered ``dict`` of lower-case names to values; a value is
  ``None`` for a bare ``;name`` and is kept *as written* otherwise (a
  quoted-string keeps its quotes, so rendering gives back what was received);
  :func:`unquote` turns such a value into its text;
* comma splitting honours quoted strings and ``<...>`` (RFC 3261 §7.3.1: a
  header field whose grammar is a comma-separated list may be split into
  several lines and vice versa).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import FrozenInstanceError
from types import MappingProxyType
from typing import Any, NoReturn, Self

from trunkline.sip.errors import SipParseError

__all__ = [
    "CANON_PARAMS",
    "TOKEN",
    "TOKEN_RE",
    "LazyParams",
    "format_params",
    "is_digits",
    "is_token",
    "parse_params",
    "parse_port",
    "parse_uint",
    "quote",
    "split_commas",
    "split_host_port",
    "unquote",
]

TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
"""RFC 3261 §25.1 ``token``."""

_token_fullmatch = TOKEN_RE.fullmatch
_NEEDS_QUOTE_RE = re.compile(r"[^A-Za-z0-9\-.!%*_+`'~ ]")
_ESCAPE_RE = re.compile(r'(["\\])')
_PARAM_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# A param value: a token-ish run (also the characters that appear in
# host/IPv6 values and URI-ish values, e.g. received=[2001:db8::9]) or a
# quoted string. Kept permissive; the specific header decides what it means.
_PARAM_VALUE_RE = re.compile(r"[^\s;,\"=<>]+")
_WS = " \t"


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 ``token``."""
    return _token_fullmatch(text) is not None


def quote(text: str) -> str:
    """Render ``text`` as a quoted-string, escaping ``"`` and ``\\``."""
    return '"' + _ESCAPE_RE.sub(r"\\\1", text) + '"'


def needs_quote(text: str) -> bool:
    """True when ``text`` cannot be written as ``*(token LWS)`` (display names)."""
    return not text or _NEEDS_QUOTE_RE.search(text) is not None or text != text.strip()


def unquote(text: str) -> str:
    """The text of a quoted-string (quoted-pairs resolved); other text unchanged."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" not in inner:
            return inner
        out: list[str] = []
        i = 0
        n = len(inner)
        while i < n:
            ch = inner[i]
            if ch == "\\" and i + 1 < n:
                out.append(inner[i + 1])
                i += 2
            else:
                out.append(ch)
                i += 1
        return "".join(out)
    return text


def scan_quoted(text: str, start: int) -> int:
    """Index just past the quoted-string that opens at ``text[start]`` (a ``"``).

    Raises ``SipParseError(400)`` when the closing quote is missing
    (RFC 4475 §3.1.2.6 quotbal).
    """
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return i + 1
        if ch == "\\":
            i += 2
        else:
            i += 1
    raise SipParseError("Unterminated quoted string")


def split_commas(text: str) -> list[str]:
    """Split a header value at commas outside quoted strings and ``<...>``.

    Items are stripped of surrounding whitespace. Empty items are kept (as
    ``""``) so callers can decide whether the grammar allows them.
    """
    if "," not in text:
        return [text.strip()]
    if '"' not in text:
        parts = text.split(",")
        if "<" not in text:
            return [part.strip() for part in parts]
        # Commas inside <...> (URI parameters/headers) do not separate values.
        merged: list[str] = []
        pending = ""
        for part in parts:
            pending = part if not pending else pending + "," + part
            if pending.count("<") <= pending.count(">"):
                merged.append(pending.strip())
                pending = ""
        if pending:
            raise SipParseError("Unterminated '<' in header value")
        return merged
    items: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i = scan_quoted(text, i)
            continue
        if ch == "<":
            close = text.find(">", i + 1)
            if close < 0:
                raise SipParseError("Unterminated '<' in header value")
            i = close + 1
            continue
        if ch == ",":
            items.append(text[start:i].strip())
            start = i + 1
        i += 1
    items.append(text[start:].strip())
    return items


def parse_params(text: str, what: str = "header") -> dict[str, str | None]:
    """Parse ``*( SEMI generic-param )`` (RFC 3261 §25.1) from ``text``.

    ``text`` starts at the first ``;`` (or is empty). Whitespace around ``;``
    and ``=`` is allowed (SEMI and EQUAL include SWS). Names are lower-cased;
    values are kept as written (quoted strings keep their quotes).
    """
    params: dict[str, str | None] = {}
    if not text:
        return params
    if '"' not in text:
        # Fast path: no quoted strings, so ';' and '=' are plain delimiters.
        parts = text.split(";")
        if parts[0].strip(_WS):
            raise SipParseError(f"Malformed {what} parameters")
        for part in parts[1:]:
            name, eq, value = part.partition("=")
            name = name.strip(_WS)
            if not name or _token_fullmatch(name) is None:
                raise SipParseError(f"Malformed {what} parameter")
            if eq:
                value = value.strip(_WS)
                if not value or _PARAM_VALUE_RE.fullmatch(value) is None:
                    raise SipParseError(f"Malformed {what} parameter value")
                params[name.lower()] = value
            else:
                params[name.lower()] = None
        return params
    i = 0
    n = len(text)
    while True:
        while i < n and text[i] in _WS:
            i += 1
        if i >= n:
            return params
        if text[i] != ";":
            raise SipParseError(f"Malformed {what} parameters")
        i += 1
        while i < n and text[i] in _WS:
            i += 1
        m = _PARAM_NAME_RE.match(text, i)
        if m is None:
            raise SipParseError(f"Malformed {what} parameter")
        name = m.group().lower()
        i = m.end()
        while i < n and text[i] in _WS:
            i += 1
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in _WS:
                i += 1
            if i < n and text[i] == '"':
                end = scan_quoted(text, i)
                params[name] = text[i:end]
                i = end
            else:
                m = _PARAM_VALUE_RE.match(text, i)
                if m is None:
                    raise SipParseError(f"Malformed {what} parameter value")
                params[name] = m.group()
                i = m.end()
        else:
            params[name] = None


def format_params(params: Mapping[str, str | None]) -> str:
    """Render parameters as ``;name=value`` pairs (values as stored)."""
    if not params:
        return ""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def is_digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits (``str.isdigit`` alone accepts "²")."""
    return text.isascii() and text.isdigit()


def parse_uint(text: str, what: str, maximum: int = 2**32 - 1) -> int:
    """Parse a decimal count (``1*DIGIT``), rejecting values above ``maximum``.

    Leading zeros are legal (RFC 4475 §3.1.1.1 wsinv: ``Max-Forwards: 0068``);
    the digit count is bounded before converting so huge inputs stay cheap.
    """
    if len(text) < 10 and text.isdigit() and text.isascii():
        number = int(text)
        if number > maximum:
            raise SipParseError(f"{what} out of range")
        return number
    text = text.strip(_WS)
    if not text.isdigit() or not text.isascii():
        raise SipParseError(f"Invalid {what}")
    stripped = text.lstrip("0")
    if len(stripped) > len(str(maximum)) or (stripped and int(stripped) > maximum):
        raise SipParseError(f"{what} out of range")
    return int(stripped) if stripped else 0


# ------------------------------------------------------- parameters kept as text

TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
"""``token`` as a regular-expression fragment."""
CANON_PARAMS = rf"((?:;{TOKEN}(?:=[^\s;,\"=<>]+)?)*)"
"""Parameters in canonical form (no LWS, no quoted strings) as one capturing group."""

_HOST_RE = re.compile(r"[A-Za-z0-9\-._]+|\[[0-9A-Fa-f:.]+\]")
_PORT_RE = re.compile(r"[0-9]{1,5}")


def parse_port(text: str, what: str) -> int:
    """A port number (1-5 digits, at most 65535)."""
    if _PORT_RE.fullmatch(text) is None or int(text) > 65535:
        raise SipParseError(f"Invalid port in {what}")
    return int(text)


def split_host_port(text: str, what: str) -> tuple[str, int | None]:
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
    return host, None if port_text is None else parse_port(port_text, what)


INTERN_LIMIT = 4096
"""Entries per interning table (header text to parsed value) before it starts afresh.

The messages of one call repeat most header values: From and To in every
request and response, the Vias of a transaction in each of its responses, the
proxy's own Record-Route URI in every in-dialog Route. The typed values are
immutable, so one parsed object can serve every message that carries the same
text; tables hold at most this many entries and are simply cleared when full.
"""


set_slot = object.__setattr__
"""Sets a slot of an immutable header value (what its own constructors use)."""

NO_PARAMS: Mapping[str, str | None] = MappingProxyType({})


def read_only_params(params: Mapping[str, str | None] | None) -> Mapping[str, str | None]:
    """A read-only copy of ``params``: a caller's dict cannot change a shared value later."""
    return MappingProxyType(dict(params)) if params else NO_PARAMS


class LazyParams:
    """Header parameters kept as text until first use (the hot path reads one or two).

    Base of the typed header values (Via, NameAddr, Contact). They are
    immutable, because parsed values are interned and shared among messages
    (:data:`INTERN_LIMIT`): assigning an attribute raises
    ``dataclasses.FrozenInstanceError`` and :attr:`params` is read-only.
    """

    __slots__ = ("_params", "_params_text")

    _params: Mapping[str, str | None] | None
    _params_text: str

    def _init_params(self, params: Mapping[str, str | None] | str | None) -> None:
        if isinstance(params, str):
            # Canonical text (validated by the caller's regular expression).
            set_slot(self, "_params", None)
            set_slot(self, "_params_text", params)
        else:
            set_slot(self, "_params", read_only_params(params))
            set_slot(self, "_params_text", "")

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise FrozenInstanceError(
            f"{type(self).__name__} is immutable: derive a changed copy (with_params, ...)"
        )

    def __delattr__(self, name: str) -> NoReturn:
        raise FrozenInstanceError(f"{type(self).__name__} is immutable")

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    @property
    def params(self) -> Mapping[str, str | None]:
        """Parameters (read-only): lower-case names, values as written, None for ``;flag``."""
        params = self._params
        if params is None:
            params = MappingProxyType(parse_params(self._params_text))
            set_slot(self, "_params", params)
        return params

    def _render_params(self) -> str:
        return self._params_text if self._params is None else format_params(self._params)
