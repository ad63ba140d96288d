"""Tone generation: call progress tones (ITU-T E.180) and DTMF (ITU-T Q.23).

Call progress tones per country, from ITU-T E.180 Supplement 2 ("Various tones used in
national networks") and the national specifications it lists:

=========  =========================  ===============================  ================
country    dial                       ringback                         busy
=========  =========================  ===============================  ================
``us``     350+440 Hz continuous      440+480 Hz, 2 s on / 4 s off     480+620 Hz, 0.5/0.5 s
``eu``     425 Hz continuous          425 Hz, 1 s on / 4 s off         425 Hz, 0.5/0.5 s
=========  =========================  ===============================  ================

plus ``congestion`` (US reorder 480+620 Hz 0.25/0.25 s; EU 425 Hz 0.2/0.2 s, ETSI TR 101 041)
and ``call_waiting`` (US 440 Hz, 0.3 s every 10 s; EU 425 Hz, two 0.2 s bursts 0.2 s apart,
repeated here every 9.6 s). US levels follow the North American precise tone plan (dial
-13, ringback -19, busy/reorder -24 dBm0 per frequency); EU tones are sent at -10 dBm0.

DTMF (ITU-T Q.23): each key sends one frequency of the low group (697, 770, 852, 941 Hz)
and one of the high group (1209, 1336, 1477, 1633 Hz).

Levels are in dBm0. 0 dBm0 is a sine of 3.14 dB below the digital full-scale sine (the
A-law convention of ITU-T G.711 / G.168: full scale = +3.14 dBm0).

Generators are stateful and sample-counted (no clock): ``read(n)`` continues the tone and
its cadence exactly where the previous call stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trunkline.media.codecs.base import CodecError, Pcm

FULL_SCALE_DBM0 = 3.14
DTMF_LOW = (697.0, 770.0, 852.0, 941.0)
DTMF_HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")
DTMF_FREQUENCIES: dict[str, tuple[float, float]] = {
    key: (DTMF_LOW[row], DTMF_HIGH[col])
    for row, keys in enumerate(DTMF_KEYS)
    for col, key in enumerate(keys)
}


def dbm0_to_amplitude(level_dbm0: float) -> float:
    """Peak int16 amplitude of a sine at ``level_dbm0``."""
    return 32767.0 * 10 ** ((level_dbm0 - FULL_SCALE_DBM0) / 20)


@dataclass(frozen=True)
class ToneSpec:
    """Frequencies (summed, each at ``level_dbm0``) and an on/off cadence in ms.

    An empty cadence means continuous; otherwise the (on, off) pairs repeat forever.
    """

    frequencies: tuple[float, ...]
    cadence_ms: tuple[tuple[int, int], ...] = ()
    level_dbm0: float = -13.0


CALL_PROGRESS: dict[str, dict[str, ToneSpec]] = {
    "us": {
        "dial": ToneSpec((350.0, 440.0)),
        "ringback": ToneSpec((440.0, 480.0), ((2000, 4000),), -19.0),
        "busy": ToneSpec((480.0, 620.0), ((500, 500),), -24.0),
        "congestion": ToneSpec((480.0, 620.0), ((250, 250),), -24.0),
        "call_waiting": ToneSpec((440.0,), ((300, 9700),)),
    },
    "eu": {
        "dial": ToneSpec((425.0,), (), -10.0),
        "ringback": ToneSpec((425.0,), ((1000, 4000),), -10.0),
        "busy": ToneSpec((425.0,), ((500, 500),), -10.0),
        "congestion": ToneSpec((425.0,), ((200, 200),), -10.0),
        "call_waiting": ToneSpec((425.0,), ((200, 200), (200, 9000)), -10.0),
    },
}


def call_progress(country: str, name: str) -> ToneSpec:
    """The ``name`` tone ("dial", "ringback", "busy", ...) of ``country`` ("us", "eu")."""
    try:
        return CALL_PROGRESS[country.lower()][name.lower()]
    except KeyError:
        raise CodecError(f"no {name!r} tone for {country!r}") from None


class ToneGenerator:
    """Endless, phase-continuous rendering of a :class:`ToneSpec` at ``sample_rate``."""

    def __init__(self, spec: ToneSpec, sample_rate: int = 8000) -> None:
        self.spec = spec
        self.sample_rate = sample_rate
        self._position = 0
        self._amplitude = dbm0_to_amplitude(spec.level_dbm0)
        self._freqs = np.asarray(spec.frequencies, dtype=np.float64)
        # One cadence cycle as a boolean mask would be long (6 s); keep the edges instead.
        edges: list[tuple[int, int]] = []
        t = 0
        for on_ms, off_ms in spec.cadence_ms:
            on = on_ms * sample_rate // 1000
            edges.append((t, t + on))
            t += on + off_ms * sample_rate // 1000
        self._on_spans = edges
        self._period = t

    def read(self, samples: int) -> Pcm:
        """The next ``samples`` samples of the tone."""
        n = np.arange(self._position, self._position + samples)
        self._position += samples
        phase = 2 * np.pi * np.outer(n, self._freqs) / self.sample_rate
        wave = np.sin(phase).sum(axis=1) * self._amplitude
        if self._period:
            within = n % self._period
            on = np.zeros(samples, dtype=bool)
            for start, stop in self._on_spans:
                on |= (within >= start) & (within < stop)
            wave[~on] = 0.0
        out: Pcm = np.clip(np.rint(wave), -32768, 32767).astype(np.int16)
        return out


def dtmf_tone(
    key: str,
    duration_ms: int = 100,
    sample_rate: int = 8000,
    level_dbm0: float = -7.0,
    twist_db: float = 2.0,
) -> Pcm:
    """One DTMF key press; the high tone is ``twist_db`` louder (Q.23 recommends pre-emphasis)."""
    try:
        low, high = DTMF_FREQUENCIES[key.upper()]
    except KeyError:
        raise CodecError(f"not a DTMF key: {key!r}") from None
    t = np.arange(sample_rate * duration_ms // 1000) / sample_rate
    low_amp = dbm0_to_amplitude(level_dbm0 - twist_db / 2)
    high_amp = dbm0_to_amplitude(level_dbm0 + twist_db / 2)
    wave = low_amp * np.sin(2 * np.pi * low * t) + high_amp * np.sin(2 * np.pi * high * t)
    return np.clip(np.rint(wave), -32768, 32767).astype(np.int16)


def dtmf_sequence(keys: str, on_ms: int = 100, off_ms: int = 100, sample_rate: int = 8000) -> Pcm:
    """Keys separated by ``off_ms`` of silence (and followed by it)."""
    gap = np.zeros(sample_rate * off_ms // 1000, dtype=np.int16)
    parts: list[Pcm] = []
    for key in keys:
        parts += [dtmf_tone(key, on_ms, sample_rate), gap]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
