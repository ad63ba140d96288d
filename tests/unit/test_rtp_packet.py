"""RTP packets: binary vectors (RFC 3550 §5.1 field by field), RFC 8285
extensions, wrap-around arithmetic, RFC 5761 demux, and the parser's
"RtpParseError or nothing" invariant under hypothesis and mutation."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.rtp.packet import (
    HeaderExtension,
    RtpPacket,
    RtpParseError,
    build_extension,
    is_rtcp,
    parse_extension_elements,
    seq_add,
    seq_diff,
    seq_lt,
    ts_add,
    ts_diff,
)

# V=2 P=0 X=0 CC=0 | M=1 PT=0 | seq 0x1234 | ts 0xdeadbeef | SSRC 0x01020304 | payload
SIMPLE = bytes.fromhex("80801234deadbeef01020304ffffffff")

# V=2 P=1 X=1 CC=2 -> 0xB2 | M=0 PT=96 -> 0x60 | seq 1 | ts 2 | SSRC 3
# CSRC 0x11111111 0x22222222 | ext profile 0xBEDE, 1 word: id 1 len 1 value 0xAA, 2 pad
# payload "hi" | padding 00 00 03 (count octet 3)
FULL = bytes.fromhex("b260000100000002000000031111111122222222bede000110aa00006869000003")


def test_parse_simple_vector() -> None:
    p = RtpPacket.parse(SIMPLE)
    assert (p.payload_type, p.marker, p.sequence_number) == (0, True, 0x1234)
    assert (p.timestamp, p.ssrc) == (0xDEADBEEF, 0x01020304)
    assert p.payload == b"\xff" * 4
    assert p.csrc == [] and p.extension is None and p.padding == 0
    assert bytes(p) == SIMPLE


def test_parse_full_vector() -> None:
    p = RtpPacket.parse(FULL)
    assert p.payload_type == 96 and not p.marker
    assert p.csrc == [0x11111111, 0x22222222]
    assert p.extension == HeaderExtension(0xBEDE, bytes.fromhex("10aa0000"))
    assert p.extension.elements() == [(1, b"\xaa")]
    assert p.payload == b"hi"
    assert p.padding == 3
    assert bytes(p) == FULL


def test_build_matches_hand_bytes() -> None:
    p = RtpPacket(
        payload_type=96,
        sequence_number=1,
        timestamp=2,
        ssrc=3,
        payload=b"hi",
        csrc=[0x11111111, 0x22222222],
        extension=build_extension([(1, b"\xaa")]),
        padding=3,
    )
    assert bytes(p) == FULL


def test_rfc8285_one_byte_example() -> None:
    # RFC 8285 §4.2 figure: ID 1 L=0 (1 byte), ID 2 L=1 (2 bytes), padding, ID 3 L=3.
    body = bytes.fromhex("10aa21bbbb000033cccccccc")
    assert parse_extension_elements(0xBEDE, body) == [
        (1, b"\xaa"),
        (2, b"\xbb\xbb"),
        (3, b"\xcc" * 4),
    ]
    # ID 15 stops processing (§4.2).
    assert parse_extension_elements(0xBEDE, bytes.fromhex("10aaf0ff")) == [(1, b"\xaa")]


def test_rfc8285_two_byte() -> None:
    ext = build_extension([(1, b""), (200, b"xyz")])
    assert ext.profile == 0x1000
    assert len(ext.data) % 4 == 0
    assert ext.elements() == [(1, b""), (200, b"xyz")]
    # Appbits in the low nibble are allowed (0x100X, RFC 8285 §4.3).
    assert parse_extension_elements(0x1003, bytes.fromhex("0102abcd")) == [(1, b"\xab\xcd")]


def test_extension_errors() -> None:
    with pytest.raises(RtpParseError):
        parse_extension_elements(0xBEDE, bytes.fromhex("13aa"))  # says 4 bytes, has 1
    with pytest.raises(RtpParseError):
        parse_extension_elements(0x1000, bytes.fromhex("0105aa"))
    with pytest.raises(RtpParseError):
        parse_extension_elements(0x1234, b"\x00\x00\x00\x00")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "short"),
        (bytes.fromhex("80001234deadbeef010203"), "11 octets"),
        (bytes.fromhex("40001234deadbeef01020304"), "version 1"),
        (bytes.fromhex("82001234deadbeef01020304"), "CC=2 but no CSRCs"),
        (bytes.fromhex("90001234deadbeef01020304bede"), "extension header cut"),
        (bytes.fromhex("90001234deadbeef01020304bede0002aaaaaaaa"), "extension too long"),
        (bytes.fromhex("a0001234deadbeef01020304aa00"), "padding count 0"),
        (bytes.fromhex("a0001234deadbeef0102030409"), "padding past header"),
    ],
)
def test_malformed(data: bytes, why: str) -> None:
    with pytest.raises(RtpParseError):
        RtpPacket.parse(data)


def test_sequence_and_timestamp_wraparound() -> None:
    assert seq_diff(0, 0xFFFF) == 1
    assert seq_diff(0xFFFF, 0) == -1
    assert seq_diff(5, 0xFFF0) == 21
    assert seq_lt(0xFFFE, 3) and not seq_lt(3, 0xFFFE)
    assert seq_add(0xFFFF, 2) == 1
    assert ts_diff(10, 0xFFFFFFF0) == 26
    assert ts_diff(0xFFFFFFF0, 10) == -26
    assert ts_add(0xFFFFFFFF, 161) == 160


def test_rtcp_mux_demux() -> None:
    # RFC 5761 §4: second octet 192-223 is RTCP (SR=200, RR=201, RTPFB=205 ...).
    assert is_rtcp(bytes.fromhex("80c80006"))  # SR
    assert is_rtcp(bytes.fromhex("81c90007"))  # RR
    assert not is_rtcp(SIMPLE)  # PT 0 with marker -> 0x80
    assert not is_rtcp(bytes.fromhex("80e0"))  # PT 96 with marker -> 0xE0 = 224
    assert not is_rtcp(b"\x80")


headers = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    extension=st.none()
    | st.builds(
        HeaderExtension,
        profile=st.integers(0, 0xFFFF),
        data=st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
    padding=st.integers(0, 255),
)


@given(headers)
def test_roundtrip_property(packet: RtpPacket) -> None:
    assert RtpPacket.parse(bytes(packet)) == packet


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_parse_random_bytes_raises_only_rtp_parse_error(data: bytes) -> None:
    try:
        p = RtpPacket.parse(data)
    except RtpParseError:
        return
    # Anything accepted re-serializes to an equivalent packet (padding octets
    # other than the count are not kept: RFC 3550 §5.1 gives them no meaning).
    assert RtpPacket.parse(bytes(p)) == p
    if p.extension is not None:
        try:
            elements = p.extension.elements()
        except RtpParseError:
            return
        assert all(1 <= i <= 255 for i, _ in elements)


def test_mutation_fuzz_20k() -> None:
    rng = random.Random(3550)
    seeds = [SIMPLE, FULL]
    accepted = rejected = 0
    for _ in range(20_000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            if op == 0 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op == 1 and data:
                del data[rng.randrange(len(data)) :]
            else:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        try:
            p = RtpPacket.parse(bytes(data))
        except RtpParseError:
            rejected += 1
            continue
        accepted += 1
        assert RtpPacket.parse(bytes(p)) == p
        if not p.padding:
            assert bytes(p) == bytes(data)
    assert accepted > 1000 and rejected > 1000
