"""Audio sources: tones, PCM arrays (looping, padding, any WAV format) and queues."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from trunkline.media.sinks import WavRecorder
from trunkline.media.sources import PcmSource, QueueSource, ToneSource


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spec[5:])) + 5])


def test_tone_is_phase_continuous_and_ends() -> None:
    src = ToneSource(1000, 8000, level=0.5, duration=0.1)
    frames = []
    while (frame := src.read(160)) is not None:
        frames.append(frame)
    assert len(frames) == 5
    pcm = np.concatenate(frames)
    whole = np.rint(0.5 * 32767 * np.sin(2 * np.pi * 1000 * np.arange(800) / 8000))
    assert np.array_equal(pcm, whole.astype(np.int16))


def test_pcm_source_once_pads_the_last_frame_then_silence() -> None:
    src = PcmSource(np.arange(1, 401, dtype=np.int16))
    a, b, c = src.read(160), src.read(160), src.read(160)
    assert a is not None and b is not None and c is not None
    assert np.array_equal(a, np.arange(1, 161))
    assert np.array_equal(c[:80], np.arange(321, 401)) and not c[80:].any()
    assert src.finished and src.read(160) is None


def test_pcm_source_loops_even_when_shorter_than_a_frame() -> None:
    src = PcmSource(np.arange(100, dtype=np.int16), loop=True)
    got = np.concatenate([src.read(160) for _ in range(5)])
    assert np.array_equal(got, np.tile(np.arange(100), 8))
    assert not src.finished


def test_pcm_source_frames_are_views() -> None:
    pcm = np.zeros(800, np.int16)
    frame = PcmSource(pcm).read(160)
    assert frame is not None and frame.base is pcm


def test_pcm_source_from_wav_resamples(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    wav = tmp_path / "tone16k.wav"
    rec = WavRecorder(wav, 16000)
    rec(np.rint(12000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16))
    rec.close()
    src = PcmSource.from_wav(wav, 8000)
    frames = []
    while (frame := src.read(160)) is not None:
        frames.append(frame)
    assert len(frames) == 50 and src.finished
    assert abs(dominant_hz(np.concatenate(frames), 8000) - 440) < 5


def test_pcm_source_from_stereo_24_bit_wav(tmp_path: Path) -> None:
    """Formats the old 16-bit-only reader refused (trunkline.media.wav reads them)."""
    t = np.arange(8000) / 8000
    left = np.rint(0.4 * 8388607 * np.sin(2 * np.pi * 600 * t)).astype(np.int32)
    frames = np.stack([left, left], axis=1).reshape(-1)
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in frames)
    wav = tmp_path / "stereo24.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(3)
        w.setframerate(8000)
        w.writeframes(raw)
    pcm = PcmSource.from_wav(wav, 8000).pcm
    assert len(pcm) == 8000
    assert abs(dominant_hz(pcm, 8000) - 600) < 5
    assert 0.35 * 32767 < np.abs(pcm).max() < 0.45 * 32767


def test_queue_source_is_a_bounded_sink() -> None:
    q = QueueSource(max_samples=480)
    assert q.read(160) is None
    for i in range(4):
        q(np.full(160, i, np.int16))  # calling pushes
    assert q.dropped == 160  # the oldest frame went
    first = q.read(200)
    assert first is not None and np.array_equal(first, np.repeat([1, 2], [160, 40]))
    rest = q.read(280)
    assert rest is not None and np.array_equal(rest, np.repeat([2, 3], [120, 160]))
    assert q.read(1) is None
