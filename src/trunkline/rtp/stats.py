"""Reception statistics and round-trip time (RFC 3550 Appendix A, §6.4).

:class:`ReceptionStats` is the per-source state of RFC 3550 Appendix A.1
(probation, sequence-number cycles, MAX_DROPOUT / MAX_MISORDER), A.3
(expected and lost packets, the fraction lost per report interval) and A.8
(interarrival jitter with the 1/16 gain), plus duplicate and reordering
counters from a sliding bitmap. It builds the report blocks of our SR/RR.

:class:`SourceTable` keeps one :class:`ReceptionStats` per remote SSRC: a new
SSRC starts fresh statistics (a peer that restarts its stream, or a B2BUA
that switches legs, must not be counted as loss) and a remote SSRC equal to
our own is reported as a collision (RFC 3550 §8.2).

Round-trip time comes from the LSR/DLSR fields (§6.4.1, Figure 2):
``RTT = A - LSR - DLSR`` in 1/65536 s, where A is the middle 32 bits of the
NTP time at which the report arrived. Everything takes ``now`` (seconds on
the caller's clock): no clock is read here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .packet import RtpPacket, ts_diff
from .rtcp import ReportBlock, SenderReport, ntp_from_unix, ntp_middle

__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "ReceptionStats",
    "SourceTable",
    "StatsSnapshot",
    "arrival_middle",
    "round_trip_time",
]

MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
RTP_SEQ_MOD = 1 << 16
_WINDOW = 256  # how far back duplicates are recognised, in sequence numbers
_WINDOW_MASK = (1 << _WINDOW) - 1


def round_trip_time(arrival_middle: int, lsr: int, dlsr: int) -> float | None:
    """Round-trip time in seconds from a report block (RFC 3550 §6.4.1).

    ``arrival_middle`` is the middle 32 bits of the NTP time the report
    arrived; ``lsr``/``dlsr`` come from the block. ``None`` when the peer
    has not received an SR yet (LSR 0) or the result is negative (clocks
    stepped).
    """
    if lsr == 0:
        return None
    rtt = (arrival_middle - lsr - dlsr) & 0xFFFFFFFF
    if rtt >= 0x80000000:
        return None
    return rtt / 65536.0


@dataclass(slots=True, frozen=True)
class StatsSnapshot:
    """A point-in-time view of one source's reception statistics."""

    ssrc: int
    received: int
    expected: int
    lost: int
    fraction_lost: float
    jitter: float  # seconds
    duplicates: int
    reordered: int
    extended_highest: int


