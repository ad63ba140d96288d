"""G.711 against the full tables (audioop as the reference) and ITU-T G.711 known values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from trunkline.media import codecs
from trunkline.media.codecs import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # audioop: deprecated in 3.11/3.12
    import audioop

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def test_ulaw_decode_matches_reference_for_all_256_codes() -> None:
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype=np.int16)
    assert np.array_equal(g711.ulaw2lin(ALL_CODES), expected)


def test_alaw_decode_matches_reference_for_all_256_codes() -> None:
    expected = np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), dtype=np.int16)
    assert np.array_equal(g711.alaw2lin(ALL_CODES), expected)


def test_ulaw_encoder_decisions_for_all_65536_inputs() -> None:
    """Equal to audioop except where audioop leaves the G.711 decision interval.

    audioop (Sun's code) computes the magnitude of a negative input as ``-(x >> 2)``, one
    14-bit step too large when the two dropped bits are not zero; at the 127 decision
    values of the negative half this lands 4 inputs each in the next interval.
    """
    ours = np.frombuffer(g711.lin2ulaw(ALL_INT16), dtype=np.uint8)
    ref = np.frombuffer(audioop.lin2ulaw(ALL_INT16.tobytes(), 2), dtype=np.uint8)
    x = ALL_INT16.astype(np.int32)
    differ = np.nonzero(ours != ref)[0]
    assert len(differ) == 508
    assert np.all(x[differ] < 0)
    # In every case the input's magnitude is at most the decision value between the two
    # levels, so G.711 puts it on the smaller level (ours), not audioop's larger one.
    magnitude = -x[differ]
    ours_level = -g711.ulaw2lin(ours[differ].tobytes()).astype(np.int32)
    ref_level = -g711.ulaw2lin(ref[differ].tobytes()).astype(np.int32)
    decision = (ours_level + ref_level) / 2
    assert np.all(ours_level < magnitude)
    assert np.all(magnitude <= decision)
    assert np.all(decision < ref_level)
    same = np.ones(len(x), dtype=bool)
    same[differ] = False
    assert np.array_equal(ours[same], ref[same])


def test_alaw_encoder_decisions_for_all_65536_inputs() -> None:
    assert g711.lin2alaw(ALL_INT16) == audioop.lin2alaw(ALL_INT16.tobytes(), 2)


@pytest.mark.parametrize(
    ("code", "value"),
    [
        # ITU-T G.711 Table 2 (mu-law): codes 0xFF/0x7F are +0/-0, 0x80/0x00 the extremes
        # (8031 in 14-bit units = 32124 in 16-bit); 0xFE is +2 (8), 0xEF is +33 (132).
        (0xFF, 0),
        (0x7F, 0),
        (0x80, 32124),
        (0x00, -32124),
        (0xFE, 8),
        (0xEF, 132),
    ],
)
def test_ulaw_known_values(code: int, value: int) -> None:
    assert int(g711.ulaw2lin(bytes([code]))[0]) == value


@pytest.mark.parametrize(
    ("code", "value"),
    [
        # ITU-T G.711 Table 1 (A-law): 0xD5/0x55 are +1/-1 in 12-bit units (+/-8 in 16-bit),
        # 0xAA/0x2A the extremes +/-4032 (32256), even bits transmitted inverted.
        (0xD5, 8),
        (0x55, -8),
        (0xAA, 32256),
        (0x2A, -32256),
        (0xD4, 24),
    ],
)
def test_alaw_known_values(code: int, value: int) -> None:
    assert int(g711.alaw2lin(bytes([code]))[0]) == value


def test_silence_encodes_to_idle_codes() -> None:
    zeros = np.zeros(4, dtype=np.int16)
    assert g711.lin2ulaw(zeros) == b"\xff" * 4
    assert g711.lin2alaw(zeros) == b"\xd5" * 4


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_decode_encode_is_identity_on_codes(name: str) -> None:
    enc, dec = codecs.create_encoder(name), codecs.create_decoder(name)
    assert enc.encode(dec.decode(ALL_CODES)) == (
        ALL_CODES if name == "PCMA" else ALL_CODES.replace(b"\x7f", b"\xff")
    )  # mu-law has two zeros (0x7F = -0, 0xFF = +0); 0 encodes as +0


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_round_trip_snr_of_speech_band_sine(name: str) -> None:
    t = np.arange(8000) / 8000
    x = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
    enc, dec = codecs.create_encoder(name), codecs.create_decoder(name)
    y = np.concatenate([dec.decode(enc.encode(x[i : i + 160])) for i in range(0, 8000, 160)])
    err = x.astype(np.float64) - y
    snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(err**2))
    assert snr > 35  # G.711 gives about 38 dB SNR for a loud sine


def test_plc_continues_a_voiced_signal_and_fades_out() -> None:
    rate = 8000
    t = np.arange(rate) / rate
    x = (np.sin(2 * np.pi * 200 * t) * 10000).astype(np.int16)  # 40-sample period
    enc, dec = codecs.create_encoder("PCMU"), codecs.create_decoder("PCMU")
    for i in range(0, 800, 160):
        dec.decode(enc.encode(x[i : i + 160]))
    concealed = dec.conceal(160)
    expected = x[800:960].astype(np.float64)
    # The first 10 ms are at full level and in phase with the lost signal.
    err = expected[:80] - concealed[:80]
    assert 10 * np.log10(np.sum(expected[:80] ** 2) / np.sum(err**2)) > 15
    later = np.concatenate([dec.conceal(160) for _ in range(3)])  # 20..80 ms into the loss
    assert np.abs(later[:80]).max() < np.abs(concealed[:80]).max()
    assert not np.any(later[-160:])  # silent after 60 ms
    recovered = dec.decode(enc.encode(x[1600:1760]))
    assert len(recovered) == 160
    assert np.abs(recovered[40:].astype(np.int32) - x[1640:1760]).max() < 400


def test_plc_without_history_is_silence() -> None:
    dec = codecs.create_decoder("PCMA")
    assert not np.any(dec.conceal(160))
    assert len(dec.conceal(80)) == 80


def test_empty_payload_is_a_codec_error() -> None:
    with pytest.raises(codecs.CodecError):
        codecs.create_decoder("PCMU").decode(b"")


def _g191_alaw(x: np.ndarray) -> np.ndarray:
    """ITU-T G.191 STL ``alaw_compress``, restated with numpy (one's complement negatives)."""
    ix = np.where(x < 0, (~x) >> 4, x >> 4)
    exponent = np.zeros_like(ix)
    mantissa = ix.copy()
    big = ix > 15
    exponent[big] = 1
    for _ in range(7):
        shift = big & (mantissa > 31)
        mantissa[shift] >>= 1
        exponent[shift] += 1
    code = np.where(big, (mantissa - 16) + (exponent << 4), ix)
    code = np.where(x >= 0, code | 0x80, code)
    return (code ^ 0x55).astype(np.uint8)


def _g191_ulaw(x: np.ndarray) -> np.ndarray:
    """ITU-T G.191 STL ``ulaw_compress``, restated with numpy."""
    absno = np.minimum(np.where(x < 0, ((~x) >> 2) + 33, (x >> 2) + 33), 0x1FFF)
    segment = np.ones_like(absno)
    rest = absno >> 6
    for _ in range(8):
        segment += rest > 0
        rest >>= 1
    low = 0x0F - ((absno >> segment) & 0x0F)
    code = ((8 - segment) << 4) | low
    return np.where(x >= 0, code | 0x80, code).astype(np.uint8)


def test_alaw_equals_itu_g191_reference_for_all_inputs() -> None:
    ours = np.frombuffer(g711.lin2alaw(ALL_INT16), dtype=np.uint8)
    assert np.array_equal(ours, _g191_alaw(ALL_INT16.astype(np.int32)))


def test_ulaw_equals_itu_g191_reference_for_all_inputs() -> None:
    ours = np.frombuffer(g711.lin2ulaw(ALL_INT16), dtype=np.uint8)
    assert np.array_equal(ours, _g191_ulaw(ALL_INT16.astype(np.int32)))


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_plc_beats_silence_on_voiced_speech_with_random_losses(name: str) -> None:
    """15 isolated 20 ms losses in 3 s of a gliding-pitch voiced signal (measured ~8 dB)."""
    rng = np.random.default_rng(2)
    rate, frame = 8000, 160
    t = np.arange(rate * 3) / rate
    phase = np.cumsum(2 * np.pi * (150 + 30 * np.sin(2 * np.pi * 0.5 * t)) / rate)
    voiced = sum(np.sin(k * phase) / k for k in range(1, 15))
    x = (voiced / np.abs(voiced).max() * 12000).astype(np.int16)
    frames = len(x) // frame
    lost = set(rng.choice(np.arange(5, frames), size=15, replace=False).tolist())
    enc, dec = codecs.create_encoder(name), codecs.create_decoder(name)
    out = []
    for i in range(frames):
        payload = enc.encode(x[i * frame : (i + 1) * frame])
        out.append(dec.conceal(frame) if i in lost else dec.decode(payload))
    y = np.concatenate(out).astype(np.float64)
    idx = np.concatenate([np.arange(i * frame, (i + 1) * frame) for i in sorted(lost)])
    ref = x[idx].astype(np.float64)
    snr = 10 * np.log10(np.sum(ref**2) / np.sum((ref - y[idx]) ** 2))
    assert snr > 4.0  # silence substitution scores exactly 0 dB here
