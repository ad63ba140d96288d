"""RTCP: SR/RR/SDES/BYE/APP binary vectors built field by field from RFC 3550
§6.4-6.7, compound packets and their validity checks (A.2), and the parser's
error invariant."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.rtp.packet import RtpParseError
from trunkline.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpApp,
    RtcpOpaque,
    SdesChunk,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_from_unix,
    ntp_middle,
    ntp_to_unix,
    parse_compound,
)

BLOCK = ReportBlock(
    ssrc=0x55667788,
    fraction_lost=0x40,
    cumulative_lost=5,
    highest_sequence=0x0001000A,
    jitter=0x20,
    lsr=0x456789AB,
    dlsr=0x00010000,
)
BLOCK_BYTES = bytes.fromhex("55667788400000050001000a00000020456789ab00010000")

# V=2 P=0 RC=1, PT=200, length 12 words-1 | SSRC | NTP | RTP ts | packets | octets | block
SR_BYTES = bytes.fromhex("81c8000c11223344e123456789abcdef000010000000000a00000640") + BLOCK_BYTES
# SDES, SC=1: SSRC, CNAME (1) len 5 "alice", END; 12 octets of body -> length 3
SDES_BYTES = bytes.fromhex("81ca0003112233440105") + b"alice" + b"\x00"
# BYE, SC=1, reason length 3 "bye" -> body 8 octets, length 2
BYE_BYTES = bytes.fromhex("81cb00021122334403") + b"bye"


def test_report_block_vector() -> None:
    assert bytes(BLOCK) == BLOCK_BYTES
    assert ReportBlock.parse(BLOCK_BYTES) == BLOCK


def test_negative_cumulative_lost_is_signed_24_bit() -> None:
    block = ReportBlock(1, 0, -3, 10, 0)
    raw = bytes(block)
    assert raw[5:8] == bytes.fromhex("fffffd")
    assert ReportBlock.parse(raw).cumulative_lost == -3


def test_sender_report_vector() -> None:
    sr = SenderReport(0x11223344, 0xE123456789ABCDEF, 0x1000, 10, 1600, [BLOCK])
    assert bytes(sr) == SR_BYTES
    (parsed,) = parse_compound(SR_BYTES, strict=True)
    assert parsed == sr


def test_receiver_report_roundtrip() -> None:
    rr = ReceiverReport(0xCAFEBABE, [BLOCK, ReportBlock(7, 0, 0, 99, 1)])
    raw = bytes(rr)
    assert raw[:4] == bytes.fromhex("82c9000d")  # RC=2, 4+4+48 octets -> 13
    assert parse_compound(raw) == [rr]
    empty = ReceiverReport(1)
    assert bytes(empty) == bytes.fromhex("80c9000100000001")


def test_sdes_and_bye_vectors() -> None:
    sdes = SourceDescription.cname_for(0x11223344, "alice")
    assert bytes(sdes) == SDES_BYTES
    assert parse_compound(SDES_BYTES)[0] == sdes
    assert sdes.chunks[0].cname == "alice"
    bye = Bye([0x11223344], b"bye")
    assert bytes(bye) == BYE_BYTES
    assert parse_compound(BYE_BYTES) == [bye]


def test_sdes_multiple_chunks_padding() -> None:
    sdes = SourceDescription(
        [SdesChunk(1, [(1, b"ab"), (2, b"Bob")]), SdesChunk(2, [(1, b"x" * 7)])]
    )
    raw = bytes(sdes)
    assert len(raw) % 4 == 0
    assert parse_compound(raw) == [sdes]


def test_app_kept_opaque_and_unknown_types_roundtrip() -> None:
    app = RtcpApp(subtype=3, ssrc=9, name=b"TEST", data=b"\x01\x02\x03\x04")
    raw = bytes(app)
    assert raw[:4] == bytes.fromhex("83cc0003")  # 16 octets -> length 3
    fb = RtcpOpaque(205, 1, bytes(8))  # RTPFB generic NACK, RFC 4585
    assert parse_compound(raw + bytes(fb)) == [app, fb]


def test_compound_sr_sdes_bye() -> None:
    raw = SR_BYTES + SDES_BYTES + BYE_BYTES
    packets = parse_compound(raw, strict=True)
    assert [type(p) for p in packets] == [SenderReport, SourceDescription, Bye]
    assert build_compound(packets) == raw


def test_compound_validity_checks() -> None:
    with pytest.raises(RtpParseError):
        parse_compound(SDES_BYTES + SR_BYTES, strict=True)  # must start with SR/RR
    assert len(parse_compound(SDES_BYTES + SR_BYTES)) == 2  # RFC 5506 reduced size
    with pytest.raises(RtpParseError):
        parse_compound(SR_BYTES[:-4])  # length exceeds datagram
    with pytest.raises(RtpParseError):
        parse_compound(SR_BYTES + b"\x81")  # trailing octets
    with pytest.raises(RtpParseError):
        parse_compound(b"\x41" + SR_BYTES[1:])  # version 1
    padded_rr = bytes.fromhex("a0c900020000000100000004")  # P=1, 4 pad octets
    assert parse_compound(padded_rr) == [ReceiverReport(1)]
    with pytest.raises(RtpParseError):
        parse_compound(padded_rr + SDES_BYTES)  # padding only on the last packet
    with pytest.raises(RtpParseError):
        parse_compound(bytes.fromhex("80630000"))  # PT 99 is not RTCP


def test_ntp_conversions() -> None:
    # 1970-01-01 is NTP 2208988800 s (RFC 868).
    assert ntp_from_unix(0.0) == 2208988800 << 32
    assert ntp_from_unix(0.5) & 0xFFFFFFFF == 0x80000000
    assert ntp_to_unix(ntp_from_unix(1_700_000_000.25)) == pytest.approx(1_700_000_000.25)
    assert ntp_middle(0x0000B7108000FFFF) == 0xB7108000


@given(
    st.integers(0, 0xFFFFFFFF),
    st.lists(
        st.builds(
            ReportBlock,
            st.integers(0, 0xFFFFFFFF),
            st.integers(0, 255),
            st.integers(-0x800000, 0x7FFFFF),
            st.integers(0, 0xFFFFFFFF),
            st.integers(0, 0xFFFFFFFF),
            st.integers(0, 0xFFFFFFFF),
            st.integers(0, 0xFFFFFFFF),
        ),
        max_size=31,
    ),
)
def test_rr_roundtrip_property(ssrc: int, blocks: list[ReportBlock]) -> None:
    rr = ReceiverReport(ssrc, blocks)
    assert parse_compound(bytes(rr)) == [rr]


def test_mutation_fuzz_20k() -> None:
    rng = random.Random(5761)
    seed = SR_BYTES + SDES_BYTES + BYE_BYTES
    ok = 0
    for _ in range(20_000):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            if op == 0:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op == 1 and len(data) > 1:
                del data[rng.randrange(1, len(data)) :]
            else:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        try:
            packets = parse_compound(bytes(data))
        except RtpParseError:
            continue
        ok += 1
        assert packets
        assert parse_compound(build_compound(packets)) == packets
    assert ok > 100


def rtcp_like() -> st.SearchStrategy[bytes]:
    """Datagrams that pass the first checks: version 2, an RTCP type, a length word."""
    header = st.tuples(st.integers(0x80, 0xBF), st.integers(192, 223), st.integers(0, 12))
    packet = st.tuples(header, st.binary(max_size=52)).map(
        lambda hb: bytes((hb[0][0], hb[0][1], 0, hb[0][2])) + hb[1]
    )
    return st.lists(packet, min_size=1, max_size=3).map(b"".join) | st.binary(max_size=100)


@settings(max_examples=300)
@given(rtcp_like())
def test_parse_random_bytes_raises_only_rtp_parse_error(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except RtpParseError:
        return
    # Whatever parses re-serializes into something that parses to the same.
    assert parse_compound(build_compound(packets)) == packets
