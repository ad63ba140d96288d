"""Where a media session's outgoing audio comes from.

A source is any object with ``read(samples) -> Pcm | None``: the next
``samples`` samples of mono int16 audio at the session's codec
``sample_rate``, or ``None`` for silence, in which case nothing is sent for
that packet time and the RTP timestamp still advances (RFC 3551 §4.1: the
next packet starts a talkspurt and carries the marker bit).

The media clock (:mod:`trunkline.media.clock`) calls ``read`` once per
packet time for every sending session, so ``read`` must be cheap and must
not block: the sources here return views into arrays they already hold
where they can, and never touch files or sockets.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from trunkline.media.codecs.base import Pcm
from trunkline.media.wav import Source, load_wav

__all__ = ["AudioSource", "PcmSource", "QueueSource", "ToneSource"]


class AudioSource(Protocol):
    def read(self, samples: int) -> Pcm | None:
        """The next ``samples`` samples, or ``None`` for silence (send nothing)."""


class ToneSource:
    """A continuous sine tone (phase-continuous across frames)."""

    def __init__(
        self, frequency: float, sample_rate: int, level: float = 0.3, duration: float | None = None
    ) -> None:
        self.frequency = frequency
        self.sample_rate = sample_rate
        self.amplitude = level * 32767
        self.remaining = None if duration is None else int(duration * sample_rate)
        self._n = 0

    def read(self, samples: int) -> Pcm | None:
        if self.remaining is not None:
            if self.remaining <= 0:
                return None
            self.remaining -= samples
        t = (self._n + np.arange(samples)) / self.sample_rate
        self._n += samples
        return np.rint(self.amplitude * np.sin(2 * np.pi * self.frequency * t)).astype(np.int16)


class PcmSource:
    """Plays a PCM array once (or in a loop), then silence.

    Frames are views into the array (no copy) except where a loop wraps
    around or the last frame is padded with silence.
    """

    # Slots: the attributes sit in the object itself (one memory access less per frame).
    __slots__ = (
        "loop",
        "pcm",
        "position",
    )

    def __init__(self, pcm: Pcm, *, loop: bool = False) -> None:
        self.pcm = pcm
        self.loop = loop
        self.position = 0

    @classmethod
    def from_wav(cls, path: Source, sample_rate: int, *, loop: bool = False) -> PcmSource:
        """Read a WAV file (any format :mod:`trunkline.media.wav` reads, channels
        mixed down), converted to ``sample_rate``."""
        return cls(load_wav(path, sample_rate), loop=loop)

    @property
    def finished(self) -> bool:
        return not self.loop and self.position >= len(self.pcm)

    def read(self, samples: int) -> Pcm | None:
        pcm = self.pcm
        position = self.position
        end = position + samples
        if end <= len(pcm):  # the common case: a view, no copy
            self.position = end
            return pcm[position:end]
        if self.finished or len(pcm) == 0:
            return None
        chunk = pcm[position:end]
        self.position = end
        if self.loop:
            parts = [chunk]
            have = len(chunk)
            while have < samples:
                part = pcm[: samples - have]
                parts.append(part)
                have += len(part)
            self.position = len(parts[-1])
            return np.concatenate(parts)
        return np.concatenate([chunk, np.zeros(samples - len(chunk), np.int16)])


class QueueSource:
    """Frames pushed by someone else (another session, a TTS engine...).

    Keeps at most ``max_samples`` buffered (older audio is dropped) so a
    bridge between two sessions cannot build up delay. Calling it pushes, so
    a QueueSource is also a sink (:mod:`trunkline.media.sinks`).
    """

    def __init__(self, max_samples: int = 8000) -> None:
        self.max_samples = max_samples
        self._frames: deque[Pcm] = deque()
        self._buffered = 0
        self.dropped = 0

    def push(self, pcm: Pcm) -> None:
        self._frames.append(pcm)
        self._buffered += len(pcm)
        while self._buffered > self.max_samples and self._frames:
            old = self._frames.popleft()
            self._buffered -= len(old)
            self.dropped += len(old)

    __call__ = push

    def read(self, samples: int) -> Pcm | None:
        if self._buffered < samples:
            return None
        parts: list[Pcm] = []
        need = samples
        while need:
            frame = self._frames[0]
            if len(frame) <= need:
                parts.append(self._frames.popleft())
                need -= len(frame)
            else:
                parts.append(frame[:need])
                self._frames[0] = frame[need:]
                need = 0
        self._buffered -= samples
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
