"""In-band DTMF detection: Goertzel filters with ITU-T Q.24 acceptance rules.

Analysis: every 10 ms (hop) a 20 ms Hann-windowed block is evaluated at the eight DTMF
frequencies and their second harmonics. Each evaluation is one DFT bin -- what the Goertzel
recursion computes -- done as a single numpy product over all blocks of a frame instead of
a per-sample Python loop. The bins are referenced to absolute sample time, so the phase
advance of a bin between two blocks one hop apart measures the tone's frequency offset:
``df = dphi * rate / (2 pi hop)``, unambiguous within +/-50 Hz.

A block holds a valid digit when (ITU-T Q.24 Table 1 thresholds, plus classic talk-off
guards):

* the strongest low-group and high-group bins are each at least -30 dBm0 and stand
  ``6 dB`` above every other bin of their group;
* twist: the high tone may be up to 8 dB above the low one ("normal" twist) and at most
  4 dB below it ("reverse" twist);
* frequency: each tone within 1.5 % of nominal is accepted, beyond 3.5 % it is rejected
  (the cut-off between the two is set at 2.5 %);
* relative energy: the two tones carry at least 80 % of the block's energy (speech and noise
  spread their energy over the band);
* harmonics: each tone's second harmonic is at least 20 dB below it (voiced speech and
  music are rich in harmonics, DTMF generators are not). The second harmonics of the low
  group (1394-1882 Hz) fall within 100 Hz of high-group tones, where a 20 ms block cannot
  separate them; there the low tone's third harmonic is checked instead.

A digit must hold in consecutive blocks for at least 40 ms (Q.24's minimum recognition
time); gaps of one block (10 ms) do not end a digit. Each digit is reported once, when it
ends, with its measured duration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trunkline.media.codecs.base import Pcm, as_pcm
from trunkline.media.tones import DTMF_HIGH, DTMF_KEYS, DTMF_LOW, FULL_SCALE_DBM0

MIN_LEVEL_DBM0 = -30.0
GROUP_DOMINANCE_DB = 6.0
NORMAL_TWIST_DB = 8.0
REVERSE_TWIST_DB = 4.0
FREQ_ACCEPT = 0.015
FREQ_REJECT = 0.035
FREQ_LIMIT = (FREQ_ACCEPT + FREQ_REJECT) / 2
MIN_TONE_RATIO = 0.8
HARMONIC_DB = 20.0
MIN_DURATION_MS = 40.0
_BLOCK_MS = 20
_HOP_MS = 10
_MAX_GAP_HOPS = 1

_FREQS = np.array(DTMF_LOW + DTMF_HIGH)
# Bins 0-7: fundamentals; 8-15: second harmonics; 16-19: third harmonics of the low group.
_ALL_FREQS = np.concatenate([_FREQS, 2 * _FREQS, 3 * _FREQS[:4]])
_HARMONIC_CLEARANCE_HZ = 100.0


@dataclass(frozen=True)
class DtmfToneDetected:
    """A detected key: ``start`` and ``duration`` in seconds of stream time."""

    digit: str
    start: float
    duration: float

    @property
    def duration_ms(self) -> float:
        return self.duration * 1000.0


class DtmfDetector:
    """Streaming detector: :meth:`feed` any amount of PCM, get the digits that ended."""

    def __init__(self, sample_rate: int = 8000) -> None:
        self.sample_rate = sample_rate
        self._block = sample_rate * _BLOCK_MS // 1000
        self._hop = sample_rate * _HOP_MS // 1000
        window = np.hanning(self._block + 2)[1:-1]  # no zero end points
        self._window_sq = window**2
        k = np.arange(self._block)
        # bins[f, k]: window * e^{-j 2 pi f k / rate}; the block start phase is applied later.
        self._kernels = window[None, :] * np.exp(
            -2j * np.pi * _ALL_FREQS[:, None] * k[None, :] / sample_rate
        )
        self._window_power = float(np.sum(window**2))
        # |X| of a unit sine is sum(window)/2; convert |X|^2 to sine power (A^2 / 2).
        self._bin_scale = 2.0 / float(np.sum(window)) ** 2
        full_scale_power = 32767.0**2 / 2
        self._min_power = full_scale_power * 10 ** ((MIN_LEVEL_DBM0 - FULL_SCALE_DBM0) / 10)
        self._buffer = np.zeros(0, dtype=np.float64)
        self._consumed = 0  # absolute index of _buffer[0]
        self._previous: npt.NDArray[np.complex128] | None = None
        self._current: str | None = None
        self._run_end = 0
        self._run_hops = 0
        self._gap = 0

    def feed(self, pcm: Pcm) -> list[DtmfToneDetected]:
        """Analyse more audio (mono int16 at ``sample_rate``)."""
        data = as_pcm(pcm).astype(np.float64)
        self._buffer = np.concatenate([self._buffer, data])
        count = (len(self._buffer) - self._block) // self._hop + 1
        if count <= 0:
            return []
        starts = np.arange(count) * self._hop
        blocks = self._buffer[starts[:, None] + np.arange(self._block)[None, :]]
        absolute = (self._consumed + starts).astype(np.float64)
        bins = blocks @ self._kernels.T  # (count, 16) complex
        bins *= np.exp(-2j * np.pi * absolute[:, None] * _ALL_FREQS[None, :] / self.sample_rate)
        windowed = (blocks**2) @ self._window_sq / self._window_power
        digits = self._classify(bins, windowed)
        out: list[DtmfToneDetected] = []
        for i in range(count):
            out += self._track(digits[i], int(self._consumed + starts[i]))
        used = count * self._hop
        self._buffer = self._buffer[used:]
        self._consumed += used
        return out

    def flush(self) -> list[DtmfToneDetected]:
        """Report a digit still sounding at the end of the stream."""
        out = self._end_run()
        self._current = None
        return out

    def _classify(
        self, bins: npt.NDArray[np.complex128], total_power: npt.NDArray[np.float64]
    ) -> list[str | None]:
        """The digit (or None) of each block, all blocks at once (rows of ``bins``)."""
        rows = np.arange(len(bins))
        power = np.abs(bins) ** 2 * self._bin_scale
        lo = np.argmax(power[:, 0:4], axis=1)
        hi = np.argmax(power[:, 4:8], axis=1)
        p_lo, p_hi = power[rows, lo], power[rows, 4 + hi]
        ok = np.minimum(p_lo, p_hi) >= self._min_power
        dominance = 10 ** (GROUP_DOMINANCE_DB / 10)
        low_others = power[:, 0:4].copy()
        low_others[rows, lo] = 0.0
        high_others = power[:, 4:8].copy()
        high_others[rows, hi] = 0.0
        ok &= low_others.max(axis=1) * dominance <= p_lo
        ok &= high_others.max(axis=1) * dominance <= p_hi
        with np.errstate(divide="ignore", invalid="ignore"):
            twist_db = 10 * np.log10(p_hi / p_lo)
        ok &= (twist_db <= NORMAL_TWIST_DB) & (-twist_db <= REVERSE_TWIST_DB)
        ok &= p_lo + p_hi >= MIN_TONE_RATIO * total_power
        harmonic = 10 ** (-HARMONIC_DB / 10)
        ok &= power[rows, 12 + hi] <= harmonic * p_hi
        ok &= power[rows, 16 + lo] <= harmonic * p_lo
        clear = np.abs(2 * _FREQS[lo] - _FREQS[4 + hi]) > _HARMONIC_CLEARANCE_HZ
        ok &= ~clear | (power[rows, 8 + lo] <= harmonic * p_lo)
        # Frequency: phase advance of each tone's bin since the block one hop earlier.
        previous = np.empty_like(bins[:, :8])
        previous[1:] = bins[:-1, :8]
        if self._previous is None:
            previous[0] = bins[0, :8]
            ok[0] = False  # nothing to compare the very first block with
        else:
            previous[0] = self._previous
        self._previous = bins[-1, :8].copy()
        for column in (lo, 4 + hi):
            dphi = np.angle(bins[rows, column] * np.conj(previous[rows, column]))
            offset_hz = dphi * self.sample_rate / (2 * np.pi * self._hop)
            ok &= np.abs(offset_hz) <= FREQ_LIMIT * _FREQS[column]
        return [DTMF_KEYS[lo[i]][hi[i]] if ok[i] else None for i in range(len(bins))]

    def _track(self, digit: str | None, block_start: int) -> list[DtmfToneDetected]:
        if digit is not None and digit == self._current:
            self._run_hops += 1 + self._gap
            self._run_end = block_start + self._block
            self._gap = 0
            return []
        if digit is None and self._current is not None and self._gap < _MAX_GAP_HOPS:
            self._gap += 1
            return []
        out = self._end_run()
        self._current = digit
        self._run_end = block_start + self._block
        self._run_hops = 1
        self._gap = 0
        return out

    def _end_run(self) -> list[DtmfToneDetected]:
        if self._current is None:
            return []
        # n valid decisions (each needs its block and the one before it, one hop earlier)
        # measure a tone of about (n - 1) hops + one block; calibrated in the tests.
        span = (self._run_hops - 1) * self._hop + self._block
        start = max(self._run_end - span, 0)
        digit, self._current = self._current, None
        duration = span / self.sample_rate
        if duration * 1000 < MIN_DURATION_MS:
            return []
        return [DtmfToneDetected(digit, start / self.sample_rate, duration)]
