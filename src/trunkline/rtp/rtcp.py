"""RTCP packets (RFC 3550 §6): SR, RR, SDES, BYE, APP and compound packets.

Every packet is a dataclass with ``parse()`` and ``__bytes__``; a compound
datagram is a list of them (:func:`parse_compound` / :func:`build_compound`).
Packet types this module does not interpret (APP bodies, RTPFB/PSFB feedback
RFC 4585, XR RFC 3611) are kept opaque so that they round-trip.

Timestamps in SRs are 64-bit NTP (RFC 3550 §4); :func:`ntp_from_unix` and
:func:`ntp_middle` give the value and its middle 32 bits used as LSR
(§6.4.1). Malformed input raises :class:`RtpParseError` and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .packet import RtpParseError

__all__ = [
    "NTP_EPOCH_OFFSET",
    "RTCP_APP",
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpApp",
    "RtcpOpaque",
    "RtcpPacket",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "build_compound",
    "ntp_from_unix",
    "ntp_middle",
    "ntp_to_unix",
    "parse_compound",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

#: SDES item types (RFC 3550 §6.5).
SDES_END = 0
SDES_CNAME = 1

#: Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch), RFC 868.
NTP_EPOCH_OFFSET = 2208988800

_HDR = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IB3sIIII")


def ntp_from_unix(seconds: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point since 1900) of a Unix time."""
    return round((seconds + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_to_unix(ntp: int) -> float:
    """Unix time of a 64-bit NTP timestamp (era 0)."""
    return ntp / (1 << 32) - NTP_EPOCH_OFFSET


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR value (RFC 3550 §6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


def _packet(pt: int, count: int, body: bytes) -> bytes:
    """Common header (RFC 3550 §6.4.1) + body, padded to 32 bits if needed.

    Bodies we build are aligned; an opaque body kept from a padded packet
    may not be, and gets RTCP padding again (P bit, count in the last octet).
    """
    pad = -len(body) % 4
    b0 = 0x80 | (0x20 if pad else 0) | (count & 0x1F)
    total = 4 + len(body) + pad
    out = _HDR.pack(b0, pt, total // 4 - 1) + body
    if pad:
        out += b"\x00" * (pad - 1) + bytes((pad,))
    return out


@dataclass(slots=True, frozen=True)
class ReportBlock:
    """A reception report block (RFC 3550 §6.4.1).

    ``cumulative_lost`` is a signed 24-bit value (duplicates can make it
    negative); ``jitter`` is in timestamp units; ``lsr`` and ``dlsr`` (in
    1/65536 s) let the sender of the SR compute the round-trip time.
    """

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    lsr: int = 0
    dlsr: int = 0

    SIZE = 24

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        if offset + 24 > len(data):
            raise RtpParseError("RTCP report block truncated")
        ssrc, frac, lost, ext, jit, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cum = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc, frac, cum, ext, jit, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.cumulative_lost))
        return _BLOCK.pack(
            self.ssrc,
            self.fraction_lost & 0xFF,
            lost.to_bytes(3, "big", signed=True),
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )


def _parse_blocks(body: bytes, offset: int, count: int) -> list[ReportBlock]:
    return [ReportBlock.parse(body, offset + 24 * i) for i in range(count)]


@dataclass(slots=True)
class SenderReport:
    """SR (RFC 3550 §6.4.1): sender info plus up to 31 report blocks.

    ``extension`` holds profile-specific octets after the blocks, kept opaque.
    """

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> SenderReport:
        if len(body) < 24 + 24 * count:
            raise RtpParseError("RTCP SR truncated")
        ssrc, ntp_hi, ntp_lo, rtp_ts, pkts, octets = struct.unpack_from("!IIIIII", body, 0)
        reports = _parse_blocks(body, 24, count)
        return cls(
            ssrc,
            (ntp_hi << 32) | ntp_lo,
            rtp_ts,
            pkts,
            octets,
            reports,
            bytes(body[24 + 24 * count :]),
        )

    def __bytes__(self) -> bytes:
        if len(self.reports) > 31:
            raise ValueError("at most 31 report blocks")
        body = struct.pack(
            "!IIIIII",
            self.ssrc,
            (self.ntp_timestamp >> 32) & 0xFFFFFFFF,
            self.ntp_timestamp & 0xFFFFFFFF,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(bytes(r) for r in self.reports) + self.extension
        return _packet(RTCP_SR, len(self.reports), body)


@dataclass(slots=True)
class ReceiverReport:
    """RR (RFC 3550 §6.4.2): the reporter's SSRC and up to 31 report blocks."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> ReceiverReport:
        if len(body) < 4 + 24 * count:
            raise RtpParseError("RTCP RR truncated")
        (ssrc,) = struct.unpack_from("!I", body, 0)
        return cls(ssrc, _parse_blocks(body, 4, count), bytes(body[4 + 24 * count :]))

    def __bytes__(self) -> bytes:
        if len(self.reports) > 31:
            raise ValueError("at most 31 report blocks")
        body = struct.pack("!I", self.ssrc)
        body += b"".join(bytes(r) for r in self.reports) + self.extension
        return _packet(RTCP_RR, len(self.reports), body)


@dataclass(slots=True)
class SdesChunk:
    """One SDES chunk: an SSRC and its ``(item type, text)`` items (RFC 3550 §6.5)."""

    ssrc: int
    items: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(slots=True)
class SourceDescription:
    """SDES (RFC 3550 §6.5): chunks of items, each chunk null-terminated and padded."""

    chunks: list[SdesChunk] = field(default_factory=list)

    @classmethod
    def cname_for(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls([SdesChunk(ssrc, [(SDES_CNAME, cname.encode())])])

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> SourceDescription:
        chunks: list[SdesChunk] = []
        pos = 0
        n = len(body)
        for _ in range(count):
            if pos + 4 > n:
                raise RtpParseError("RTCP SDES chunk truncated")
            (ssrc,) = struct.unpack_from("!I", body, pos)
            pos += 4
            items: list[tuple[int, bytes]] = []
            while True:
                if pos >= n:
                    raise RtpParseError("RTCP SDES items not terminated")
                kind = body[pos]
                if kind == SDES_END:
                    pos += 1
                    pos += -pos % 4  # chunk ends at the next 32-bit boundary
                    break
                if pos + 2 > n or pos + 2 + body[pos + 1] > n:
                    raise RtpParseError("RTCP SDES item truncated")
                length = body[pos + 1]
                items.append((kind, bytes(body[pos + 2 : pos + 2 + length])))
                pos += 2 + length
            chunks.append(SdesChunk(ssrc, items))
        return cls(chunks)

    def __bytes__(self) -> bytes:
        if len(self.chunks) > 31:
            raise ValueError("at most 31 SDES chunks")
        body = bytearray()
        for chunk in self.chunks:
            body += struct.pack("!I", chunk.ssrc)
            for kind, value in chunk.items:
                if len(value) > 255:
                    raise ValueError("SDES item longer than 255 octets")
                body += bytes((kind, len(value))) + value
            body += b"\x00"
            body += b"\x00" * (-len(body) % 4)
        return _packet(RTCP_SDES, len(self.chunks), bytes(body))


@dataclass(slots=True)
class Bye:
    """BYE (RFC 3550 §6.6): the sources leaving and an optional reason."""

    sources: list[int] = field(default_factory=list)
    reason: bytes = b""

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> Bye:
        if len(body) < 4 * count:
            raise RtpParseError("RTCP BYE truncated")
        sources = list(struct.unpack_from(f"!{count}I", body, 0))
        pos = 4 * count
        reason = b""
        if pos < len(body):
            length = body[pos]
            if pos + 1 + length > len(body):
                raise RtpParseError("RTCP BYE reason truncated")
            reason = bytes(body[pos + 1 : pos + 1 + length])
        return cls(sources, reason)

    def __bytes__(self) -> bytes:
        if len(self.sources) > 31:
            raise ValueError("at most 31 sources in one BYE")
        body = bytearray(struct.pack(f"!{len(self.sources)}I", *self.sources))
        if self.reason:
            if len(self.reason) > 255:
                raise ValueError("BYE reason longer than 255 octets")
            body += bytes((len(self.reason),)) + self.reason
            body += b"\x00" * (-len(body) % 4)
        return _packet(RTCP_BYE, len(self.sources), bytes(body))


@dataclass(slots=True)
class RtcpApp:
    """APP (RFC 3550 §6.7): subtype, SSRC, 4-character name; data kept opaque."""

    subtype: int
    ssrc: int
    name: bytes
    data: bytes = b""

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> RtcpApp:
        if len(body) < 8:
            raise RtpParseError("RTCP APP truncated")
        (ssrc,) = struct.unpack_from("!I", body, 0)
        return cls(count, ssrc, bytes(body[4:8]), bytes(body[8:]))

    def __bytes__(self) -> bytes:
        if len(self.name) != 4:
            raise ValueError("APP name is 4 octets")
        body = struct.pack("!I", self.ssrc) + self.name + self.data
        return _packet(RTCP_APP, self.subtype, body)


@dataclass(slots=True)
class RtcpOpaque:
    """An RTCP packet type this module does not interpret (RTPFB, PSFB, XR, ...)."""

    packet_type: int
    count: int
    body: bytes = b""

    def __bytes__(self) -> bytes:
        return _packet(self.packet_type, self.count, self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | RtcpApp | RtcpOpaque


def parse_compound(data: bytes, *, strict: bool = False) -> list[RtcpPacket]:
    """Parse a compound RTCP datagram (RFC 3550 §6.1, validity checks of A.2).

    Each packet must have version 2 and a length that fits; only the last may
    carry padding. With ``strict`` the first packet must also be an SR or RR
    (reduced-size RTCP, RFC 5506, relaxes that, so it is off by default).
    """
    packets: list[RtcpPacket] = []
    pos = 0
    n = len(data)
    if n < 4:
        raise RtpParseError("RTCP packet shorter than its header")
    while pos < n:
        if pos + 4 > n:
            raise RtpParseError("RTCP trailing octets after last packet")
        b0, pt, length = _HDR.unpack_from(data, pos)
        if b0 >> 6 != 2:
            raise RtpParseError("RTCP version is not 2")
        end = pos + 4 + 4 * length
        if end > n:
            raise RtpParseError("RTCP length exceeds datagram")
        body_end = end
        if b0 & 0x20:
            if end != n:
                raise RtpParseError("RTCP padding on a packet that is not last")
            pad = data[end - 1]
            if pad == 0 or pad > 4 * length:
                raise RtpParseError("RTCP padding count invalid")
            body_end = end - pad
        if strict and not packets and pt not in (RTCP_SR, RTCP_RR):
            raise RtpParseError("compound RTCP must start with SR or RR")
        count = b0 & 0x1F
        body = data[pos + 4 : body_end]
        packets.append(_parse_one(pt, count, body))
        pos = end
    return packets


def _parse_one(pt: int, count: int, body: bytes) -> RtcpPacket:
    if pt == RTCP_SR:
        return SenderReport.parse_body(count, body)
    if pt == RTCP_RR:
        return ReceiverReport.parse_body(count, body)
    if pt == RTCP_SDES:
        return SourceDescription.parse_body(count, body)
    if pt == RTCP_BYE:
        return Bye.parse_body(count, body)
    if pt == RTCP_APP:
        return RtcpApp.parse_body(count, body)
    if not 192 <= pt <= 223:
        raise RtpParseError(f"not an RTCP packet type: {pt}")
    return RtcpOpaque(pt, count, bytes(body))


def build_compound(packets: list[RtcpPacket]) -> bytes:
    """Concatenate RTCP packets into one compound datagram (RFC 3550 §6.1)."""
    return b"".join(bytes(p) for p in packets)
