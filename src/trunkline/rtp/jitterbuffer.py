"""An adaptive jitter buffer for one incoming audio stream (sans-IO).

The playout side pulls one frame every packet time: ``get(now)`` returns the
next :class:`RtpPacket` in sequence order, a :class:`Concealment` when there
is nothing to play (the caller asks its decoder to conceal, e.g. the G.711
Appendix I waveform repetition or Opus's own PLC), or ``None`` while the
buffer is still filling for the first time. The network side pushes with
``put(packet, now)``.

What it does, and why:

* **Reordering**: packets are keyed by extended sequence number (the 16-bit
  number unwrapped, RFC 3550 A.1) and played in order.
* **Duplicates** are dropped: a ring of the last ``_RECENT`` extended
  sequence numbers received, indexed by ``ext % _RECENT`` (one list lookup
  per packet).
* **Late packets** (their slot was already played or concealed) are dropped
  and counted: they are heard as loss (the E-model counts them, G.107).
* **Loss**: a missing frame with later frames waiting is concealed and the
  playout point moves on (``ConcealReason.LOST``). When the very next packet
  is already buffered it rides along as ``Concealment.following``, so a
  decoder with in-band FEC (Opus LBRR, RFC 6716 §2.1.7) can rebuild the lost
  frame from it instead of concealing; the caller then reports that with
  :meth:`JitterBuffer.note_recovered` (statistics: ``recovered``, a subset of
  ``lost``). The packet stays buffered and plays in its own slot next.
* **Underrun**: nothing buffered at all; the frame is concealed *without*
  advancing, so the buffer grows by one frame, then it refills to its target
  (``ConcealReason.UNDERRUN``).
* **Adaptive delay**: the target delay is ``jitter_factor`` times the RFC 3550
  interarrival jitter estimate (§6.4.1) measured here, within
  ``[min_delay, max_delay]``. The actual delay is the smoothed time packets
  wait between arrival and playout. When it exceeds the target by more than
  a frame and even the least-waiting recent packet could afford it, one frame
  is dropped (``discarded``); when it is a frame short, one concealed frame
  is inserted (``ConcealReason.STRETCH``). This is looked at once every
  ``adapt_interval`` frames, so the change is slow and inaudible-ish (and
  costs nothing on the other frames).

Everything takes ``now`` in seconds (any monotonic clock); no clock is read.

The media session's per-packet path uses two leaner calls on plain values
(no :class:`RtpPacket` per packet): :meth:`JitterBuffer.put_next` for the
packet right after the highest one received (nearly every packet; the caller
has checked that with :meth:`JitterBuffer.next_sequence`), and
:meth:`JitterBuffer.pop`, which returns an :data:`Entry` tuple instead of a
packet. ``put`` and ``get`` remain the general interface and share the state.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from .packet import RtpPacket

__all__ = ["ConcealReason", "Concealment", "Entry", "JitterBuffer", "JitterStats"]

#: A buffered frame: (payload type, payload, RTP timestamp, arrival time).
Entry = tuple[int, bytes, int, float]

_MAX_JUMP = 3000  # a larger sequence jump means the stream restarted (RFC 3550 A.1)
_RECENT = 512  # how many received sequence numbers are remembered for duplicates
_RECENT_MASK = _RECENT - 1  # a power of two: ext % _RECENT == ext & _RECENT_MASK
_WAIT_WINDOW = 50  # played packets over which the minimum wait is taken
_WARMUP = 16  # packets before the jitter estimate replaces initial_delay


class ConcealReason(enum.Enum):
    LOST = "lost"  # the frame never came (or came too late)
    UNDERRUN = "underrun"  # the buffer ran dry; playout is delayed by a frame
    STRETCH = "stretch"  # inserted on purpose to grow the delay


@dataclass(slots=True, frozen=True)
class Concealment:
    """Play ``samples`` (timestamp units) of concealment instead of a packet.

    ``consecutive`` counts concealed frames in a row (1 for the first), which
    decoders use to fade out a long gap. ``following`` is the packet right
    after the lost one when it is already here (``LOST`` only): its in-band FEC
    data may hold this frame.
    """

    sequence: int
    timestamp: int
    samples: int
    reason: ConcealReason
    consecutive: int
    following: RtpPacket | None = None


@dataclass(slots=True, frozen=True)
class JitterStats:
    received: int
    played: int
    late: int
    lost: int
    recovered: int  # lost frames rebuilt from the next packet's in-band FEC
    concealed: int
    underruns: int
    stretched: int
    discarded: int
    duplicates: int
    resets: int
    jitter: float  # seconds (RFC 3550 estimate)
    target_delay: float  # seconds
    current_delay: float  # seconds, smoothed arrival-to-playout wait
    buffered: int  # packets waiting now


class JitterBuffer:
    """Adaptive reordering buffer; see the module docstring."""

    # Slots: 40 attributes would outgrow CPython's shared instance keys (30) and turn
    # every attribute access into a dict lookup (see MediaSession).
    __slots__ = (
        "_buffering",
        "_capacity",
        "_consecutive",
        "_fast_until",
        "_filling_since",
        "_highest",
        "_initial_target",
        "_jitter",
        "_last_transit",
        "_last_ts",
        "_last_ts_unwrapped",
        "_next",
        "_next_ts",
        "_packets",
        "_pending",
        "_played_at_sync",
        "_recent",
        "_recent_to",
        "_since_adapt",
        "_wait",
        "_waits",
        "adapt_interval",
        "clock_rate",
        "concealed",
        "discarded",
        "duplicates",
        "frame_samples",
        "jitter_factor",
        "late",
        "lost",
        "max_delay",
        "min_delay",
        "played",
        "ptime",
        "received",
        "recovered",
        "resets",
        "ssrc",
        "stretched",
        "underruns",
    )

    def __init__(
        self,
        clock_rate: int,
        ptime: float = 0.02,
        *,
        min_delay: float = 0.02,
        max_delay: float = 0.4,
        initial_delay: float = 0.06,
        jitter_factor: float = 3.0,
        adapt_interval: int = 25,
    ) -> None:
        if not 0 < min_delay <= max_delay:
            raise ValueError("need 0 < min_delay <= max_delay")
        self.clock_rate = clock_rate
        self.ptime = ptime
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.jitter_factor = jitter_factor
        self.adapt_interval = adapt_interval
        self.frame_samples = max(1, round(clock_rate * ptime))
        self._capacity = 2 * int(max_delay / ptime) + 8
        self._initial_target = min(max_delay, max(min_delay, initial_delay))
        self._packets: dict[int, Entry] = {}
        self.ssrc = 0  # of the last packet given to put(): what get() rebuilds packets with
        self._recent: list[int] = [-1] * _RECENT  # slot ext % _RECENT: last ext seen there
        # put_next does not write _recent: every ext in (_recent_to, _highest] came
        # through it, in order, and put() writes them before it looks (_catch_up).
        self._recent_to = 0
        self._highest: int | None = None  # highest extended seq received
        self._next: int | None = None  # extended seq to play next
        self._next_ts: int | None = None
        self._filling_since: float | None = None
        self._buffering = True
        self._consecutive = 0
        self._since_adapt = 0
        self._jitter = 0.0  # timestamp units
        self._last_transit: float | None = None
        self._last_ts: int | None = None
        self._last_ts_unwrapped = 0.0
        self._wait = 0.0
        self._waits: deque[float] = deque(maxlen=_WAIT_WINDOW)
        # pop's fast path (see there): it plays while ``played + 1 < _fast_until``
        # (0: never), and leaves the waits of what it played in _pending for _sync.
        self._fast_until = 0
        self._played_at_sync = 0
        self._pending: list[float] = []
        self.received = 0
        self.played = 0
        self.late = 0
        self.lost = 0
        self.recovered = 0
        self.concealed = 0
        self.underruns = 0
        self.stretched = 0
        self.discarded = 0
        self.duplicates = 0
        self.resets = 0

    # -- network side -------------------------------------------------------
    def put(self, packet: RtpPacket, now: float, jitter: float | None = None) -> bool:
        """Accept a packet; False when it is a duplicate or arrived too late.

        ``jitter`` is the RFC 3550 interarrival jitter in timestamp units when
        the caller already keeps it (a session's reception statistics do,
        :class:`trunkline.rtp.stats.ReceptionStats`); the buffer then uses it
        instead of computing the same estimate a second time per packet.
        """
        seq = packet.sequence_number
        highest = self._highest
        if highest is not None and self._recent_to < highest:
            self._catch_up(highest)
        if highest is None:
            ext = seq + 0x10000  # room below for packets reordered before the first
        else:
            d = (seq - highest) & 0xFFFF  # seq_diff, inlined: this runs per packet
            ext = highest + (d - 0x10000 if d >= 0x8000 else d)
            if abs(ext - highest) > _MAX_JUMP:
                self._restart()
                highest = None
                ext = seq + 0x10000
        recent = self._recent
        slot = ext & _RECENT_MASK
        if recent[slot] == ext:
            self.duplicates += 1
            return False
        recent[slot] = ext
        next_ext = self._next
        if next_ext is not None and ext < next_ext:
            self.late += 1
            return False
        self.received += 1
        if jitter is None:
            self._update_jitter(packet.timestamp, now)
        else:
            self._jitter = jitter  # the target follows it: see target_delay
        self.ssrc = packet.ssrc
        packets = self._packets
        packets[ext] = (packet.payload_type, packet.payload, packet.timestamp, now)
        if highest is None or ext > highest:
            self._highest = self._recent_to = ext
        if len(packets) > self._capacity:
            self._overflow()
        return True

    def _catch_up(self, highest: int) -> None:
        """Mark in ``_recent`` what :meth:`put_next` took since the last ``put``."""
        recent = self._recent
        for ext in range(max(self._recent_to + 1, highest - _RECENT + 1), highest + 1):
            recent[ext & _RECENT_MASK] = ext
        self._recent_to = highest

    def next_sequence(self) -> int | None:
        """The sequence number after the highest received (what :meth:`put_next` takes)."""
        highest = self._highest
        return None if highest is None else (highest + 1) & 0xFFFF

    def put_next(
        self, payload_type: int, payload: bytes, timestamp: int, now: float, jitter: float
    ) -> None:
        """``put`` for the packet numbered :meth:`next_sequence` (the caller checked):
        it cannot be a duplicate or late, so only the bookkeeping of a new highest
        packet is left. ``jitter`` as for ``put`` (timestamp units)."""
        ext = self._highest = self._highest + 1  # type: ignore[operator]  # next_sequence was
        self.received += 1
        self._jitter = jitter
        packets = self._packets
        packets[ext] = (payload_type, payload, timestamp, now)
        if len(packets) > self._capacity:
            self._overflow()

    def _overflow(self) -> None:
        """The consumer stalled: drop the oldest packets down to capacity."""
        while len(self._packets) > self._capacity:
            oldest = min(self._packets)
            del self._packets[oldest]
            self.discarded += 1
            if self._next is not None and oldest >= self._next:
                self._next = oldest + 1

    def _update_jitter(self, timestamp: int, now: float) -> None:
        """RFC 3550 §6.4.1 / A.8 interarrival jitter, then the new target."""
        last_ts = self._last_ts
        if last_ts is None:
            unwrapped = float(timestamp)
        else:
            d = (timestamp - last_ts) & 0xFFFFFFFF  # ts_diff, inlined
            unwrapped = self._last_ts_unwrapped + (d - 0x100000000 if d >= 0x80000000 else d)
        self._last_ts = timestamp
        self._last_ts_unwrapped = unwrapped
        transit = now * self.clock_rate - unwrapped
        if self._last_transit is not None:
            self._jitter += (abs(transit - self._last_transit) - self._jitter) / 16.0
        self._last_transit = transit

    @property
    def target_delay(self) -> float:
        """The delay aimed at: ``jitter_factor`` x jitter within the bounds (seconds).

        ``initial_delay`` until ``_WARMUP`` packets have made the estimate meaningful.
        Computed when asked (refilling, once per ``adapt_interval``, statistics)
        rather than per packet.
        """
        if self.received < _WARMUP:
            return self._initial_target
        wanted = self.jitter_factor * self._jitter / self.clock_rate
        return min(self.max_delay, max(self.min_delay, wanted))

    def _restart(self) -> None:
        self.resets += 1
        self._packets.clear()
        self._recent = [-1] * _RECENT
        self._highest = None
        self._next = None
        self._next_ts = None
        self._filling_since = None
        self._buffering = True
        self._fast_until = 0
        self._last_transit = None
        self._last_ts = None

    # -- playout side -------------------------------------------------------
    def get(self, now: float) -> RtpPacket | Concealment | None:
        """The frame for this playout slot (call once per packet time)."""
        out = self.pop(now)
        if type(out) is tuple:
            payload_type, payload, timestamp, _ = out
            sequence = (self._next - 1) & 0xFFFF  # type: ignore[operator]  # just played
            return RtpPacket(payload_type, sequence, timestamp, self.ssrc, payload)
        return out  # type: ignore[return-value]

    def _packet(self, ext: int, entry: Entry) -> RtpPacket:
        return RtpPacket(entry[0], ext & 0xFFFF, entry[2], self.ssrc, entry[1])

    def pop(self, now: float) -> Entry | Concealment | None:
        """:meth:`get` with the frame as an :data:`Entry` tuple instead of a packet.

        The fast path plays the next frame when it is here and nothing else is due:
        not buffering, no concealment run to end, no delay adaptation at this slot
        (the general path sets ``_fast_until`` to the played count where that
        comes). It only counts and queues the frame's wait; :meth:`_sync` folds
        the waits into the delay estimate before anything reads it.
        """
        played = self.played + 1
        if played < self._fast_until:
            entry = self._packets.pop(self._next, None)  # type: ignore[arg-type]
            if entry is not None:
                self.played = played
                self._next += 1  # type: ignore[operator]
                self._next_ts = entry[2] + self.frame_samples
                self._pending.append(now - entry[3])
                return entry
        self._sync()
        out = self._pop(now)
        self._played_at_sync = self.played
        if self._buffering or self._consecutive or not self.played:
            self._fast_until = 0
        else:
            self._fast_until = self.played + self.adapt_interval - self._since_adapt
        return out

    def _sync(self) -> None:
        """Catch up with what the fast path of :meth:`pop` played."""
        self._since_adapt += self.played - self._played_at_sync
        self._played_at_sync = self.played
        pending = self._pending
        if pending:  # all after the first frame played: the 1/16 average applies
            average = self._wait
            for wait in pending:
                average += (wait - average) / 16.0
            self._wait = average
            self._waits.extend(pending)
            pending.clear()

    def _pop(self, now: float) -> Entry | Concealment | None:
        if self._buffering:
            if not self._refilled(now):
                if self._next is None:
                    return None
                return self._conceal(ConcealReason.UNDERRUN, advance=False)
            self._buffering = False
            if self._next is None or not any(k >= self._next for k in self._packets):
                self._next = min(self._packets)
        nxt = self._next
        assert nxt is not None
        since = self._since_adapt + 1
        if since >= self.adapt_interval:  # one look per adapt_interval frames
            since = 0
            target = self.target_delay
            if self._should_shrink(target) and nxt in self._packets:
                del self._packets[nxt]
                nxt = self._next = nxt + 1
                self._next_ts = None
                self.discarded += 1
                self._waits.clear()
            elif self._wait < target - self.ptime and self.played:
                self._since_adapt = 0
                self.stretched += 1
                self._wait += self.ptime
                return self._conceal(ConcealReason.STRETCH, advance=False)
        self._since_adapt = since
        packets = self._packets
        entry = packets.pop(nxt, None)
        if entry is not None:
            arrival = entry[3]
            self._next = nxt + 1
            self._next_ts = entry[2] + self.frame_samples
            self._consecutive = 0
            played = self.played = self.played + 1
            wait = now - arrival
            if played > 1:
                self._wait += (wait - self._wait) / 16.0
            else:
                self._wait = wait
            self._waits.append(wait)
            return entry
        if packets:
            self.lost += 1
            following = packets.get(nxt + 1)
            return self._conceal(
                ConcealReason.LOST,
                advance=True,
                following=self._packet(nxt + 1, following) if following is not None else None,
            )
        self.underruns += 1
        self._buffering = True
        self._filling_since = None
        return self._conceal(ConcealReason.UNDERRUN, advance=False)

    def _refilled(self, now: float) -> bool:
        packets = self._packets
        if not packets:
            return False
        if self._filling_since is None:  # since the first packet that came while empty
            self._filling_since = min(entry[3] for entry in packets.values())
        if now - self._filling_since >= self.target_delay:
            return True
        if self._next is not None and self._highest is not None:
            return (self._highest - self._next + 1) * self.ptime >= self.target_delay
        return False

    def _should_shrink(self, target: float) -> bool:
        if self._wait <= target + self.ptime or len(self._waits) < self.adapt_interval:
            return False
        return min(self._waits) > self.ptime

    def note_recovered(self) -> None:
        """The caller rebuilt the last ``LOST`` frame from ``following``'s FEC data."""
        self.recovered += 1

    def _conceal(
        self, reason: ConcealReason, *, advance: bool, following: RtpPacket | None = None
    ) -> Concealment:
        assert self._next is not None
        self._consecutive += 1
        self.concealed += 1
        ts = self._next_ts if self._next_ts is not None else 0
        concealment = Concealment(
            sequence=self._next & 0xFFFF,
            timestamp=ts & 0xFFFFFFFF,
            samples=self.frame_samples,
            reason=reason,
            consecutive=self._consecutive,
            following=following,
        )
        if advance:
            self._next += 1
            if self._next_ts is not None:
                self._next_ts += self.frame_samples
        return concealment

    # -- reporting ----------------------------------------------------------
    @property
    def current_delay(self) -> float:
        """Smoothed wait between arrival and playout, in seconds."""
        self._sync()
        return self._wait

    @property
    def jitter(self) -> float:
        return self._jitter / self.clock_rate

    def stats(self) -> JitterStats:
        return JitterStats(
            received=self.received,
            played=self.played,
            late=self.late,
            lost=self.lost,
            recovered=self.recovered,
            concealed=self.concealed,
            underruns=self.underruns,
            stretched=self.stretched,
            discarded=self.discarded,
            duplicates=self.duplicates,
            resets=self.resets,
            jitter=self.jitter,
            target_delay=self.target_delay,
            current_delay=self.current_delay,
            buffered=len(self._packets),
        )
