"""The WAV recorder sink writes through trunkline.media.wav."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trunkline.media.sinks import WavRecorder
from trunkline.media.wav import read_wav_info


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_recorder_writes_what_it_heard(tmp_path: Path, width: int) -> None:
    rec = WavRecorder(tmp_path / "r.wav", 16000, sample_width=width)
    frames = [np.full(320, 256 * (i - 5), np.int16) for i in range(10)]
    for frame in frames:
        rec(frame)
    assert np.array_equal(rec.pcm, np.concatenate(frames))
    rec.close()
    pcm, info = read_wav_info(tmp_path / "r.wav")
    assert (info.sample_rate, info.channels, info.sample_width) == (16000, 1, width)
    assert np.array_equal(pcm, np.concatenate(frames))


def test_empty_recording(tmp_path: Path) -> None:
    rec = WavRecorder(tmp_path / "empty.wav", 8000)
    assert len(rec.pcm) == 0
    rec.close()
    pcm, info = read_wav_info(tmp_path / "empty.wav")
    assert len(pcm) == 0 and info.frames == 0
