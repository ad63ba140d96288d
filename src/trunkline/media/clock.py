"""One media clock per event loop and packet time: a single timer for every session.

Every :class:`~trunkline.media.session.MediaSession` sends one frame and plays
out one frame per packet time. Arming one ``loop.call_at`` per session means
one timer handle, one heap operation and one Python callback per session and
packet time, and the sessions' work cannot be shared. :class:`MediaClock`
arms one ``call_at`` per packet time (deadlines ``start + n * ptime`` from a
:class:`~trunkline.rtp.pacing.PacingSchedule`, so lateness never accumulates
into drift) and services every session that joined it, in two phases per
tick:

1. **send**: each stream gives the frame it wants to send (its source read,
   or nothing: silence, or an RFC 4733 event it sent itself); the clock
   encodes them and hands each payload back to be numbered and sent. G.711
   frames of all streams are coded together with one table lookup per law
   (:func:`trunkline.media.codecs.g711.encode_many`); other codecs encode
   one by one.
2. **playout**: each stream pulls its jitter buffer and gives the payload to
   decode (or handles concealment itself); G.711 payloads are decoded
   together (:func:`~trunkline.media.codecs.g711.decode_many`), the rest one
   by one, and each frame goes to the stream's sinks.

A stream joins at the clock's next tick; its own tick numbers start at 0
there, so its RTP timestamps and SR timing stay those of a private schedule
starting at that deadline. Sessions with different ptimes use different
clocks. A stream whose callbacks raise is logged once and dropped from the
clock (the others keep running), like a private timer that died.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Protocol

from trunkline.media.codecs import CodecError, Decoder, Encoder, Pcm
from trunkline.media.codecs.g711 import G711Decoder, G711Encoder, decode_many, encode_many
from trunkline.rtp.pacing import PacingSchedule

__all__ = ["ClockedStream", "MediaClock"]

log = logging.getLogger(__name__)


class ClockedStream(Protocol):
    """What the clock needs from a stream (a media session)."""

    def frame_to_send(self, tick: int) -> tuple[Encoder, Pcm] | None:
        """The encoder and PCM frame to send at clock tick ``tick``, if any."""

    def send_frame(self, tick: int, payload: bytes) -> None:
        """Number and send the encoded frame of ``tick``."""

    def frame_to_play(self, now: float) -> tuple[Decoder, bytes] | None:
        """The payload to decode for this playout slot (``None``: handled or nothing)."""

    def play(self, pcm: Pcm) -> None:
        """Give a decoded (or concealed) frame to the sinks."""

    def conceal(self, decoder: Decoder) -> None:
        """The payload did not decode: play concealment instead."""

    def clock_failed(self, exc: Exception) -> None:
        """A callback raised; the stream has been dropped from the clock."""


_CLOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, MediaClock]] = (
    weakref.WeakKeyDictionary()
)


class MediaClock:
    """The shared packet-time timer of one event loop; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ptime: float) -> None:
        self.loop = loop
        self.ptime = ptime
        self.schedule: PacingSchedule | None = None
        self.streams: dict[ClockedStream, None] = {}  # an insertion-ordered set
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def shared(cls, loop: asyncio.AbstractEventLoop, ptime: float) -> MediaClock:
        """The clock for ``ptime`` on ``loop`` (created on first use)."""
        clocks = _CLOCKS.setdefault(loop, {})
        clock = clocks.get(ptime)
        if clock is None:
            clock = clocks[ptime] = cls(loop, ptime)
        return clock

    @property
    def skipped(self) -> int:
        """Ticks skipped so far because the loop stalled (see ``PacingSchedule``)."""
        return self.schedule.skipped if self.schedule else 0

    def join(self, stream: ClockedStream) -> tuple[int, float]:
        """Service ``stream`` from the next tick on: its index and deadline."""
        if self.schedule is None:
            now = self.loop.time()
            self.schedule = PacingSchedule(now, self.ptime)
            self._timer = self.loop.call_at(now, self._on_timer)
        self.streams[stream] = None
        tick = self.schedule.tick
        return tick, self.schedule.time_of(tick)

    def leave(self, stream: ClockedStream) -> None:
        """Stop servicing ``stream``; the timer stops with the last one."""
        self.streams.pop(stream, None)
        if not self.streams and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self.schedule = None

    def _on_timer(self) -> None:
        schedule = self.schedule
        if schedule is None:
            return
        now = self.loop.time()
        for tick in schedule.handle_timer(now):
            self._send(tick)
            self._playout(now)
        if self.schedule is schedule:  # the last stream may have left meanwhile
            self._timer = self.loop.call_at(schedule.get_timer(), self._on_timer)

    def _fail(self, stream: ClockedStream, exc: Exception) -> None:
        log.error("media stream %r failed and left the clock", stream, exc_info=exc)
        self.leave(stream)
        stream.clock_failed(exc)

    def _send(self, tick: int) -> None:
        streams: list[ClockedStream] = []  # the G.711 batch, in three parallel lists
        encoders: list[G711Encoder] = []
        frames: list[Pcm] = []
        for stream in list(self.streams):
            try:
                frame = stream.frame_to_send(tick)
                if frame is None:
                    continue
                encoder, pcm = frame
                if isinstance(encoder, G711Encoder):
                    streams.append(stream)
                    encoders.append(encoder)
                    frames.append(pcm)
                else:
                    stream.send_frame(tick, encoder.encode(pcm))
            except Exception as exc:  # one broken stream must not stop the others
                self._fail(stream, exc)
        if not streams:
            return
        try:
            payloads = encode_many(encoders, frames)
        except Exception:  # a bad frame: find it, encode the others one by one
            payloads = []
            for stream, encoder, pcm in zip(streams, encoders, frames, strict=True):
                try:
                    payloads.append(encoder.encode(pcm))
                except Exception as exc:
                    self._fail(stream, exc)
                    payloads.append(b"")
        for stream, payload in zip(streams, payloads, strict=True):
            if not payload:
                continue
            try:
                stream.send_frame(tick, payload)
            except Exception as exc:
                self._fail(stream, exc)

    def _playout(self, now: float) -> None:
        streams: list[ClockedStream] = []
        decoders: list[G711Decoder] = []
        payloads: list[bytes] = []
        for stream in list(self.streams):
            try:
                frame = stream.frame_to_play(now)
                if frame is None:
                    continue
                decoder, payload = frame
                if isinstance(decoder, G711Decoder) and payload:
                    streams.append(stream)
                    decoders.append(decoder)
                    payloads.append(payload)
                    continue
                try:
                    pcm = decoder.decode(payload)
                except CodecError:
                    stream.conceal(decoder)
                else:
                    stream.play(pcm)
            except Exception as exc:
                self._fail(stream, exc)
        if not streams:
            return
        for stream, pcm in zip(streams, decode_many(decoders, payloads), strict=True):
            try:
                stream.play(pcm)
            except Exception as exc:
                self._fail(stream, exc)
