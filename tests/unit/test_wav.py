"""WAV read/write round trips at 8/16/44.1/48 kHz and 8-32 bits, channel mixdown, rates."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.media.wav import WavError, load_wav, read_wav, read_wav_info, write_wav


def _chirp(rate: int, seconds: float = 0.5) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * (100 * t + 1000 * t**2)) * 20000).astype(np.int16)


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("width", [2, 3, 4])
def test_lossless_round_trip(tmp_path: Path, rate: int, width: int) -> None:
    x = _chirp(rate)
    x[:4] = [-32768, 32767, -1, 0]
    path = tmp_path / f"a{rate}_{width}.wav"
    write_wav(path, x, rate, sample_width=width)
    y, info = read_wav_info(path)
    assert (info.sample_rate, info.channels, info.sample_width) == (rate, 1, width)
    assert info.duration == pytest.approx(0.5, abs=1e-4)
    assert np.array_equal(y, x)


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_8bit_round_trip_within_quantization(tmp_path: Path, rate: int) -> None:
    x = _chirp(rate)
    write_wav(tmp_path / "b.wav", x, rate, sample_width=1)
    y, got_rate = read_wav(tmp_path / "b.wav")
    assert got_rate == rate
    assert np.abs(y.astype(np.int32) - x).max() <= 256


def _write_raw(channels: int, width: int, rate: int, frames: bytes) -> io.BytesIO:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    buf.seek(0)
    return buf


def test_stereo_is_averaged_to_mono() -> None:
    left = np.array([1000, -1000, 32767, 3], dtype="<i2")
    right = np.array([3000, 1000, 32767, 0], dtype="<i2")
    frames = np.stack([left, right], axis=1).tobytes()
    y, rate = read_wav(_write_raw(2, 2, 22050, frames))
    assert rate == 22050
    assert y.tolist() == [2000, 0, 32767, 2]


def test_24bit_values_are_rounded_to_16() -> None:
    values = [0x7FFFFF, -0x800000, 0x000180, -0x000080]  # 24-bit signed
    raw = b"".join((v & 0xFFFFFF).to_bytes(3, "little") for v in values)
    y, _ = read_wav(_write_raw(1, 3, 8000, raw))
    assert y.tolist() == [32767, -32768, 2, 0]


def test_load_at_the_codec_rate(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    x = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    path = tmp_path / "prompt.wav"
    write_wav(path, x, 44100)
    y = load_wav(path, 8000)
    assert len(y) == 8000
    assert int(np.argmax(np.abs(np.fft.rfft(y.astype(np.float64))))) == 440
    assert np.array_equal(load_wav(path, 44100), x)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(WavError):
        read_wav(io.BytesIO(b"RIFF\x00\x00\x00\x00WAVEjunk"))
    with pytest.raises(WavError):
        read_wav(io.BytesIO(b""))
    with pytest.raises(WavError):
        write_wav(tmp_path / "x.wav", np.zeros(4, dtype=np.int16), 8000, sample_width=5)


def _riff(fmt_body: bytes, data: bytes) -> io.BytesIO:
    chunks = b"fmt " + len(fmt_body).to_bytes(4, "little") + fmt_body
    chunks += b"data" + len(data).to_bytes(4, "little") + data
    return io.BytesIO(b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WAVE" + chunks)


def test_float_and_extensible_formats() -> None:
    floats = np.array([0.5, -0.5, 1.5, -1.0], dtype="<f4")
    fmt = struct.pack("<HHIIHH", 3, 1, 48000, 48000 * 4, 4, 32)
    y, info = read_wav_info(_riff(fmt, floats.tobytes()))
    assert (info.sample_rate, info.sample_width) == (48000, 4)
    assert y.tolist() == [16384, -16384, 32767, -32768]
    # WAVE_FORMAT_EXTENSIBLE, 24-bit PCM stereo: SubFormat GUID starts with 0x0001.
    guid = (1).to_bytes(2, "little") + bytes.fromhex("000000001000800000AA00389B71")
    ext = struct.pack("<HHIIHH", 0xFFFE, 2, 44100, 44100 * 6, 6, 24)
    ext += struct.pack("<HHI", 22, 24, 3) + guid
    frames = b"".join(
        (v & 0xFFFFFF).to_bytes(3, "little") for v in (0x100000, 0x300000, -0x100000, 0x100000)
    )
    y, rate = read_wav(_riff(ext, frames))
    assert rate == 44100
    assert y.tolist() == [0x2000, 0]


@settings(max_examples=150, deadline=None)
@given(
    st.tuples(st.integers(0, 0xFFFF), st.integers(0, 8), st.integers(0, 96000), st.integers(0, 72)),
    st.binary(max_size=64),
    st.booleans(),
)
def test_parser_raises_only_wav_error(
    header: tuple[int, int, int, int], data: bytes, truncate: bool
) -> None:
    code, channels, rate, bits = header
    fmt = struct.pack("<HHIIHH", code, channels, rate, 0, 0, bits)
    raw = _riff(fmt, data).getvalue()
    if truncate:
        raw = raw[: len(raw) // 2]
    try:
        pcm, info = read_wav_info(io.BytesIO(raw))
    except WavError:
        return
    assert pcm.dtype == np.int16 and len(pcm) == info.frames


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
def test_float_nan_and_inf_decode_without_warning(dtype: str) -> None:
    # Found by tests/fuzz/fuzz_wav.py: NaN samples raised RuntimeWarning (an error here).
    width = np.dtype(dtype).itemsize
    samples = np.array([np.nan, np.inf, -np.inf, 0.5, 2.0], dtype=dtype).tobytes()
    signalling_nan = b"\x01\x00\x80\x7f" if width == 4 else b"\x01" + bytes(5) + b"\xf0\x7f"
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 8000 * width, width, 8 * width)
    data = samples + signalling_nan
    riff = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt
    riff += b"data" + struct.pack("<I", len(data)) + data
    pcm, info = read_wav_info(io.BytesIO(b"RIFF" + struct.pack("<I", len(riff)) + riff))
    assert info.frames == 6
    assert pcm.tolist() == [0, 32767, -32768, 16384, 32767, 0]
