"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966, RFC 5118).

:func:`parse_uri` turns the text of a URI into one of three value objects:

* :class:`SipUri` for ``sip:`` and ``sips:`` (RFC 3261 §19.1.1 and the ABNF
  of §25.1), including IPv6 references (RFC 5118),
* :class:`TelUri` for ``tel:`` (RFC 3966 §3),
* :class:`AbsoluteUri` for every other scheme (``mailto:``, ``http:``,
  ``urn:``, ...). The message layer answers 416 when such a URI is the
  Request-URI (RFC 3261 §8.2.2.1); here it is simply kept opaque.

Escapes (``%HH``) are undone exactly once at parse time (RFC 3261 §19.1.2;
RFC 4475 §3.1.1.3: ``value%25%34%31`` becomes ``value%41``, never ``valueA``),
and ``%00`` survives as a NUL character rather than truncating anything
(RFC 4475 §3.1.1.4). ``str()`` re-escapes whatever the grammar requires.

Equality follows RFC 3261 §19.1.4 for SIP URIs and RFC 3966 §4 for tel
URIs; ``hash()`` is consistent with it, so URIs can key a location table.
One simplification: components are compared after unescaping, so an escaped
*reserved* character (``%3B``) equals its literal form (``;``), which
§19.1.4 strictly distinguishes. IPv6 hosts compare by address value.

Every URI is immutable (frozen dataclasses; ``params`` and ``headers`` are
read-only mappings), because parsed values are shared: a message parser
interns the Request-URI and From/To/Route values of identical text, so one
object may sit in many messages at once. Derive changed URIs with
``replace()``, ``with_params()`` and ``without_params()``.

Parsing is a handful of ``str.find``/``str.split`` calls and set checks:
linear in the input, no regular expressions, nothing cached globally.
Malformed input raises :class:`~trunkline.sip.errors.SipParseError` (400)
with a precise reason, never any other exception.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Self

from trunkline.sip.errors import SipParseError

__all__ = ["AbsoluteUri", "SipUri", "TelUri", "Uri", "parse_uri"]

# Character classes of RFC 3261 §25.1 (ASCII only; "escaped" handled apart).
_ALPHANUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
_MARK = frozenset("-_.!~*'()")
_UNRESERVED = _ALPHANUM | _MARK
_USER_OK = _UNRESERVED | frozenset("&=+$,;?/")
_PASSWORD_OK = _UNRESERVED | frozenset("&=+$,")
_PARAM_OK = _UNRESERVED | frozenset("[]/:&+$")
_HEADER_OK = _UNRESERVED | frozenset("[]/?:+$")
_PARAM_RUN_OK = _PARAM_OK | frozenset(";=%")
# Hostnames: RFC 3261 §25.1 allows alphanum, "-" and "."; "_" is tolerated
# because real deployments (SRV-style names, some PBXs) use it.
_HOST_OK = _ALPHANUM | frozenset("-._")
_SCHEME_OK = _ALPHANUM | frozenset("+-.")
_SCHEME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# RFC 2396 "uric" minus the characters that can never appear unescaped in a
# URI inside a SIP message (space, controls, "<", ">", '"').
_ABSOLUTE_OK = _UNRESERVED | frozenset(";/?:@&=+$,[]%#")
# RFC 3966 §3.
_VISUAL_SEPARATORS = frozenset("-.()")
_GLOBAL_DIGITS_OK = _DIGITS | _VISUAL_SEPARATORS
_LOCAL_DIGITS_OK = _HEX | frozenset("*#") | _VISUAL_SEPARATORS
_TEL_PNAME_OK = _ALPHANUM | frozenset("-")
_TEL_PVALUE_OK = _PARAM_OK | frozenset("=,@?")
_DOMAIN_OK = _ALPHANUM | frozenset("-.")

# URI parameters that, when present in only one of two SIP URIs, make them
# unequal (RFC 3261 §19.1.4; transport per the section's examples).
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def _unescape(text: str, what: str) -> str:
    """Undo ``%HH`` escapes exactly once (RFC 3261 §19.1.2)."""
    if "%" not in text:
        return text
    pieces = text.split("%")
    out = bytearray(pieces[0].encode("ascii"))
    for piece in pieces[1:]:
        if len(piece) < 2 or piece[0] not in _HEX or piece[1] not in _HEX:
            raise SipParseError(f"Bad %-escape in URI {what}")
        out.append(int(piece[:2], 16))
        out += piece[2:].encode("ascii")
    # surrogateescape keeps bytes that are not UTF-8 so str() restores them.
    return out.decode("utf-8", "surrogateescape")


