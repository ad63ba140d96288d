"""In-band DTMF detection: all 16 keys, Q.24 frequency/twist/duration limits, talk-off."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trunkline.media.codecs import g711
from trunkline.media.dtmf import DtmfDetector
from trunkline.media.tones import DTMF_FREQUENCIES, dbm0_to_amplitude, dtmf_sequence

RATE = 8000
KEYS = "0123456789*#ABCD"


def detect(x: npt.ArrayLike, frame: int = 160) -> str:
    """Digits found in ``x`` (padded with silence), fed in ``frame``-sample pieces."""
    pcm = np.concatenate([np.zeros(400), np.asarray(x, dtype=np.float64), np.zeros(800)])
    pcm16 = np.clip(np.rint(pcm), -32768, 32767).astype(np.int16)
    det = DtmfDetector(RATE)
    found = []
    for i in range(0, len(pcm16), frame):
        found += det.feed(pcm16[i : i + frame])
    found += det.flush()
    return "".join(d.digit for d in found)


def two_tone(
    low: float, high: float, ms: int = 100, low_dbm0: float = -7.0, high_dbm0: float = -7.0
) -> npt.NDArray[np.float64]:
    t = np.arange(RATE * ms // 1000) / RATE
    return dbm0_to_amplitude(low_dbm0) * np.sin(2 * np.pi * low * t) + dbm0_to_amplitude(
        high_dbm0
    ) * np.sin(2 * np.pi * high * t)


def test_all_16_keys_in_sequence_with_durations() -> None:
    det = DtmfDetector(RATE)
    x = dtmf_sequence(KEYS, on_ms=100, off_ms=100)
    found = []
    for i in range(0, len(x), 160):
        found += det.feed(x[i : i + 160])
    found += det.flush()
    assert "".join(d.digit for d in found) == KEYS
    for n, d in enumerate(found[1:], start=1):
        assert d.duration_ms == pytest.approx(100, abs=10)
        assert d.start == pytest.approx(n * 0.2, abs=0.011)


@pytest.mark.parametrize("frame", [80, 160, 1000])
def test_frame_size_does_not_matter(frame: int) -> None:
    assert detect(dtmf_sequence("159#", 60, 60).astype(np.float64), frame) == "159#"


@pytest.mark.parametrize("key", list(KEYS))
@pytest.mark.parametrize("deviation", [-0.015, 0.015])
def test_accept_within_1_5_percent(key: str, deviation: float) -> None:
    low, high = DTMF_FREQUENCIES[key]
    assert detect(two_tone(low * (1 + deviation), high * (1 + deviation))) == key


@pytest.mark.parametrize("key", list(KEYS))
@pytest.mark.parametrize("deviation", [-0.035, 0.035])
def test_reject_beyond_3_5_percent(key: str, deviation: float) -> None:
    low, high = DTMF_FREQUENCIES[key]
    assert detect(two_tone(low * (1 + deviation), high)) == ""
    assert detect(two_tone(low, high * (1 + deviation))) == ""


@pytest.mark.parametrize(
    ("twist_db", "expected"),
    [(-5.0, ""), (-3.5, "5"), (0.0, "5"), (7.5, "5"), (9.0, "")],
)
def test_twist_limits(twist_db: float, expected: str) -> None:
    # twist = high-group level minus low-group level; normal 8 dB, reverse 4 dB.
    assert detect(two_tone(770, 1336, low_dbm0=-12, high_dbm0=-12 + twist_db)) == expected


@pytest.mark.parametrize(("ms", "expected"), [(25, ""), (30, ""), (40, "8"), (60, "8")])
def test_minimum_duration_40ms(ms: int, expected: str) -> None:
    assert detect(two_tone(852, 1336, ms=ms)) == expected


def test_level_floor() -> None:
    assert detect(two_tone(941, 1477, low_dbm0=-25, high_dbm0=-25)) == "#"
    assert detect(two_tone(941, 1477, low_dbm0=-35, high_dbm0=-35)) == ""


def test_short_dropout_does_not_split_a_digit() -> None:
    tone = two_tone(697, 1209, ms=200)
    tone[800:840] = 0  # 5 ms gap
    assert detect(tone) == "1"


def test_detect_through_g711_and_in_noise() -> None:
    x = dtmf_sequence("0#", 80, 80)
    assert detect(g711.ulaw2lin(g711.lin2ulaw(x))) == "0#"
    assert detect(g711.alaw2lin(g711.lin2alaw(x))) == "0#"
    rng = np.random.default_rng(3)
    tone = two_tone(852, 1477)
    noise = rng.normal(0, np.sqrt(np.mean(tone**2) / 10**1.5), len(tone))  # 15 dB SNR
    assert detect(tone + noise) == "9"


def test_no_talk_off_on_noise() -> None:
    rng = np.random.default_rng(11)
    assert detect(rng.normal(0, 3000, RATE * 3)) == ""


def _vowel(rng: np.random.Generator, seconds: float) -> npt.NDArray[np.float64]:
    """A voiced-speech stand-in: gliding-pitch pulse train shaped by three formants."""
    n = int(RATE * seconds)
    f0 = np.linspace(rng.uniform(90, 250), rng.uniform(90, 250), n)
    phase = np.cumsum(2 * np.pi * f0 / RATE)
    source = sum(np.sin(k * phase) / k for k in range(1, 30))
    formants = [[700, 1220, 2600], [300, 2300, 3000], [500, 1000, 2500], [400, 1900, 2550]]
    f = np.fft.rfftfreq(n, 1 / RATE)
    shape = sum(1 / (1 + ((f - F) / 80) ** 2) for F in formants[rng.integers(len(formants))])
    y = np.fft.irfft(np.fft.rfft(source) * shape, n)
    return np.asarray(y / np.max(np.abs(y)) * 12000, dtype=np.float64)


def test_no_talk_off_on_speech_like_signal() -> None:
    rng = np.random.default_rng(5)
    speech = np.concatenate([_vowel(rng, rng.uniform(0.1, 0.4)) for _ in range(30)])
    assert detect(speech) == ""


def test_no_talk_off_on_music_chords() -> None:
    """Triads plus octave, each note with harmonics (as instruments have), 250 ms each."""
    rng = np.random.default_rng(9)
    t = np.arange(RATE // 4) / RATE
    chords = []
    for _ in range(40):
        root = int(rng.integers(60, 80))
        notes = [root, root + int(rng.choice([3, 4])), root + 7, root + 12]
        chord = np.zeros_like(t)
        for m in notes:
            f = 440.0 * 2 ** ((m - 69) / 12)
            for k, amp in enumerate((1.0, 0.5, 0.3, 0.2), start=1):
                if k * f < RATE / 2:
                    chord += amp * np.sin(2 * np.pi * k * f * t)
        chords.append(chord * 3000)
    assert detect(np.concatenate(chords)) == ""


def test_a_digit_is_reported_once_per_press() -> None:
    det = DtmfDetector(RATE)
    x = dtmf_sequence("77", on_ms=300, off_ms=60)
    found = det.feed(x) + det.flush()
    assert [d.digit for d in found] == ["7", "7"]
    # (the first press starts at sample 0: one decision short, as nothing precedes it)
    assert [d.duration_ms for d in found] == [pytest.approx(300, abs=10)] * 2


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(KEYS)),
            st.integers(45, 200),  # tone ms
            st.integers(45, 150),  # pause ms
            st.floats(-22.0, -4.0),  # low tone level, dBm0
            st.floats(-3.5, 7.5),  # twist, dB
        ),
        min_size=1,
        max_size=6,
    )
)
def test_random_dialling_is_decoded_exactly(
    presses: list[tuple[str, int, int, float, float]],
) -> None:
    # Both tones must fit G.711's range (+3.17 dBm0 is full scale): a high tone at +3.5 dBm0
    # is clipped by the codec before any detector sees it, so it is not a valid input.
    assume(all(level + twist <= -4.0 for _, _, _, level, twist in presses))
    parts = []
    for key, on_ms, off_ms, level, twist in presses:
        low, high = DTMF_FREQUENCIES[key]
        parts += [two_tone(low, high, on_ms, level, level + twist), np.zeros(RATE * off_ms // 1000)]
    det = DtmfDetector(RATE)
    pcm = np.clip(np.rint(np.concatenate([np.zeros(160), *parts])), -32768, 32767)
    found = det.feed(pcm.astype(np.int16)) + det.flush()
    assert "".join(d.digit for d in found) == "".join(p[0] for p in presses)
    for d, (_, on_ms, *_) in zip(found, presses, strict=True):
        assert d.duration_ms == pytest.approx(on_ms, abs=15)
