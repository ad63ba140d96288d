"""RFC 4733 telephone-event: payload format, sender packet sequence, de-duplicating receiver."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunkline.media.codecs import CodecError
from trunkline.media.codecs.telephone_event import (
    TelephoneEvent,
    TelephoneEventReceiver,
    encode_event,
    event_code,
)

DIGITS = "0123456789*#ABCD"


def test_payload_layout_from_rfc4733_section_2_3() -> None:
    # Event 5, E bit, volume 10 (-10 dBm0), duration 800 = 100 ms at 8 kHz.
    ev = TelephoneEvent(event=5, end=True, volume=10, duration=800)
    assert bytes(ev) == bytes([0x05, 0x8A, 0x03, 0x20])
    assert TelephoneEvent.parse(bytes(ev)) == ev
    assert TelephoneEvent.parse(b"\x10\x3f\xff\xff\x00").name == "flash"


def test_short_payload_is_rejected() -> None:
    with pytest.raises(CodecError):
        TelephoneEvent.parse(b"\x01\x02\x03")


def test_event_codes_table_7() -> None:
    assert [event_code(d) for d in DIGITS] == list(range(16))
    assert event_code("flash") == 16 and event_code("a") == 12
    with pytest.raises(CodecError):
        event_code("E")


def test_sender_sequence_for_100ms_at_20ms_ptime() -> None:
    packets = encode_event("7", duration_ms=100, ptime_ms=20)
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {7}
    assert [p.send_offset_ms for p in packets] == [0, 20, 40, 60, 80, 100, 120]


def test_sender_at_48khz_clock() -> None:
    packets = encode_event("#", duration_ms=60, clock_rate=48000)
    assert [TelephoneEvent.parse(p.payload).duration for p in packets] == [960, 1920] + [2880] * 3
    with pytest.raises(CodecError):
        encode_event("1", duration_ms=2000, clock_rate=48000)  # > 16-bit duration


@pytest.mark.parametrize("digit", [*DIGITS, "flash"])
def test_round_trip_every_event(digit: str) -> None:
    rx = TelephoneEventReceiver()
    got = []
    for i, packet in enumerate(encode_event(digit, duration_ms=120)):
        got += rx.feed(packet.payload, timestamp=4000, now=i * 0.02)
    assert len(got) == 1
    assert (got[0].digit, got[0].duration_ms, got[0].end_seen) == (digit, 120.0, True)
    assert rx.get_timer() is None


def test_receiver_reports_a_sequence_of_digits_once_each() -> None:
    rx = TelephoneEventReceiver()
    got = []
    ts, now = 1000, 0.0
    for digit in "2580#":
        for packet in encode_event(digit, duration_ms=80):
            got += rx.feed(packet.payload, ts, now)
            got += rx.feed(packet.payload, ts, now)  # duplicated by the network
            now += 0.02
        ts += 8 * 160
    assert "".join(d.digit for d in got) == "2580#"
    assert all(d.duration == 640 for d in got)


def test_lost_end_packets_reported_on_next_event_or_timer() -> None:
    rx = TelephoneEventReceiver(timeout=0.5)
    first = [p for p in encode_event("1") if not TelephoneEvent.parse(p.payload).end]
    for i, p in enumerate(first):
        assert rx.feed(p.payload, 100, now=i * 0.02) == []
    got = rx.feed(encode_event("2")[0].payload, 2000, now=0.2)
    assert [(d.digit, d.end_seen, d.duration) for d in got] == [("1", False, 640)]
    assert rx.get_timer() == pytest.approx(0.7)
    assert rx.handle_timer(0.6) == []
    late = rx.handle_timer(0.7)
    assert [(d.digit, d.end_seen) for d in late] == [("2", False)]
    # A late retransmission of an already reported event is ignored.
    assert rx.feed(encode_event("2")[-1].payload, 2000, now=0.8) == []


def test_only_end_packets_received() -> None:
    rx = TelephoneEventReceiver()
    end = encode_event("9", duration_ms=200)[-1]
    got = rx.feed(end.payload, 555, now=0.0)
    assert [(d.digit, d.duration_ms) for d in got] == [("9", 200.0)]
    assert rx.feed(end.payload, 555, now=0.02) == []


@given(st.binary(max_size=12))
def test_parse_raises_only_codec_error(data: bytes) -> None:
    try:
        ev = TelephoneEvent.parse(data)
    except CodecError:
        assert len(data) < 4
        return
    # The reserved R bit is ignored on receipt and sent as zero (RFC 4733 §2.3).
    assert bytes(ev) == data[:1] + bytes([data[1] & 0xBF]) + data[2:4]
