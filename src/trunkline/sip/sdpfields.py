"""SDP field values: the typed values of SDP lines and attributes (RFC 8866 §5, §6, §9).

:mod:`trunkline.sip.sdp` holds the description (sessions, media, the
parser); this module holds the values it is made of, each a dataclass with
``parse(text)`` and ``__str__`` that round-trip:

- lines: ``o=`` :class:`Origin`, ``c=`` :class:`Connection` (multicast
  suffixes), ``b=`` :class:`Bandwidth`, ``t=``/``r=`` :class:`Timing`, and
  ``a=`` :class:`Attribute`; media direction is :class:`Direction`;
- attribute values: ``rtcp`` :class:`Rtcp` (RFC 3605), ``candidate``
  :class:`Candidate` (RFC 8839 §5.1), ``group`` :class:`Group` (RFC 5888 §5).

Payload formats (``rtpmap``, ``fmtp``, :class:`~trunkline.sip.sdpcodecs.Codec`)
are in :mod:`trunkline.sip.sdpcodecs`, SRTP keys (``crypto``, ``fingerprint``)
in :mod:`trunkline.sip.sdpcrypto`, the lexical helpers in
:mod:`trunkline.sip.sdpsyntax`. Every ``parse`` raises :class:`SipParseError`
(400) and nothing else. The values are re-exported by :mod:`trunkline.sip.sdp`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from trunkline.sip.sdpsyntax import fail, parse_int, parse_token, split_fields

__all__ = [
    "DIRECTIONS",
    "HOLD_ADDRESSES",
    "Attribute",
    "Bandwidth",
    "Candidate",
    "Connection",
    "Direction",
    "Group",
    "Origin",
    "Rtcp",
    "Timing",
]

HOLD_ADDRESSES = frozenset({"0.0.0.0", "::", "0:0:0:0:0:0:0:0"})


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
