"""SDP: the session description model, parser and serializer (RFC 8866).

A :class:`SessionDescription` keeps every line of the description it was
parsed from: the session section (``v o s i u e p c b t r z k a``), then one
:class:`MediaDescription` per ``m=`` line (``m i c b k a``). Attributes stay
an ordered list of :class:`Attribute` (name, optional value), so unknown
attributes survive untouched and in order; typed views (``rtpmap()``,
``crypto``, ``candidates``...) parse them on demand. A description written in
RFC 8866 §5 order round-trips byte for byte after LF -> CRLF normalization.

The attributes with typed views, and where they are defined:

- ``rtpmap``, ``fmtp``, ``ptime``, ``maxptime``, direction attributes
  (``sendrecv``/``sendonly``/``recvonly``/``inactive``): RFC 8866 §6;
- ``rtcp``: RFC 3605; ``rtcp-mux``: RFC 5761 §5.1.1;
- ``crypto``: RFC 4568 §9.1 (SDES keys for SRTP);
- ``candidate``, ``ice-ufrag``, ``ice-pwd``, ``ice-options``, ``ice-lite``,
  ``end-of-candidates``: RFC 8839 §5;
- ``fingerprint``: RFC 8122 §5; ``setup``: RFC 4145 §4;
- ``mid``, ``group``: RFC 5888 §4-5 (``group:BUNDLE``: RFC 8843);
  ``msid``: RFC 8830 §2.

Bad input never raises anything but :class:`SipParseError` (status 400):
``parse()`` validates the typed attributes eagerly, so the typed views of a
parsed description do not raise afterwards.
"""

from __future__ import annotations

import base64
import binascii
import copy
import enum
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from trunkline.sip.errors import SipParseError

__all__ = [
    "Attribute",
    "Bandwidth",
    "Candidate",
    "Connection",
    "Crypto",
    "CryptoKey",
    "Direction",
    "Fingerprint",
    "Group",
    "MediaDescription",
    "Origin",
    "Rtcp",
    "RtpMap",
    "SessionDescription",
    "Timing",
    "parse_fmtp_params",
]

_DIGITS = re.compile(r"[0-9]{1,20}")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_PROTO = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+(?:/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)*")
_FRACTION = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")
_HOLD_ADDRESSES = frozenset({"0.0.0.0", "::", "0:0:0:0:0:0:0:0"})


def _fail(reason: str) -> SipParseError:
    return SipParseError(f"Bad SDP: {reason}", 400)


