"""The header section of a SIP message as an ordered multi-list (RFC 3261 §7.3).

Header field names are case-insensitive and every compact form equals its long
form (RFC 3261 §7.3.3, §20; later RFCs per the IANA "Header Fields" registry,
cited in :data:`COMPACT_FORMS`). Fields keep their order and may repeat
(Via, Route, Record-Route, unknown headers), so :class:`Headers` is a list of
``(name, value)`` lines, never a dict.

Each line received from the network keeps its original text; a line that is
never edited is written back byte for byte, including folding and odd case.
Comma-separated values are split only for header fields whose grammar is a
list (§7.3.1); never for the authentication headers or Date, whose values
contain commas of their own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from trunkline.sip.errors import SipParseError
from trunkline.sip.grammar import split_commas

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "Headers",
    "Values",
    "canonical_key",
    "item_from_line",
    "register_list_view",
    "unfold",
]

COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",  # RFC 3841 §9.2
    "b": "Referred-By",  # RFC 3892 §3
    "c": "Content-Type",  # RFC 3261 §20.15
    "d": "Request-Disposition",  # RFC 3841 §9.1
    "e": "Content-Encoding",  # RFC 3261 §20.12
    "f": "From",  # RFC 3261 §20.20
    "i": "Call-ID",  # RFC 3261 §20.8
    "j": "Reject-Contact",  # RFC 3841 §9.3
    "k": "Supported",  # RFC 3261 §20.37
    "l": "Content-Length",  # RFC 3261 §20.14
    "m": "Contact",  # RFC 3261 §20.10
    "n": "Identity-Info",  # RFC 4474 §12 (obsoleted by RFC 8224, still registered)
    "o": "Event",  # RFC 6665 §8.2.1
    "r": "Refer-To",  # RFC 3515 §2.1
    "s": "Subject",  # RFC 3261 §20.36
    "t": "To",  # RFC 3261 §20.39
    "u": "Allow-Events",  # RFC 6665 §8.2.2
    "v": "Via",  # RFC 3261 §20.42
    "x": "Session-Expires",  # RFC 4028 §4
    "y": "Identity",  # RFC 8224 §4
}
"""Compact header names and their long forms."""

LIST_HEADERS: frozenset[str] = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "accept-resource-priority",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "diversion",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-associated-uri",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "request-disposition",
        "require",
        "resource-priority",
        "route",
        "security-client",
        "security-server",
        "security-verify",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)
"""Lower-case names of header fields whose grammar is a comma-separated list."""

_KEY_BY_LOWER: dict[str, str] = {k: v.lower() for k, v in COMPACT_FORMS.items()}
# Exact spellings seen on the wire map straight to their key (hot path).
_KEY_BY_NAME: dict[str, str] = {}
for _short, _long in COMPACT_FORMS.items():
    for _spelling in (_short, _short.upper(), _long, _long.lower(), _long.upper()):
        _KEY_BY_NAME[_spelling] = _long.lower()
for _name in (
    "Max-Forwards",
    "CSeq",
    "Route",
    "Record-Route",
    "Expires",
    "Min-Expires",
    "Allow",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "User-Agent",
    "Server",
    "Accept",
    "Date",
    "Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Subscription-State",
    "RSeq",
    "RAck",
    "Replaces",
    "Reply-To",
    "P-Asserted-Identity",
    "Content-Disposition",
    "Warning",
    "Reason",
    "Call-Id",
    "Cseq",
):
    _KEY_BY_NAME[_name] = _name.lower()


def canonical_key(name: str) -> str:
    """The lookup key of a header name: lower-case long form (``v`` -> ``via``)."""
    key = _KEY_BY_NAME.get(name)
    if key is not None:
        return key
    lower = name.strip(" \t").lower()
    return _KEY_BY_LOWER.get(lower, lower)


def unfold(value: str) -> str:
    """Replace each folding (CRLF plus whitespace) by one space (RFC 3261 §7.3.1)."""
    return " ".join([p for p in [q.strip(" \t") for q in value.split("\r\n")] if p])


def item_from_line(line: str) -> tuple[str, str, str]:
    """``(key, name, value)`` of one (already validated) header line, folding allowed."""
    name, _, value = line.partition(":")
    name = name.rstrip(" \t")
    value = unfold(value) if "\r\n" in value else value.strip(" \t")
    return canonical_key(name), name, value


_VERSIONS = itertools.count(1)
"""Edit stamps, unique across every Headers object (so a stamp names one content)."""

Values = tuple[str, ...]
"""The unfolded values of one header name, in order (a tuple: never changed in place)."""

ListParser = Callable[[Values], list[Any]]
_LIST_VIEWS: dict[str, ListParser] = {}


def register_list_view(key: str, parse: ListParser) -> None:
    """Declare that the cached typed view of ``key`` is ``parse(values)``, one item per element.

    Edits at either end of such a header (``prepend``, ``add``, ``pop_first``:
    a proxy's Via and Record-Route work, RFC 3261 §16.6, §16.7) then update the
    cached list instead of dropping it, so the next read parses nothing.
    """
    _LIST_VIEWS[key] = parse


class Headers:
    """Ordered multi-list of header fields; names compared case-insensitively.

    ``get``/``get_all`` return values; ``add``/``prepend``/``set``/``remove``/
    ``pop_first`` edit. Any edit marks the section ``dirty`` and drops (or,
    for the list views registered with :func:`register_list_view`, updates)
    the owning message's cached typed view of that header.

    Three parallel structures make edits cost one line, never the whole
    section: ``_lines`` (each line's text as received, or as rendered when
    added), ``_keys`` (its canonical key) and ``_index`` (key to the
    unfolded values). All three hold tuples of text, replaced (never changed
    in place) at each edit, so a copy shares them until either side is
    edited, and the garbage collector stops tracking them: a transaction
    keeps its messages for 32 s (RFC 3261 §17, Timers J, L, M), and every
    list it kept would be walked by each full collection. ``_version`` is
    a stamp taken afresh at every edit, unique across all Headers objects,
    so a message knows its serialized bytes are still current when the
    stamp it rendered with is still there.
    """

    __slots__ = ("_cache", "_index", "_keys", "_lines", "_version", "dirty")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        lines: list[str] = []
        keys: list[str] = []
        index: dict[str, Values] = {}
        for name, raw_value in fields:
            key = canonical_key(name)
            value = str(raw_value).strip()
            lines.append(f"{name}: {value}")
            keys.append(key)
            values = index.get(key)
            index[key] = (value,) if values is None else (*values, value)
        self._lines: tuple[str, ...] = tuple(lines)
        self._keys: tuple[str, ...] = tuple(keys)
        self._index = index
        self._cache: dict[str, Any] = {}
        self._version = next(_VERSIONS)
        self.dirty = True

    @classmethod
    def _parsed(
        cls, lines: tuple[str, ...], keys: tuple[str, ...], index: dict[str, Values]
    ) -> Headers:
        """Wrap the parser's validated raw lines, their keys and the index (not dirty)."""
        self = cls.__new__(cls)
        self._lines = lines
        self._keys = keys
        self._index = index
        self._cache = {}
        self._version = next(_VERSIONS)
        self.dirty = False
        return self

    # ------------------------------------------------------------- reading

    def _get_index(self) -> dict[str, Values]:
        return self._index

    def lines(self, name: str) -> list[str]:
        """The value of every line with this name, in order, without comma splitting."""
        return list(self._index.get(canonical_key(name), ()))

    def _lines_by_key(self, key: str) -> Values:
        return self._index.get(key, ())

    def get_all(self, name: str) -> list[str]:
        """Every value, lines split at commas where the header's grammar is a list."""
        key = canonical_key(name)
        values = self._index.get(key)
        if not values:
            return []
        if key not in LIST_HEADERS:
            return list(values)
        result: list[str] = []
        for value in values:
            if "," in value or '"' in value:
                result.extend(item for item in split_commas(value) if item)
            elif value:
                result.append(value)
        return result

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value (first list element for list headers), or ``default``."""
        key = canonical_key(name)
        values = self._index.get(key)
        if not values:
            return default
        if key in LIST_HEADERS:
            all_values = self.get_all(name)
            return all_values[0] if all_values else default
        return values[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical_key(name) in self._index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for line in self._lines:
            _key, name, value = item_from_line(line)
            yield name, value

    def __len__(self) -> int:
        return len(self._lines)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        mine = [item_from_line(line) for line in self._lines]
        theirs = [item_from_line(line) for line in other._lines]
        return [(k, v) for k, _n, v in mine] == [(k, v) for k, _n, v in theirs]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def keys(self) -> list[str]:
        """Canonical keys of the lines, in order (with repeats)."""
        return list(self._keys)

    def copy(self) -> Headers:
        """An independent copy: lines keep their text, typed views stay parsed."""
        clone = Headers.__new__(Headers)
        clone._lines = self._lines  # tuples: shared until either side is edited
        clone._keys = self._keys
        clone._index = self._index.copy()  # the value tuples are shared
        clone._cache = self._cache.copy()  # typed values are immutable
        clone._version = self._version
        clone.dirty = self.dirty
        return clone

    # ------------------------------------------------------------- editing

    def _edited(self) -> None:
        self.dirty = True
        self._version = next(_VERSIONS)

    def _new_line(self, name: str, value: str) -> tuple[str, str, str]:
        value = str(value).strip()
        return canonical_key(name), f"{name}: {value}", value

    def _extend_view(self, key: str, value: str, *, front: bool, parsed: Any = None) -> None:
        """Keep a cached list view current after one value was added at one end.

        ``parsed`` is the value's item when the caller has it already (a proxy's own
        Via, built from its parts): then nothing is parsed.
        """
        cache = self._cache
        cached = cache.get(key)
        if cached is None:
            return
        if parsed is not None and key in _LIST_VIEWS:
            cache[key] = [parsed, *cached] if front else [*cached, parsed]
            return
        parse = _LIST_VIEWS.get(key)
        if parse is None:
            del cache[key]
            return
        try:
            items = parse((value,))
        except SipParseError:  # the view reports it when next read
            del cache[key]
            return
        cache[key] = items + cached if front else cached + items

    def add(self, name: str, value: str) -> None:
        """Append a line at the end."""
        key, line, value = self._new_line(name, value)
        self._lines += (line,)
        self._keys += (key,)
        index = self._index
        old = index.get(key)
        index[key] = (value,) if old is None else (*old, value)
        self._extend_view(key, value, front=False)
        self._edited()

    def prepend(self, name: str, value: str, *, parsed: Any = None) -> None:
        """Insert a line before the first line of that name, or at the top (Via, Record-Route).

        ``parsed``: the typed item of ``value`` (one list element, e.g. a
        :class:`~trunkline.sip.via.Via` equal to ``Via.parse(value)``) when the
        caller built it; the cached view then takes it instead of parsing ``value``.
        """
        key, line, value = self._new_line(name, value)
        index = self._index
        old = index.get(key)
        if old is None:
            pos = 0
            index[key] = (value,)
        else:
            pos = self._keys.index(key)
            index[key] = (value, *old)
        lines, keys = self._lines, self._keys
        self._lines = (*lines[:pos], line, *lines[pos:])
        self._keys = (*keys[:pos], key, *keys[pos:])
        self._extend_view(key, value, front=True, parsed=parsed)
        self._edited()

    def set(self, name: str, value: str) -> None:
        """Replace every line of that name by one line, where the first one was (or at the end)."""
        key, line, value = self._new_line(name, value)
        old = self._index.get(key)
        if old is not None and len(old) == 1:
            pos = self._keys.index(key)  # the usual case: one line, replaced in place
            lines = self._lines
            self._lines = (*lines[:pos], line, *lines[pos + 1 :])
            self._index[key] = (value,)
            self._cache.pop(key, None)
            self._edited()
            return
        self._replace(key, [line], [value])

    def set_all(self, name: str, values: Iterable[str]) -> None:
        """Replace every line of that name by one line per value (in place of the first)."""
        key = canonical_key(name)
        new = [self._new_line(name, v) for v in values]
        self._replace(key, [line for _k, line, _v in new], [v for _k, _line, v in new])

    def _replace(self, key: str, new_lines: list[str], new_values: list[str]) -> None:
        lines: list[str] = []
        keys: list[str] = []
        placed = False
        for line, line_key in zip(self._lines, self._keys, strict=True):
            if line_key == key:
                if placed:
                    continue
                placed = True
                lines.extend(new_lines)
                keys.extend([key] * len(new_lines))
            else:
                lines.append(line)
                keys.append(line_key)
        if not placed:
            lines.extend(new_lines)
            keys.extend([key] * len(new_lines))
        self._lines = tuple(lines)
        self._keys = tuple(keys)
        if new_values:
            self._index[key] = tuple(new_values)
        else:
            self._index.pop(key, None)
        self._cache.pop(key, None)
        self._edited()

    def remove(self, name: str) -> int:
        """Remove every line of that name; return how many lines were removed."""
        key = canonical_key(name)
        old = self._index.get(key)
        if old is None:
            return 0
        self._replace(key, [], [])
        return len(old)

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value (for list headers, the first list element).

        ``Via: a, b`` on one line becomes ``Via: b`` (RFC 3261 §18.1.2: a
        client strips the top Via of a response). Only that line changes.
        """
        key = canonical_key(name)
        index = self._index
        old = index.get(key)
        if old is None:
            return None
        pos = self._keys.index(key)
        first = old[0]
        cache = self._cache
        if key in LIST_HEADERS:
            parts = [p for p in split_commas(first) if p] if "," in first else [first]
            cached = cache.get(key)
            if cached is not None and key in _LIST_VIEWS and parts and parts[0]:
                cache[key] = cached[1:]
            else:
                cache.pop(key, None)
            if len(parts) > 1:
                rest = ", ".join(parts[1:])
                name_as_written = self._lines[pos].partition(":")[0].rstrip(" \t")
                lines = self._lines
                self._lines = (*lines[:pos], f"{name_as_written}: {rest}", *lines[pos + 1 :])
                index[key] = (rest, *old[1:])
                self._edited()
                return parts[0]
            value = parts[0] if parts else ""
        else:
            cache.pop(key, None)
            value = first
        lines, keys = self._lines, self._keys
        self._lines = (*lines[:pos], *lines[pos + 1 :])
        self._keys = (*keys[:pos], *keys[pos + 1 :])
        if len(old) > 1:
            index[key] = old[1:]
        else:
            del index[key]
        self._edited()
        return value

    # ------------------------------------------------------------ rendering

    def render(self) -> str:
        """The header lines as text, each ending in CRLF (no final empty line)."""
        lines = self._lines
        return "\r\n".join(lines) + "\r\n" if lines else ""
