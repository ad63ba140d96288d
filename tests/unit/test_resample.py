"""Streaming resampler: one output frame per input frame, small fixed delay, anti-aliasing."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from trunkline.media.resample import Resampler, resample

PAIRS = [(8000, 16000), (16000, 8000), (8000, 48000), (48000, 8000), (44100, 8000), (48000, 16000)]


def _tone(rate: int, freq: float, seconds: float = 0.5) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * 10000).astype(np.int16)


def _run(rs: Resampler, x: npt.NDArray[np.int16], frame: int) -> list[npt.NDArray[np.int16]]:
    return [rs.resample(x[i : i + frame]) for i in range(0, len(x) - frame + 1, frame)]


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_one_output_frame_per_input_frame(src: int, dst: int) -> None:
    outs = _run(Resampler(src, dst), _tone(src, 300), src // 50)
    lengths = [len(o) for o in outs]
    expected = dst // 50
    assert expected - dst // 500 <= lengths[0] <= expected  # first frame: filter delay only
    assert all(abs(n - expected) <= 1 for n in lengths[1:]), lengths
    assert abs(sum(lengths) - expected * len(outs)) <= dst // 200  # < 5 ms behind in total


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_delay_is_a_few_milliseconds(src: int, dst: int) -> None:
    # An impulse 100 ms in: find where it comes out.
    x = np.zeros(src // 2, dtype=np.int16)
    x[src // 10] = 30000
    y = np.concatenate(_run(Resampler(src, dst), x, src // 50))
    delay_ms = (int(np.argmax(np.abs(y))) - dst // 10) * 1000 / dst
    assert -0.5 <= delay_ms <= 3.0


def test_tone_level_kept_and_alias_removed() -> None:
    y = np.concatenate(_run(Resampler(48000, 8000), _tone(48000, 1000), 960))[400:]
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    assert rms == pytest.approx(10000 / np.sqrt(2), rel=0.05)
    # 6 kHz is above the 4 kHz Nyquist rate of the output: it must not fold to 2 kHz.
    alias = np.concatenate(_run(Resampler(48000, 8000), _tone(48000, 6000), 960))[400:]
    assert float(np.sqrt(np.mean(alias.astype(np.float64) ** 2))) < 0.02 * rms


def test_equal_rates_pass_through_and_flush() -> None:
    rs = Resampler(8000, 8000)
    x = _tone(8000, 440, 0.02)
    assert rs.passthrough and rs.resample(x) is x
    assert len(rs.flush()) == 0
    up = Resampler(8000, 16000)
    out = sum(len(o) for o in _run(up, _tone(8000, 440), 160)) + len(up.flush())
    assert abs(out - 8000) <= 2


def test_one_shot_resample() -> None:
    y = resample(_tone(44100, 440, 1.0), 44100, 8000)
    assert len(y) == 8000
    spectrum = np.abs(np.fft.rfft(y.astype(np.float64)))
    assert int(np.argmax(spectrum)) == 440  # 1 Hz bins over one second
