"""Where a media session's received audio goes.

A sink is any callable taking one frame of ``Pcm`` (mono int16 at the
codec's ``sample_rate``): the media clock calls every sink of a session once
per packet time with what the jitter buffer and decoder produced (a decoded
frame, or concealment for a lost one). Sinks must be cheap and must not
block; a sink that keeps frames must not modify them (the decoder may keep a
reference as its concealment history).

A :class:`~trunkline.media.sources.QueueSource` is a sink too (bridging two
sessions).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from trunkline.media.codecs.base import Pcm
from trunkline.media.wav import write_wav

__all__ = ["AudioSink", "WavRecorder"]

AudioSink = Callable[[Pcm], None]


class WavRecorder:
    """A sink that records to a mono WAV file (16-bit by default), written on
    :meth:`close` with :func:`trunkline.media.wav.write_wav`.

    Receiving only appends a reference to the frame; the samples are joined
    once, when the file is written.
    """

    def __init__(self, path: str | Path, sample_rate: int, *, sample_width: int = 2) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.sample_width = sample_width
        self._frames: list[Pcm] = []

    def __call__(self, pcm: Pcm) -> None:
        self._frames.append(pcm)

    @property
    def pcm(self) -> Pcm:
        if not self._frames:
            return np.zeros(0, np.int16)
        return np.concatenate(self._frames)

    def close(self) -> None:
        write_wav(self.path, self.pcm, self.sample_rate, self.sample_width)
