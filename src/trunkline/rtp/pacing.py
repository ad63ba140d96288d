"""The sending side of an RTP stream, sans-IO: when to send, and with which
sequence number, timestamp and marker bit.

:class:`PacingSchedule` ticks every ``ptime`` from a fixed start. Deadline
``n`` is ``start + n * ptime``, never "now + ptime", so timer lateness never
accumulates into drift: a tick that fires 3 ms late is followed by one that
fires on time. If the caller falls far behind (a stalled loop), ticks beyond
``max_burst`` are skipped rather than sent in a burst, and counted.

:class:`RtpSender` numbers packets (RFC 3550 §5.1): the sequence number
increments by one per packet sent; the timestamp is derived from the tick
index, ``ts0 + tick * samples_per_frame``, so it advances through silence
(ticks with nothing sent) and does not jump when the audio source changes.
The first packet after a silent gap carries the marker bit (the start of a
talkspurt, RFC 3551 §4.1). It also counts packets and payload octets for the
SR sender info (RFC 3550 §6.4.1).
"""

from __future__ import annotations

import math
import secrets
import struct

from .packet import RtpPacket, ts_add
from .rtcp import SenderReport, ntp_from_unix

__all__ = ["PacingSchedule", "RtpSender"]

#: RFC 3550 §5.1 without CSRC/extension/padding: V/P/X/CC, M/PT and sequence as one
#: word, timestamp, SSRC.
_pack_header = struct.Struct("!III").pack


class PacingSchedule:
    """Deadlines every ``ptime`` seconds from ``start``: ``get_timer()`` /
    ``handle_timer(now)``, like every sans-IO machine here."""

    def __init__(self, start: float, ptime: float, *, max_burst: int = 3) -> None:
        if ptime <= 0:
            raise ValueError("ptime must be positive")
        self.start = start
        self.ptime = ptime
        self.max_burst = max_burst
        self.tick = 0  # index of the next tick to fire
        self.skipped = 0

    def get_timer(self) -> float:
        """When the next tick is due."""
        return self.start + self.tick * self.ptime

    def handle_timer(self, now: float) -> list[int]:
        """The tick indices due at ``now`` (usually one; empty if early).

        When more than ``max_burst`` are overdue, the oldest are skipped so
        the peer does not receive a burst; their timestamps are still used
        up, keeping the stream's clock continuous.
        """
        # A tick fires at its deadline exactly; the epsilon absorbs float error.
        due = math.floor((now - self.start) / self.ptime + 1e-9) + 1 - self.tick
        if due <= 0:
            return []
        if due > self.max_burst:
            self.skipped += due - self.max_burst
            self.tick += due - self.max_burst
            due = self.max_burst
        ticks = list(range(self.tick, self.tick + due))
        self.tick += due
        return ticks

    def time_of(self, tick: int) -> float:
        return self.start + tick * self.ptime


