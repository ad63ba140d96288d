"""Test audio: make WAV files for peers to send, and analyse what they recorded.

Generation: pure tones, DTMF digits (frequency pairs from ITU-T Q.23 / RFC 4733
section 3.2 table), silence and espeak-ng speech. Analysis: RMS level, the
dominant frequency (Hann-windowed FFT), whether a tone is present (Goertzel
power relative to the total), DTMF digit detection and normalised
cross-correlation. Samples are ``numpy`` arrays of float64 in [-1, 1); WAV
files are 16-bit PCM (what baresip's aufile and linphonec's file player read).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float64]

#: Telephone line rate of G.711 (RFC 3551 section 4.5.14).
RATE = 8000

#: How far a recorded tone's FFT peak may sit from the tone sent (codec and jitter).
TONE_TOLERANCE_HZ = 15.0

#: DTMF keypad frequencies (low group, high group) in Hz, ITU-T Q.23.
DTMF_LOW = (697.0, 770.0, 852.0, 941.0)
DTMF_HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")


def dtmf_pair(digit: str) -> tuple[float, float]:
    """The (low, high) frequency pair of one DTMF key."""
    for row, keys in enumerate(DTMF_KEYS):
        col = keys.find(digit.upper())
        if col >= 0:
            return DTMF_LOW[row], DTMF_HIGH[col]
    raise ValueError(f"not a DTMF digit: {digit!r}")


def tone(hz: float, seconds: float, rate: int = RATE, amplitude: float = 0.5) -> Samples:
    """A sine tone of ``hz`` lasting ``seconds`` at ``amplitude`` (full scale 1.0)."""
    t = np.arange(round(seconds * rate), dtype=np.float64) / rate
    return amplitude * np.sin(2 * np.pi * hz * t)


def tones(freqs: list[float], seconds: float, rate: int = RATE, amplitude: float = 0.5) -> Samples:
    """A sum of equal-level sines whose peak stays within ``amplitude``."""
    if not freqs:
        return silence(seconds, rate)
    return sum(
        (tone(f, seconds, rate, amplitude / len(freqs)) for f in freqs), silence(seconds, rate)
    )


def silence(seconds: float, rate: int = RATE) -> Samples:
    return np.zeros(round(seconds * rate), dtype=np.float64)


def dtmf(
    digits: str, rate: int = RATE, on: float = 0.1, off: float = 0.1, amplitude: float = 0.5
) -> Samples:
    """In-band DTMF for ``digits``: each key ``on`` seconds, then ``off`` seconds of silence."""
    parts = []
    for d in digits:
        parts.append(tones(list(dtmf_pair(d)), on, rate, amplitude))
        parts.append(silence(off, rate))
    return np.concatenate(parts) if parts else silence(0, rate)


def to_pcm16(samples: Samples) -> bytes:
    clipped = np.clip(samples, -1.0, 32767 / 32768)
    return (np.round(clipped * 32768)).astype("<i2").tobytes()


def from_pcm16(data: bytes, channels: int = 1) -> Samples:
    x = np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0
    if channels > 1:
        x = x.reshape(-1, channels).mean(axis=1)
    return x


def write_wav(path: Path, samples: Samples, rate: int = RATE) -> Path:
    """Write mono 16-bit PCM WAV; returns ``path``."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(to_pcm16(samples))
    return path


def read_wav(path: Path) -> tuple[Samples, int]:
    """Read a 16-bit PCM WAV (stereo is mixed to mono): (samples, rate)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM is supported")
        rate, channels = w.getframerate(), w.getnchannels()
        return from_pcm16(w.readframes(w.getnframes()), channels), rate


def write_tone_wav(
    path: Path, hz: float, seconds: float, rate: int = RATE, amplitude: float = 0.5
) -> Path:
    return write_wav(path, tone(hz, seconds, rate, amplitude), rate)


def speech(text: str, rate: int = RATE, voice: str = "en") -> Samples:
    """``text`` spoken by espeak-ng, resampled to ``rate`` (needs the espeak-ng binary)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise FileNotFoundError("espeak-ng is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(
            [binary, "-v", voice, "-w", str(out), text],
            check=True,
            capture_output=True,
            timeout=30,
        )
        x, src_rate = read_wav(out)
    return resample(x, src_rate, rate)


def resample(samples: Samples, src_rate: int, dst_rate: int) -> Samples:
    """Band-limited resampling (soxr)."""
    if src_rate == dst_rate:
        return samples
    import soxr

    return np.asarray(soxr.resample(samples, src_rate, dst_rate), dtype=np.float64)


def rms_dbfs(samples: Samples) -> float:
    """RMS level in dB relative to full scale (a full-scale sine is -3 dBFS)."""
    if samples.size == 0:
        return -200.0
    return float(20 * np.log10(np.sqrt(np.mean(samples**2)) + 1e-10))


def dominant_frequency(samples: Samples, rate: int = RATE, min_hz: float = 50.0) -> float:
    """Frequency (Hz) of the largest peak of the Hann-windowed spectrum above ``min_hz``."""
    if samples.size < 16:
        raise ValueError("too few samples for a spectrum")
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    freqs = np.fft.rfftfreq(samples.size, 1.0 / rate)
    spectrum[freqs < min_hz] = 0.0
    return float(freqs[int(np.argmax(spectrum))])


def goertzel_power(samples: Samples, rate: int, hz: float) -> float:
    """Power of ``samples`` at ``hz`` (Goertzel), normalised so a sine of amplitude A gives A²/2."""
    n = samples.size
    if n == 0:
        return 0.0
    w = 2 * np.pi * hz / rate
    phasor = np.exp(-1j * w * np.arange(n))
    value = complex(np.dot(samples, phasor))
    return float(2 * abs(value) ** 2 / n**2)


