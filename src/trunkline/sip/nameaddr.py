"""Name-addr header values: From, To, Contact, Route, Record-Route, ... (RFC 3261 §20.10).

``name-addr = [display-name] "<" addr-spec ">"`` followed by header
parameters; ``addr-spec`` without ``<>`` is allowed where RFC 3261 §20
allows it, and then everything after the first ``;`` is a header parameter
(RFC 4475 §3.3.12 cparam01). The URI stays text until :attr:`NameAddr.uri`
is read.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any, Self, TypeVar

from trunkline.sip.errors import SipParseError
from trunkline.sip.grammar import (
    CANON_PARAMS,
    INTERN_LIMIT,
    LazyParams,
    is_digits,
    needs_quote,
    parse_params,
    quote,
    scan_quoted,
    set_slot,
    split_commas,
    unquote,
)
from trunkline.sip.uri import Uri, parse_uri

__all__ = ["Contact", "NameAddr", "intern_name_addr", "parse_contacts", "parse_name_addrs"]

_WS = " \t"
_TAG_RE = re.compile(r";tag=([^;]+)", re.IGNORECASE)
_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")  # RFC 3261 §25.1 qvalue
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")
_BAD_DISPLAY_RE = re.compile(r'[\x00-\x08\x0a-\x1f\x7f"<>@,;:\\/\[\]?={}()]')
_BAD_ADDR_SPEC_RE = re.compile(r"[\s,?<>\"]")
_BAD_URI_RE = re.compile(r"[\s<>\"]")


class _Unset(enum.Enum):
    """Marks the tag not looked up yet (None is a valid answer: no tag)."""

    UNSET = 0


class NameAddr(LazyParams):
    """``name-addr`` / ``addr-spec`` with header parameters (RFC 3261 §20.10, §20.20).

    Used for From, To, Route, Record-Route, Refer-To, Referred-By, Reply-To,
    P-Asserted-Identity. ``display_name`` is the unquoted text (None when
    absent). The URI is parsed on first access of :attr:`uri` (by
    :func:`trunkline.sip.uri.parse_uri`); :attr:`uri_text` is the raw string.
    Immutable: derive changed copies with :meth:`with_tag`/:meth:`with_params`.
    """

    __slots__ = ("_tag", "_uri", "_uri_text", "display_name")

    display_name: str | None
    _uri: Uri | None
    _uri_text: str
    _tag: str | _Unset | None

    def __init__(
        self,
        display_name: str | None,
        uri: Uri | str,
        params: Mapping[str, str | None] | str | None = None,
    ) -> None:
        set_slot(self, "display_name", display_name)
        if isinstance(uri, str):
            set_slot(self, "_uri", None)
            set_slot(self, "_uri_text", uri)
        else:
            set_slot(self, "_uri", uri)
            set_slot(self, "_uri_text", str(uri))
        set_slot(self, "_tag", _Unset.UNSET)
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
        display: str | None
        if quoted is not None:
            display = quoted if "\\" not in quoted else unquote(f'"{quoted}"')
        else:
            display = (plain or "").strip(_WS) or None
        if cls is NameAddr:
            # Hot path (From, To, Route): skip __init__'s type checks.
            self = cls.__new__(cls)
            set_slot(self, "display_name", display)
            set_slot(self, "_uri", None)
            set_slot(self, "_uri_text", uri_text)
            set_slot(self, "_params", None)
            set_slot(self, "_params_text", params)
            set_slot(self, "_tag", _Unset.UNSET)
            return self
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
        uri = self._uri
        if uri is None:
            uri = parse_uri(self._uri_text)
            set_slot(self, "_uri", uri)
        return uri

    @property
    def uri_text(self) -> str:
        """The URI exactly as received (or as ``str(uri)`` when built from a Uri)."""
        return self._uri_text

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 §19.3).

        Read for every message (dialog and transaction matching, §12.2, §17.2.3)
        from values shared by a whole call (interned From and To), so it is
        found once per value and kept in a slot, set on first read.
        """
        tag = self._tag
        if tag is not _Unset.UNSET:
            return tag
        if self._params is None:
            m = _TAG_RE.search(self._params_text)
            tag = None if m is None else m.group(1)
        else:
            tag = self._params.get("tag")
        set_slot(self, "_tag", tag)
        return tag

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
        set_slot(clone, "display_name", self.display_name)
        set_slot(clone, "_uri", self._uri)
        set_slot(clone, "_uri_text", self._uri_text)
        set_slot(clone, "_tag", _Unset.UNSET)
        clone._init_params(params)
        return clone

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__.parse, (str(self),))

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
    r'<([A-Za-z][A-Za-z0-9+\-.]*:[^<>\s"]*)>' + CANON_PARAMS
)
_LIST_SEP = r"[ \t]*(?:,[ \t]*|\Z)"
_NAME_ADDR_ITEM_RE = re.compile(_NAME_ADDR_FAST_RE.pattern + _LIST_SEP)
_ADDR_SPEC_FAST_RE = re.compile(r'([A-Za-z][A-Za-z0-9+\-.]*:[^\s;,?<>"]+)' + CANON_PARAMS)


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


_NAME_ADDRS: dict[str, NameAddr] = {}
_NAME_ADDR_LISTS: dict[str, tuple[NameAddr, ...]] = {}
_T = TypeVar("_T", bound="NameAddr")


def intern_name_addr(text: str) -> NameAddr:
    """``NameAddr.parse(text)``, sharing one value among messages with the same text.

    From and To repeat in every message of a call; the shared value also
    keeps its parsed URI (see :data:`~trunkline.sip.grammar.INTERN_LIMIT`).
    """
    value = _NAME_ADDRS.get(text)
    if value is None:
        value = NameAddr.parse(text)
        if len(_NAME_ADDRS) >= INTERN_LIMIT:
            _NAME_ADDRS.clear()
        _NAME_ADDRS[text] = value
    return value


def parse_name_addrs(values: Iterable[str]) -> list[NameAddr]:
    """Parse comma-separated name-addr lists (Route, Record-Route, P-Asserted-Identity).

    Each line's values are interned (a proxy's own Record-Route comes back in
    the Route of every in-dialog request, RFC 3261 §16.12).
    """
    return _parse_lists(NameAddr, values, _NAME_ADDR_LISTS, "name-addr")


def _parse_lists(
    kind: type[_T], values: Iterable[str], memo: dict[str, tuple[_T, ...]], what: str
) -> list[_T]:
    """Parse comma-separated ``kind`` values, each line's list interned in ``memo``."""
    result: list[_T] = []
    for value in values:
        known = memo.get(value)
        if known is not None:
            result.extend(known)
            continue
        items = kind._parse_list_fast(value)
        if items is None:
            items = []
            for item in split_commas(value):
                if not item:
                    raise SipParseError(f"Empty {what} value")
                items.append(kind.parse(item))
        result.extend(items)
        if len(memo) >= INTERN_LIMIT:
            memo.clear()
        memo[value] = tuple(items)
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
        set_slot(self, "star", star)

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
        set_slot(clone, "star", self.star)
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


_CONTACT_LISTS: dict[str, tuple[Contact, ...]] = {}


def parse_contacts(values: Iterable[str]) -> list[Contact]:
    """Parse Contact values; ``*`` must stand alone (§10.3 step 6 checks the rest).

    Each line's values are interned: a UA sends the same Contact in every
    message of a dialog (RFC 3261 §12.1), and the values are immutable.
    """
    result = _parse_lists(Contact, values, _CONTACT_LISTS, "Contact")
    if len(result) > 1 and any(c.star for c in result):
        raise SipParseError("Contact '*' mixed with other contacts")
    return result
