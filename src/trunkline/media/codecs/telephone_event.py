"""RFC 4733 telephone-event: DTMF digits carried as named events in RTP.

Payload (RFC 4733 §2.3)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |     event     |E|R| volume    |          duration             |

Sending (§2.5.1): all packets of one event carry the RTP timestamp of the event's start; the
first has the marker bit set; while the key is held a packet goes out every ptime with the
duration so far (in RTP clock units); the end is signalled by a packet with the E bit set,
sent three times (§2.5.1.4). :func:`encode_event` returns that packet sequence; the RTP layer
stamps sequence numbers and the shared timestamp.

Receiving (§2.5.2): the RTP timestamp identifies the event, so retransmitted end packets
are recognised and dropped; :class:`TelephoneEventReceiver` reports each event once, when
its end arrives, or -- if every end packet is lost -- when the next event starts or its
timer (sans-IO ``get_timer()``/``handle_timer(now)``) runs out.

Events: 0-9 ``*`` ``#`` A-D are codes 0-15, flash is 16 (RFC 4733 §3.2, Table 7).
Limitation: the duration field is 16 bits, so one event lasts at most 65535 clock units
(8.2 s at 8 kHz, 1.4 s at 48 kHz); the long-event segmentation of §2.5.1.3 is not done.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from trunkline.media.codecs.base import CodecError, CodecInfo

EVENT_CODES: dict[str, int] = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
    "flash": 16,
}
EVENT_NAMES: dict[int, str] = {code: name for name, code in EVENT_CODES.items()}
DEFAULT_FMTP = "0-16"
END_REPEATS = 3
MAX_DURATION = 0xFFFF
_END_BIT = 0x80
_VOLUME_MASK = 0x3F
_PAYLOAD = struct.Struct("!BBH")


@dataclass(frozen=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 payload. ``volume`` is in -dBm0 (0..63)."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        """Parse a payload; raises :class:`CodecError` unless it is at least 4 bytes.

        Extra bytes (several events in one packet, RFC 4733 §2.5.1.5) are ignored.
        """
        if len(data) < _PAYLOAD.size:
            raise CodecError(f"telephone-event payload too short: {len(data)} bytes")
        event, flags, duration = _PAYLOAD.unpack_from(data)
        return cls(event, bool(flags & _END_BIT), flags & _VOLUME_MASK, duration)

    def __bytes__(self) -> bytes:
        flags = (_END_BIT if self.end else 0) | (self.volume & _VOLUME_MASK)
        return _PAYLOAD.pack(self.event, flags, self.duration)

    @property
    def name(self) -> str:
        """``"5"``, ``"#"``, ``"flash"``...; other codes as their decimal number."""
        return EVENT_NAMES.get(self.event, str(self.event))


@dataclass(frozen=True)
class EventPacket:
    """One packet to send: payload, RTP marker bit, and when to send it.

    All packets of one event share one RTP timestamp (the event's start).
    """

    payload: bytes
    marker: bool
    send_offset_ms: int


def event_code(name: str) -> int:
    """Map ``"0"``-``"9"``, ``"*"``, ``"#"``, ``"A"``-``"D"`` (any case), ``"flash"`` to a code."""
    key = name if name in EVENT_CODES else name.upper()
    if key not in EVENT_CODES:
        key = name.lower()
    try:
        return EVENT_CODES[key]
    except KeyError:
        raise CodecError(f"not a telephone-event name: {name!r}") from None


def encode_event(
    name: str,
    *,
    duration_ms: int = 100,
    ptime_ms: int = 20,
    clock_rate: int = 8000,
    volume: int = 10,
) -> list[EventPacket]:
    """Packets for one key press of ``duration_ms`` (RFC 4733 §2.5.1).

    Packet *k* reports ``(k + 1) * ptime`` of duration and is sent at ``k * ptime``; the
    final duration goes out in :data:`END_REPEATS` end packets, one ptime apart.
    """
    if duration_ms <= 0 or ptime_ms <= 0:
        raise CodecError("telephone-event duration and ptime must be positive")
    code = event_code(name)
    step = clock_rate * ptime_ms // 1000
    total = clock_rate * duration_ms // 1000
    if total > MAX_DURATION:
        raise CodecError(f"event too long for one telephone-event: {duration_ms} ms")
    packets: list[EventPacket] = []
    elapsed = step
    while elapsed < total:
        payload = bytes(TelephoneEvent(code, False, volume, elapsed))
        offset = (elapsed - step) * 1000 // clock_rate
        packets.append(EventPacket(payload, marker=not packets, send_offset_ms=offset))
        elapsed += step
    end_payload = bytes(TelephoneEvent(code, True, volume, total))
    first_end_ms = max(0, (total - step) * 1000 // clock_rate)
    for repeat in range(END_REPEATS):
        packets.append(
            EventPacket(
                end_payload, marker=not packets, send_offset_ms=first_end_ms + repeat * ptime_ms
            )
        )
    return packets


@dataclass(frozen=True)
class DigitReceived:
    """A complete event: ``digit`` name, duration in ms and clock units, RTP timestamp."""

    digit: str
    duration_ms: float
    duration: int
    timestamp: int
    volume: int
    end_seen: bool


@dataclass
class _Pending:
    timestamp: int
    event: TelephoneEvent
    last_seen: float


class TelephoneEventReceiver:
    """Turns a stream of telephone-event payloads into one :class:`DigitReceived` per event.

    ``timeout`` is how long after its last packet an event whose end packets were all lost
    is reported anyway (sans-IO: see :meth:`get_timer` / :meth:`handle_timer`).
    """

    def __init__(self, clock_rate: int = 8000, timeout: float = 0.5) -> None:
        self.clock_rate = clock_rate
        self.timeout = timeout
        self._pending: _Pending | None = None
        self._finished: deque[int] = deque(maxlen=16)

    def feed(self, payload: bytes, timestamp: int, now: float) -> list[DigitReceived]:
        """Process one packet's payload and RTP timestamp; return the digits it completes."""
        event = TelephoneEvent.parse(payload)
        if timestamp in self._finished:
            return []  # a retransmitted end packet of a reported event
        out: list[DigitReceived] = []
        pending = self._pending
        if pending is not None and pending.timestamp != timestamp:
            out.append(self._finish(pending, end_seen=False))
            pending = None
        if pending is None:
            pending = _Pending(timestamp, event, now)
            self._pending = pending
        elif event.duration >= pending.event.duration:
            pending.event = event
            pending.last_seen = now
        if event.end:
            pending.event = event if event.duration >= pending.event.duration else pending.event
            out.append(self._finish(pending, end_seen=True))
        return out

    def get_timer(self) -> float | None:
        """Deadline for reporting an event whose end never arrived, or ``None``."""
        if self._pending is None:
            return None
        return self._pending.last_seen + self.timeout

    def handle_timer(self, now: float) -> list[DigitReceived]:
        deadline = self.get_timer()
        if self._pending is None or deadline is None or now < deadline:
            return []
        return [self._finish(self._pending, end_seen=False)]

    def _finish(self, pending: _Pending, *, end_seen: bool) -> DigitReceived:
        self._pending = None
        self._finished.append(pending.timestamp)
        ev = pending.event
        return DigitReceived(
            digit=ev.name,
            duration_ms=ev.duration * 1000.0 / self.clock_rate,
            duration=ev.duration,
            timestamp=pending.timestamp,
            volume=ev.volume,
            end_seen=end_seen,
        )


def _info(clock_rate: int) -> CodecInfo:
    return CodecInfo(
        name="telephone-event",
        clock_rate=clock_rate,
        sample_rate=clock_rate,
        fmtp=DEFAULT_FMTP,
    )


CODECS = tuple(_info(rate) for rate in (8000, 16000, 48000))
