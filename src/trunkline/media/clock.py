"""One media clock per event loop and packet time: a single timer for every session.

Every :class:`~trunkline.media.session.MediaSession` sends one frame and plays
out one frame per packet time. Arming one ``loop.call_at`` per session means
one timer handle, one heap operation and one Python callback per session and
packet time, and the sessions' work cannot be shared. :class:`MediaClock`
arms one ``call_at`` per packet time (deadlines ``start + n * ptime`` from a
:class:`~trunkline.rtp.pacing.PacingSchedule`, so lateness never accumulates
into drift) and services every session that joined it, in two phases per
tick:

1. **send**: each stream gives the G.711 frame it wants to send (its source
   read), or ``None`` when it has nothing for the batch (silence, or it sent
   by itself: an RFC 4733 event, a frame of another codec). The frames of all
   streams are coded together with one table lookup when they share a law
   and a length (the usual case; else frame by frame), and each payload goes
   back to its stream to be numbered and sent.
2. **playout**: each stream pulls its jitter buffer and gives the G.711
   payload to decode, or ``None`` when it played by itself (concealment,
   another codec, a change of payload type) or has nothing; the payloads are
   decoded together the same way and each frame goes back to its stream
   (concealment history, then the sinks).

Per stream and tick that is one call into it and one back per phase, with
nothing built but the batch lists: the per-packet work stays in the stream.
The calls into the streams go through ``map`` (a loop in C) and the batch is
picked out with ``itertools.compress``; when a stream raises, the ones before
it keep their results and the loop resumes after it.

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
from collections.abc import Callable, Iterator
from itertools import compress, repeat
from operator import attrgetter, is_not, methodcaller
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from trunkline.media.codecs import Pcm
from trunkline.media.codecs.g711 import encode_with
from trunkline.rtp.pacing import PacingSchedule

__all__ = ["ClockedStream", "MediaClock"]

log = logging.getLogger(__name__)

_send_table_of = attrgetter("send_table")
_play_table_of = attrgetter("play_table")
_tobytes = np.ndarray.tobytes


class ClockedStream(Protocol):
    """What the clock needs from a stream (a media session)."""

    #: The G.711 encode table of the frames ``frame_to_send`` gives
    #: (:data:`trunkline.media.codecs.g711.ULAW_ENCODE` or ``ALAW_ENCODE``).
    send_table: npt.NDArray[np.uint8]
    #: The G.711 decode table of the payloads ``frame_to_play`` gives.
    play_table: npt.NDArray[np.int16]

    def frame_to_send(self, tick: int) -> Pcm | None:
        """The PCM frame to G.711-encode and send at clock tick ``tick``, or None
        (nothing to send, or the stream sent by itself)."""

    def send_frame(self, tick: int, payload: bytes) -> None:
        """Number and send the encoded frame of ``tick``."""

    def frame_to_play(self, now: float) -> bytes | None:
        """The G.711 payload to decode for this playout slot, or None (the stream
        played by itself, or had nothing to play)."""

    def play_decoded(self, pcm: Pcm) -> None:
        """Play a frame decoded from the payload ``frame_to_play`` gave."""

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
        self._order: tuple[ClockedStream, ...] = ()  # the same, iterated per tick
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
        self._order = tuple(self.streams)
        tick = self.schedule.tick
        return tick, self.schedule.time_of(tick)

    def leave(self, stream: ClockedStream) -> None:
        """Stop servicing ``stream``; the timer stops with the last one."""
        self.streams.pop(stream, None)
        self._order = tuple(self.streams)
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
        if stream not in self.streams:
            return  # already failed in this tick
        log.error("media stream %r failed and left the clock", stream, exc_info=exc)
        self.leave(stream)
        stream.clock_failed(exc)

    def _collect(self, call: Callable[[ClockedStream], Any]) -> tuple[list[Any], list[Any]]:
        """``call`` on every stream: the streams that gave something, and what they gave.

        A stream that raises leaves the clock; the others are called regardless.
        """
        order = self._order
        results: list[Any] = []
        remaining: Iterator[ClockedStream] = iter(order)
        while True:
            try:
                results.extend(map(call, remaining))
                break
            except Exception as exc:  # one broken stream must not stop the others
                self._fail(order[len(results)], exc)
                results.append(None)
        given = list(map(is_not, results, repeat(None)))
        return list(compress(order, given)), list(compress(results, given))

    def _send(self, tick: int) -> None:
        streams, frames = self._collect(methodcaller("frame_to_send", tick))
        if not streams:
            return
        pairs = zip(streams, self._encode(streams, frames), strict=True)
        while True:
            try:
                for stream, payload in pairs:
                    if payload is not None:
                        stream.send_frame(tick, payload)
                break
            except Exception as exc:
                self._fail(stream, exc)

    def _encode(self, streams: list[ClockedStream], frames: list[Pcm]) -> list[bytes | None]:
        """The G.711 payloads of ``frames`` (None where a frame cannot be coded)."""
        table = streams[0].send_table
        if len(set(map(id, map(_send_table_of, streams)))) == 1 and len(set(map(len, frames))) == 1:
            try:
                joined = np.concatenate(frames)
            except ValueError:  # not all 1-D: the per-frame path reports it
                joined = None
            if joined is not None and joined.dtype == np.int16 and joined.ndim == 1:
                # int16 -> encode-table index: the bits as uint16 with the top one flipped.
                coded = table.take(joined.view(np.uint16) ^ np.uint16(0x8000))
                return list(map(_tobytes, coded.reshape(len(frames), -1)))
        payloads: list[bytes | None] = []
        for stream, pcm in zip(streams, frames, strict=True):
            try:
                payloads.append(encode_with(stream.send_table, pcm))
            except Exception as exc:
                self._fail(stream, exc)
                payloads.append(None)
        return payloads

    def _playout(self, now: float) -> None:
        streams, payloads = self._collect(methodcaller("frame_to_play", now))
        if not streams:
            return
        table = streams[0].play_table
        frames: npt.NDArray[np.int16] | list[Pcm]
        if (
            len(set(map(len, payloads))) == 1
            and len(set(map(id, map(_play_table_of, streams)))) == 1
        ):
            # One law and one frame size (the usual case): rows of one array, views made in C.
            joined = np.frombuffer(b"".join(payloads), dtype=np.uint8)
            frames = table.take(joined).reshape(len(payloads), -1)
        else:
            frames = [
                s.play_table.take(np.frombuffer(p, dtype=np.uint8))
                for s, p in zip(streams, payloads, strict=True)
            ]
        pairs = zip(streams, frames, strict=True)
        while True:
            try:
                for stream, pcm in pairs:
                    stream.play_decoded(pcm)
                break
            except Exception as exc:
                self._fail(stream, exc)
