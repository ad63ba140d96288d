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

from collections.abc import Iterable, Iterator
from typing import Any

from trunkline.sip.grammar import split_commas

__all__ = ["COMPACT_FORMS", "LIST_HEADERS", "Headers", "canonical_key", "item_from_line", "unfold"]

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


# One header line: (key, name as written, value unfolded and stripped,
# original line text or None once edited / when built locally).
Item = tuple[str, str, str, str | None]


def unfold(value: str) -> str:
    """Replace each folding (CRLF plus whitespace) by one space (RFC 3261 §7.3.1)."""
    return " ".join([p for p in [q.strip(" \t") for q in value.split("\r\n")] if p])


def item_from_line(line: str) -> Item:
    """The item of one (already validated) raw header line, folding kept in ``line``."""
    name, _, value = line.partition(":")
    name = name.rstrip(" \t")
    value = unfold(value) if "\r\n" in value else value.strip(" \t")
    return canonical_key(name), name, value, line


class Headers:
    """Ordered multi-list of header fields; names compared case-insensitively.

    ``get``/``get_all`` return values; ``add``/``prepend``/``set``/``remove``/
    ``pop_first`` edit. Any edit marks the section ``dirty`` and drops the
    owning message's cached typed view of that header.
    """

    __slots__ = ("_cache", "_index", "_item_list", "_lines", "dirty")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._item_list: list[Item] | None = [
            (canonical_key(name), name, str(value).strip(), None) for name, value in fields
        ]
        self._lines: list[str] = []
        self._index: dict[str, list[str]] | None = None
        self._cache: dict[str, Any] = {}
        self.dirty = True

    @classmethod
    def _parsed(cls, lines: list[str], index: dict[str, list[str]]) -> Headers:
        """Wrap the parser's validated raw lines and index (not dirty, items built lazily)."""
        self = cls.__new__(cls)
        self._item_list = None
        self._lines = lines
        self._index = index
        self._cache = {}
        self.dirty = False
        return self

    @property
    def _items(self) -> list[Item]:
        items = self._item_list
        if items is None:
            items = self._item_list = [item_from_line(line) for line in self._lines]
        return items

    @_items.setter
    def _items(self, items: list[Item]) -> None:
        self._item_list = items

    # ------------------------------------------------------------- reading

    def _get_index(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for key, _name, value, _raw in self._items:
                values = index.get(key)
                if values is None:
                    index[key] = [value]
                else:
                    values.append(value)
            self._index = index
        return index

    def lines(self, name: str) -> list[str]:
        """The value of every line with this name, in order, without comma splitting."""
        return list(self._get_index().get(canonical_key(name), ()))

    def _lines_by_key(self, key: str) -> list[str]:
        return self._get_index().get(key, [])

    def get_all(self, name: str) -> list[str]:
        """Every value, lines split at commas where the header's grammar is a list."""
        key = canonical_key(name)
        values = self._get_index().get(key)
        if not values:
            return []
        if key not in LIST_HEADERS:
            return list(values)
        result: list[str] = []
        for value in values:
            result.extend(item for item in split_commas(value) if item)
        return result

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value (first list element for list headers), or ``default``."""
        key = canonical_key(name)
        values = self._get_index().get(key)
        if not values:
            return default
        if key in LIST_HEADERS:
            all_values = self.get_all(name)
            return all_values[0] if all_values else default
        return values[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical_key(name) in self._get_index()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _key, name, value, _raw in self._items:
            yield name, value

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _n, v, _r in self._items] == [(k, v) for k, _n, v, _r in other._items]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def keys(self) -> list[str]:
        """Canonical keys of the lines, in order (with repeats)."""
        return [item[0] for item in self._items]

    def copy(self) -> Headers:
        """An independent copy (lines keep their original text)."""
        clone = Headers()
        clone._items = list(self._items)
        clone.dirty = self.dirty
        return clone

    # ------------------------------------------------------------- editing

    def _touch(self, key: str) -> None:
        self.dirty = True
        self._index = None
        self._cache.pop(key, None)

    def add(self, name: str, value: str) -> None:
        """Append a line at the end."""
        key = canonical_key(name)
        self._items.append((key, name, str(value).strip(), None))
        self._touch(key)

    def prepend(self, name: str, value: str) -> None:
        """Insert a line before the first line of that name, or at the top (Via, Record-Route)."""
        key = canonical_key(name)
        pos = 0
        for i, item in enumerate(self._items):
            if item[0] == key:
                pos = i
                break
        self._items.insert(pos, (key, name, str(value).strip(), None))
        self._touch(key)

    def set(self, name: str, value: str) -> None:
        """Replace every line of that name by one line, where the first one was (or at the end)."""
        key = canonical_key(name)
        new: Item = (key, name, str(value).strip(), None)
        items: list[Item] = []
        placed = False
        for item in self._items:
            if item[0] == key:
                if not placed:
                    items.append(new)
                    placed = True
            else:
                items.append(item)
        if not placed:
            items.append(new)
        self._items = items
        self._touch(key)

    def set_all(self, name: str, values: Iterable[str]) -> None:
        """Replace every line of that name by one line per value (in place of the first)."""
        key = canonical_key(name)
        new: list[Item] = [(key, name, str(v).strip(), None) for v in values]
        items: list[Item] = []
        placed = False
        for item in self._items:
            if item[0] == key:
                if not placed:
                    items.extend(new)
                    placed = True
            else:
                items.append(item)
        if not placed:
            items.extend(new)
        self._items = items
        self._touch(key)

    def remove(self, name: str) -> int:
        """Remove every line of that name; return how many lines were removed."""
        key = canonical_key(name)
        before = len(self._items)
        self._items = [item for item in self._items if item[0] != key]
        removed = before - len(self._items)
        if removed:
            self._touch(key)
        return removed

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value (for list headers, the first list element).

        ``Via: a, b`` on one line becomes ``Via: b`` (RFC 3261 §18.1.2: a
        client strips the top Via of a response).
        """
        key = canonical_key(name)
        for i, (item_key, item_name, value, _raw) in enumerate(self._items):
            if item_key != key:
                continue
            if key in LIST_HEADERS:
                parts = [p for p in split_commas(value) if p]
                if len(parts) > 1:
                    self._items[i] = (key, item_name, ", ".join(parts[1:]), None)
                    self._touch(key)
                    return parts[0]
                del self._items[i]
                self._touch(key)
                return parts[0] if parts else ""
            del self._items[i]
            self._touch(key)
            return value
        return None

    # ------------------------------------------------------------ rendering

    def render(self) -> str:
        """The header lines as text, each ending in CRLF (no final empty line)."""
        return "".join(
            f"{name}: {value}\r\n" if raw is None else raw + "\r\n"
            for _key, name, value, raw in self._items
        )