class RtpSender:
    """Sequence numbers, timestamps and marker bits of one outgoing stream.

    Per packet the state moves by one counter (``_n``, packets numbered so far:
    the sequence number and ``packets_sent`` derive from it), the octet count
    and the tick of the talkspurt; ``sequence``, ``packets_sent`` and
    ``last_timestamp`` are computed when read.
    """

    # Slots: the attributes sit in the object itself (see ReceptionStats).
    __slots__ = (
        "_continue",
        "_last_tick",
        "_last_ts",
        "_last_ts_tick",
        "_n",
        "_n0",
        "_seq0",
        "_word",
        "octets_sent",
        "samples_per_frame",
        "ssrc",
        "timestamp_base",
    )

    def __init__(
        self,
        payload_type: int,
        samples_per_frame: int,
        *,
        ssrc: int | None = None,
        initial_sequence: int | None = None,
        initial_timestamp: int | None = None,
    ) -> None:
        # RFC 3550 §5.1: sequence number and timestamp start random.
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self._word = 0x80000000  # first header word (V=2) without marker and sequence
        self.payload_type = payload_type
        self.samples_per_frame = samples_per_frame
        self._n = 0  # packets numbered so far
        self._n0 = 0  # _n when the counters (packets_sent, octets_sent) last restarted
        self._seq0 = secrets.randbits(16) if initial_sequence is None else initial_sequence
        self.timestamp_base = (
            secrets.randbits(32) if initial_timestamp is None else initial_timestamp
        )
        self.octets_sent = 0
        self._last_tick: int | None = None
        # The tick that continues the talkspurt without a marker; None: mark the next.
        self._continue: int | None = None
        self._last_ts: int | None = None  # set by packet(): its timestamp may be overridden
        self._last_ts_tick: int | None = None  # the tick _last_ts belongs to

    @property
    def payload_type(self) -> int:
        return (self._word >> 16) & 0x7F

    @payload_type.setter
    def payload_type(self, value: int) -> None:
        self._word = 0x80000000 | ((value & 0x7F) << 16)

    @property
    def sequence(self) -> int:
        """The sequence number of the next packet."""
        return (self._seq0 + self._n) & 0xFFFF

    @sequence.setter
    def sequence(self, value: int) -> None:
        self._seq0 = value - self._n

    @property
    def packets_sent(self) -> int:
        return self._n - self._n0

    @property
    def last_timestamp(self) -> int | None:
        """The timestamp of the last packet numbered, if any."""
        last = self._last_tick
        if last is None:
            return None
        if last == self._last_ts_tick:
            return self._last_ts
        return self.timestamp_of(last)

    def timestamp_of(self, tick: int) -> int:
        return ts_add(self.timestamp_base, tick * self.samples_per_frame)

    def mark_next(self) -> None:
        """Set the marker on the next packet (e.g. after a source change)."""
        self._continue = None

    def packet(
        self,
        tick: int,
        payload: bytes,
        *,
        payload_type: int | None = None,
        timestamp: int | None = None,
        marker: bool | None = None,
    ) -> RtpPacket:
        """The packet to send for ``tick``.

        ``timestamp`` and ``marker`` override the defaults for payloads with
        their own timing rules (an RFC 4733 event keeps the timestamp of its
        start and marks only its first packet). A tick that does not follow
        the last one (ticks were skipped: silence) starts a talkspurt.
        """
        if marker is None:
            marker = tick != self._continue
        self._continue = tick + 1
        self._last_tick = tick
        ts = self.timestamp_of(tick) if timestamp is None else timestamp
        pkt = RtpPacket(
            payload_type=self.payload_type if payload_type is None else payload_type,
            sequence_number=self.sequence,
            timestamp=ts,
            ssrc=self.ssrc,
            payload=payload,
            marker=marker,
        )
        self._n += 1
        self.octets_sent += len(payload)
        self._last_ts = ts
        self._last_ts_tick = tick
        return pkt

    def build(self, tick: int, payload: bytes) -> bytes:
        """The wire bytes of ``packet(tick, payload)`` for a plain audio packet.

        The media clock's per-packet path: the same numbering and marker
        rules as :meth:`packet`, packed straight into the 12-byte fixed
        header without building an :class:`RtpPacket`.
        """
        n = self._n
        self._n = n + 1
        self.octets_sent += len(payload)
        if tick == self._continue:
            word = self._word | ((self._seq0 + n) & 0xFFFF)
        else:
            word = self._word | 0x800000 | ((self._seq0 + n) & 0xFFFF)
        self._continue = tick + 1
        self._last_tick = tick
        return (
            _pack_header(
                word,
                (self.timestamp_base + tick * self.samples_per_frame) & 0xFFFFFFFF,
                self.ssrc,
            )
            + payload
        )

    def restart_ticks(self) -> None:
        """The schedule restarted at tick 0 (e.g. a new ptime): timestamps
        continue from the last packet sent instead of jumping."""
        last = self._last_tick
        if last is not None:
            last_ts = self.last_timestamp
            self.timestamp_base = self.timestamp_of(last + 1)
            self._last_tick = self._last_ts_tick = -1
            self._last_ts = last_ts
            if self._continue is not None:
                self._continue = 0

    def change_ssrc(self, ssrc: int | None = None) -> int:
        """Pick a new SSRC after a collision (RFC 3550 §8.2); counters restart."""
        old = self.ssrc
        while True:
            self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
            if self.ssrc != old or ssrc is not None:
                break
        self._n0 = self._n
        self.octets_sent = 0
        self._continue = None
        return old

    def sender_report(self, schedule: PacingSchedule, now: float, wallclock: float) -> SenderReport:
        """SR sender info (RFC 3550 §6.4.1) for ``now`` on the schedule's clock.

        The RTP timestamp is the one that corresponds to ``now`` (not the last
        one sent), so receivers can map it to the NTP time ``wallclock``.
        """
        elapsed = (now - schedule.start) / schedule.ptime * self.samples_per_frame
        return SenderReport(
            ssrc=self.ssrc,
            ntp_timestamp=ntp_from_unix(wallclock),
            rtp_timestamp=ts_add(self.timestamp_base, int(elapsed)),
            packet_count=self.packets_sent,
            octet_count=self.octets_sent,
        )
