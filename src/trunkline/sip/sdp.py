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

The value types (:class:`Origin`, :class:`Connection`, :class:`Candidate`...)
live in :mod:`trunkline.sip.sdpfields`, :class:`RtpMap` in
:mod:`trunkline.sip.sdpcodecs` and :class:`Crypto` in :mod:`trunkline.sip.sdpcrypto`,
and are re-exported here; the attribute lookups and their validation shared by
both levels in :mod:`trunkline.sip.sdpattributes`. Bad input never raises anything but
:class:`SipParseError` (status 400): ``parse()`` validates the typed
attributes eagerly, so the typed views of a parsed description do not raise
afterwards. Text is UTF-8; undecodable bytes are kept (surrogateescape) so
they serialize back unchanged.

``parse(data, strict=False)`` is the lenient mode for a user agent or proxy
that only needs what it understands: RFC 8866 §5.13 (RFC 4566 §5.13) has a
receiver ignore attributes it does not understand, so a malformed instance of
a known attribute (``a=rtpmap:31 LPC`` in the RFC 4475 torture tests) does not
reject the whole description. The line is kept as written, marked
:attr:`Attribute.malformed`, skipped by the typed views and listed in
:attr:`SessionDescription.problems`. The structure (``v=``, ``o=``, ``s=``,
``m=``, ``c=``, line syntax) is checked in both modes; ``strict=True`` (the
default) rejects any malformed known attribute with 400.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from trunkline.sip.sdpattributes import MEDIA_CHECKS, SESSION_CHECKS, Attributes, check_milliseconds
from trunkline.sip.sdpcodecs import RtpMap, parse_fmtp_params
from trunkline.sip.sdpcrypto import Crypto, CryptoKey, Fingerprint
from trunkline.sip.sdpfields import (
    Attribute,
    Bandwidth,
    Candidate,
    Connection,
    Direction,
    Group,
    Origin,
    Rtcp,
    Timing,
)
from trunkline.sip.sdpsyntax import DIGITS, fail, parse_int, parse_proto, parse_token, split_fields

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


