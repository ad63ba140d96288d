"""Reception statistics (RFC 3550 A.1, A.3, A.8) and RTT (§6.4.1) on a fake
clock with synthetic loss, jitter, duplication and reordering patterns."""

from __future__ import annotations

import random

import pytest

from trunkline.rtp.packet import RtpPacket
from trunkline.rtp.rtcp import SenderReport, ntp_from_unix, ntp_middle
from trunkline.rtp.stats import (
    MAX_DROPOUT,
    ReceptionStats,
    SourceTable,
    arrival_middle,
    round_trip_time,
)

RATE = 8000
FRAME = 160  # 20 ms at 8 kHz


def pkt(seq: int, ts: int, ssrc: int = 0x1234) -> RtpPacket:
    return RtpPacket(0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, b"\x00" * 160)


def feed(stats: ReceptionStats, seqs: list[int], start_seq: int = 1000) -> None:
    for s in seqs:
        n = s - start_seq
        stats.receive(pkt(s, n * FRAME), now=n * 0.02)


def test_probation_needs_two_sequential_packets() -> None:
    s = ReceptionStats(1, RATE, 1000)
    assert not s.update_seq(1000)
    assert s.probation == 1 and s.expected == 0
    assert s.update_seq(1001)
    assert s.probation == 0 and s.received == 1 and s.base_seq == 1001


def test_probation_restarts_on_gap() -> None:
    s = ReceptionStats(1, RATE, 1000)
    assert not s.update_seq(1000)
    assert not s.update_seq(1005)  # not sequential: probation again
    assert s.probation == 1
    assert s.update_seq(1006)


def test_loss_counts_and_fraction() -> None:
    s = ReceptionStats(1, RATE, 1000)
    missing = set(range(1010, 1100, 9))  # 10 losses
    feed(s, [q for q in range(1000, 1100) if q not in missing])
    # base_seq = 1001 (the packet that ended probation), highest = 1099
    assert s.expected == 99
    assert s.lost == len(missing) == 10
    block = s.report_block(now=2.0)
    assert block.cumulative_lost == 10
    assert block.fraction_lost == (10 << 8) // 99  # A.3: (lost_interval << 8) / expected
    assert block.highest_sequence == 1099
    # Next interval: 50 more, 5 lost -> fraction 5/50.
    more = [q for q in range(1100, 1150) if q % 10 != 3]
    feed(s, more)
    block = s.report_block(now=3.0)
    assert block.fraction_lost == (5 << 8) // 50
    assert block.cumulative_lost == 15


def test_wraparound_counts_cycles() -> None:
    s = ReceptionStats(1, RATE, 65530)
    seqs = [(65530 + i) & 0xFFFF for i in range(20)]
    for i, q in enumerate(seqs):
        s.receive(pkt(q, i * FRAME), now=i * 0.02)
    assert s.cycles == 65536
    assert s.extended_highest == 65536 + 13
    assert s.lost == 0 and s.expected == 19


def test_duplicates_and_reordering() -> None:
    s = ReceptionStats(1, RATE, 0)
    order = [0, 1, 2, 4, 3, 5, 5, 6, 8, 7, 9, 9, 9]
    for q in order:
        s.receive(pkt(q, q * FRAME), now=q * 0.02)
    assert s.duplicates == 3
    assert s.reordered == 2
    assert s.expected == 9  # base 1, highest 9
    assert s.lost == -3  # A.3: duplicates make the cumulative count negative
    block = s.report_block(now=1.0)
    assert block.cumulative_lost == -3 and block.fraction_lost == 0


def test_jitter_constant_transit_is_zero() -> None:
    s = ReceptionStats(1, RATE, 0)
    for q in range(100):
        s.receive(pkt(q, q * FRAME), now=5.0 + q * 0.02)
    assert s.jitter == pytest.approx(0.0, abs=1.0)


def test_jitter_alternating_delay_follows_a8_gain() -> None:
    # Every other packet is delayed 10 ms: |D| = 80 timestamp units each time.
    s = ReceptionStats(1, RATE, 0)
    n = 200
    for q in range(n):
        s.receive(pkt(q, q * FRAME), now=q * 0.02 + (0.01 if q % 2 else 0.0))
    # Jitter is computed from the probation-ending packet on (n - 1 packets,
    # n - 2 differences): J_k = 80 * (1 - (15/16)**k).
    expected = 80 * (1 - (15 / 16) ** (n - 2))
    assert s.jitter == pytest.approx(expected, abs=2.0)
    assert s.snapshot().jitter == pytest.approx(0.01, abs=0.0005)


