"""RTP packets (RFC 3550 §5.1), header extensions (RFC 3550 §5.3.1, RFC 8285)
and RTP/RTCP demultiplexing on one port (RFC 5761 §4).

Wire objects are dataclasses: ``RtpPacket.parse(data)`` and ``bytes(packet)``
round-trip. Bad input from the network raises :class:`RtpParseError` and
nothing else (checked by hypothesis and a mutation fuzz test).

Sequence numbers (16 bit) and timestamps (32 bit) wrap around; compare them
with :func:`seq_diff` / :func:`ts_diff` (serial number arithmetic, RFC 1982),
never with ``<``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "RTP_HEADER_SIZE",
    "HeaderExtension",
    "RtpPacket",
    "RtpParseError",
    "build_extension",
    "is_rtcp",
    "parse_extension_elements",
    "seq_add",
    "seq_diff",
    "seq_lt",
    "ts_add",
    "ts_diff",
]

RTP_HEADER_SIZE = 12
RTP_VERSION = 2
_HEADER = struct.Struct("!BBHII")
_new_object = object.__new__

#: RFC 8285 §4.2: "defined by profile" value of the one-byte header form.
ONE_BYTE_PROFILE = 0xBEDE
#: RFC 8285 §4.3: the two-byte form uses 0x100 plus 4 application bits.
TWO_BYTE_PROFILE = 0x1000
_TWO_BYTE_MASK = 0xFFF0


class RtpParseError(ValueError):
    """Bytes from the network are not a valid RTP or RTCP packet."""


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 16-bit sequence numbers (-32768..32767)."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


def seq_lt(a: int, b: int) -> bool:
    """``a`` comes before ``b`` in sequence-number order (modulo 2**16)."""
    return seq_diff(a, b) < 0


def seq_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**16."""
    return (a + n) & 0xFFFF


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 32-bit RTP timestamps."""
    d = (a - b) & 0xFFFFFFFF
    return d - 0x100000000 if d >= 0x80000000 else d


def ts_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**32."""
    return (a + n) & 0xFFFFFFFF