def _escape(text: str, allowed: frozenset[str]) -> str:
    """Escape every character of ``text`` that ``allowed`` does not contain."""
    if allowed.issuperset(text):
        return text
    out: list[str] = []
    for char in text:
        if char in allowed:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogateescape"))
    return "".join(out)


def _check_chars(text: str, allowed: frozenset[str], what: str) -> None:
    """Raise 400 unless every character of ``text`` is in ``allowed`` or ``%``."""
    if not allowed.issuperset(text):
        for char in text:
            if char not in allowed and char != "%":
                raise SipParseError(f"Invalid character {char!r} in URI {what}")


def _split_scheme(text: str) -> tuple[str, str]:
    colon = text.find(":")
    if colon <= 0:
        raise SipParseError("URI has no scheme")
    scheme = text[:colon]
    if scheme[0] not in _SCHEME_FIRST or not _SCHEME_OK.issuperset(scheme):
        raise SipParseError("Invalid URI scheme")
    return scheme.lower(), text[colon + 1 :]


def _parse_port(text: str) -> int:
    if not text or not _DIGITS.issuperset(text) or len(text) > 5:
        raise SipParseError("Invalid port in URI")
    port = int(text)
    if port > 65535:
        raise SipParseError("Port out of range in URI")
    return port


def _parse_host(text: str) -> tuple[str, int | None]:
    """Split ``hostport`` (RFC 3261 §25.1; IPv6 references per RFC 5118)."""
    if not text:
        raise SipParseError("Missing host in URI")
    if text[0] == "[":
        close = text.find("]")
        if close < 0:
            raise SipParseError("Unterminated IPv6 reference in URI")
        host = text[: close + 1]
        _check_ipv6(host[1:-1])
        rest = text[close + 1 :]
        if not rest:
            return host, None
        if rest[0] != ":":
            raise SipParseError("Junk after IPv6 reference in URI")
        return host, _parse_port(rest[1:])
    colon = text.find(":")
    if colon >= 0:
        if text.find(":", colon + 1) >= 0:
            raise SipParseError("IPv6 address in URI must be enclosed in [ ]")
        host, port = text[:colon], _parse_port(text[colon + 1 :])
    else:
        host, port = text, None
    if not host or not _HOST_OK.issuperset(host):
        raise SipParseError("Invalid host in URI")
    return host, port


def _check_ipv6(address: str) -> None:
    """Validate an IPv6 address; the three-colon form of RFC 5118 §4.10 is tolerated."""
    candidate = address.replace(":::", "::", 1) if ":::" in address else address
    if "%" in candidate or not candidate:
        raise SipParseError("Invalid IPv6 reference in URI")
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        raise SipParseError("Invalid IPv6 reference in URI") from None


def _host_key(host: str) -> str:
    """Case- and notation-insensitive form of a host for comparison."""
    if host.startswith("["):
        inner = host[1:-1]
        if ":::" in inner:
            inner = inner.replace(":::", "::", 1)
        try:
            return "[" + ipaddress.IPv6Address(inner).compressed + "]"
        except ValueError:
            return host.lower()
    return host.lower()


def _parse_params(text: str) -> dict[str, str | None]:
    """Parse SIP URI ``;name[=value]`` pairs (``text`` without the leading ``;``)."""
    what = "URI"
    # One character check over the whole run; "=" may only separate name and value.
    _check_chars(text, _PARAM_RUN_OK, "parameter")
    escaped = "%" in text
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            reason = "parameter name" if item else "parameter"
            raise SipParseError(f"Empty {what} {reason} in URI")
        if "=" in value:
            raise SipParseError(f"Invalid character '=' in URI {what} parameter value")
        if escaped:
            name = _unescape(name, f"{what} parameter")
            value = _unescape(value, f"{what} parameter")
        key = name.lower()
        if key not in params:
            params[key] = value if eq else None
    return params