def test_large_jump_resyncs_after_two_packets() -> None:
    s = ReceptionStats(1, RATE, 0)
    feed(s, list(range(10)), start_seq=0)
    jump = 9 + MAX_DROPOUT + 500
    assert not s.update_seq(jump)  # one odd packet is ignored
    assert s.max_seq == 9
    assert s.update_seq(jump + 1)  # the next in sequence: the source restarted
    assert s.base_seq == jump + 1 and s.received == 1


def test_report_block_lsr_dlsr() -> None:
    s = ReceptionStats(0x1234, RATE, 0)
    feed(s, list(range(5)), start_seq=0)
    ntp = ntp_from_unix(1000.0)
    s.on_sender_report(SenderReport(0x1234, ntp, 0, 5, 800), now=10.0)
    block = s.report_block(now=10.5)
    assert block.lsr == ntp_middle(ntp)
    assert block.dlsr == 32768  # 0.5 s in 1/65536 s


def test_rtt_rfc3550_example() -> None:
    # RFC 3550 §6.4.1 Figure 2: A = 0xb7108000, LSR = 0xb7052000,
    # DLSR = 0x00054000 -> delay = 0x00062000 = 6.125 s.
    assert round_trip_time(0xB7108000, 0xB7052000, 0x00054000) == 6.125
    assert round_trip_time(0xB7108000, 0, 0) is None


def test_rtt_end_to_end_on_fake_clocks() -> None:
    sent_at = 1_700_000_000.0  # we send an SR at this wall-clock time
    sr_ntp = ntp_from_unix(sent_at)
    peer = ReceptionStats(0xAAAA, RATE, 0)
    feed(peer, list(range(3)), start_seq=0)
    one_way = 0.04
    peer.on_sender_report(SenderReport(0xAAAA, sr_ntp, 0, 3, 480), now=sent_at + one_way)
    hold = 0.7
    block = peer.report_block(now=sent_at + one_way + hold)
    back_at = sent_at + one_way + hold + one_way
    rtt = round_trip_time(arrival_middle(back_at), block.lsr, block.dlsr)
    assert rtt == pytest.approx(2 * one_way, abs=1e-4)


def test_source_table_new_ssrc_resets_and_collision() -> None:
    table = SourceTable(RATE, local_ssrc=0x42)
    for q in range(10):
        table.receive(pkt(q, q * FRAME, ssrc=1), now=q * 0.02)
    first = table.current
    assert first is not None and first.received == 9
    for q in range(500, 505):
        table.receive(pkt(q, q * FRAME, ssrc=2), now=1 + q * 0.001)
    second = table.current
    assert second is not None and second is not first
    assert second.ssrc == 2 and second.received == 4 and second.lost == 0
    assert table.ssrc_changes == 1
    assert table.receive(pkt(1, 0, ssrc=0x42), now=2.0) is None
    assert table.collisions == 1
    assert {b.ssrc for b in table.report_blocks(now=2.0)} == {1, 2}
    table.forget(2)
    assert table.current is None and 2 not in table.sources


def test_source_table_bounded() -> None:
    table = SourceTable(RATE, local_ssrc=0, max_sources=4)
    for ssrc in range(1, 50):
        table.receive(pkt(0, 0, ssrc=ssrc), now=0.0)
    assert len(table.sources) == 4


class _SlowPath(ReceptionStats):
    """The statistics without the in-order fast path of ``receive``: A.1 and A.8 as written."""

    def receive(self, packet: RtpPacket, now: float) -> bool:
        before = self.duplicates
        valid = self.update_seq(packet.sequence_number)
        if valid and self.duplicates == before:
            self.update_jitter(packet.timestamp, now)
        return valid


def test_fast_path_matches_rfc3550_a1_a8() -> None:
    """Loss, reordering, duplicates, wrap-around, timestamp wrap and jitter: the
    fast path for in-order packets changes no number."""
    rng = random.Random(7)
    fast = ReceptionStats(0x1234, RATE, 65000)
    slow = _SlowPath(0x1234, RATE, 65000)
    seq, ts = 65000, 0xFFFFF000
    for i in range(3000):
        roll = rng.random()
        if roll < 0.03:
            seq += 2  # a loss
        elif roll < 0.05:
            seq -= 1  # a duplicate or a late one
        else:
            seq += 1
        ts_now = ts + (seq - 65000) * FRAME
        now = i * 0.02 + rng.uniform(0, 0.03)
        p = pkt(seq, ts_now)
        assert fast.receive(p, now) == slow.receive(p, now)
    for name in ("received", "expected", "lost", "cycles", "duplicates", "reordered", "jitter"):
        assert getattr(fast, name) == getattr(slow, name), name
    assert fast.extended_highest == slow.extended_highest > 65536
