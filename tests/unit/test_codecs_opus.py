"""Opus: round trip SNR (aligned for codec delay), libopus PLC, in-band FEC on receive."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.media import codecs
from trunkline.media.codecs import libopus
from trunkline.media.codecs.opus import OpusDecoder, OpusEncoder

RATE = 48000
FRAME = 960


def _signals(rate: int) -> dict[str, npt.NDArray[np.int16]]:
    t = np.arange(rate) / rate
    sweep = 2 * np.pi * (200 * t + (3400 - 200) / 2 * t**2)  # 200 Hz -> 3.4 kHz in 1 s
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


@pytest.mark.parametrize(("signal", "floor"), [("sine", 25.0), ("chirp", 12.0)])
def test_round_trip_snr(signal: str, floor: float) -> None:
    x = _signals(RATE)[signal]
    enc, dec = codecs.create_encoder("opus"), codecs.create_decoder("opus")
    payloads = [enc.encode(x[i : i + FRAME]) for i in range(0, len(x), FRAME)]
    assert len(payloads) == 50 and all(payloads)  # one packet per 20 ms, no buffering
    assert sum(map(len, payloads)) * 8 < 32000 * 1.3  # about the 32 kbit/s target
    y = np.concatenate([dec.decode(p) for p in payloads])
    assert len(y) == len(x)
    lag, snr = aligned_snr(x, y)
    assert 250 < lag < 400  # libopus look-ahead: 6.5 ms = 312 samples at 48 kHz
    assert snr > floor


def test_toc_says_one_20ms_frame() -> None:
    payload = codecs.create_encoder("opus").encode(np.zeros(FRAME, dtype=np.int16))
    config = payload[0] >> 3
    # RFC 6716 §3.1 Table 2: 20 ms frames are configs 1, 5, 9 (SILK: 10/20/40/60 ms per
    # bandwidth), 13, 15 (hybrid: 10/20 ms) and 19, 23, 27, 31 (CELT: 2.5/5/10/20 ms).
    assert config in (1, 5, 9, 13, 15, 19, 23, 27, 31)
    assert payload[0] & 0x03 == 0  # code 0: one frame in the packet
    lib = libopus.load()
    if lib is not None:
        assert lib.packet_samples(payload, RATE) == FRAME


def test_missing_packet_is_concealed_by_libopus() -> None:
    x = _signals(RATE)["sine"]
    enc, dec = codecs.create_encoder("opus"), codecs.create_decoder("opus")
    payloads = [enc.encode(x[i : i + FRAME]) for i in range(0, 20 * FRAME, FRAME)]
    for p in payloads[:10]:
        dec.decode(p)
    concealed = dec.conceal(FRAME)  # payloads[10] lost
    assert len(concealed) == FRAME
    rms = float(np.sqrt(np.mean(concealed.astype(np.float64) ** 2)))
    assert rms > 0.3 * 10000 / np.sqrt(2)
    # Concealed audio continues the tone: it correlates with a 440 Hz sine.
    t = np.arange(FRAME) / RATE
    basis = np.exp(-2j * np.pi * 440 * t)
    assert abs(np.dot(concealed, basis)) / FRAME > 0.3 * 10000 / 2
    half = dec.conceal(480)  # a 10 ms request is served from 20 ms of PLC output
    assert len(half) == 480
    for p in payloads[12:]:
        assert len(dec.decode(p)) == FRAME


def test_conceal_before_any_packet_is_silence() -> None:
    assert not np.any(codecs.create_decoder("opus").conceal(FRAME))


def test_corrupt_payload_is_a_codec_error() -> None:
    dec = codecs.create_decoder("opus")
    with pytest.raises(codecs.CodecError):
        dec.decode(b"\xff\xff")  # code 3 with a frame count of 0 is invalid (RFC 6716 §3.2.5)


@pytest.mark.parametrize("ptime_ms", [10, 20, 40, 60])
def test_encoder_follows_the_ptime(ptime_ms: int) -> None:
    frame = RATE * ptime_ms // 1000
    x = _signals(RATE)["sine"]
    enc, dec = OpusEncoder(), codecs.create_decoder("opus")
    decoded = [dec.decode(enc.encode(x[i : i + frame])) for i in range(0, 10 * frame, frame)]
    assert [len(d) for d in decoded] == [frame] * 10


def test_bad_frame_sizes() -> None:
    with pytest.raises(codecs.CodecError):
        codecs.create_encoder("opus").encode(np.zeros(100, dtype=np.int16))
    with pytest.raises(codecs.CodecError):
        codecs.create_encoder("opus").encode(np.zeros(0, dtype=np.int16))


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_garbage_payloads_raise_only_codec_error(data: bytes) -> None:
    dec = codecs.create_decoder("opus")
    try:
        pcm = dec.decode(data)
    except codecs.CodecError:
        return
    assert pcm.dtype == np.int16 and pcm.ndim == 1


# -- in-band FEC on receive (RFC 6716 §2.1.7 LBRR) ------------------------------------


def _voice(samples: int) -> npt.NDArray[np.int16]:
    """A voiced, speech-like test signal: 24 harmonics of a wandering 110-170 Hz pitch
    with moving amplitudes -- the SILK layer, which carries the LBRR data, codes it."""
    t = np.arange(samples) / RATE
    f0 = 140 + 30 * np.sin(2 * np.pi * 1.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = np.zeros(samples)
    for k in range(1, 25):
        x += np.sin(k * phase) * (1 + 0.5 * np.sin(2 * np.pi * (3 + k) * t)) / k
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 2.1 * t)
    peak = float(np.max(np.abs(x)))
    return np.rint(x / peak * 12000).astype(np.int16)


def _snr(ref: npt.NDArray[np.int16], out: npt.NDArray[np.int16]) -> float:
    r, o = ref.astype(np.float64), out.astype(np.float64)
    return float(10 * np.log10(np.sum(r**2) / max(np.sum((r - o) ** 2), 1.0)))


def test_libopus_is_the_copy_bundled_with_pyav() -> None:
    lib = libopus.load()
    assert lib is not None, "no libopus: FEC decoding is off"
    if os.environ.get("TRUNKLINE_LIBOPUS") is None:
        assert Path(lib.path).resolve().is_relative_to(Path(av.__file__).resolve().parent.parent)
    assert lib.version.startswith("libopus 1.")
    assert OpusDecoder().supports_fec


def test_fec_recovers_a_lost_packet_much_better_than_plc() -> None:
    x = _voice(2 * RATE)
    enc = codecs.create_encoder("opus")  # FEC on, 10 % expected loss
    payloads = [enc.encode(x[i : i + FRAME]) for i in range(0, len(x), FRAME)]
    reference = codecs.create_decoder("opus")
    clean = [reference.decode(p) for p in payloads]  # what each slot sounds like without loss
    lib = libopus.load()
    assert lib is not None
    fec_snr, plc_snr = [], []
    for lost in range(10, 94, 3):
        with_fec, with_plc = codecs.create_decoder("opus"), codecs.create_decoder("opus")
        for p in payloads[:lost]:
            with_fec.decode(p)
            with_plc.decode(p)
        recovered = with_fec.decode_fec(payloads[lost + 1], FRAME)
        concealed = with_plc.conceal(FRAME)
        assert len(recovered) == len(concealed) == FRAME
        # The stream goes on: packet N+1 still decodes to a full frame after FEC.
        assert len(with_fec.decode(payloads[lost + 1])) == FRAME
        if lib.has_lbrr(payloads[lost + 1]) is False:
            # No redundancy in N+1: libopus conceals, exactly as the PLC path does.
            assert np.array_equal(recovered, concealed)
            continue
        fec_snr.append(_snr(clean[lost], recovered))
        plc_snr.append(_snr(clean[lost], concealed))
    assert len(fec_snr) >= 10, "the encoder sent too few packets with FEC data"
    gain = np.mean(fec_snr) - np.mean(plc_snr)
    assert gain > 6.0, f"FEC {np.mean(fec_snr):.1f} dB vs PLC {np.mean(plc_snr):.1f} dB"
    assert np.median(np.subtract(fec_snr, plc_snr)) > 3.0


@pytest.mark.parametrize("samples", [960, 480, 1000, 120, 1, 0, 6000])
def test_decode_fec_returns_exactly_what_was_asked(samples: int) -> None:
    x = _voice(RATE // 2)
    enc, dec = codecs.create_encoder("opus"), codecs.create_decoder("opus")
    payloads = [enc.encode(x[i : i + FRAME]) for i in range(0, len(x), FRAME)]
    for p in payloads[:5]:
        dec.decode(p)
    assert len(dec.decode_fec(payloads[6], samples)) == samples
    assert len(dec.decode(payloads[6])) == FRAME
    # A corrupt N+1 is left for decode() to report; its slot is concealed meanwhile.
    assert len(dec.decode_fec(b"\xff\xff", FRAME)) == FRAME
    with pytest.raises(codecs.CodecError):
        dec.decode(b"\xff\xff")


def test_without_libopus_fec_falls_back_to_plc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(libopus, "load", lambda: None)
    dec = OpusDecoder()
    assert not dec.supports_fec
    x = _signals(RATE)["sine"]
    enc = OpusEncoder()
    payloads = [enc.encode(x[i : i + FRAME]) for i in range(0, 12 * FRAME, FRAME)]
    for p in payloads[:10]:
        assert len(dec.decode(p)) == FRAME  # through PyAV
    recovered = dec.decode_fec(payloads[11], FRAME)
    assert len(recovered) == FRAME
    assert float(np.sqrt(np.mean(recovered.astype(np.float64) ** 2))) > 1000  # PLC, not silence


def test_libopus_location_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = libopus.load()
    assert lib is not None
    monkeypatch.setenv("TRUNKLINE_LIBOPUS", "")
    assert libopus._candidates() == []
    monkeypatch.setenv("TRUNKLINE_LIBOPUS", lib.path)
    assert libopus._candidates() == [lib.path]
    monkeypatch.delenv("TRUNKLINE_LIBOPUS")
    assert lib.path in libopus._candidates()


def test_codecs_without_fec_conceal() -> None:
    dec = codecs.create_decoder("pcmu")
    assert not dec.supports_fec
    dec.decode(bytes(160))
    assert len(dec.decode_fec(bytes(160), 160)) == 160


def test_native_encoder_matches_the_pyav_path() -> None:
    """The ctypes encoder and the PyAV fallback drive the same libopus with the same
    settings, so their packets are identical byte for byte."""
    if not libopus.encoder_usable(libopus.load()):
        pytest.skip("no usable libopus encoder here")
    x = _signals(RATE)["chirp"]
    native, fallback = OpusEncoder(complexity=7), OpusEncoder(complexity=7)
    fallback._native = None  # force the PyAV path
    for i in range(0, 10 * FRAME, FRAME):
        assert native.encode(x[i : i + FRAME]) == fallback.encode(x[i : i + FRAME])


def test_encoder_complexity_is_checked() -> None:
    with pytest.raises(codecs.CodecError):
        OpusEncoder(complexity=11)
    assert OpusEncoder().complexity == 5