@dataclass(slots=True)
class MediaDescription(Attributes):
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
        media, port_text, proto, *fmts = split_fields(text, "m= line", 3)
        port_text, sep, count_text = port_text.partition("/")
        count = parse_int(count_text, "m= port count") if sep else None
        for fmt in fmts:
            parse_token(fmt, "m= format")
        return cls(
            media=parse_token(media, "m= media"),
            port=parse_int(port_text, "m= port", 65535),
            proto=parse_proto(proto),
            fmts=fmts,
            port_count=count,
        )

    @property
    def m_line(self) -> str:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        return " ".join([self.media, port, self.proto, *self.fmts])

    @property
    def is_rtp(self) -> bool:
        """RTP profiles: RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF... (RFC 8866 §5.14)."""
        return "RTP/" in self.proto

    @property
    def rejected(self) -> bool:
        """Port zero means a disabled or rejected stream (RFC 3264 §5.1, §6)."""
        return self.port == 0

    @property
    def payload_types(self) -> list[int]:
        """The payload types of an RTP m= line in preference order ([] if not RTP)."""
        if not self.is_rtp:
            return []
        return [int(fmt) for fmt in self.fmts if DIGITS.fullmatch(fmt) and int(fmt) <= 127]

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
            if DIGITS.fullmatch(fmt):
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
        check_milliseconds(name)(value)
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

    def validate(self, *, strict: bool = True) -> None:
        """Parse every typed attribute once; raise SipParseError if one is malformed.

        With ``strict=False`` a malformed attribute is marked and skipped instead.
        """
        self._validate_attributes(MEDIA_CHECKS, strict)

    def copy(self) -> MediaDescription:
        """A deep copy, safe to edit."""
        return MediaDescription(
            media=self.media,
            port=self.port,
            proto=self.proto,
            fmts=list(self.fmts),
            port_count=self.port_count,
            information=self.information,
            connection=_copy_connection(self.connection),
            extra_connections=[c for c in map(_copy_connection, self.extra_connections) if c],
            bandwidths=[Bandwidth(b.bwtype, b.bandwidth) for b in self.bandwidths],
            key=self.key,
            attributes=[Attribute(a.name, a.value, a.malformed) for a in self.attributes],
        )

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
class SessionDescription(Attributes):
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
    def parse(cls, data: bytes | str, *, strict: bool = True) -> SessionDescription:
        """Parse an SDP body; LF or CRLF line ends; raise SipParseError (400) if invalid.

        ``strict=False`` keeps a malformed known attribute instead of failing
        (RFC 8866 §5.13); :attr:`problems` lists what was kept unparsed.
        """
        if isinstance(data, bytes):
            text = data.decode("utf-8", "surrogateescape")
        elif isinstance(data, str):
            try:
                data.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise fail("text is not encodable as UTF-8") from None
            text = data
        else:
            raise fail("body is neither bytes nor str")
        return _Parser(text, strict).parse()

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
        """A deep copy, safe to edit (written out: ``copy.deepcopy`` is ten times slower)."""
        return SessionDescription(
            origin=_copy_origin(self.origin),
            session_name=self.session_name,
            version=self.version,
            information=self.information,
            uri=self.uri,
            emails=list(self.emails),
            phones=list(self.phones),
            connection=_copy_connection(self.connection),
            bandwidths=[Bandwidth(b.bwtype, b.bandwidth) for b in self.bandwidths],
            timings=[Timing(t.start, t.stop, list(t.repeats)) for t in self.timings],
            zone=self.zone,
            key=self.key,
            attributes=[Attribute(a.name, a.value, a.malformed) for a in self.attributes],
            media=[media.copy() for media in self.media],
        )

    def same_content(self, other: SessionDescription) -> bool:
        """Equal apart from ``o=`` session version (RFC 3264 §8: when to bump it)."""
        origin = dataclasses.replace(self.origin, session_version=other.origin.session_version)
        return dataclasses.replace(self, origin=origin) == other

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

    @property
    def problems(self) -> list[str]:
        """What a lenient parse kept but could not use: ``a=line: reason`` per attribute."""
        sections = [self.attributes, *(media.attributes for media in self.media)]
        return [
            f"a={attribute}: {attribute.malformed}"
            for attributes in sections
            for attribute in attributes
            if attribute.malformed is not None
        ]

    def validate(self, *, strict: bool = True) -> None:
        """Parse every typed attribute once; raise SipParseError if one is malformed.

        With ``strict=False`` a malformed attribute is marked and skipped instead.
        """
        self._validate_attributes(SESSION_CHECKS, strict)
        for media in self.media:
            media.validate(strict=strict)


def _copy_origin(o: Origin) -> Origin:
    return Origin(o.username, o.session_id, o.session_version, o.address, o.addrtype, o.nettype)


def _copy_connection(c: Connection | None) -> Connection | None:
    if c is None:
        return None
    return Connection(c.address, c.addrtype, c.nettype, c.ttl, c.count)


_SESSION_SINGLE = frozenset("osiuczk")
_MEDIA_SINGLE = frozenset("ik")


class _Parser:
    """Line-by-line SDP parser (RFC 8866 §5, §9 grammar; lenient about line order)."""

    def __init__(self, text: str, strict: bool = True) -> None:
        self.text = text
        self.strict = strict

    def parse(self) -> SessionDescription:
        if "\x00" in self.text:
            raise fail("NUL character")
        lines = list(self._lines())
        if not lines or lines[0] != ("v", "0"):
            raise fail("must start with v=0")
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
        session.validate(strict=self.strict)
        return session

    def _lines(self) -> Iterable[tuple[str, str]]:
        for raw in self.text.split("\n"):
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line:
                continue
            if "\r" in line:
                raise fail("bare CR inside a line")
            if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
                raise fail(f"malformed line: {line[:40]!r}")
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
                    raise fail(f"more than one {kind}= line in the session section")
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
                    raise fail("r= line before any t= line")
                timings[-1].repeats.append(value)
            elif kind == "a":
                attributes.append(Attribute.parse(value))
            else:
                raise fail(f"unexpected {kind}= line in the session section")
        if origin is None:
            raise fail("missing o= line")
        if session_name is None:
            raise fail("missing s= line")
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
                    raise fail(f"more than one {kind}= line in a media section")
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
                raise fail(f"unexpected {kind}= line in a media section")
        return media
