"""WAV files in and out: prompts, music on hold, recordings, voicemail.

Reading accepts PCM WAV at any sample rate, 8-bit (unsigned), 16-, 24- or 32-bit (signed,
little-endian), and 32/64-bit float, mono or multi-channel, plain or
``WAVE_FORMAT_EXTENSIBLE`` (which SoX and most editors write for 24-bit or multi-channel
audio; Python 3.11's ``wave`` module refuses it, so the RIFF chunks are walked here). It
always returns mono int16: channels are averaged, wider samples rounded to 16 bits.
Writing uses the stdlib ``wave`` module: mono PCM at 8/16/24/32 bits.

:func:`load_wav` also converts to the rate a call needs (e.g. 8000 Hz for G.711) with
:func:`trunkline.media.resample.resample`.
"""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from trunkline.media.codecs.base import Pcm, as_pcm
from trunkline.media.resample import resample

Source = str | Path | BinaryIO


class WavError(Exception):
    """The file is not a WAV we can read, or the audio cannot be written as asked."""


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    sample_width: int  # bytes per sample
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _to_int16(raw: bytes, width: int) -> npt.NDArray[np.int32]:
    """Samples of ``width`` bytes as int32 values on the int16 scale (rounded, clipped)."""
    if width == 1:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.int32) - 128) << 8
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.int32)
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value = np.where(value & 0x800000, value - 0x1000000, value)
        return np.asarray(np.minimum((value + 0x80) >> 8, 32767), dtype=np.int32)
    if width == 4:
        wide = np.frombuffer(raw, dtype="<i4").astype(np.int64)
        return np.asarray(np.minimum((wide + 0x8000) >> 16, 32767), dtype=np.int32)
    raise WavError(f"unsupported sample width: {width * 8} bits")


def read_wav(source: Source) -> tuple[Pcm, int]:
    """Mono int16 samples and the sample rate of a PCM WAV file."""
    pcm, info = read_wav_info(source)
    return pcm, info.sample_rate


_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_FMT = struct.Struct("<HHIIHH")


def _read_bytes(source: Source) -> bytes:
    if isinstance(source, str | Path):
        try:
            return Path(source).read_bytes()
        except OSError as exc:
            raise WavError(f"cannot read WAV: {exc}") from exc
    return source.read()


def _parse_riff(data: bytes) -> tuple[int, int, int, int, bytes]:
    """(format code, channels, rate, bits, sample data) of a RIFF/WAVE file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < _FMT.size:
                raise WavError("fmt chunk too short")
            code, channels, rate, _, _, bits = _FMT.unpack_from(body)
            if code == _WAVE_FORMAT_EXTENSIBLE:
                if len(body) < 26:
                    raise WavError("extensible fmt chunk too short")
                code = int.from_bytes(body[24:26], "little")  # SubFormat GUID's first field
            fmt = (code, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavError("data chunk before fmt chunk")
            if size in (0, 0xFFFFFFFF) or pos + 8 + size > len(data):
                body = data[pos + 8 :]  # streamed file with an unfinished header
            return (*fmt, body)
        pos += 8 + size + (size & 1)
    raise WavError("no fmt/data chunk")


def read_wav_info(source: Source) -> tuple[Pcm, WavInfo]:
    """Like :func:`read_wav`, with the file's original format."""
    code, channels, rate, bits, raw = _parse_riff(_read_bytes(source))
    width = (bits + 7) // 8
    if channels < 1 or rate <= 0 or width < 1:
        raise WavError(f"bad WAV header: {channels} channels, {rate} Hz, {bits} bits")
    usable = len(raw) // (width * channels) * width * channels
    raw = raw[:usable]
    if code == _WAVE_FORMAT_PCM:
        samples = _to_int16(raw, width)
    elif code == _WAVE_FORMAT_FLOAT and width in (4, 8):
        # NaN (even signalling) is silence and +/-inf full scale: no warning on a corrupt file.
        with np.errstate(invalid="ignore", over="ignore"):
            floats = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float64)
        floats = np.nan_to_num(floats, nan=0.0, posinf=1.0, neginf=-1.0)
        samples = np.clip(np.rint(np.clip(floats, -1.0, 1.0) * 32768.0), -32768, 32767)
        samples = samples.astype(np.int32)
    else:
        raise WavError(f"unsupported WAV encoding: format {code}, {bits} bits")
    info = WavInfo(rate, channels, width, len(samples) // channels)
    if channels > 1:
        frames = samples.reshape(-1, channels)
        summed = frames.sum(axis=1, dtype=np.int64)
        samples = np.floor_divide(summed + channels // 2, channels).astype(np.int32)
    out: Pcm = samples.astype(np.int16)
    return out, info


def load_wav(source: Source, sample_rate: int) -> Pcm:
    """Read a WAV file and convert it to mono int16 at ``sample_rate``."""
    pcm, rate = read_wav(source)
    return resample(pcm, rate, sample_rate)


def write_wav(destination: Source, pcm: Pcm, sample_rate: int, sample_width: int = 2) -> None:
    """Write mono PCM at ``sample_width`` bytes per sample (1, 2, 3 or 4)."""
    samples = as_pcm(pcm).astype(np.int32)
    if sample_width == 1:
        raw = ((samples >> 8) + 128).astype(np.uint8).tobytes()
    elif sample_width == 2:
        raw = samples.astype("<i2").tobytes()
    elif sample_width == 3:
        wide = (samples << 8).astype("<i4").view(np.uint8).reshape(-1, 4)
        raw = wide[:, :3].tobytes()
    elif sample_width == 4:
        raw = (samples << 16).astype("<i4").tobytes()
    else:
        raise WavError(f"unsupported sample width: {sample_width * 8} bits")
    target = str(destination) if isinstance(destination, Path) else destination
    try:
        with wave.open(target, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(sample_width)
            w.setframerate(sample_rate)
            w.writeframes(raw)
    except (wave.Error, OSError) as exc:
        raise WavError(f"cannot write WAV: {exc}") from exc
