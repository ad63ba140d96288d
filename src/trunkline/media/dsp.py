"""Small signal-processing helpers: gain, levels, and voice activity detection.

Tones live in :mod:`trunkline.media.tones`, DTMF detection in :mod:`trunkline.media.dtmf`,
mixing in :mod:`trunkline.media.mixer`.

Voice activity uses the WebRTC VAD (``webrtcvad``, from the ``webrtcvad-wheels`` package):
a GMM classifier over 10, 20 or 30 ms frames at 8, 16, 32 or 48 kHz with aggressiveness
0 (least, lets most audio through as speech) to 3 (most). :class:`VoiceActivity` adds the
hysteresis a call flow wants ("speech started" only after a few voiced frames, "speech
ended" only after a silence of ``hangover_ms``), e.g. for end-of-utterance detection in
Record/Gather or barge-in on prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import webrtcvad

from trunkline.media.codecs.base import CodecError, Pcm, as_pcm

VAD_RATES = (8000, 16000, 32000, 48000)
VAD_FRAME_MS = (10, 20, 30)


def apply_gain(pcm: Pcm, gain_db: float) -> Pcm:
    """Scale by ``gain_db`` decibels, rounding and saturating to int16."""
    factor = 10 ** (gain_db / 20)
    out: Pcm = np.clip(np.rint(as_pcm(pcm) * factor), -32768, 32767).astype(np.int16)
    return out


def level_dbov(pcm: Pcm) -> float:
    """RMS level relative to a full-scale square wave (dBov, ITU-T G.100.1); -inf if silent."""
    samples = as_pcm(pcm).astype(np.float64)
    if len(samples) == 0:
        return float("-inf")
    power = float(np.mean(samples**2))
    return 10 * np.log10(power / 32768.0**2) if power > 0 else float("-inf")


def peak_dbfs(pcm: Pcm) -> float:
    """Peak level relative to int16 full scale; -inf if silent."""
    samples = as_pcm(pcm)
    peak = int(np.max(np.abs(samples.astype(np.int32)))) if len(samples) else 0
    return 20 * np.log10(peak / 32768.0) if peak else float("-inf")


@dataclass(frozen=True)
class SpeechStarted:
    """Voice detected; ``at`` is the stream time (s) of the first voiced frame counted."""

    at: float


@dataclass(frozen=True)
class SpeechEnded:
    """Silence of at least ``hangover_ms`` after speech; ``at`` is when speech stopped."""

    at: float


class VoiceActivity:
    """WebRTC VAD with start/end hysteresis over a stream of frames.

    ``feed(pcm)`` accepts any length; audio is cut into ``frame_ms`` frames internally.
    Speech starts after ``start_frames`` voiced frames among the last ``start_window``;
    it ends after ``hangover_ms`` of unvoiced frames. The WebRTC VAD needs a few frames to
    adapt to the noise floor and calls them speech, so the first ``warmup_ms`` count as
    unvoiced.
    """

    def __init__(
        self,
        sample_rate: int = 8000,
        *,
        aggressiveness: int = 2,
        frame_ms: int = 20,
        start_frames: int = 3,
        start_window: int = 5,
        hangover_ms: int = 500,
        warmup_ms: int = 100,
    ) -> None:
        if sample_rate not in VAD_RATES or frame_ms not in VAD_FRAME_MS:
            raise CodecError(f"webrtcvad needs rates {VAD_RATES} and frames {VAD_FRAME_MS} ms")
        if not 0 <= aggressiveness <= 3:
            raise CodecError("VAD aggressiveness is 0..3")
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self._vad = webrtcvad.Vad(aggressiveness)
        self._frame = sample_rate * frame_ms // 1000
        self._pending = np.zeros(0, dtype=np.int16)
        self._recent: list[bool] = []
        self._start_frames = start_frames
        self._start_window = start_window
        self._hangover = max(1, hangover_ms // frame_ms)
        self._silent_run = 0
        self._frames_seen = 0
        self._warmup = warmup_ms // frame_ms
        self.speaking = False

    def is_speech(self, frame: Pcm) -> bool:
        """Raw VAD decision for exactly one frame."""
        pcm = as_pcm(frame)
        if len(pcm) != self._frame:
            raise CodecError(f"VAD frame must be {self._frame} samples, got {len(pcm)}")
        return bool(self._vad.is_speech(pcm.tobytes(), self.sample_rate))

    def feed(self, pcm: Pcm) -> list[SpeechStarted | SpeechEnded]:
        """Process more audio; return speech start/end transitions it caused."""
        data = np.concatenate([self._pending, as_pcm(pcm)])
        whole = len(data) // self._frame * self._frame
        self._pending = data[whole:].copy()
        events: list[SpeechStarted | SpeechEnded] = []
        for start in range(0, whole, self._frame):
            voiced = self.is_speech(data[start : start + self._frame])
            voiced = voiced and self._frames_seen >= self._warmup
            event = self._update(voiced)
            if event is not None:
                events.append(event)
        return events

    def _update(self, voiced: bool) -> SpeechStarted | SpeechEnded | None:
        index = self._frames_seen
        self._frames_seen += 1
        frame_s = self.frame_ms / 1000
        self._recent = [*self._recent[-(self._start_window - 1) :], voiced]
        if not self.speaking:
            if sum(self._recent) >= self._start_frames:
                self.speaking = True
                self._silent_run = 0
                first = index - (len(self._recent) - 1 - self._recent.index(True))
                return SpeechStarted(first * frame_s)
            return None
        if voiced:
            self._silent_run = 0
            return None
        self._silent_run += 1
        if self._silent_run >= self._hangover:
            self.speaking = False
            self._recent = []
            return SpeechEnded((index - self._silent_run + 1) * frame_s)
        return None