def is_rtcp(data: bytes) -> bool:
    """True when a datagram on an rtcp-mux port is RTCP (RFC 5761 §4).

    RTCP packet types 192-223 occupy the second octet; RTP payload types
    64-95 (which would collide once the marker bit is set) are not used when
    RTP and RTCP share a port, so the second octet alone tells them apart.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(slots=True)
class HeaderExtension:
    """The RTP header extension (RFC 3550 §5.3.1): a 16-bit profile value and
    a body whose length is a multiple of 4 octets."""

    profile: int
    data: bytes = b""

    def elements(self) -> list[tuple[int, bytes]]:
        """The RFC 8285 elements ``(id, value)`` of a one- or two-byte extension."""
        return parse_extension_elements(self.profile, self.data)


def parse_extension_elements(profile: int, data: bytes) -> list[tuple[int, bytes]]:
    """Split an RFC 8285 header extension body into ``(id, value)`` elements.

    One-byte form (profile 0xBEDE, §4.2): 4-bit ID, 4-bit length-minus-one;
    ID 0 is padding, ID 15 stops processing. Two-byte form (0x100X, §4.3):
    8-bit ID, 8-bit length; ID 0 is padding. Raises :class:`RtpParseError`
    for other profiles or truncated elements.
    """
    out: list[tuple[int, bytes]] = []
    i = 0
    n = len(data)
    if profile == ONE_BYTE_PROFILE:
        while i < n:
            b = data[i]
            ext_id, length = b >> 4, (b & 0x0F) + 1
            if ext_id == 0:
                i += 1
                continue
            if ext_id == 15:
                break
            if i + 1 + length > n:
                raise RtpParseError("truncated one-byte header extension element")
            out.append((ext_id, bytes(data[i + 1 : i + 1 + length])))
            i += 1 + length
        return out
    if profile & _TWO_BYTE_MASK == TWO_BYTE_PROFILE:
        while i < n:
            ext_id = data[i]
            if ext_id == 0:
                i += 1
                continue
            if i + 2 > n:
                raise RtpParseError("truncated two-byte header extension element")
            length = data[i + 1]
            if i + 2 + length > n:
                raise RtpParseError("truncated two-byte header extension element")
            out.append((ext_id, bytes(data[i + 2 : i + 2 + length])))
            i += 2 + length
        return out
    raise RtpParseError(f"header extension profile 0x{profile:04x} is not RFC 8285")


def build_extension(elements: list[tuple[int, bytes]]) -> HeaderExtension:
    """Build an RFC 8285 extension, one-byte form when every element allows it
    (ID 1-14, 1-16 octets), two-byte form otherwise; padded to 4 octets."""
    one_byte = all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in elements)
    body = bytearray()
    if one_byte:
        for ext_id, value in elements:
            body.append((ext_id << 4) | (len(value) - 1))
            body += value
        profile = ONE_BYTE_PROFILE
    else:
        for ext_id, value in elements:
            if not 1 <= ext_id <= 255 or len(value) > 255:
                raise ValueError("two-byte header extension: ID 1-255, length 0-255")
            body += bytes((ext_id, len(value)))
            body += value
        profile = TWO_BYTE_PROFILE
    body += b"\x00" * (-len(body) % 4)
    return HeaderExtension(profile, bytes(body))


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1).

    ``padding`` is the total number of padding octets including the final
    count octet (0 for none); it is kept so that a parsed packet re-serializes
    byte for byte.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)
    extension: HeaderExtension | None = None
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; raise :class:`RtpParseError` if it is malformed."""
        n = len(data)
        if n < RTP_HEADER_SIZE:
            raise RtpParseError("RTP packet shorter than the fixed header")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data, 0)
        if b0 == 0x80:  # fast path: no padding, extension or CSRCs (nearly every packet)
            payload = data[RTP_HEADER_SIZE:]
            # Per received packet: every slot set directly, which costs about half
            # of the generated __init__ (its default-factory handling included).
            packet = _new_object(cls)
            packet.payload_type = b1 & 0x7F
            packet.sequence_number = seq
            packet.timestamp = ts
            packet.ssrc = ssrc
            packet.payload = payload if type(payload) is bytes else bytes(payload)
            packet.marker = b1 > 0x7F
            packet.csrc = []
            packet.extension = None
            packet.padding = 0
            return packet
        if b0 >> 6 != RTP_VERSION:
            raise RtpParseError("RTP version is not 2")
        cc = b0 & 0x0F
        pos = RTP_HEADER_SIZE + 4 * cc
        if pos > n:
            raise RtpParseError("RTP CSRC list truncated")
        csrc = list(struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE)) if cc else []
        extension = None
        if b0 & 0x10:
            if pos + 4 > n:
                raise RtpParseError("RTP header extension truncated")
            profile, words = struct.unpack_from("!HH", data, pos)
            end = pos + 4 + 4 * words
            if end > n:
                raise RtpParseError("RTP header extension length exceeds packet")
            extension = HeaderExtension(profile, bytes(data[pos + 4 : end]))
            pos = end
        end = n
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or pos + padding > n:
                raise RtpParseError("RTP padding count invalid")
            end = n - padding
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(b1 & 0x80),
            csrc=csrc,
            extension=extension,
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        if not (self.csrc or self.padding or self.extension):
            return (
                _HEADER.pack(
                    0x80,
                    (0x80 if self.marker else 0) | (self.payload_type & 0x7F),
                    self.sequence_number & 0xFFFF,
                    self.timestamp & 0xFFFFFFFF,
                    self.ssrc & 0xFFFFFFFF,
                )
                + self.payload
            )
        if len(self.csrc) > 15:
            raise ValueError("at most 15 CSRCs")
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        out = bytearray(
            _HEADER.pack(
                b0,
                b1,
                self.sequence_number & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
        )
        for c in self.csrc:
            out += struct.pack("!I", c)
        if self.extension is not None:
            ext = self.extension.data
            if len(ext) % 4:
                raise ValueError("header extension body must be a multiple of 4 octets")
            out += struct.pack("!HH", self.extension.profile, len(ext) // 4)
            out += ext
        out += self.payload
        if self.padding:
            if not 1 <= self.padding <= 255:
                raise ValueError("padding must be 1-255 octets")
            out += b"\x00" * (self.padding - 1) + bytes((self.padding,))
        return bytes(out)