def tone_ratio(samples: Samples, rate: int, hz: float) -> float:
    """Share (0..1) of the signal's power that is at ``hz``."""
    total = float(np.mean(samples**2)) if samples.size else 0.0
    if total <= 0.0:
        return 0.0
    return min(1.0, goertzel_power(samples, rate, hz) / total)


def windowed_tone_ratio(samples: Samples, rate: int, hz: float, window: float = 0.1) -> float:
    """The median over ``window``-second pieces of :func:`tone_ratio` at ``hz``.

    A Goertzel sum over a whole recording adds its pieces in phase, so it
    measures a tone's phase continuity as well as its power: a packet that
    loss concealment repeats or the jitter buffer drops moves a 440 Hz tone
    (8.8 cycles a 20 ms packet) by a fifth of a cycle, and four such jumps in
    3 s of 5%-loss audio take the whole-recording share from 1.0 to 0.2 while
    every 0.1 s piece still holds the tone alone. Per piece, only the power counts.
    """
    size = max(1, round(window * rate))
    if samples.size < size:
        return tone_ratio(samples, rate, hz)
    starts = range(0, samples.size - size + 1, size)
    return float(np.median([tone_ratio(samples[i : i + size], rate, hz) for i in starts]))


def has_tone(
    samples: Samples,
    rate: int,
    hz: float,
    min_ratio: float = 0.3,
    min_dbfs: float = -45.0,
    *,
    window: float | None = None,
) -> bool:
    """True when a tone at ``hz`` is loud enough and holds ``min_ratio`` of the power.

    With ``window`` the share is :func:`windowed_tone_ratio` (phase jumps do not count).
    """
    if rms_dbfs(samples) <= min_dbfs:
        return False
    if window is None:
        return tone_ratio(samples, rate, hz) >= min_ratio
    return windowed_tone_ratio(samples, rate, hz, window) >= min_ratio


def assert_hears(path: Path, hz: float, what: str, *, tolerance: float = TONE_TOLERANCE_HZ) -> None:
    """``path`` holds at least 1 s of audio whose main component is ``hz``.

    Checked twice: the FFT peak within ``tolerance`` and the Goertzel share of
    the power (:func:`has_tone`), so that a peak over noise does not pass. The
    share is taken per 0.1 s (:func:`windowed_tone_ratio`): packet loss
    concealment may shift the tone's phase, and that is not a fault.
    """
    assert path.exists(), f"{what}: no recording at {path}"
    samples, rate = read_wav(path)
    heard = active_part(samples, rate)
    assert heard.size > rate, f"{what}: less than 1 s of audio in {path}"
    peak = dominant_frequency(heard, rate)
    assert abs(peak - hz) < tolerance, f"{what}: peak at {peak:.1f} Hz, want {hz}"
    assert has_tone(heard, rate, hz, window=0.1), f"{what}: {hz} Hz is not the main component"


def detect_dtmf(
    samples: Samples, rate: int = RATE, frame: float = 0.04, min_dbfs: float = -40.0
) -> str:
    """Digits heard in ``samples``: one per run of frames showing the same key pair."""
    size = round(frame * rate)
    digits: list[str] = []
    last = ""
    for start in range(0, samples.size - size + 1, size):
        chunk = samples[start : start + size]
        key = ""
        if rms_dbfs(chunk) > min_dbfs:
            lows = [goertzel_power(chunk, rate, f) for f in DTMF_LOW]
            highs = [goertzel_power(chunk, rate, f) for f in DTMF_HIGH]
            r, c = int(np.argmax(lows)), int(np.argmax(highs))
            if (lows[r] + highs[c]) / float(np.mean(chunk**2)) > 0.6:
                key = DTMF_KEYS[r][c]
        if key and key != last:
            digits.append(key)
        last = key
    return "".join(digits)


def correlation(a: Samples, b: Samples) -> tuple[float, int]:
    """Peak normalised cross-correlation of ``a`` and ``b`` and the lag (samples) of ``b``.

    1.0 means ``b`` holds a (scaled, delayed) copy of ``a``; the lag is how much
    later ``b`` starts. Computed with zero-padded FFTs.
    """
    if a.size == 0 or b.size == 0:
        return 0.0, 0
    a0, b0 = a - a.mean(), b - b.mean()
    n = 1 << int(np.ceil(np.log2(a0.size + b0.size)))
    xc = np.fft.irfft(np.conj(np.fft.rfft(a0, n)) * np.fft.rfft(b0, n), n)
    lag = int(np.argmax(np.abs(xc)))
    # Local energies: normalise by the overlapping part only.
    shift = lag if lag < n // 2 else lag - n
    if shift >= 0:
        seg_a, seg_b = a0, b0[shift : shift + a0.size]
    else:
        seg_a, seg_b = a0[-shift:], b0[: a0.size + shift]
    m = min(seg_a.size, seg_b.size)
    denom = float(np.sqrt(np.sum(seg_a[:m] ** 2) * np.sum(seg_b[:m] ** 2)))
    if denom == 0.0:
        return 0.0, shift
    return float(abs(xc[lag]) / denom), shift


def active_part(
    samples: Samples, rate: int = RATE, frame: float = 0.02, dbfs: float = -45.0
) -> Samples:
    """``samples`` from the first to the last frame louder than ``dbfs`` (empty if none)."""
    size = max(1, round(frame * rate))
    loud = [i for i in range(0, samples.size, size) if rms_dbfs(samples[i : i + size]) > dbfs]
    if not loud:
        return samples[:0]
    return samples[loud[0] : loud[-1] + size]
