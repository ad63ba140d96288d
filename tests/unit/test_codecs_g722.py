"""G.722 through PyAV: round trip SNR (aligned for codec delay), framing, concealment."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from trunkline.media import codecs

RATE = 16000


def _signals(rate: int) -> dict[str, npt.NDArray[np.int16]]:
    t = np.arange(rate) / rate
    # 200 Hz -> 6 kHz in 1 s: the 4-8 kHz sub-band only gets 2 bits per sample (26 dB seen).
    sweep = 2 * np.pi * (200 * t + (6000 - 200) / 2 * t**2)
    return {
        "sine": (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16),
        "chirp": (np.sin(sweep) * 10000).astype(np.int16),
    }


def aligned_snr(ref: npt.NDArray[np.int16], out: npt.NDArray[np.int16]) -> tuple[int, float]:
    """Delay of ``out`` behind ``ref`` (by cross-correlation) and the SNR once aligned."""
    r, o = ref.astype(np.float64), out.astype(np.float64)
    n = len(r) + len(o)
    corr = np.fft.irfft(np.fft.rfft(o, n) * np.conj(np.fft.rfft(r, n)), n)
    lag = int(np.argmax(corr[: len(o) // 2]))
    m = min(len(r), len(o) - lag)
    r, o = r[m // 10 : m], o[lag + m // 10 : lag + m]  # skip the codec's start-up
    return lag, float(10 * np.log10(np.sum(r**2) / np.sum((r - o) ** 2)))


@pytest.mark.parametrize(("signal", "floor"), [("sine", 45.0), ("chirp", 20.0)])
def test_round_trip_snr(signal: str, floor: float) -> None:
    x = _signals(RATE)[signal]
    enc, dec = codecs.create_encoder("G722"), codecs.create_decoder("G722")
    payloads = [enc.encode(x[i : i + 320]) for i in range(0, len(x), 320)]
    assert {len(p) for p in payloads} == {160}  # 64 kbit/s: 160 bytes per 20 ms
    y = np.concatenate([dec.decode(p) for p in payloads])
    assert len(y) == len(x)
    lag, snr = aligned_snr(x, y)
    assert 0 <= lag < 64  # the QMF filter bank delay is 22 samples
    assert snr > floor


@pytest.mark.parametrize("ptime_ms", [10, 20, 30, 40])
def test_any_ptime_gives_one_packet_per_frame(ptime_ms: int) -> None:
    frame = RATE * ptime_ms // 1000
    x = _signals(RATE)["sine"]
    enc, dec = codecs.create_encoder("G722"), codecs.create_decoder("G722")
    payloads = [enc.encode(x[i : i + frame]) for i in range(0, 8 * frame, frame)]
    assert [len(p) for p in payloads] == [frame // 2] * 8  # 4 bits per 16 kHz sample
    assert [len(dec.decode(p)) for p in payloads] == [frame] * 8


def test_bad_frame_sizes() -> None:
    enc = codecs.create_encoder("G722")
    for bad in (0, 161, RATE):
        with pytest.raises(codecs.CodecError):
            enc.encode(np.zeros(bad, dtype=np.int16))


def test_concealment_keeps_a_tone_going() -> None:
    x = _signals(RATE)["sine"]
    enc, dec = codecs.create_encoder("G722"), codecs.create_decoder("G722")
    for i in range(0, 3200, 320):
        dec.decode(enc.encode(x[i : i + 320]))
    enc.encode(x[3200:3520])  # this packet is lost
    concealed = dec.conceal(320)
    assert len(concealed) == 320
    rms = float(np.sqrt(np.mean(concealed[:160].astype(np.float64) ** 2)))
    assert rms > 0.5 * 10000 / np.sqrt(2)
    assert len(dec.decode(enc.encode(x[3520:3840]))) == 320
