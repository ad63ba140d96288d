"""Fuzz targets for media input: RTP, RTCP, telephone-event payloads and WAV headers.

Each ``exercise`` checks the fuzz invariant (STYLE.md habit 4): for any bytes
it either returns or raises the parser's own error type, and whatever parses
survives a round trip. Seeds are packets, payloads and WAV files built by the
project's own serializers.
"""

from __future__ import annotations

import contextlib
import io
import struct

import numpy as np

from tests.fuzz.runner import Target
from trunkline.media.codecs.base import CodecError
from trunkline.media.codecs.telephone_event import (
    TelephoneEvent,
    TelephoneEventReceiver,
    encode_event,
)
from trunkline.media.wav import WavError, read_wav_info, write_wav
from trunkline.rtp.packet import (
    HeaderExtension,
    RtpPacket,
    RtpParseError,
    build_extension,
    is_rtcp,
    parse_extension_elements,
)
from trunkline.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpApp,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    build_compound,
    parse_compound,
)

__all__ = ["RTCP", "RTP", "TELEPHONE_EVENT", "WAV"]


# -- RTP (trunkline.rtp.packet) -----------------------------------------------------


def rtp_seeds() -> list[bytes]:
    packets = [
        RtpPacket(0, 1, 160, 0x12345678, bytes(range(160))),
        RtpPacket(111, 65535, 0xFFFFFFFF, 1, b"\xfc\xff\xfe", marker=True),
        RtpPacket(8, 7, 1234, 99, b"\xd5" * 20, csrc=[1, 2, 3]),
        RtpPacket(101, 9, 800, 5, bytes(TelephoneEvent(5, True, 10, 800)), padding=4),
        RtpPacket(
            96,
            2,
            3,
            4,
            b"abc",
            extension=build_extension([(1, b"\x01"), (3, b"\x00\x11\x22")]),
        ),
        RtpPacket(
            96, 2, 3, 4, b"x", extension=build_extension([(1, b""), (200, bytes(17))]), padding=3
        ),
        RtpPacket(96, 2, 3, 4, b"", extension=HeaderExtension(0x1234, bytes(8))),
    ]
    return [bytes(p) for p in packets]


def exercise_rtp(data: bytes) -> None:
    is_rtcp(data)
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError:
        return
    assert 0 <= packet.payload_type < 128 and len(packet.csrc) <= 15
    if packet.extension is not None:
        try:
            elements = parse_extension_elements(packet.extension.profile, packet.extension.data)
        except RtpParseError:
            pass
        else:
            for ident, value in elements:
                assert 0 < ident < 256 and len(value) < 256
    wire = bytes(packet)
    assert len(wire) == len(data), "re-serialized packet changed length"
    # Only the content of padding octets (all but the count) may change.
    kept = len(data) - packet.padding
    assert wire[:kept] == data[:kept], "header or payload changed"
    assert wire[-1:] == data[-1:]
    assert RtpPacket.parse(wire) == packet, "re-parse differs"


RTP = Target(
    "rtp",
    exercise_rtp,
    rtp_seeds,
    tokens=[b"\x80", b"\x90", b"\xa0", b"\xbe\xde", b"\x10\x00", b"\x00\x01", b"\xff\xff"],
    modules=["trunkline.rtp.packet"],
)


# -- RTCP (trunkline.rtp.rtcp) ------------------------------------------------------


def rtcp_seeds() -> list[bytes]:
    block = ReportBlock(0x1111, 12, 345, 70000, 42, 0xAABBCCDD, 65536)
    compounds: list[list[RtcpPacket]] = [
        [
            SenderReport(1, 0x83AA7E80_00000000, 160, 1, 160, [block]),
            SourceDescription.cname_for(1, "a@b"),
        ],
        [ReceiverReport(2, [block, block]), Bye([2, 3], b"gone")],
        [ReceiverReport(2, []), RtcpApp(0, 2, b"name", b"\x00" * 8)],
        [Bye([7])],
    ]
    seeds = [build_compound(c) for c in compounds]
    # An RTPFB generic NACK (RFC 4585 §6.2.1), kept opaque, with padding on the last packet.
    seeds.append(b"\x81\xcd\x00\x03" + struct.pack("!IIHH", 1, 2, 100, 0))
    seeds.append(b"\xa0\xc9\x00\x02\x00\x00\x00\x05\x00\x00\x00\x04")
    return seeds