class ReceptionStats:
    """Reception state of one RTP source (RFC 3550 Appendix A.1, A.3, A.8).

    This is the reference implementation. The media session's fused receive
    path (:meth:`trunkline.media.session.MediaSession._on_rtp`) repeats the
    in-order case of :meth:`receive` inline on ``max_seq``, ``seen_top``,
    ``received``, ``jitter`` and ``last_transit`` (and is tested against it).
    """

    # Slots: the attributes sit in the object itself (CPython 3.11 keeps a plain
    # instance's in a separate array), one memory access less per packet.
    __slots__ = (
        "_seen",
        "_seen_at",
        "bad_seq",
        "base_seq",
        "clock_rate",
        "cycles",
        "duplicates",
        "expected_prior",
        "jitter",
        "last_sr_arrival",
        "last_sr_middle",
        "last_sr_ntp",
        "last_sr_rtp",
        "last_transit",
        "max_seq",
        "probation",
        "received",
        "received_prior",
        "reordered",
        "seen_top",
        "ssrc",
    )

    def __init__(self, ssrc: int, clock_rate: int, first_seq: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        # A.1: "s->max_seq = seq - 1; s->probation = MIN_SEQUENTIAL".
        self._init_seq(first_seq)
        self.max_seq = (first_seq - 1) & 0xFFFF
        self.probation = MIN_SEQUENTIAL
        self.jitter = 0.0  # timestamp units, A.8
        self.last_transit: int | None = None
        self.duplicates = 0
        self.reordered = 0
        self._seen = 0  # bit i set: _seen_at - i was received
        self._seen_at = -1  # the extended seq that bit 0 of _seen stands for
        self.seen_top = -1  # highest marked; everything in (_seen_at, seen_top] was received
        self.last_sr_middle = 0  # LSR to echo back (§6.4.1)
        self.last_sr_arrival: float | None = None
        self.last_sr_ntp = 0
        self.last_sr_rtp = 0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self._seen = 0
        self._seen_at = -1
        self.seen_top = -1

    # -- A.1 ------------------------------------------------------------
    def update_seq(self, seq: int) -> bool:
        """RFC 3550 A.1 ``update_seq``: False while on probation or after a jump."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    self._mark(self.extended_highest)
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
            if not self._mark(self.extended_highest):
                self.duplicates += 1  # udelta 0: a copy of the highest packet
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                # Two sequential packets after a big jump: the source restarted.
                self._init_seq(seq)
                self.last_transit = None
                self._mark(self.extended_highest)
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        else:
            # Duplicate or reordered packet (behind max_seq by < MAX_MISORDER).
            back = (self.max_seq - seq) & 0xFFFF
            if not self._mark(self.extended_highest - back):
                self.duplicates += 1
            else:
                self.reordered += 1
        self.received += 1
        return True

    def _mark(self, ext: int) -> bool:
        """Record extended seq ``ext`` as seen; False if it already was.

        In-order packets (the fast path of :meth:`receive`) only move ``seen_top``: the
        bitmap catches up here, shifting in one set bit per packet it skipped, instead of
        three big-integer operations per packet.
        """
        top = self.seen_top
        run = top - self._seen_at
        if run:
            self._seen = (
                _WINDOW_MASK
                if run >= _WINDOW
                else ((self._seen << run) | ((1 << run) - 1)) & _WINDOW_MASK
            )
            self._seen_at = top
        if ext > top:
            shift = ext - top
            self._seen = ((self._seen << shift) | 1) & _WINDOW_MASK
            self.seen_top = self._seen_at = ext
            return True
        back = top - ext
        if back >= _WINDOW:
            return True
        bit = 1 << back
        if self._seen & bit:
            return False
        self._seen |= bit
        return True

    # -- A.8 ------------------------------------------------------------
    def update_jitter(self, timestamp: int, now: float) -> None:
        """Interarrival jitter J += (|D| - J) / 16 (RFC 3550 §6.4.1, A.8)."""
        arrival = int(now * self.clock_rate)
        transit = arrival - timestamp
        if self.last_transit is not None:
            d = ts_diff(transit & 0xFFFFFFFF, self.last_transit & 0xFFFFFFFF)
            self.jitter += (abs(d) - self.jitter) / 16.0
        self.last_transit = transit

    def receive(self, packet: RtpPacket, now: float) -> bool:
        """Account one packet; True if it counts (valid, past probation)."""
        seq = packet.sequence_number
        if seq == self.max_seq + 1 and not self.probation:
            # Fast path, nearly every packet: the next in order, no wrap
            # (A.1 with udelta == 1), then A.8 with the same arithmetic as
            # update_jitter.
            self.max_seq = seq
            top = self.cycles + seq
            if top == self.seen_top + 1:
                self.seen_top = top  # received in order: _mark shifts the bitmap later
            else:
                self._mark(top)
            self.received += 1
            transit = int(now * self.clock_rate) - packet.timestamp
            last = self.last_transit
            if last is not None:
                d = (transit - last) & 0xFFFFFFFF
                if d >= 0x80000000:
                    d = 0x100000000 - d
                self.jitter += (d - self.jitter) / 16.0
            self.last_transit = transit
            return True
        before = self.duplicates
        valid = self.update_seq(packet.sequence_number)
        if valid and self.duplicates == before:
            self.update_jitter(packet.timestamp, now)
        return valid

    # -- A.3 ------------------------------------------------------------
    @property
    def extended_highest(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        if self.probation:
            return 0
        return self.extended_highest - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative number lost (may be negative with duplicates), A.3."""
        return self.expected - self.received

    def on_sender_report(self, sr: SenderReport, now: float) -> None:
        """Remember an SR from this source, for LSR/DLSR in our next report."""
        self.last_sr_middle = ntp_middle(sr.ntp_timestamp)
        self.last_sr_arrival = now
        self.last_sr_ntp = sr.ntp_timestamp
        self.last_sr_rtp = sr.rtp_timestamp

    def report_block(self, now: float) -> ReportBlock:
        """The report block for our next SR/RR; starts a new interval (A.3)."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        dlsr = 0
        if self.last_sr_arrival is not None:
            dlsr = max(0, int((now - self.last_sr_arrival) * 65536))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            cumulative_lost=self.lost,
            highest_sequence=self.extended_highest & 0xFFFFFFFF,
            jitter=int(self.jitter),
            lsr=self.last_sr_middle,
            dlsr=dlsr,
        )

    def snapshot(self) -> StatsSnapshot:
        """Current totals. ``lost`` is the A.3 value that goes into reports
        (duplicates offset losses); ``fraction_lost`` counts each sequence
        number once, so duplication does not hide loss."""
        expected = self.expected
        unique_lost = max(0, expected - (self.received - self.duplicates))
        return StatsSnapshot(
            ssrc=self.ssrc,
            received=self.received,
            expected=expected,
            lost=self.lost,
            fraction_lost=(unique_lost / expected) if expected > 0 else 0.0,
            jitter=self.jitter / self.clock_rate,
            duplicates=self.duplicates,
            reordered=self.reordered,
            extended_highest=self.extended_highest,
        )


class SourceTable:
    """Remote sources of one RTP session, keyed by SSRC (RFC 3550 §8).

    ``receive`` returns the source's statistics, or ``None`` when the packet
    carries our own SSRC (a collision, §8.2: the caller must pick a new SSRC
    and send BYE for the old one). ``current`` is the most recent source;
    a new SSRC replaces it with fresh statistics. At most ``max_sources``
    are kept (oldest dropped), so a flood of random SSRCs cannot grow memory.
    """

    def __init__(self, clock_rate: int, local_ssrc: int, max_sources: int = 8) -> None:
        self.clock_rate = clock_rate
        self.local_ssrc = local_ssrc
        self.max_sources = max_sources
        self.sources: dict[int, ReceptionStats] = {}
        self.current: ReceptionStats | None = None
        self.collisions = 0
        self.ssrc_changes = 0

    def receive(self, packet: RtpPacket, now: float) -> ReceptionStats | None:
        ssrc = packet.ssrc
        current = self.current
        if current is not None and current.ssrc == ssrc and ssrc != self.local_ssrc:
            current.receive(packet, now)
            return current
        if ssrc == self.local_ssrc:
            self.collisions += 1
            return None
        stats = self.sources.get(ssrc)
        if stats is None:
            if self.current is not None:
                self.ssrc_changes += 1
            stats = ReceptionStats(ssrc, self.clock_rate, packet.sequence_number)
            if len(self.sources) >= self.max_sources:
                del self.sources[next(iter(self.sources))]
            self.sources[ssrc] = stats
        self.current = stats
        stats.receive(packet, now)
        return stats

    def forget(self, ssrc: int) -> None:
        """Drop a source that sent BYE (RFC 3550 §6.6)."""
        stats = self.sources.pop(ssrc, None)
        if stats is self.current:
            self.current = None

    def report_blocks(self, now: float) -> list[ReportBlock]:
        """One block per known source that has passed probation (max 31)."""
        return [s.report_block(now) for s in self.sources.values() if not s.probation][:31]

    def on_sender_report(self, sr: SenderReport, now: float) -> None:
        stats = self.sources.get(sr.ssrc)
        if stats is not None:
            stats.on_sender_report(sr, now)


def arrival_middle(now_unix: float) -> int:
    """Middle 32 bits of the NTP time of ``now_unix`` (the 'A' of §6.4.1)."""
    return ntp_middle(ntp_from_unix(now_unix))
