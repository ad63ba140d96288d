"""The sender's schedule (no drift) and RTP numbering (continuous timestamps,
marker bit on talkspurt start)."""

from __future__ import annotations

import random

import pytest

from trunkline.rtp.pacing import PacingSchedule, RtpSender
from trunkline.rtp.rtcp import ntp_from_unix


def test_deadlines_are_start_plus_n_ptime_despite_late_timers() -> None:
    sched = PacingSchedule(start=100.0, ptime=0.02)
    rng = random.Random(1)
    fired: list[int] = []
    for _ in range(1000):
        deadline = sched.get_timer()
        now = deadline + rng.uniform(0.0, 0.015)  # every timer fires up to 15 ms late
        fired += sched.handle_timer(now)
    assert fired == list(range(1000))
    # No drift: deadline 1000 is exactly start + 1000 * ptime.
    assert sched.get_timer() == pytest.approx(100.0 + 1000 * 0.02)
    assert sched.skipped == 0


def test_early_wakeup_returns_nothing_and_stall_skips() -> None:
    sched = PacingSchedule(start=0.0, ptime=0.02, max_burst=3)
    assert sched.handle_timer(-0.001) == []
    assert sched.handle_timer(0.0) == [0]
    assert sched.handle_timer(0.019) == []
    # The loop stalls for 200 ms: 10 ticks are due, 3 sent, 7 skipped.
    assert sched.handle_timer(0.2 + 0.001) == [8, 9, 10]
    assert sched.skipped == 7
    assert sched.get_timer() == pytest.approx(0.22)


def test_sequence_and_timestamp_numbering() -> None:
    tx = RtpSender(0, 160, ssrc=5, initial_sequence=65534, initial_timestamp=0xFFFFFF00)
    p0 = tx.packet(0, b"a")
    p1 = tx.packet(1, b"b")
    p2 = tx.packet(2, b"c")
    assert [p.sequence_number for p in (p0, p1, p2)] == [65534, 65535, 0]
    assert [p.timestamp for p in (p0, p1, p2)] == [0xFFFFFF00, 0xFFFFFFA0, 0x40]
    assert [p.marker for p in (p0, p1, p2)] == [True, False, False]
    assert tx.packets_sent == 3 and tx.octets_sent == 3


def test_silence_keeps_timestamps_and_marks_talkspurt() -> None:
    tx = RtpSender(0, 160, ssrc=5, initial_sequence=0, initial_timestamp=1000)
    tx.packet(0, b"x")
    tx.packet(1, b"x")
    # ticks 2..9 silent (nothing sent), talkspurt resumes at tick 10
    p = tx.packet(10, b"x")
    assert p.sequence_number == 2  # seq counts packets, not ticks
    assert p.timestamp == 1000 + 10 * 160  # timestamp counts time
    assert p.marker
    assert not tx.packet(11, b"x").marker


def test_source_change_keeps_clock_and_can_mark() -> None:
    tx = RtpSender(0, 160, ssrc=5, initial_sequence=0, initial_timestamp=0)
    for tick in range(5):
        tx.packet(tick, b"file")
    tx.mark_next()  # a new source (e.g. another WAV) takes over
    p = tx.packet(5, b"tone")
    assert p.timestamp == 5 * 160 and p.marker


def test_rfc4733_style_override() -> None:
    tx = RtpSender(0, 160, ssrc=5, initial_sequence=0, initial_timestamp=0)
    start = tx.timestamp_of(3)
    a = tx.packet(3, b"\x01\x0a\x00\xa0", payload_type=101, timestamp=start, marker=True)
    b = tx.packet(4, b"\x01\x0a\x01\x40", payload_type=101, timestamp=start, marker=False)
    assert a.timestamp == b.timestamp == 480
    assert (a.payload_type, a.marker, b.marker) == (101, True, False)


def test_ssrc_change_and_sender_report() -> None:
    tx = RtpSender(0, 160, ssrc=5, initial_sequence=0, initial_timestamp=1000)
    sched = PacingSchedule(start=50.0, ptime=0.02)
    for tick in sched.handle_timer(50.1):
        tx.packet(tick, b"\x00" * 160)
    sr = tx.sender_report(sched, now=50.1, wallclock=1_700_000_000.0)
    assert sr.ssrc == 5
    assert sr.rtp_timestamp == 1000 + 800  # 0.1 s at 8 kHz
    assert sr.ntp_timestamp == ntp_from_unix(1_700_000_000.0)
    assert sr.packet_count == 3 and sr.octet_count == 480  # max_burst=3 of the 6 due
    old = tx.change_ssrc()
    assert old == 5 and tx.ssrc != 5 and tx.packets_sent == 0


def test_invalid_ptime() -> None:
    with pytest.raises(ValueError):
        PacingSchedule(0.0, 0.0)


def test_build_is_bytes_of_packet() -> None:
    """The media clock's ``build`` packs exactly what ``packet`` describes, with the
    same numbering and marker rules (talkspurt start after skipped ticks, wrap)."""
    a = RtpSender(8, 160, ssrc=0xDEADBEEF, initial_sequence=65534, initial_timestamp=0xFFFFFF00)
    b = RtpSender(8, 160, ssrc=0xDEADBEEF, initial_sequence=65534, initial_timestamp=0xFFFFFF00)
    for tick in [0, 1, 2, 3, 7, 8, 9, 20]:
        payload = bytes([tick]) * 160
        assert a.build(tick, payload) == bytes(b.packet(tick, payload))
    assert (a.sequence, a.packets_sent, a.octets_sent, a.last_timestamp) == (
        b.sequence,
        b.packets_sent,
        b.octets_sent,
        b.last_timestamp,
    )
