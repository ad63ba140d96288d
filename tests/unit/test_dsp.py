"""Gain, levels and voice activity detection (webrtcvad with hysteresis)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from trunkline.media.codecs import CodecError
from trunkline.media.dsp import (
    SpeechEnded,
    SpeechStarted,
    VoiceActivity,
    apply_gain,
    level_dbov,
    peak_dbfs,
)

RATE = 8000


def _sine(amplitude: float, seconds: float = 0.1) -> npt.NDArray[np.int16]:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * 1000 * t) * amplitude).astype(np.int16)


def test_gain_in_db() -> None:
    x = _sine(10000)
    assert level_dbov(apply_gain(x, -6.0)) - level_dbov(x) == pytest.approx(-6.0, abs=0.01)
    assert level_dbov(apply_gain(x, 3.0)) - level_dbov(x) == pytest.approx(3.0, abs=0.01)
    loud = apply_gain(x, 20.0)
    assert loud.max() == 32767 and loud.min() == -32768  # saturated, not wrapped


def test_levels() -> None:
    assert level_dbov(_sine(32767)) == pytest.approx(-3.01, abs=0.02)  # full-scale sine
    assert peak_dbfs(_sine(16384)) == pytest.approx(-6.02, abs=0.02)
    assert level_dbov(np.zeros(10, dtype=np.int16)) == float("-inf")
    assert peak_dbfs(np.zeros(0, dtype=np.int16)) == float("-inf")


def _vowel(rng: np.random.Generator, seconds: float) -> npt.NDArray[np.float64]:
    """A voiced-speech stand-in: gliding-pitch pulse train shaped by three formants."""
    n = int(RATE * seconds)
    f0 = np.linspace(rng.uniform(90, 250), rng.uniform(90, 250), n)
    phase = np.cumsum(2 * np.pi * f0 / RATE)
    source = sum(np.sin(k * phase) / k for k in range(1, 30))
    f = np.fft.rfftfreq(n, 1 / RATE)
    shape = sum(1 / (1 + ((f - F) / 80) ** 2) for F in (700, 1220, 2600))
    y = np.fft.irfft(np.fft.rfft(source) * shape, n)
    return np.asarray(y / np.max(np.abs(y)) * 8000, dtype=np.float64)


def test_voice_activity_start_and_end() -> None:
    rng = np.random.default_rng(5)
    quiet = rng.normal(0, 30, RATE)  # 1 s of line noise
    speech = np.concatenate([_vowel(rng, 0.3), _vowel(rng, 0.3), _vowel(rng, 0.4)])
    x = np.concatenate([quiet, speech, quiet, quiet]).astype(np.int16)
    vad = VoiceActivity(RATE, hangover_ms=300)
    events = []
    for i in range(0, len(x), 160):
        events += vad.feed(x[i : i + 160])
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    assert events[0].at == pytest.approx(1.0, abs=0.1)
    assert events[1].at == pytest.approx(2.0, abs=0.2)
    assert not vad.speaking


def test_silence_and_line_noise_are_not_speech() -> None:
    rng = np.random.default_rng(1)
    vad = VoiceActivity(16000, aggressiveness=3, frame_ms=30)
    x = rng.normal(0, 20, 16000 * 2).astype(np.int16)
    assert vad.feed(x[:1000]) + vad.feed(x[1000:]) == []


def test_vad_arguments_checked() -> None:
    with pytest.raises(CodecError):
        VoiceActivity(11025)
    with pytest.raises(CodecError):
        VoiceActivity(8000, frame_ms=25)
    with pytest.raises(CodecError):
        VoiceActivity(8000, aggressiveness=4)
    with pytest.raises(CodecError):
        VoiceActivity(8000).is_speech(np.zeros(100, dtype=np.int16))
