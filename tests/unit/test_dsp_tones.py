"""Call progress tones (E.180 US/EU) and DTMF generation: frequencies, cadence, levels."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from trunkline.media.codecs import CodecError
from trunkline.media.tones import (
    DTMF_FREQUENCIES,
    ToneGenerator,
    call_progress,
    dbm0_to_amplitude,
    dtmf_sequence,
    dtmf_tone,
)

RATE = 8000


def peaks(x: npt.NDArray[np.int16], count: int) -> list[int]:
    """The ``count`` strongest frequencies (1 Hz bins: zero-padded to one second)."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64), RATE))
    return sorted(int(f) for f in np.argsort(spectrum)[-count:])


def on_off_runs(x: npt.NDArray[np.int16]) -> list[int]:
    """Lengths (ms) of alternating on/off runs, judged per 10 ms."""
    on = [bool(np.any(x[i : i + 80])) for i in range(0, len(x), 80)]
    runs, current, length = [], on[0], 0
    for flag in on:
        if flag == current:
            length += 10
        else:
            runs.append(length)
            current, length = flag, 10
    runs.append(length)
    return runs


@pytest.mark.parametrize(
    ("country", "name", "freqs", "cadence"),
    [
        ("us", "dial", [350, 440], None),
        ("us", "ringback", [440, 480], (2000, 4000)),
        ("us", "busy", [480, 620], (500, 500)),
        ("eu", "dial", [425], None),
        ("eu", "ringback", [425], (1000, 4000)),
        ("eu", "busy", [425], (500, 500)),
    ],
)
def test_call_progress_tones(
    country: str, name: str, freqs: list[int], cadence: tuple[int, int] | None
) -> None:
    gen = ToneGenerator(call_progress(country, name), RATE)
    # Read in 20 ms frames like the media path does; 12 s covers two ringback cycles.
    x = np.concatenate([gen.read(160) for _ in range(600)])
    assert peaks(x[: RATE // 2], len(freqs)) == freqs  # the first 0.5 s are "on" for all
    runs = on_off_runs(x)
    if cadence is None:
        assert runs == [12000]
    else:
        on_ms, off_ms = cadence
        assert runs[: 4 if on_ms + off_ms > 1000 else 8] == [on_ms, off_ms] * (
            2 if on_ms + off_ms > 1000 else 4
        )


def test_tone_is_phase_continuous_across_reads() -> None:
    spec = call_progress("us", "dial")
    whole = ToneGenerator(spec, RATE).read(1600)
    gen = ToneGenerator(spec, RATE)
    pieces = np.concatenate([gen.read(n) for n in (7, 153, 160, 480, 800)])
    assert np.array_equal(whole, pieces)


def test_tone_level_in_dbm0() -> None:
    x = ToneGenerator(call_progress("eu", "dial"), RATE).read(RATE).astype(np.float64)
    rms_db = 10 * np.log10(np.mean(x**2) / (32767.0**2 / 2)) + 3.14
    assert rms_db == pytest.approx(-10.0, abs=0.1)
    assert dbm0_to_amplitude(3.14) == pytest.approx(32767.0)


def test_unknown_tone() -> None:
    with pytest.raises(CodecError):
        call_progress("uk", "dial")


@pytest.mark.parametrize("key", sorted(DTMF_FREQUENCIES))
def test_dtmf_tone_frequencies(key: str) -> None:
    x = dtmf_tone(key, duration_ms=1000)
    assert len(x) == RATE
    assert peaks(x, 2) == [int(f) for f in DTMF_FREQUENCIES[key]]


def test_dtmf_sequence_timing_and_bad_key() -> None:
    x = dtmf_sequence("12", on_ms=80, off_ms=60)
    assert len(x) == 2 * (640 + 480)
    assert on_off_runs(x) == [80, 60, 80, 60]
    with pytest.raises(CodecError):
        dtmf_tone("E")
