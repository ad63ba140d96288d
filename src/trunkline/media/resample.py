"""Sample-rate conversion: a stateful resampler for the live path and a one-shot helper.

Live audio (one 20 ms frame per RTP packet) needs a converter that neither bursts nor holds
back audio: every input frame must produce (almost) exactly one output frame. We measured
the candidates on 20 ms frames (8/16/44.1/48 kHz in and out):

* ``soxr.ResampleStream`` with the default (HQ) or LQ/MQ quality holds back tens of
  milliseconds and then emits several frames at once -- unusable per packet;
* soxr ``QQ`` is steady (1 frame out per frame in) but is a cubic interpolator without an
  anti-alias filter: a 6 kHz tone resampled from 48 to 8 kHz comes out as a full-level 2 kHz
  alias;
* PyAV's ``AudioResampler`` (FFmpeg libswresample: windowed-sinc, 32 taps) is steady after
  the first frame, removes content above the new Nyquist frequency, and costs about
  0.1-0.25 ms per 20 ms frame. Its output is time-aligned with the input (an impulse comes
  out at the same stream time); to do that it holds back its look-ahead, 2 ms, so the first
  output frame is 2 ms short (144 instead of 160 samples at 8 kHz) and every later frame
  is exactly one frame.

So :class:`Resampler` uses libswresample. Files are converted at once with soxr's high
quality mode (:func:`resample`), where latency does not matter.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np
import soxr

from trunkline.media.codecs.base import CodecError, Pcm, as_pcm


class Resampler:
    """Streaming mono int16 converter from ``in_rate`` to ``out_rate``.

    ``resample(frame)`` returns the output produced by that frame: after the first frame,
    ``len(frame) * out_rate / in_rate`` samples (+/- 1 where the ratio is fractional); the
    first call returns 2 ms less (the filter look-ahead, measured in the tests). Equal
    rates pass through untouched.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise CodecError(f"bad resampling rates {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._pts = 0
        self._time_base = Fraction(1, in_rate)  # made once: a Fraction per frame shows up
        self._swr: Any = None
        if in_rate != out_rate:
            self._swr = av.AudioResampler(format="s16", layout="mono", rate=out_rate)

    @property
    def passthrough(self) -> bool:
        return self._swr is None

    def resample(self, pcm: Pcm) -> Pcm:
        """Convert one frame; returns the output available so far (never buffered in bursts)."""
        pcm = as_pcm(pcm)
        if self._swr is None or len(pcm) == 0:
            return pcm
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.in_rate
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += len(pcm)
        return _join(self._swr.resample(frame))

    def flush(self) -> Pcm:
        """Drain the filter's tail at the end of a stream; the resampler is then spent."""
        if self._swr is None:
            return np.zeros(0, dtype=np.int16)
        return _join(self._swr.resample(None))


def _join(frames: list[Any]) -> Pcm:
    if not frames:
        return np.zeros(0, dtype=np.int16)
    parts = [np.asarray(f.to_ndarray(), dtype=np.int16).reshape(-1) for f in frames]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def resample(pcm: Pcm, in_rate: int, out_rate: int) -> Pcm:
    """Convert a whole signal at once (soxr HQ; no latency concerns): prompts, WAV files."""
    pcm = as_pcm(pcm)
    if in_rate == out_rate or len(pcm) == 0:
        return pcm
    out = soxr.resample(pcm, in_rate, out_rate, quality="HQ")
    return np.asarray(out, dtype=np.int16)