def _render_params(params: Mapping[str, str | None], allowed: frozenset[str]) -> str:
    parts: list[str] = []
    for name, value in params.items():
        if value is None:
            parts.append(";" + _escape(name, allowed))
        else:
            parts.append(";" + _escape(name, allowed) + "=" + _escape(value, allowed))
    return "".join(parts)


class _Keep:
    """Marker type for "leave this field unchanged" in :meth:`SipUri.replace`."""


_KEEP = _Keep()

_NO_PARAMS: Mapping[str, str | None] = MappingProxyType({})
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
_set = object.__setattr__  # builds frozen instances (the dataclass __init__ does the same)


def _frozen_params(params: Mapping[str, str | None]) -> Mapping[str, str | None]:
    """A read-only copy of ``params`` (a caller's dict cannot change a URI later)."""
    return MappingProxyType(dict(params)) if params else _NO_PARAMS


def _frozen_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(headers)) if headers else _NO_HEADERS


def _no_params() -> Mapping[str, str | None]:
    return _NO_PARAMS


def _no_headers() -> Mapping[str, str]:
    return _NO_HEADERS


@dataclass(frozen=True, eq=False, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1.1).

    ``user`` and ``password`` hold unescaped text (may contain any character,
    NUL included); ``host`` keeps its case and, for IPv6, its brackets.
    ``params`` maps lower-case names to unescaped values (``None`` for a
    valueless parameter such as ``lr``), in the order they appeared;
    ``headers`` likewise for the ``?name=value`` part. Both are read-only
    mappings (copies of whatever mapping the constructor was given).

    Immutable: assigning a field raises ``dataclasses.FrozenInstanceError``;
    derive changed URIs with :meth:`replace`, :meth:`with_params`,
    :meth:`without_params` and :meth:`without_headers`.
    """

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Mapping[str, str | None] = field(default_factory=_no_params)
    headers: Mapping[str, str] = field(default_factory=_no_headers)

    SCHEMES: ClassVar[frozenset[str]] = frozenset({"sip", "sips"})

    def __post_init__(self) -> None:
        _set(self, "params", _frozen_params(self.params))
        _set(self, "headers", _frozen_headers(self.headers))

    @classmethod
    def _new(
        cls,
        scheme: str,
        user: str | None,
        password: str | None,
        host: str,
        port: int | None,
        *,
        params: Mapping[str, str | None],
        headers: Mapping[str, str],
    ) -> Self:
        """Build from already read-only parts (the parser's path: no copies)."""
        self = object.__new__(cls)
        _set(self, "scheme", scheme)
        _set(self, "user", user)
        _set(self, "password", password)
        _set(self, "host", host)
        _set(self, "port", port)
        _set(self, "params", params)
        _set(self, "headers", headers)
        return self

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse a SIP or SIPS URI; any other scheme is a 416 error."""
        scheme, rest = _split_scheme(text)
        if scheme not in cls.SCHEMES:
            raise SipParseError(f"Unsupported URI scheme {scheme!r}: expected sip or sips", 416)
        return cls._parse_rest(scheme, rest)

    @classmethod
    def _parse_rest(cls, scheme: str, rest: str) -> Self:
        user: str | None = None
        password: str | None = None
        at = rest.find("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            raw_user, colon, raw_password = userinfo.partition(":")
            if not raw_user:
                raise SipParseError("Empty user part in URI")
            _check_chars(raw_user, _USER_OK, "user part")
            user = _unescape(raw_user, "user part")
            if colon:
                _check_chars(raw_password, _PASSWORD_OK, "password")
                password = _unescape(raw_password, "password")
        # The host part ends at the first ";" (parameters) or "?" (headers).
        end = len(rest)
        semi = rest.find(";")
        if semi >= 0:
            end = semi
        question = rest.find("?", 0, end)
        if question >= 0:
            end = question
        host, port = _parse_host(rest[:end])
        params = _NO_PARAMS
        headers = _NO_HEADERS
        if end < len(rest):
            tail = rest[end:]
            param_text, qmark, header_text = tail.partition("?")
            if param_text:
                params = MappingProxyType(_parse_params(param_text[1:]))
            if qmark:
                headers = MappingProxyType(_parse_headers(header_text))
        return cls._new(scheme, user, password, host, port, params=params, headers=headers)

    # -- views -------------------------------------------------------------

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter in lower case, or None."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        """True if the loose-routing ``lr`` parameter is present (RFC 3261 §19.1.1)."""
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def user_param(self) -> str | None:
        """The ``user`` parameter (``phone``, ``ip``, ...) in lower case, or None."""
        value = self.params.get("user")
        return value.lower() if value else None

    @property
    def method_param(self) -> str | None:
        return self.params.get("method")

    @property
    def ttl(self) -> int | None:
        value = self.params.get("ttl")
        # ttl = 1*3DIGIT (RFC 3261 §25.1); anything longer is not a usable TTL.
        if value and len(value) <= 3 and value.isascii() and value.isdigit():
            return int(value)
        return None

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def default_port(self) -> int:
        """The port a resolver uses when none is given (RFC 3263 §4.2)."""
        return 5061 if self.scheme == "sips" or self.transport == "tls" else 5060

    @property
    def host_port(self) -> str:
        """``host[:port]`` as it would appear in a Via sent-by."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def aor(self) -> str:
        """The address-of-record form: scheme, user and host, lower-cased host, no port
        or parameters (the key a registrar files bindings under, RFC 3261 §10.3)."""
        user = "" if self.user is None else _escape(self.user, _USER_OK) + "@"
        return f"{self.scheme}:{user}{_host_key(self.host)}"

    # -- derived URIs --------------------------------------------------------

    def replace(
        self,
        *,
        scheme: str | None = None,
        user: str | _Keep | None = _KEEP,
        password: str | _Keep | None = _KEEP,
        host: str | None = None,
        port: int | _Keep | None = _KEEP,
        params: Mapping[str, str | None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> SipUri:
        """A new URI with the given fields changed (``None`` clears user/password/port)."""
        return SipUri._new(
            self.scheme if scheme is None else scheme,
            self.user if isinstance(user, _Keep) else user,
            self.password if isinstance(password, _Keep) else password,
            self.host if host is None else host,
            self.port if isinstance(port, _Keep) else port,
            params=self.params if params is None else _frozen_params(params),
            headers=self.headers if headers is None else _frozen_headers(headers),
        )

    copy = replace
    """Alias of :meth:`replace` (without arguments: an equal URI)."""

    def with_params(
        self, params: Mapping[str, str | None] | None = None, /, **more: str | None
    ) -> SipUri:
        """A new URI with parameters added or replaced (names are lower-cased).

        Use the mapping for names that are not identifiers (``{"x-foo": "1"}``).
        """
        merged = dict(self.params)
        for source in (params or {}, more):
            for name, value in source.items():
                merged[name.lower()] = value
        return self.replace(params=merged)

    def without_params(self, *names: str) -> SipUri:
        """A new URI without the named parameters."""
        drop = {name.lower() for name in names}
        if drop.isdisjoint(self.params):
            return self
        return self.replace(params={k: v for k, v in self.params.items() if k not in drop})

    def without_headers(self) -> SipUri:
        """A new URI without the ``?headers`` part (e.g. for a Request-URI, RFC 3261 §19.1.5)."""
        return self if not self.headers else self.replace(headers={})

    def __copy__(self) -> Self:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # Read-only mappings do not pickle: rebuild from plain dicts.
        return (
            SipUri,
            (
                self.scheme,
                self.user,
                self.password,
                self.host,
                self.port,
                dict(self.params),
                dict(self.headers),
            ),
        )

    # -- text and comparison ----------------------------------------------

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(_escape(self.user, _USER_OK))
            if self.password is not None:
                parts.append(":" + _escape(self.password, _PASSWORD_OK))
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        if self.params:
            parts.append(_render_params(self.params, _PARAM_OK))
        if self.headers:
            parts.append(
                "?"
                + "&".join(
                    _escape(name, _HEADER_OK) + "=" + _escape(value, _HEADER_OK)
                    for name, value in self.headers.items()
                )
            )
        return "".join(parts)

    def __eq__(self, other: object) -> bool:
        """RFC 3261 §19.1.4 comparison."""
        if not isinstance(other, SipUri):
            return NotImplemented
        if (
            self.scheme != other.scheme
            or self.user != other.user
            or self.password != other.password
            or self.port != other.port
            or _host_key(self.host) != _host_key(other.host)
        ):
            return False
        mine, theirs = self.params, other.params
        for name in _STRICT_PARAMS:
            if (name in mine) != (name in theirs):
                return False
        for name, value in mine.items():
            if name in theirs and not _param_values_equal(value, theirs[name]):
                return False
        if not self.headers and not other.headers:
            return True
        # Header names are case-insensitive; the URI may name one twice in two cases.
        return sorted((n.lower(), v) for n, v in self.headers.items()) == sorted(
            (n.lower(), v) for n, v in other.headers.items()
        )

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, self.password, _host_key(self.host), self.port))


def _param_values_equal(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.lower() == b.lower()


def _parse_headers(text: str) -> dict[str, str]:
    """Parse the ``?hname=hvalue&...`` part of a SIP URI (RFC 3261 §19.1.1)."""
    headers: dict[str, str] = {}
    for item in text.split("&"):
        if not item:
            raise SipParseError("Empty header in URI")
        name, _, value = item.partition("=")
        if not name:
            raise SipParseError("Empty header name in URI")
        _check_chars(name, _HEADER_OK, "header name")
        _check_chars(value, _HEADER_OK, "header value")
        headers.setdefault(_unescape(name, "header name"), _unescape(value, "header value"))
    return headers


def _strip_visual(number: str) -> str:
    """Remove RFC 3966 visual separators and fold hex digits to lower case."""
    return "".join(char for char in number if char not in _VISUAL_SEPARATORS).lower()


@dataclass(frozen=True, eq=False, slots=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966 §3).

    ``number`` is the telephone-subscriber as written (visual separators
    kept); a global number starts with ``+``, a local one needs a
    ``phone-context`` parameter. ``params`` holds every parameter (``ext``,
    ``isub``, ``phone-context`` and others) under lower-case names, as a
    read-only mapping. Immutable: derive changed URIs with :meth:`replace`,
    :meth:`with_params` and :meth:`without_params`.
    """

    number: str
    params: Mapping[str, str | None] = field(default_factory=_no_params)

    scheme: ClassVar[str] = "tel"

    def __post_init__(self) -> None:
        _set(self, "params", _frozen_params(self.params))

    @classmethod
    def parse(cls, text: str) -> Self:
        scheme, rest = _split_scheme(text)
        if scheme != "tel":
            raise SipParseError(f"Unsupported URI scheme {scheme!r}: expected tel", 416)
        return cls._parse_rest(rest)

    @classmethod
    def _parse_rest(cls, rest: str) -> Self:
        number, semi, param_text = rest.partition(";")
        if not number:
            raise SipParseError("Empty tel URI number")
        if number[0] == "+":
            digits = number[1:]
            if not _GLOBAL_DIGITS_OK.issuperset(digits) or _DIGITS.isdisjoint(digits):
                raise SipParseError("Invalid global number in tel URI")
        elif not _LOCAL_DIGITS_OK.issuperset(number) or _VISUAL_SEPARATORS.issuperset(number):
            raise SipParseError("Invalid local number in tel URI")
        params: dict[str, str | None] = {}
        if semi:
            for item in param_text.split(";"):
                name, eq, value = item.partition("=")
                if not name or not _TEL_PNAME_OK.issuperset(name):
                    raise SipParseError("Invalid parameter name in tel URI")
                key = name.lower()
                if key in params:
                    raise SipParseError(f"Duplicate {key!r} parameter in tel URI")
                if eq:
                    if not value:
                        raise SipParseError(f"Empty {key!r} parameter in tel URI")
                    _check_chars(value, _TEL_PVALUE_OK, "tel parameter")
                    params[key] = _unescape(value, "tel parameter")
                else:
                    params[key] = None
        ext = params.get("ext", "")
        if "ext" in params and (not ext or not _GLOBAL_DIGITS_OK.issuperset(ext)):
            raise SipParseError("Invalid ext parameter in tel URI")
        context = params.get("phone-context")
        if number[0] != "+":
            if not context:
                raise SipParseError("Local tel URI number without phone-context")
            _check_descriptor(context)
        elif "phone-context" in params:
            raise SipParseError("Global tel URI number with phone-context")
        self = object.__new__(cls)
        _set(self, "number", number)
        _set(self, "params", MappingProxyType(params) if params else _NO_PARAMS)
        return self

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (``+12125551212``)."""
        return _strip_visual(self.number)

    @property
    def phone_context(self) -> str | None:
        return self.params.get("phone-context")

    @property
    def ext(self) -> str | None:
        return self.params.get("ext")

    @property
    def isub(self) -> str | None:
        return self.params.get("isub")

    def replace(
        self, *, number: str | None = None, params: Mapping[str, str | None] | None = None
    ) -> TelUri:
        """A new URI with the number and/or the parameters changed."""
        return TelUri(
            self.number if number is None else number,
            self.params if params is None else params,
        )

    copy = replace
    """Alias of :meth:`replace` (without arguments: an equal URI)."""

    def with_params(
        self, params: Mapping[str, str | None] | None = None, /, **more: str | None
    ) -> TelUri:
        """A new URI with parameters added or replaced (names are lower-cased)."""
        merged = dict(self.params)
        for source in (params or {}, more):
            for name, value in source.items():
                merged[name.lower()] = value
        return self.replace(params=merged)

    def without_params(self, *names: str) -> TelUri:
        """A new URI without the named parameters."""
        drop = {name.lower() for name in names}
        return self.replace(params={k: v for k, v in self.params.items() if k not in drop})

    def __copy__(self) -> Self:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (TelUri, (self.number, dict(self.params)))

    def __str__(self) -> str:
        return "tel:" + self.number + _render_params(self.params, _TEL_PVALUE_OK)

    def _key(self) -> tuple[bool, str, frozenset[tuple[str, str | None]]]:
        params: set[tuple[str, str | None]] = set()
        for name, value in self.params.items():
            if value is None:
                params.add((name, None))
            elif name == "ext" or (name == "phone-context" and value.startswith("+")):
                params.add((name, _strip_visual(value)))
            else:
                params.add((name, value.lower()))
        return self.is_global, self.digits, frozenset(params)

    def __eq__(self, other: object) -> bool:
        """RFC 3966 §4: same kind, same digits ignoring separators, same parameters."""
        if not isinstance(other, TelUri):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _check_descriptor(context: str) -> None:
    """phone-context descriptor: domainname or global-number-digits (RFC 3966 §3)."""
    if context.startswith("+"):
        digits = context[1:]
        if _GLOBAL_DIGITS_OK.issuperset(digits) and not _DIGITS.isdisjoint(digits):
            return
    elif _DOMAIN_OK.issuperset(context) and not context.startswith((".", "-")):
        return
    raise SipParseError("Invalid phone-context in tel URI")


@dataclass(frozen=True, eq=False, slots=True)
class AbsoluteUri:
    """A URI of any scheme other than sip, sips and tel, kept opaque.

    ``scheme`` is lower-case; ``value`` is everything after the colon.
    Immutable: derive a changed URI with :meth:`replace`.
    """

    scheme: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Self:
        scheme, rest = _split_scheme(text)
        return cls._parse_rest(scheme, rest)

    @classmethod
    def _parse_rest(cls, scheme: str, rest: str) -> Self:
        if not rest:
            raise SipParseError(f"Empty {scheme!r} URI")
        _check_chars(rest, _ABSOLUTE_OK, f"of scheme {scheme!r}")
        return cls(scheme, rest)

    def replace(self, *, scheme: str | None = None, value: str | None = None) -> AbsoluteUri:
        """A new URI with the scheme and/or the value changed."""
        return AbsoluteUri(
            self.scheme if scheme is None else scheme, self.value if value is None else value
        )

    copy = replace
    """Alias of :meth:`replace` (without arguments: an equal URI)."""

    def __copy__(self) -> Self:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AbsoluteUri):
            return NotImplemented
        return self.scheme == other.scheme and self.value == other.value

    def __hash__(self) -> int:
        return hash((self.scheme, self.value))


Uri = SipUri | TelUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse any URI: SIP/SIPS, tel, or another scheme kept as :class:`AbsoluteUri`.

    Raises :class:`SipParseError` (400) with a precise reason on malformed input.
    """
    scheme, rest = _split_scheme(text)
    if scheme in SipUri.SCHEMES:
        return SipUri._parse_rest(scheme, rest)
    if scheme == "tel":
        return TelUri._parse_rest(rest)
    return AbsoluteUri._parse_rest(scheme, rest)
