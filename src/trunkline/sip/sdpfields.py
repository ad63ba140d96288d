"""SDP field values: the typed values of SDP lines and attributes (RFC 8866 §5, §6, §9).

:mod:`trunkline.sip.sdp` holds the description (sessions, media, the
parser); this module holds the values it is made of, each a dataclass with
``parse(text)`` and ``__str__`` that round-trip:

- lines: ``o=`` :class:`Origin`, ``c=`` :class:`Connection` (multicast
  suffixes), ``b=`` :class:`Bandwidth`, ``t=``/``r=`` :class:`Timing`, and
  ``a=`` :class:`Attribute`; media direction is :class:`Direction`;
- attribute values: ``rtpmap`` :class:`RtpMap` and :func:`parse_fmtp_params`
  (RFC 8866 §6.6, RFC 4855), ``rtcp`` :class:`Rtcp` (RFC 3605), ``crypto``
  :class:`Crypto`/:class:`CryptoKey` (RFC 4568 §9.1), ``candidate``
  :class:`Candidate` (RFC 8839 §5.1), ``fingerprint`` :class:`Fingerprint`
  (RFC 8122 §5), ``group`` :class:`Group` (RFC 5888 §5);
- payload formats: :class:`Codec` (an rtpmap + fmtp pair with a preferred
  payload type), the RFC 3551 static table and common codecs; SDES keys for
  a new ``a=crypto`` line: :func:`make_crypto`.

Every ``parse`` raises :class:`SipParseError` (400) and nothing else.
The line and attribute values are re-exported by :mod:`trunkline.sip.sdp`,
the payload formats by :mod:`trunkline.sip.offeranswer`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import secrets
from dataclasses import dataclass, field

from trunkline.sip.errors import LocalSipError, SipParseError

__all__ = [
    "CN",
    "G722",
    "OPUS",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "SUPPORTED_SRTP_SUITES",
    "TELEPHONE_EVENT",
    "Attribute",
    "Bandwidth",
    "Candidate",
    "Codec",
    "Connection",
    "Crypto",
    "CryptoKey",
    "Direction",
    "Fingerprint",
    "Group",
    "Origin",
    "Rtcp",
    "RtpMap",
    "Timing",
    "make_crypto",
    "parse_fmtp_params",
]

DIGITS = re.compile(r"[0-9]{1,20}")
TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
PROTO = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+(?:/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)*")
FRACTION = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")
HOLD_ADDRESSES = frozenset({"0.0.0.0", "::", "0:0:0:0:0:0:0:0"})


def fail(reason: str) -> SipParseError:
    return SipParseError(f"Bad SDP: {reason}", 400)


def parse_int(text: str, what: str, maximum: int | None = None) -> int:
    """Parse a decimal integer field (ASCII digits only, RFC 8866 §9)."""
    if not DIGITS.fullmatch(text):
        raise fail(f"{what} is not a number: {text[:40]!r}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise fail(f"{what} out of range: {value}")
    return value


def parse_token(text: str, what: str) -> str:
    if not TOKEN.fullmatch(text):
        raise fail(f"{what} is not a token: {text[:40]!r}")
    return text


def parse_proto(text: str) -> str:
    """``m=`` transport protocol: tokens joined by ``/`` (RFC 8866 §9, ``proto``)."""
    if not PROTO.fullmatch(text):
        raise fail(f"m= proto is malformed: {text[:40]!r}")
    return text


def split_fields(text: str, what: str, minimum: int, maximum: int | None = None) -> list[str]:
    parts = text.split()
    if len(parts) < minimum or (maximum is not None and len(parts) > maximum):
        raise fail(f"malformed {what}: {text[:60]!r}")
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


DIRECTIONS = {d.value: d for d in Direction}


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
        user, sess_id, version, nettype, addrtype, address = split_fields(text, "o= line", 6, 6)
        parse_int(sess_id, "o= session id")
        return cls(
            username=user,
            session_id=sess_id,
            session_version=parse_int(version, "o= session version"),
            address=address,
            addrtype=parse_token(addrtype, "o= addrtype"),
            nettype=parse_token(nettype, "o= nettype"),
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
        nettype, addrtype, address = split_fields(text, "c= line", 3, 3)
        parse_token(nettype, "c= nettype")
        parse_token(addrtype, "c= addrtype")
        ttl: int | None = None
        count: int | None = None
        if addrtype in ("IP4", "IP6") and "/" in address:
            address, *suffix = address.split("/")
            if addrtype == "IP4" and len(suffix) in (1, 2):
                ttl = parse_int(suffix[0], "c= ttl", 255)
                if len(suffix) == 2:
                    count = parse_int(suffix[1], "c= address count")
            elif addrtype == "IP6" and len(suffix) == 1:
                count = parse_int(suffix[0], "c= address count")
            else:
                raise fail(f"malformed c= address: {text[:60]!r}")
        if not address:
            raise fail("empty c= address")
        return cls(address=address, addrtype=addrtype, nettype=nettype, ttl=ttl, count=count)

    @property
    def is_hold(self) -> bool:
        """The RFC 2543 way to put a call on hold (RFC 3264 §8.4): ``c=IN IP4 0.0.0.0``."""
        return self.address in HOLD_ADDRESSES

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
            raise fail(f"malformed b= line: {text[:60]!r}")
        return cls(parse_token(bwtype, "b= type"), parse_int(value, "b= bandwidth"))

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
        start, stop = split_fields(text, "t= line", 2, 2)
        return cls(parse_int(start, "t= start"), parse_int(stop, "t= stop"))

    def __str__(self) -> str:
        return f"{self.start} {self.stop}"


@dataclass(slots=True)
class Attribute:
    """One ``a=`` line: a property (``a=rtcp-mux``, value None) or ``a=name:value``.

    ``malformed`` is why a known attribute's value did not parse, set only by a
    lenient parse (RFC 8866 §5.13: an attribute we cannot use is ignored). The
    line is kept and serialized as it came; the typed views skip it.
    """

    name: str
    value: str | None = None
    malformed: str | None = field(default=None, compare=False)

    @classmethod
    def parse(cls, text: str) -> Attribute:
        name, sep, value = text.partition(":")
        return cls(parse_token(name, "attribute name"), value if sep else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


_RTPMAP = re.compile(
    r"\s*([0-9]{1,3})\s+([!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)/([0-9]{1,20})(?:/([0-9]{1,3}))?\s*"
)


@dataclass(slots=True, frozen=True)
class RtpMap:
    """``a=rtpmap:<payload type> <encoding>/<clock rate>[/<channels>]`` (§6.6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, text: str) -> RtpMap:
        match = _RTPMAP.fullmatch(text)
        if match is not None:  # the common, well-formed case in one regex
            pt_text, name, rate, channels_text = match.groups()
            channels_value = None if channels_text is None else int(channels_text)
            if int(pt_text) <= 127 and (channels_value is None or channels_value <= 255):
                return cls(int(pt_text), name, int(rate), channels_value)
        pt, encoding = split_fields(text, "rtpmap", 2, 2)
        parts = encoding.split("/")
        if len(parts) not in (2, 3) or not parts[0]:
            raise fail(f"malformed rtpmap: {text[:60]!r}")
        channels = parse_int(parts[2], "rtpmap channels", 255) if len(parts) == 3 else None
        return cls(
            payload_type=parse_int(pt, "rtpmap payload type", 127),
            encoding=parse_token(parts[0], "rtpmap encoding"),
            clock_rate=parse_int(parts[1], "rtpmap clock rate"),
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
            raise fail("empty rtcp attribute")
        port = parse_int(parts[0], "rtcp port", 65535)
        return cls(port, Connection.parse(parts[1]) if len(parts) == 2 else None)

    def __str__(self) -> str:
        return str(self.port) if self.connection is None else f"{self.port} {self.connection}"


def _b64decode(text: str) -> bytes:
    """Strict base64, but tolerant of missing ``=`` padding (seen in the wild)."""
    if not text:
        raise binascii.Error("empty")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


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
            raise fail(f"unsupported crypto key method: {text[:60]!r}")
        key_salt, *rest = info.split("|")
        if len(rest) > 2:
            raise fail(f"malformed crypto key: {text[:60]!r}")
        try:
            _b64decode(key_salt)
        except (binascii.Error, ValueError):
            raise fail(f"crypto key is not base64: {key_salt[:60]!r}") from None
        lifetime: str | None = None
        mki: int | None = None
        mki_length: int | None = None
        for index, part in enumerate(rest):
            if ":" in part:
                mki_text, _, length_text = part.partition(":")
                mki = parse_int(mki_text, "crypto MKI")
                mki_length = parse_int(length_text, "crypto MKI length", 128)
            elif index == 0 and re.fullmatch(r"(?:2\^[0-9]{1,3}|[0-9]{1,20})", part):
                lifetime = part
            else:
                raise fail(f"malformed crypto key: {text[:60]!r}")
        return cls(key_salt, lifetime, mki, mki_length, method)

    @property
    def key_bytes(self) -> bytes:
        """The concatenated master key and salt (RFC 4568 §6.1)."""
        return _b64decode(self.key_salt)

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
        tag, suite, key_params, *session_params = split_fields(text, "crypto attribute", 3)
        keys = tuple(CryptoKey.parse(key) for key in key_params.split(";"))
        return cls(
            parse_int(tag, "crypto tag", 999999999),
            parse_token(suite, "crypto suite"),
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
        parts = split_fields(text, "candidate", 8)
        foundation, component, transport, priority, address, port, typ, cand_type = parts[:8]
        if typ != "typ":
            raise fail(f"candidate without typ: {text[:60]!r}")
        rest = parts[8:]
        if len(rest) % 2:
            raise fail(f"candidate with an odd number of extension fields: {text[:60]!r}")
        related_address: str | None = None
        related_port: int | None = None
        extensions: list[tuple[str, str]] = []
        for name, value in zip(rest[::2], rest[1::2], strict=True):
            if name == "raddr" and related_address is None and not extensions:
                related_address = value
            elif name == "rport" and related_port is None and not extensions:
                related_port = parse_int(value, "candidate rport", 65535)
            else:
                extensions.append((name, value))
        return cls(
            foundation=parse_token(foundation, "candidate foundation"),
            component=parse_int(component, "candidate component", 256),
            transport=parse_token(transport, "candidate transport"),
            priority=parse_int(priority, "candidate priority", 2**32 - 1),
            address=address,
            port=parse_int(port, "candidate port", 65535),
            type=parse_token(cand_type, "candidate type"),
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
        hash_function, value = split_fields(text, "fingerprint", 2, 2)
        if not re.fullmatch(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*", value):
            raise fail(f"malformed fingerprint: {value[:60]!r}")
        return cls(parse_token(hash_function, "fingerprint hash function"), value)

    def __str__(self) -> str:
        return f"{self.hash_function} {self.value}"


@dataclass(slots=True, frozen=True)
class Group:
    """``a=group:<semantics> <mid> ...`` (RFC 5888 §5), e.g. ``BUNDLE 0 1``."""

    semantics: str
    mids: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Group:
        semantics, *mids = split_fields(text, "group", 1)
        return cls(parse_token(semantics, "group semantics"), tuple(mids))

    def __str__(self) -> str:
        return " ".join([self.semantics, *self.mids])


@dataclass(frozen=True, slots=True)
class Codec:
    """An RTP payload format as SDP names it (``a=rtpmap`` + ``a=fmtp``).

    ``payload_type`` is the preferred number (the static one for PCMU, PCMA,
    G722...); the offerer's number wins in an answer.
    """

    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None
    payload_type: int | None = None

    @property
    def is_telephone_event(self) -> bool:
        return self.name.lower() == "telephone-event"

    @property
    def is_comfort_noise(self) -> bool:
        return self.name.upper() == "CN"

    def matches(self, rtpmap: RtpMap) -> bool:
        """Same encoding name (case-insensitive), clock rate and channel count."""
        return (
            self.name.lower() == rtpmap.encoding.lower()
            and self.clock_rate == rtpmap.clock_rate
            and self.channels == (rtpmap.channels or 1)
        )

    def rtpmap(self, payload_type: int) -> RtpMap:
        channels = None if self.channels == 1 else self.channels
        return RtpMap(payload_type, self.name, self.clock_rate, channels)


PCMU = Codec("PCMU", 8000, payload_type=0)
PCMA = Codec("PCMA", 8000, payload_type=8)
# G.722 samples at 16 kHz but is written 8000 in SDP (RFC 3551 §4.5.2).
G722 = Codec("G722", 8000, payload_type=9)
CN = Codec("CN", 8000, payload_type=13)
# Opus is always written opus/48000/2 (RFC 7587 §7).
OPUS = Codec("opus", 48000, 2, "minptime=10;useinbandfec=1", 111)
TELEPHONE_EVENT = Codec("telephone-event", 8000, fmtp="0-16", payload_type=101)

STATIC_PAYLOAD_TYPES: dict[int, Codec] = {
    pt: Codec(name, rate, channels, payload_type=pt)
    for pt, name, rate, channels in [
        # RFC 3551 §6, table 4 (audio).
        (0, "PCMU", 8000, 1),
        (3, "GSM", 8000, 1),
        (4, "G723", 8000, 1),
        (5, "DVI4", 8000, 1),
        (6, "DVI4", 16000, 1),
        (7, "LPC", 8000, 1),
        (8, "PCMA", 8000, 1),
        (9, "G722", 8000, 1),
        (10, "L16", 44100, 2),
        (11, "L16", 44100, 1),
        (12, "QCELP", 8000, 1),
        (13, "CN", 8000, 1),
        (14, "MPA", 90000, 1),
        (15, "G728", 8000, 1),
        (16, "DVI4", 11025, 1),
        (17, "DVI4", 22050, 1),
        (18, "G729", 8000, 1),
    ]
}

# SDES suites we can key (RFC 4568 §6.2, RFC 6188, RFC 7714) -> master key+salt length.
SUPPORTED_SRTP_SUITES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AES_256_CM_HMAC_SHA1_80": 46,
    "AES_256_CM_HMAC_SHA1_32": 46,
    "AEAD_AES_128_GCM": 28,
    "AEAD_AES_256_GCM": 44,
}


def make_crypto(tag: int, suite: str, key: bytes | None = None) -> Crypto:
    """An ``a=crypto`` line with a fresh (or the given) master key and salt (RFC 4568)."""
    length = SUPPORTED_SRTP_SUITES.get(suite)
    if length is None:
        raise LocalSipError(f"unsupported SRTP suite {suite}")
    if key is None:
        key = secrets.token_bytes(length)
    elif len(key) != length:
        raise LocalSipError(f"{suite} needs a {length}-byte key and salt, got {len(key)}")
    return Crypto(tag, suite, (CryptoKey(base64.b64encode(key).decode("ascii")),))