def _int(text: str, what: str, maximum: int | None = None) -> int:
    """Parse a decimal integer field (ASCII digits only, RFC 8866 §9)."""
    if not _DIGITS.fullmatch(text):
        raise _fail(f"{what} is not a number: {text[:40]!r}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise _fail(f"{what} out of range: {value}")
    return value


def _token(text: str, what: str) -> str:
    if not _TOKEN.fullmatch(text):
        raise _fail(f"{what} is not a token: {text[:40]!r}")
    return text


def _proto(text: str) -> str:
    """``m=`` transport protocol: tokens joined by ``/`` (RFC 8866 §9, ``proto``)."""
    if not _PROTO.fullmatch(text):
        raise _fail(f"m= proto is malformed: {text[:40]!r}")
    return text


def _fields(text: str, what: str, minimum: int, maximum: int | None = None) -> list[str]:
    parts = text.split()
    if len(parts) < minimum or (maximum is not None and len(parts) > maximum):
        raise _fail(f"malformed {what}: {text[:60]!r}")
    return parts


class Direction(enum.Enum):
    """Media direction attributes (RFC 8866 §6.7, RFC 3264 §5.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, *, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def reversed(self) -> Direction:
        """The same stream seen from the other end (sendonly <-> recvonly)."""
        return Direction.from_flags(sends=self.receives, receives=self.sends)


_DIRECTIONS = {d.value: d for d in Direction}


@dataclass(slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (§5.2)."""

    username: str
    session_id: str
    session_version: int
    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def parse(cls, text: str) -> Origin:
        user, sess_id, version, nettype, addrtype, address = _fields(text, "o= line", 6, 6)
        _int(sess_id, "o= session id")
        return cls(
            username=user,
            session_id=sess_id,
            session_version=_int(version, "o= session version"),
            address=address,
            addrtype=_token(addrtype, "o= addrtype"),
            nettype=_token(nettype, "o= nettype"),
        )

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (§5.7).

    ``ttl`` and ``count`` are the multicast suffixes (``224.2.1.1/127/3``;
    IPv6 has only the count, ``ff15::101/3``).
    """

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"
    ttl: int | None = None
    count: int | None = None

    @classmethod
    def parse(cls, text: str) -> Connection:
        nettype, addrtype, address = _fields(text, "c= line", 3, 3)
        _token(nettype, "c= nettype")
        _token(addrtype, "c= addrtype")
        ttl: int | None = None
        count: int | None = None
        if addrtype in ("IP4", "IP6") and "/" in address:
            address, *suffix = address.split("/")
            if addrtype == "IP4" and len(suffix) in (1, 2):
                ttl = _int(suffix[0], "c= ttl", 255)
                if len(suffix) == 2:
                    count = _int(suffix[1], "c= address count")
            elif addrtype == "IP6" and len(suffix) == 1:
                count = _int(suffix[0], "c= address count")
            else:
                raise _fail(f"malformed c= address: {text[:60]!r}")
        if not address:
            raise _fail("empty c= address")
        return cls(address=address, addrtype=addrtype, nettype=nettype, ttl=ttl, count=count)

    @property
    def is_hold(self) -> bool:
        """The RFC 2543 way to put a call on hold (RFC 3264 §8.4): ``c=IN IP4 0.0.0.0``."""
        return self.address in _HOLD_ADDRESSES

    def __str__(self) -> str:
        address = self.address
        if self.ttl is not None:
            address += f"/{self.ttl}"
        if self.count is not None:
            address += f"/{self.count}"
        return f"{self.nettype} {self.addrtype} {address}"


@dataclass(slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` in kilobits per second for CT/AS (§5.8, RFC 3556)."""

    bwtype: str
    bandwidth: int

    @classmethod
    def parse(cls, text: str) -> Bandwidth:
        bwtype, sep, value = text.partition(":")
        if not sep:
            raise _fail(f"malformed b= line: {text[:60]!r}")
        return cls(_token(bwtype, "b= type"), _int(value, "b= bandwidth"))

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(slots=True)
class Timing:
    """``t=<start> <stop>`` with its ``r=`` repeat lines kept as text (§5.9-5.10)."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Timing:
        start, stop = _fields(text, "t= line", 2, 2)
        return cls(_int(start, "t= start"), _int(stop, "t= stop"))

    def __str__(self) -> str:
        return f"{self.start} {self.stop}"


@dataclass(slots=True)
class Attribute:
    """One ``a=`` line: a property (``a=rtcp-mux``, value None) or ``a=name:value``."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        name, sep, value = text.partition(":")
        return cls(_token(name, "attribute name"), value if sep else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(slots=True, frozen=True)
class RtpMap:
    """``a=rtpmap:<payload type> <encoding>/<clock rate>[/<channels>]`` (§6.6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, text: str) -> RtpMap:
        pt, encoding = _fields(text, "rtpmap", 2, 2)
        parts = encoding.split("/")
        if len(parts) not in (2, 3) or not parts[0]:
            raise _fail(f"malformed rtpmap: {text[:60]!r}")
        channels = _int(parts[2], "rtpmap channels", 255) if len(parts) == 3 else None
        return cls(
            payload_type=_int(pt, "rtpmap payload type", 127),
            encoding=_token(parts[0], "rtpmap encoding"),
            clock_rate=_int(parts[1], "rtpmap clock rate"),
            channels=channels,
        )

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


def parse_fmtp_params(text: str) -> dict[str, str | None]:
    """Split ``a=fmtp`` parameters written as ``name=value;name2=value2`` (RFC 4855 §3).

    Parameters without ``=`` (``0-16`` for telephone-event) map to None.
    """
    params: dict[str, str | None] = {}
    for raw in text.split(";"):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        params[name.strip()] = value.strip() if sep else None
    return params


@dataclass(slots=True, frozen=True)
class Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605 §2.1)."""

    port: int
    connection: Connection | None = None

    @classmethod
    def parse(cls, text: str) -> Rtcp:
        parts = text.split(None, 1)
        if not parts:
            raise _fail("empty rtcp attribute")
        port = _int(parts[0], "rtcp port", 65535)
        return cls(port, Connection.parse(parts[1]) if len(parts) == 2 else None)

    def __str__(self) -> str:
        return str(self.port) if self.connection is None else f"{self.port} {self.connection}"


@dataclass(slots=True, frozen=True)
class CryptoKey:
    """One SDES key parameter: ``inline:<key||salt base64>[|<lifetime>][|<MKI>:<length>]``.

    RFC 4568 §9.1 / §6.1. ``lifetime`` is kept as written (``2^31`` or decimal).
    """

    key_salt: str
    lifetime: str | None = None
    mki: int | None = None
    mki_length: int | None = None
    method: str = "inline"

    @classmethod
    def parse(cls, text: str) -> CryptoKey:
        method, sep, info = text.partition(":")
        if not sep or method != "inline" or not info:
            raise _fail(f"unsupported crypto key method: {text[:60]!r}")
        key_salt, *rest = info.split("|")
        if len(rest) > 2:
            raise _fail(f"malformed crypto key: {text[:60]!r}")
        try:
            base64.b64decode(key_salt, validate=True)
        except (binascii.Error, ValueError):
            raise _fail(f"crypto key is not base64: {key_salt[:60]!r}") from None
        lifetime: str | None = None
        mki: int | None = None
        mki_length: int | None = None
        for index, part in enumerate(rest):
            if ":" in part:
                mki_text, _, length_text = part.partition(":")
                mki = _int(mki_text, "crypto MKI")
                mki_length = _int(length_text, "crypto MKI length", 128)
            elif index == 0 and re.fullmatch(r"(?:2\^[0-9]{1,3}|[0-9]{1,20})", part):
                lifetime = part
            else:
                raise _fail(f"malformed crypto key: {text[:60]!r}")
        return cls(key_salt, lifetime, mki, mki_length, method)

    @property
    def key_bytes(self) -> bytes:
        """The concatenated master key and salt (RFC 4568 §6.1)."""
        return base64.b64decode(self.key_salt)

    def __str__(self) -> str:
        text = f"{self.method}:{self.key_salt}"
        if self.lifetime is not None:
            text += f"|{self.lifetime}"
        if self.mki is not None:
            text += f"|{self.mki}:{self.mki_length}"
        return text


@dataclass(slots=True, frozen=True)
class Crypto:
    """``a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]`` (RFC 4568 §9.1)."""

    tag: int
    suite: str
    keys: tuple[CryptoKey, ...]
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Crypto:
        tag, suite, key_params, *session_params = _fields(text, "crypto attribute", 3)
        keys = tuple(CryptoKey.parse(key) for key in key_params.split(";"))
        return cls(
            _int(tag, "crypto tag", 999999999),
            _token(suite, "crypto suite"),
            keys,
            tuple(session_params),
        )

    def __str__(self) -> str:
        keys = ";".join(str(key) for key in self.keys)
        return " ".join([str(self.tag), self.suite, keys, *self.session_params])


@dataclass(slots=True, frozen=True)
class Candidate:
    """``a=candidate:`` one ICE candidate (RFC 8839 §5.1).

    ``extensions`` keeps the trailing ``name value`` pairs (``generation 0``,
    ``tcptype active``, ``network-id 1``) in order.
    """

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Candidate:
        parts = _fields(text, "candidate", 8)
        foundation, component, transport, priority, address, port, typ, cand_type = parts[:8]
        if typ != "typ":
            raise _fail(f"candidate without typ: {text[:60]!r}")
        rest = parts[8:]
        if len(rest) % 2:
            raise _fail(f"candidate with an odd number of extension fields: {text[:60]!r}")
        related_address: str | None = None
        related_port: int | None = None
        extensions: list[tuple[str, str]] = []
        for name, value in zip(rest[::2], rest[1::2], strict=True):
            if name == "raddr" and related_address is None and not extensions:
                related_address = value
            elif name == "rport" and related_port is None and not extensions:
                related_port = _int(value, "candidate rport", 65535)
            else:
                extensions.append((name, value))
        return cls(
            foundation=_token(foundation, "candidate foundation"),
            component=_int(component, "candidate component", 256),
            transport=_token(transport, "candidate transport"),
            priority=_int(priority, "candidate priority", 2**32 - 1),
            address=address,
            port=_int(port, "candidate port", 65535),
            type=_token(cand_type, "candidate type"),
            related_address=related_address,
            related_port=related_port,
            extensions=tuple(extensions),
        )

    def __str__(self) -> str:
        parts = [
            self.foundation,
            str(self.component),
            self.transport,
            str(self.priority),
            self.address,
            str(self.port),
            "typ",
            self.type,
        ]
        if self.related_address is not None:
            parts += ["raddr", self.related_address]
        if self.related_port is not None:
            parts += ["rport", str(self.related_port)]
        for name, value in self.extensions:
            parts += [name, value]
        return " ".join(parts)


@dataclass(slots=True, frozen=True)
class Fingerprint:
    """``a=fingerprint:<hash-func> <AB:CD:...>`` of a DTLS certificate (RFC 8122 §5)."""

    hash_function: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        hash_function, value = _fields(text, "fingerprint", 2, 2)
        if not re.fullmatch(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*", value):
            raise _fail(f"malformed fingerprint: {value[:60]!r}")
        return cls(_token(hash_function, "fingerprint hash function"), value)

    def __str__(self) -> str:
        return f"{self.hash_function} {self.value}"


@dataclass(slots=True, frozen=True)
class Group:
    """``a=group:<semantics> <mid> ...`` (RFC 5888 §5), e.g. ``BUNDLE 0 1``."""

    semantics: str
    mids: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Group:
        semantics, *mids = _fields(text, "group", 1)
        return cls(_token(semantics, "group semantics"), tuple(mids))

    def __str__(self) -> str:
        return " ".join([self.semantics, *self.mids])


_SETUP_ROLES = frozenset({"active", "passive", "actpass", "holdconn"})


class _Attributes:
    """Attribute helpers shared by the session and media levels."""

    __slots__ = ()
    attributes: list[Attribute]

    def get(self, name: str) -> str | None:
        """The value of the first ``a=name`` ("" for a property attribute)."""
        for attribute in self.attributes:
            if attribute.name == name:
                return "" if attribute.value is None else attribute.value
        return None

    def get_all(self, name: str) -> list[str]:
        return [a.value or "" for a in self.attributes if a.name == name]

    def has(self, name: str) -> bool:
        return any(a.name == name for a in self.attributes)

    def add(self, name: str, value: str | None = None) -> None:
        self.attributes.append(Attribute(name, value))

    def remove(self, name: str) -> int:
        """Remove every ``a=name``; return how many were removed."""
        before = len(self.attributes)
        self.attributes[:] = [a for a in self.attributes if a.name != name]
        return before - len(self.attributes)

    @property
    def direction(self) -> Direction | None:
        """The direction attribute written at this level, if any (RFC 8866 §6.7)."""
        for attribute in self.attributes:
            if attribute.value is None and attribute.name in _DIRECTIONS:
                return _DIRECTIONS[attribute.name]
        return None

    def set_direction(self, direction: Direction | None) -> None:
        """Replace the direction attributes at this level (None removes them)."""
        kept = [a for a in self.attributes if a.name not in _DIRECTIONS]
        if direction is not None:
            kept.append(Attribute(direction.value))
        self.attributes[:] = kept

    @property
    def ice_ufrag(self) -> str | None:
        return self.get("ice-ufrag")

    @property
    def ice_pwd(self) -> str | None:
        return self.get("ice-pwd")

    @property
    def ice_options(self) -> list[str]:
        return [option for value in self.get_all("ice-options") for option in value.split()]

    @property
    def fingerprints(self) -> list[Fingerprint]:
        return [Fingerprint.parse(value) for value in self.get_all("fingerprint")]

    @property
    def setup(self) -> str | None:
        """The DTLS/TCP connection role (RFC 4145 §4): active, passive, actpass, holdconn."""
        value = self.get("setup")
        if value is not None and value not in _SETUP_ROLES:
            raise _fail(f"unknown setup role: {value[:40]!r}")
        return value

    def _validate_common(self) -> None:
        for attribute in self.attributes:
            if attribute.name in _DIRECTIONS and attribute.value is not None:
                raise _fail(f"direction attribute with a value: a={attribute}"[:80])
        self.fingerprints  # noqa: B018 -- parsing validates
        self.setup  # noqa: B018


@dataclass(slots=True)
class MediaDescription(_Attributes):
    """One ``m=`` section: ``m=<media> <port>[/<count>] <proto> <fmt> ...`` (§5.14)."""

    media: str
    port: int
    proto: str
    fmts: list[str]
    port_count: int | None = None
    information: str | None = None
    connection: Connection | None = None
    extra_connections: list[Connection] = field(default_factory=list)
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    @classmethod
    def parse_m_line(cls, text: str) -> MediaDescription:
        media, port_text, proto, *fmts = _fields(text, "m= line", 3)
        port_text, sep, count_text = port_text.partition("/")
        count = _int(count_text, "m= port count") if sep else None
        for fmt in fmts:
            _token(fmt, "m= format")
        return cls(
            media=_token(media, "m= media"),
            port=_int(port_text, "m= port", 65535),
            proto=_proto(proto),
            fmts=fmts,
            port_count=count,
        )

    @property
    def m_line(self) -> str:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        return " ".join([self.media, port, self.proto, *self.fmts])

    @property
    def is_rtp(self) -> bool:
        return "RTP/" in self.proto

    @property
    def rejected(self) -> bool:
        """Port zero means a disabled or rejected stream (RFC 3264 §5.1, §6)."""
        return self.port == 0

    @property
    def payload_types(self) -> list[int]:
        """The numeric formats of an RTP m= line, in preference order."""
        return [int(fmt) for fmt in self.fmts if _DIGITS.fullmatch(fmt) and int(fmt) <= 127]

    def rtpmap(self) -> dict[int, RtpMap]:
        """``a=rtpmap`` entries by payload type (first one wins on duplicates)."""
        result: dict[int, RtpMap] = {}
        for value in self.get_all("rtpmap"):
            rtpmap = RtpMap.parse(value)
            result.setdefault(rtpmap.payload_type, rtpmap)
        return result

    def fmtp(self) -> dict[int, str]:
        """``a=fmtp`` parameter strings by payload type (non-numeric formats skipped)."""
        result: dict[int, str] = {}
        for value in self.get_all("fmtp"):
            fmt, _, params = value.partition(" ")
            if _DIGITS.fullmatch(fmt):
                result.setdefault(int(fmt), params.strip())
        return result

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (fractions rounded), RFC 8866 §6.4."""
        return self._milliseconds("ptime")

    @property
    def maxptime(self) -> int | None:
        """``a=maxptime`` in milliseconds, RFC 8866 §6.5."""
        return self._milliseconds("maxptime")

    def _milliseconds(self, name: str) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        if not _FRACTION.fullmatch(value.strip()):
            raise _fail(f"a={name} is not a number: {value[:40]!r}")
        return round(float(value))

    @property
    def rtcp(self) -> Rtcp | None:
        value = self.get("rtcp")
        return None if value is None else Rtcp.parse(value)

    @property
    def rtcp_mux(self) -> bool:
        return self.has("rtcp-mux")

    @property
    def crypto(self) -> list[Crypto]:
        return [Crypto.parse(value) for value in self.get_all("crypto")]

    @property
    def candidates(self) -> list[Candidate]:
        return [Candidate.parse(value) for value in self.get_all("candidate")]

    @property
    def end_of_candidates(self) -> bool:
        return self.has("end-of-candidates")

    @property
    def mid(self) -> str | None:
        return self.get("mid")

    @property
    def msid(self) -> str | None:
        return self.get("msid")

    def validate(self) -> None:
        """Parse every typed attribute once; raise SipParseError if one is malformed."""
        self._validate_common()
        self.rtpmap()
        self.ptime  # noqa: B018 -- parsing validates
        self.maxptime  # noqa: B018
        self.rtcp  # noqa: B018
        self.crypto  # noqa: B018
        self.candidates  # noqa: B018

    def lines(self) -> Iterator[str]:
        yield f"m={self.m_line}"
        if self.information is not None:
            yield f"i={self.information}"
        if self.connection is not None:
            yield f"c={self.connection}"
        for connection in self.extra_connections:
            yield f"c={connection}"
        for bandwidth in self.bandwidths:
            yield f"b={bandwidth}"
        if self.key is not None:
            yield f"k={self.key}"
        for attribute in self.attributes:
            yield f"a={attribute}"


@dataclass(slots=True)
class SessionDescription(_Attributes):
    """A whole SDP body (RFC 8866 §5): the session section and its media sections."""

    origin: Origin
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=lambda: [Timing()])
    zone: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse an SDP body; LF or CRLF line ends; raise SipParseError (400) if invalid."""
        if isinstance(data, bytes):
            text = data.decode("utf-8", "surrogateescape")
        elif isinstance(data, str):
            try:
                data.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise _fail("text is not encodable as UTF-8") from None
            text = data
        else:
            raise _fail("body is neither bytes nor str")
        return _Parser(text).parse()

    def lines(self) -> Iterator[str]:
        yield f"v={self.version}"
        yield f"o={self.origin}"
        yield f"s={self.session_name}"
        if self.information is not None:
            yield f"i={self.information}"
        if self.uri is not None:
            yield f"u={self.uri}"
        for email in self.emails:
            yield f"e={email}"
        for phone in self.phones:
            yield f"p={phone}"
        if self.connection is not None:
            yield f"c={self.connection}"
        for bandwidth in self.bandwidths:
            yield f"b={bandwidth}"
        for timing in self.timings:
            yield f"t={timing}"
            for repeat in timing.repeats:
                yield f"r={repeat}"
        if self.zone is not None:
            yield f"z={self.zone}"
        if self.key is not None:
            yield f"k={self.key}"
        for attribute in self.attributes:
            yield f"a={attribute}"
        for media in self.media:
            yield from media.lines()

    def __str__(self) -> str:
        return "".join(f"{line}\r\n" for line in self.lines())

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8", "surrogateescape")

    def copy(self) -> SessionDescription:
        """A deep copy, safe to edit."""
        return copy.deepcopy(self)

    def same_content(self, other: SessionDescription) -> bool:
        """Equal apart from ``o=`` session version (RFC 3264 §8: when to bump it)."""
        mine = self.copy()
        mine.origin.session_version = other.origin.session_version
        return mine == other

    @property
    def groups(self) -> list[Group]:
        return [Group.parse(value) for value in self.get_all("group")]

    @property
    def ice_lite(self) -> bool:
        return self.has("ice-lite")

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The ``c=`` that applies to ``media``: its own, else the session's (§5.7)."""
        return media.connection if media.connection is not None else self.connection

    def direction_of(self, media: MediaDescription) -> Direction:
        """The effective direction: media level, else session level, else sendrecv."""
        return media.direction or self.direction or Direction.SENDRECV

    def validate(self) -> None:
        self._validate_common()
        self.groups  # noqa: B018 -- parsing validates
        for media in self.media:
            media.validate()


_SESSION_SINGLE = frozenset("osiuczk")
_MEDIA_SINGLE = frozenset("ik")


class _Parser:
    """Line-by-line SDP parser (RFC 8866 §5, §9 grammar; lenient about line order)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def parse(self) -> SessionDescription:
        if "\x00" in self.text:
            raise _fail("NUL character")
        lines = list(self._lines())
        if not lines or lines[0] != ("v", "0"):
            raise _fail("must start with v=0")
        session_lines: list[tuple[str, str]] = []
        media_sections: list[list[tuple[str, str]]] = []
        for kind, value in lines[1:]:
            if kind == "m":
                media_sections.append([(kind, value)])
            elif media_sections:
                media_sections[-1].append((kind, value))
            else:
                session_lines.append((kind, value))
        session = self._session(session_lines)
        session.media = [self._media(section) for section in media_sections]
        session.validate()
        return session

    def _lines(self) -> Iterable[tuple[str, str]]:
        for raw in self.text.split("\n"):
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line:
                continue
            if "\r" in line:
                raise _fail("bare CR inside a line")
            if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
                raise _fail(f"malformed line: {line[:40]!r}")
            yield line[0], line[2:]

    def _session(self, lines: list[tuple[str, str]]) -> SessionDescription:
        seen: set[str] = set()
        origin: Origin | None = None
        session_name: str | None = None
        timings: list[Timing] = []
        fields: dict[str, str] = {}
        emails: list[str] = []
        phones: list[str] = []
        connection: Connection | None = None
        bandwidths: list[Bandwidth] = []
        attributes: list[Attribute] = []
        for kind, value in lines:
            if kind in _SESSION_SINGLE:
                if kind in seen:
                    raise _fail(f"more than one {kind}= line in the session section")
                seen.add(kind)
            if kind == "o":
                origin = Origin.parse(value)
            elif kind == "s":
                session_name = value
            elif kind in "iuzk":
                fields[kind] = value
            elif kind == "e":
                emails.append(value)
            elif kind == "p":
                phones.append(value)
            elif kind == "c":
                connection = Connection.parse(value)
            elif kind == "b":
                bandwidths.append(Bandwidth.parse(value))
            elif kind == "t":
                timings.append(Timing.parse(value))
            elif kind == "r":
                if not timings:
                    raise _fail("r= line before any t= line")
                timings[-1].repeats.append(value)
            elif kind == "a":
                attributes.append(Attribute.parse(value))
            else:
                raise _fail(f"unexpected {kind}= line in the session section")
        if origin is None:
            raise _fail("missing o= line")
        if session_name is None:
            raise _fail("missing s= line")
        return SessionDescription(
            origin=origin,
            session_name=session_name,
            information=fields.get("i"),
            uri=fields.get("u"),
            emails=emails,
            phones=phones,
            connection=connection,
            bandwidths=bandwidths,
            timings=timings,
            zone=fields.get("z"),
            key=fields.get("k"),
            attributes=attributes,
        )

    def _media(self, lines: list[tuple[str, str]]) -> MediaDescription:
        media = MediaDescription.parse_m_line(lines[0][1])
        seen: set[str] = set()
        for kind, value in lines[1:]:
            if kind in _MEDIA_SINGLE:
                if kind in seen:
                    raise _fail(f"more than one {kind}= line in a media section")
                seen.add(kind)
            if kind == "i":
                media.information = value
            elif kind == "k":
                media.key = value
            elif kind == "c":
                if media.connection is None:
                    media.connection = Connection.parse(value)
                else:
                    media.extra_connections.append(Connection.parse(value))
            elif kind == "b":
                media.bandwidths.append(Bandwidth.parse(value))
            elif kind == "a":
                media.attributes.append(Attribute.parse(value))
            else:
                raise _fail(f"unexpected {kind}= line in a media section")
        return media
