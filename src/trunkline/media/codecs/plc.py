"""Packet loss concealment by pitch waveform repetition.

A simplified form of ITU-T G.711 Appendix I ("A high quality low-complexity algorithm for
packet loss concealment with G.711"), usable at any sample rate (G.711 and G.722 use it):

* every good frame goes through :meth:`WaveformPlc.update`, which keeps a short history;
* on the first lost frame the pitch period is estimated by normalized cross-correlation of
  the last 20 ms with the history at lags of 5-15 ms (200-66 Hz, Appendix I §I.2.2);
* the last pitch period is repeated; its tail is cross-faded with the period before it so
  the repetition wraps without a click (Appendix I uses a 1/4-period overlap-add, as here);
* the first 10 ms of a loss are played at full level, then the level falls linearly by
  20 % per 10 ms and reaches silence after 60 ms (Appendix I §I.2.4);
* the first good frame after a loss is cross-faded from the synthetic signal over 4 ms
  (Appendix I §I.2.5 uses 4 ms plus 4 ms per extra lost 10 ms; we keep 4 ms).

Simplifications: the history is not updated with synthetic audio and the repeated segment
stays one pitch period long (Appendix I grows it to two and three periods after 10/20 ms).

Good frames are on the media hot path (every received packet), losses are rare: the history
is kept as references to the last few frames (no copy, no shift per frame) and joined into
one array only when a loss has to be concealed. Callers must therefore not modify a frame
after handing it to :meth:`WaveformPlc.update`.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from trunkline.media.codecs.base import Pcm

_MIN_PITCH_MS = 5.0
_MAX_PITCH_MS = 15.0
_CORR_WINDOW_MS = 20.0
_FULL_LEVEL_MS = 10.0
_SILENT_AFTER_MS = 60.0
_RECOVERY_FADE_MS = 4.0


class WaveformPlc:
    """Pitch-repetition concealment for one decoded stream at ``sample_rate``."""

    # Slots: the attributes sit in the object itself (one memory access less per frame).
    __slots__ = (
        "_cycle",
        "_fade",
        "_frame",
        "_full",
        "_history_len",
        "_lost",
        "_max_pitch",
        "_min_pitch",
        "_pos",
        "_recent",
        "_silent",
        "_window",
        "keep",
        "sample_rate",
        "steady_frame",
    )

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        ms = sample_rate / 1000.0
        self._min_pitch = int(_MIN_PITCH_MS * ms)
        self._max_pitch = int(_MAX_PITCH_MS * ms)
        self._window = int(_CORR_WINDOW_MS * ms)
        self._full = int(_FULL_LEVEL_MS * ms)
        self._silent = int(_SILENT_AFTER_MS * ms)
        self._fade = max(1, int(_RECOVERY_FADE_MS * ms))
        self._history_len = 2 * self._max_pitch + self._window
        self._frame = 0  # length of the frames ``_recent`` is sized for
        self._recent: deque[Pcm] = deque(maxlen=1)  # the last good frames, oldest first
        #: The hot path of :meth:`update`, for callers that inline it: while not
        #: concealing, a good frame of ``steady_frame`` samples is only appended to
        #: the history with ``keep`` (``steady_frame`` is -1 while concealing).
        self.steady_frame = -1
        self.keep = self._recent.append
        self._cycle: npt.NDArray[np.float64] | None = None
        self._pos = 0
        self._lost = 0

    @property
    def concealing(self) -> bool:
        """True between a concealed frame and the next good one."""
        return self._cycle is not None

    def update(self, pcm: Pcm) -> Pcm:
        """Record a good frame; after a loss, return it cross-faded from the synthesis."""
        if self._cycle is None:  # the hot path: keep a reference, nothing else
            if len(pcm) == self._frame:
                self._recent.append(pcm)
            else:
                self._push(pcm)
            return pcm
        n = min(self._fade, len(pcm))
        synthetic = self._synthesize(n)
        ramp = np.linspace(0.0, 1.0, n, endpoint=False)
        head = synthetic * (1.0 - ramp) + pcm[:n] * ramp
        out = pcm.copy()
        out[:n] = np.clip(np.rint(head), -32768, 32767).astype(np.int16)
        self._cycle = None
        self._lost = 0
        self._push(pcm)
        self.steady_frame = self._frame
        return out

    def conceal(self, samples: int) -> Pcm:
        """Synthesize ``samples`` samples standing in for lost audio."""
        if samples <= 0:
            return np.zeros(0, dtype=np.int16)
        if self._cycle is None:
            if self._filled < self._history_len:
                self._lost += samples
                return np.zeros(samples, dtype=np.int16)
            self._cycle = self._make_cycle()
            self._pos = 0
            self.steady_frame = -1
        synthetic = self._synthesize(samples)
        return np.clip(np.rint(synthetic), -32768, 32767).astype(np.int16)

    def _push(self, pcm: Pcm) -> None:
        """Keep ``pcm`` in the history; frames of a new length resize the deque so that
        it holds just enough whole frames (``maxlen``) to cover the history."""
        n = len(pcm)
        if not n:
            return
        if n != self._frame:
            self._frame = n
            self._recent = deque(self._recent, maxlen=-(-self._history_len // n))
            self.keep = self._recent.append
            if self._cycle is None:
                self.steady_frame = n
        self._recent.append(pcm)

    @property
    def _filled(self) -> int:
        """Good samples in the history (at least its length once full)."""
        return sum(len(frame) for frame in self._recent)

    @property
    def _history(self) -> npt.NDArray[np.float64]:
        """The last ``history_len`` good samples (zeros before the first)."""
        joined = np.concatenate(self._recent) if self._recent else np.zeros(0, np.int16)
        hist = np.zeros(self._history_len, dtype=np.float64)
        tail = joined[-self._history_len :]
        if len(tail):
            hist[-len(tail) :] = tail
        return hist

    def _estimate_pitch(self, hist: npt.NDArray[np.float64]) -> int:
        target = hist[-self._window :]
        lags = np.arange(self._min_pitch, self._max_pitch + 1)
        # Candidate segments ending ``lag`` samples before the end of the history.
        starts = len(hist) - self._window - lags
        segs = hist[starts[:, None] + np.arange(self._window)[None, :]]
        energy = np.einsum("ij,ij->i", segs, segs) + 1e-9
        scores = (segs @ target) / np.sqrt(energy)
        return int(lags[int(np.argmax(scores))])

    def _make_cycle(self) -> npt.NDArray[np.float64]:
        hist = self._history
        period = self._estimate_pitch(hist)
        cycle = hist[-period:].copy()
        overlap = max(1, period // 4)
        previous = hist[-2 * period : -period]
        fade = np.linspace(1.0, 0.0, overlap + 1)[1:]
        cycle[-overlap:] = cycle[-overlap:] * fade + previous[-overlap:] * (1.0 - fade)
        return cycle

    def _synthesize(self, samples: int) -> npt.NDArray[np.float64]:
        """Continue the repeated cycle with the Appendix I attenuation envelope."""
        assert self._cycle is not None
        period = len(self._cycle)
        positions = (self._pos + np.arange(samples)) % period
        lost = self._lost + np.arange(samples)
        slope = 0.2 / self._full  # 20 % per 10 ms after the first 10 ms
        gain = np.clip(1.0 - (lost - self._full) * slope, 0.0, 1.0)
        gain[lost >= self._silent] = 0.0
        self._pos = (self._pos + samples) % period
        self._lost += samples
        out: npt.NDArray[np.float64] = self._cycle[positions] * gain
        return out
