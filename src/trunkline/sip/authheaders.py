"""Authentication header values: challenges and credentials.

The grammar is RFC 3261 §25.1 (``challenge``, ``credentials``,
``digest-cln``, ``dig-resp``) generalised as RFC 7235 §2.1 does it: an
auth-scheme followed either by a comma-separated list of ``name=value``
auth-params (value a token or a quoted-string with backslash escapes) or by a
single ``token68`` (for schemes such as Basic or Bearer). Unknown parameters
are kept, so a value from the network serializes back with every parameter.

:class:`Challenge` is the value of a WWW-Authenticate or Proxy-Authenticate
header field (RFC 3261 §20.44, §20.27); :class:`Credentials` is the value of an
Authorization or Proxy-Authorization header field (§20.7, §20.28). Both parse
lazily from the message layer through ``Challenge.parse`` / ``Credentials.parse``
and raise :class:`~trunkline.sip.errors.SipParseError` (400) on malformed input,
never anything else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Self

from trunkline.sip.errors import LocalSipError, SipParseError

__all__ = [
    "Challenge",
    "Credentials",
    "parse_challenges",
    "quote",
]

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# RFC 7235 §2.1: token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# LWS = [*WSP CRLF] 1*WSP; SWS = [LWS]. Header values normally arrive unfolded.
_LWS = re.compile(r"(?:[ \t]|\r\n[ \t])*")
# quoted-string = DQUOTE *(qdtext / quoted-pair) DQUOTE (RFC 3261 §25.1): qdtext is
# LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII; quoted-pair is "\" (%x00-09 / %x0B-0C / %x0E-7F)
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*)"')
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')
_MAX_LENGTH = 16384

# The common shape, one scheme and its auth-params (every Digest header field SIP
# phones send), is read by one regular expression: :func:`_parse_simple` takes this
# fast path first and leaves everything else (CR/LF folding, token68, several
# schemes, empty list elements, errors) to the scanner. Both give the same items for
# what both accept (a property test holds them to it).
_TOKEN_TEXT = r"[A-Za-z0-9\-.!%*_+`'~]+"
_QDTEXT = r'[^"\\\x00-\x08\x0a-\x1f\x7f]*'
_QUOTED_BODY = rf"{_QDTEXT}(?:\\[\x00-\x09\x0b\x0c\x0e-\x7f]{_QDTEXT})*"  # _QUOTED, unrolled
_FAST_SCHEME = re.compile(rf"[ \t]*({_TOKEN_TEXT})[ \t]+")
# One auth-param with the separator before it (none before the first): whole, name,
# token value, quoted value.
_FAST_PARAM = re.compile(
    rf'((?:[ \t]*,[ \t]*)?({_TOKEN_TEXT})[ \t]*=[ \t]*(?:({_TOKEN_TEXT})|"({_QUOTED_BODY})"))'
)
_FAST_TAIL = re.compile(r"[ \t]*")

_Param = tuple[str, str]  # (lower-case name, unquoted value)


def quote(value: str) -> str:
    """Render ``value`` as a quoted-string (RFC 3261 §25.1).

    ``\\``, ``"`` and control characters other than tab become quoted-pairs.
    CR and LF cannot be represented at all (they would end the header field) and
    raise :class:`LocalSipError`.
    """
    if "\r" in value or "\n" in value:
        raise LocalSipError("CR/LF cannot appear in a quoted-string")
    return '"' + _NEEDS_ESCAPE.sub(lambda m: "\\" + m.group(), value) + '"'


def _is_token(value: str) -> bool:
    return _TOKEN.fullmatch(value) is not None


class _Scanner:
    """A cursor over one header value; every failure is a SipParseError(400)."""

    def __init__(self, text: str) -> None:
        if len(text) > _MAX_LENGTH:
            raise SipParseError("Authentication header too long")
        self.text = text
        self.pos = 0

    def skip_lws(self) -> None:
        match = _LWS.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self, what: str) -> str:
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            raise SipParseError(f"Bad authentication header: expected {what} at {self.pos}")
        self.pos = match.end()
        return match.group()

    def value(self) -> str:
        if self.peek() == '"':
            match = _QUOTED.match(self.text, self.pos)
            if match is None:
                raise SipParseError("Bad authentication header: bad quoted-string")
            self.pos = match.end()
            return _QUOTED_PAIR.sub(r"\1", match.group(1))
        return self.token("auth-param value")

    def token68(self) -> str | None:
        """Read a token68 that runs to the end of this challenge (end or comma), if any.

        ``realm="x"`` or ``a=b`` do not qualify: the token68 would stop at ``=``
        with more text before the next comma.
        """
        match = _TOKEN68.match(self.text, self.pos)
        if match is None:
            return None
        after = _LWS.match(self.text, match.end())
        end = after.end() if after is not None else match.end()
        if end < len(self.text) and self.text[end] != ",":
            return None
        self.pos = end
        return match.group()

    def starts_new_scheme(self) -> bool:
        """Whether the next item is ``scheme SP ...`` rather than ``name=value``."""
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            return False
        after = _LWS.match(self.text, match.end())
        end = after.end() if after is not None else match.end()
        return end >= len(self.text) or self.text[end] != "="


def _parse_simple(text: str) -> list[tuple[str, str | None, list[_Param]]] | None:
    """The fast path of :func:`_parse_items`: ``scheme name=value, ...`` or None.

    ``findall`` skips what it cannot match, so the params must tile the text:
    their lengths add up to where only trailing blanks are left, the first has
    no separator and every other one has one.
    """
    head = _FAST_SCHEME.match(text)
    if head is None:
        return None
    end = head.end()
    params: list[_Param] = []
    for whole, name, token, quoted in _FAST_PARAM.findall(text, end):
        if (whole[0] in " \t,") is not bool(params):
            return None
        end += len(whole)
        if token:
            params.append((name.lower(), token))
        else:
            params.append(
                (name.lower(), _QUOTED_PAIR.sub(r"\1", quoted) if "\\" in quoted else quoted)
            )
    if not params or _FAST_TAIL.fullmatch(text, end) is None:
        return None
    if len({name for name, _ in params}) != len(params):
        return None  # a duplicate: the scanner names it
    return [(head.group(1), None, params)]


def _parse_items(text: str) -> list[tuple[str, str | None, list[_Param]]]:
    """Split a header value into (scheme, token68, params) items (RFC 7235 §4.1)."""
    if len(text) <= _MAX_LENGTH:
        simple = _parse_simple(text)
        if simple is not None:
            return simple
    return _scan_items(text)


def _scan_items(text: str) -> list[tuple[str, str | None, list[_Param]]]:
    """:func:`_parse_items` for any input, by a scanner that names what is wrong."""
    scanner = _Scanner(text)
    items: list[tuple[str, str | None, list[_Param]]] = []
    scanner.skip_lws()
    while True:
        _skip_commas(scanner)  # RFC 7230 §7: empty list elements are allowed
        if scanner.at_end():
            break
        scheme = scanner.token("auth-scheme")
        params: list[_Param] = []
        token68: str | None = None
        start = scanner.pos
        scanner.skip_lws()
        if scanner.at_end() or scanner.peek() == ",":
            items.append((scheme, None, params))
            _skip_commas(scanner)
            continue
        if scanner.pos == start:
            raise SipParseError("Bad authentication header: no space after auth-scheme")
        token68 = scanner.token68()
        if token68 is None:
            _parse_params(scanner, params)
        else:
            _skip_commas(scanner)
        items.append((scheme, token68, params))
        if scanner.at_end():
            break
    if not items:
        raise SipParseError("Empty authentication header")
    return items


def _skip_commas(scanner: _Scanner) -> None:
    while scanner.peek() == ",":
        scanner.pos += 1
        scanner.skip_lws()


def _parse_params(scanner: _Scanner, params: list[_Param]) -> None:
    """Read ``name=value *(, name=value)`` until the end or the next auth-scheme."""
    seen: set[str] = set()
    while True:
        name = scanner.token("auth-param name").lower()
        scanner.skip_lws()
        if scanner.peek() != "=":
            raise SipParseError(f"Bad authentication header: {name!r} has no value")
        scanner.pos += 1
        scanner.skip_lws()
        value = scanner.value()
        if name in seen:
            raise SipParseError(f"Bad authentication header: duplicate {name!r}")
        seen.add(name)
        params.append((name, value))
        scanner.skip_lws()
        if scanner.at_end():
            return
        if scanner.peek() != ",":
            raise SipParseError("Bad authentication header: expected ',' between auth-params")
        _skip_commas(scanner)
        if scanner.at_end():
            return
        if scanner.starts_new_scheme():
            return


@dataclass
class _AuthValue:
    """Common shape: a scheme and either ordered auth-params or a token68."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    # Parameters that are tokens in the grammar and therefore never quoted on output.
    _UNQUOTED: ClassVar[frozenset[str]] = frozenset({"algorithm", "stale", "userhash", "charset"})

    @classmethod
    def parse(cls, value: str) -> Self:
        """Parse one header field value; raise SipParseError(400) if malformed."""
        items = _parse_items(value)
        if len(items) != 1:
            raise SipParseError("Expected exactly one authentication scheme in header value")
        return cls._from_item(items[0])

    @classmethod
    def _from_item(cls, item: tuple[str, str | None, list[_Param]]) -> Self:
        scheme, token68, params = item
        if scheme.lower() == "digest":
            scheme = "Digest"
            if token68 is not None or not params:
                raise SipParseError("Bad Digest authentication header: auth-params expected")
        return cls(scheme, dict(params), token68)

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    def get(self, name: str) -> str | None:
        return self.params.get(name.lower())

    def _render_param(self, name: str, value: str) -> str:
        bare = _is_token(value) and (name in self._UNQUOTED or not self.is_digest)
        return f"{name}={value}" if bare else f"{name}={quote(value)}"

    def __str__(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        rendered = ", ".join(self._render_param(name, value) for name, value in self.params.items())
        return f"{self.scheme} {rendered}" if rendered else self.scheme

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def nonce(self) -> str | None:
        return self.params.get("nonce")

    @property
    def opaque(self) -> str | None:
        return self.params.get("opaque")

    @property
    def algorithm(self) -> str:
        """The algorithm token as sent; RFC 7616 §3.3: absent means MD5."""
        return self.params.get("algorithm", "MD5")

    @property
    def userhash(self) -> bool:
        return self.params.get("userhash", "false").lower() == "true"


@dataclass
class Challenge(_AuthValue):
    """A WWW-Authenticate / Proxy-Authenticate value (RFC 3261 §20.44, RFC 7616 §3.3).

    ``params`` maps lower-case names to unquoted values, in received order.
    """

    @classmethod
    def digest(
        cls,
        *,
        realm: str,
        nonce: str,
        algorithm: str = "MD5",
        qop: Iterable[str] = ("auth",),
        stale: bool = False,
        opaque: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Challenge:
        """Build a Digest challenge in the parameter order RFC 7616 §3.9 examples use."""
        params: dict[str, str] = {"realm": realm}
        qops = ",".join(qop)
        if qops:
            params["qop"] = qops
        params["nonce"] = nonce
        if opaque is not None:
            params["opaque"] = opaque
        params["algorithm"] = algorithm
        if stale:
            params["stale"] = "true"
        if extra:
            params.update(extra)
        return cls("Digest", params)

    @property
    def qop_options(self) -> list[str]:
        """The comma-separated qop-options, lower-cased (RFC 3261 §25.1 ``qop-options``)."""
        raw = self.params.get("qop")
        if raw is None:
            return []
        return [part.strip().lower() for part in raw.split(",") if part.strip()]

    @property
    def stale(self) -> bool:
        """RFC 7616 §3.3: stale=true means retry with the new nonce, same password."""
        return self.params.get("stale", "false").lower() == "true"

    @property
    def domain(self) -> list[str]:
        raw = self.params.get("domain")
        return raw.split() if raw else []


@dataclass
class Credentials(_AuthValue):
    """An Authorization / Proxy-Authorization value (RFC 3261 §20.7, RFC 7616 §3.4).

    ``qop`` and ``nc`` are tokens in ``dig-resp`` and rendered unquoted; every
    other Digest parameter is rendered as a quoted-string.
    """

    _UNQUOTED: ClassVar[frozenset[str]] = frozenset(
        {"algorithm", "stale", "userhash", "charset", "qop", "nc"}
    )

    @property
    def username(self) -> str | None:
        return self.params.get("username")

    @property
    def uri(self) -> str | None:
        return self.params.get("uri")

    @property
    def response(self) -> str | None:
        return self.params.get("response")

    @property
    def cnonce(self) -> str | None:
        return self.params.get("cnonce")

    @property
    def qop(self) -> str | None:
        qop = self.params.get("qop")
        return qop.lower() if qop is not None else None

    @property
    def nc(self) -> str | None:
        return self.params.get("nc")


def parse_challenges(value: str) -> list[Challenge]:
    """Parse a header value that may carry several challenges (RFC 7235 §4.1).

    In SIP each challenge normally has its own header field; some peers join
    them with commas.
    """
    return [Challenge._from_item(item) for item in _parse_items(value)]
