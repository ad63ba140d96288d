"""Typed, lazily parsed views of a message's header fields.

:class:`HeaderViews` is the part of :class:`~trunkline.sip.message.Message`
that turns header lines into typed values: ``msg.via``, ``msg.from_``,
``msg.cseq``, ``msg.route``, ``msg.contact``, ... Each view is parsed on first
access and cached in the :class:`~trunkline.sip.headerfields.Headers` object,
which drops the cached value when that header is edited. Setters re-render
the header, so ``msg.max_forwards = 69`` changes that one line only.

A view raises :class:`~trunkline.sip.errors.SipParseError` (400) when its
header is malformed; the headers every element needs are checked when the
message is parsed (see :func:`trunkline.sip.message.parse_message`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from trunkline.sip.errors import SipParseError
from trunkline.sip.grammar import is_digits, parse_uint
from trunkline.sip.headerfields import Headers, Values, register_list_view
from trunkline.sip.headers import (
    Contact,
    CSeq,
    NameAddr,
    RAck,
    Replaces,
    TokenParams,
    Via,
    parse_contacts,
    parse_name_addrs,
    parse_tokens,
    parse_vias,
)

if TYPE_CHECKING:
    from trunkline.sip.auth import Challenge, Credentials

__all__ = ["HeaderViews"]

T = TypeVar("T")

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_CALL_ID_RE = re.compile(r"[^\x00-\x20\x7f,]+")
_MISSING = object()


# A proxy prepends Via and Record-Route and pops Via and Route (RFC 3261
# §16.6, §16.7): those cached views are updated in place of a re-parse.
register_list_view("via", parse_vias)
register_list_view("route", parse_name_addrs)
register_list_view("record-route", parse_name_addrs)


class HeaderViews:
    """Typed header properties over ``self.headers`` (mixed into Message)."""

    __slots__ = ()

    headers: Headers

    def _typed(self, key: str, parse: Callable[[Values], T]) -> T:
        # A miss is common (a header read once, a view dropped by an edit): no
        # KeyError raised for it, and None is a valid cached value.
        headers = self.headers
        cache = headers._cache
        value = cache.get(key, _MISSING)
        if value is _MISSING:
            value = parse(headers._index.get(key, ()))
            cache[key] = value
        return value  # type: ignore[no-any-return]

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
    def top_via(self) -> Via | None:
        """The first Via value (the sender's, RFC 3261 §8.1.1.7), None without Via.

        What transaction matching (§17.1.3, §17.2.3) and response routing
        (§18.2.2) read; unlike :attr:`via` it copies nothing.
        """
        vias = self.headers._cache.get("via")
        if vias is None:
            vias = self._typed("via", parse_vias)
        return vias[0] if vias else None

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
        elif 0 <= value <= 255:  # a proxy decrements it on every request (§16.6 item 3)
            self.headers.set("Max-Forwards", str(value))
            self.headers._cache["max-forwards"] = value  # what parsing the line would give
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


# ------------------------------------------------------------- typed parsers


def _single(values: Values, name: str) -> str:
    if not values:
        raise SipParseError(f"Missing {name} header")
    if len(values) > 1:
        raise SipParseError(f"Multiple {name} headers")
    return values[0]


def _single_name_addr(name: str) -> Callable[[Values], NameAddr]:
    def parse(values: Values) -> NameAddr:
        return NameAddr.parse(_single(values, name))

    return parse


def _optional(parse: Callable[[str], T], name: str) -> Callable[[Values], T | None]:
    def parse_optional(values: Values) -> T | None:
        return None if not values else parse(_single(values, name))

    return parse_optional


def _optional_name_addr(name: str) -> Callable[[Values], NameAddr | None]:
    return _optional(NameAddr.parse, name)


def _parse_call_id(values: Values) -> str:
    value = _single(values, "Call-ID")
    if _CALL_ID_RE.fullmatch(value) is None:
        raise SipParseError("Malformed Call-ID header")
    return value


def _parse_cseq(values: Values) -> CSeq:
    return CSeq.parse(_single(values, "CSeq"))


def _parse_max_forwards(values: Values) -> int | None:
    if not values:
        return None
    return parse_uint(_single(values, "Max-Forwards"), "Max-Forwards", 255)


def _parse_content_length(values: Values) -> int | None:
    if not values:
        return None
    return parse_uint(_single(values, "Content-Length"), "Content-Length")


def _lenient_delta(values: Values) -> int | None:
    if len(values) != 1:
        return None
    value = values[0]
    if not is_digits(value) or len(value) > 10:
        return None
    number = int(value)
    return number if number <= 2**32 - 1 else None


def _parse_content_type(values: Values) -> str | None:
    if not values:
        return None
    media = _single(values, "Content-Type").split(";", 1)[0].strip()
    kind, slash, sub = media.partition("/")
    if not slash or _TOKEN_RE.fullmatch(kind.strip()) is None:
        raise SipParseError("Malformed Content-Type header")
    if _TOKEN_RE.fullmatch(sub.strip()) is None:
        raise SipParseError("Malformed Content-Type header")
    return f"{kind.strip()}/{sub.strip()}".lower()


def _challenges(values: Values) -> list[Challenge]:
    # Imported here: the auth module builds on messages (no import cycle at load time).
    from trunkline.sip.auth import Challenge  # noqa: PLC0415

    return [Challenge.parse(v) for v in values]


def _credentials(values: Values) -> list[Credentials]:
    from trunkline.sip.auth import Credentials  # noqa: PLC0415

    return [Credentials.parse(v) for v in values]