def exercise_rtcp(data: bytes) -> None:
    with contextlib.suppress(RtpParseError):
        parse_compound(data, strict=True)
    try:
        packets = parse_compound(data)
    except RtpParseError:
        return
    wire = build_compound(packets)
    assert parse_compound(wire) == packets, "re-parse of the rebuilt compound differs"


RTCP = Target(
    "rtcp",
    exercise_rtcp,
    rtcp_seeds,
    tokens=[
        b"\x80\xc8",
        b"\x81\xc9",
        b"\x81\xca",
        b"\x81\xcb",
        b"\x80\xcc",
        b"\xa0",
        b"\x01",
        b"\x00\x00",
    ],
    modules=["trunkline.rtp.rtcp", "trunkline.rtp.packet"],
)


# -- telephone-event payloads (trunkline.media.codecs.telephone_event) -------------


def telephone_event_seeds() -> list[bytes]:
    seeds = []
    for digit, ms in (("5", 100), ("#", 250), ("flash", 1000), ("D", 40)):
        seeds.append(b"".join(p.payload for p in encode_event(digit, duration_ms=ms)))
    return seeds


def exercise_telephone_event(data: bytes) -> None:
    try:
        event = TelephoneEvent.parse(data)
    except CodecError:
        assert len(data) < 4
        return
    # The R bit (0x40) is reserved: ignored on receipt (RFC 4733 §2.3), so not kept.
    assert bytes(event) == bytes((data[0], data[1] & 0xBF)) + data[2:4], "round trip differs"
    assert event.name
    # The stream view: consecutive 4-byte payloads, each with a timestamp taken
    # from the input so that retransmissions, restarts and reordering all occur.
    receiver = TelephoneEventReceiver(clock_rate=8000, timeout=0.5)
    now = 0.0
    reported = 0
    for pos in range(0, len(data) - 3, 4):
        payload = data[pos : pos + 4]
        timestamp = 1000 * (payload[0] % 3)
        now += 0.02
        for digit in receiver.feed(payload, timestamp, now):
            assert 0 <= digit.duration <= 0xFFFF and digit.duration_ms >= 0
            reported += 1
        for digit in receiver.handle_timer(now):
            assert not digit.end_seen
            reported += 1
    deadline = receiver.get_timer()
    if deadline is not None:
        assert receiver.handle_timer(deadline), "a pending event was not reported at its deadline"
        assert receiver.get_timer() is None
    assert reported <= len(data) // 4


TELEPHONE_EVENT = Target(
    "telephone_event",
    exercise_telephone_event,
    telephone_event_seeds,
    tokens=[b"\x05\x0a\x00\xa0", b"\x0b\x8a\x03\x20", b"\x10\x80\xff\xff", b"\xff\x3f\x00\x00"],
    modules=["trunkline.media.codecs.telephone_event"],
)


# -- WAV headers (trunkline.media.wav) ----------------------------------------------


def wav_seeds() -> list[bytes]:
    seeds = []
    tone = (8000 * np.sin(np.arange(64) * 0.3)).astype(np.int16)
    for rate, width in ((8000, 2), (16000, 1), (48000, 3), (8000, 4)):
        out = io.BytesIO()
        write_wav(out, tone, rate, width)
        seeds.append(out.getvalue())
    # A float WAV, and WAVE_FORMAT_EXTENSIBLE (PCM sub-format), built by hand.
    floats = (tone / 32768.0).astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
    seeds.append(_riff([(b"fmt ", fmt), (b"LIST", b"INFOjunk"), (b"data", floats)]))
    ext = struct.pack("<HHIIHH", 0xFFFE, 2, 8000, 64000, 4, 16) + struct.pack("<HHI", 22, 16, 3)
    ext += struct.pack("<H", 1) + bytes(14)
    seeds.append(_riff([(b"fmt ", ext), (b"data", tone.tobytes())]))
    return seeds


def _riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        cid + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)
        for cid, data in chunks
    )
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def exercise_wav(data: bytes) -> None:
    try:
        pcm, info = read_wav_info(io.BytesIO(data))
    except WavError:
        return
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert len(pcm) == info.frames
    assert info.channels >= 1 and info.sample_rate > 0


WAV = Target(
    "wav",
    exercise_wav,
    wav_seeds,
    tokens=[
        b"RIFF",
        b"WAVE",
        b"fmt ",
        b"data",
        b"LIST",
        b"\xfe\xff",
        b"\x03\x00",
        b"\xff\xff\xff\xff",
    ],
    modules=["trunkline.media.wav"],
)
