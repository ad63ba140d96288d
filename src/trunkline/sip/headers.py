"""Typed SIP header values (RFC 3261 §20, §25.1 and the RFCs cited per class).

Each class parses one header-field *value* with ``parse(text)`` and renders it
with ``str()``. Parsing raises :class:`~trunkline.sip.errors.SipParseError`
(status 400) with a precise reason, never anything else.

The values are immutable (``params`` is a read-only mapping), because a
message caches its typed views and parsed values are shared among messages. To change a header
build a new value (``via.with_params(received=ip)``, ``to.with_tag(tag)``) and
assign it through the message (``msg.via = [...]``, ``msg.to = ...``) or edit
``msg.headers``; either marks the header dirty so it is re-rendered.

This module holds the small values (CSeq, RAck, Replaces, token lists,
token-with-parameters) and re-exports the others, so one import serves:
:class:`Via` (:mod:`trunkline.sip.via`), :class:`NameAddr` and
:class:`Contact` (:mod:`trunkline.sip.nameaddr`) and the ordered multi-list
of header fields :class:`Headers` (:mod:`trunkline.sip.headerfields`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from trunkline.sip.errors import SipParseError
from trunkline.sip.grammar import (
    format_params,
    is_digits,
    is_token,
    parse_params,
    parse_uint,
    read_only_params,
    set_slot,
    unquote,
)
from trunkline.sip.headerfields import Headers
from trunkline.sip.nameaddr import Contact, NameAddr, parse_contacts, parse_name_addrs
from trunkline.sip.via import Via, parse_vias

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
    "parse_delta",
    "parse_name_addrs",
    "parse_tokens",
    "parse_vias",
]

_WS = " \t"


# ------------------------------------------------------------ small values


class CSeq(NamedTuple):
    """``CSeq: 1*DIGIT LWS Method`` (RFC 3261 §20.16); number below 2**32.

    A named tuple: immutable and cheap to build on the hot path.
    """

    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse a CSeq value (LWS between the number and the method allowed)."""
        number_text, space, method = text.partition(" ")
        if space and len(number_text) < 10 and is_digits(number_text) and is_token(method):
            return cls(int(number_text), method)
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

    def __post_init__(self) -> None:
        set_slot(self, "params", read_only_params(self.params))

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

    def __post_init__(self) -> None:
        set_slot(self, "params", read_only_params(self.params))

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
