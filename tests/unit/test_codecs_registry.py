"""The codec registry: lookup by name/clock rate/static payload type, and factories."""

from __future__ import annotations

import numpy as np
import pytest

from trunkline.media import codecs
from trunkline.media.codecs.base import CodecInfo, Decoder, Encoder, Pcm


def test_lookup_is_case_insensitive_and_keeps_sdp_spelling() -> None:
    assert codecs.get("pcmu").name == "PCMU"
    assert codecs.get("OPUS").name == "opus"
    assert codecs.get("g722", 8000) is codecs.get("G722")


@pytest.mark.parametrize(
    ("name", "pt", "clock", "rate", "rtpmap"),
    [
        ("PCMU", 0, 8000, 8000, "PCMU/8000"),
        ("PCMA", 8, 8000, 8000, "PCMA/8000"),
        ("G722", 9, 8000, 16000, "G722/8000"),
        ("opus", None, 48000, 48000, "opus/48000/2"),
    ],
)
def test_audio_codec_attributes(
    name: str, pt: int | None, clock: int, rate: int, rtpmap: str
) -> None:
    enc = codecs.create_encoder(name)
    dec = codecs.create_decoder(name)
    for obj in (enc, dec):
        assert (obj.name, obj.payload_type, obj.clock_rate, obj.sample_rate) == (
            name,
            pt,
            clock,
            rate,
        )
    assert enc.info.rtpmap() == rtpmap
    assert enc.info.timestamp_increment(20) == clock // 50
    assert enc.info.samples_per_frame(20) == rate // 50


def test_static_payload_types() -> None:
    assert [codecs.by_payload_type(pt).name for pt in (0, 8, 9)] == ["PCMU", "PCMA", "G722"]
    with pytest.raises(codecs.CodecError):
        codecs.by_payload_type(18)


def test_opus_fmtp_defaults_and_telephone_event_rates() -> None:
    assert codecs.get("opus").fmtp == "minptime=10;useinbandfec=1"
    assert codecs.get("telephone-event").clock_rate == 8000
    assert codecs.get("telephone-event", 48000).fmtp == "0-16"
    with pytest.raises(codecs.CodecError):
        codecs.create_encoder("telephone-event")


def test_unknown_codec_is_an_error() -> None:
    with pytest.raises(codecs.CodecError):
        codecs.get("iLBC")
    with pytest.raises(codecs.CodecError):
        codecs.get("PCMU", 16000)


class _L16Encoder(Encoder):
    def encode(self, pcm: Pcm) -> bytes:
        return pcm.astype(">i2").tobytes()


class _L16Decoder(Decoder):
    def decode(self, payload: bytes) -> Pcm:
        return np.frombuffer(payload, dtype=">i2").astype(np.int16)

    def conceal(self, samples: int) -> Pcm:
        return np.zeros(samples, dtype=np.int16)


def test_register_a_plugin_codec() -> None:
    info = CodecInfo(
        name="L16",
        clock_rate=44100,
        sample_rate=44100,
        payload_type=11,
        make_encoder=lambda: _L16Encoder(info),
        make_decoder=lambda: _L16Decoder(info),
    )
    codecs.register(info)
    try:
        with pytest.raises(codecs.CodecError):
            codecs.register(info)
        pcm = np.array([1, -2, 300], dtype=np.int16)
        payload = codecs.create_encoder("l16").encode(pcm)
        assert np.array_equal(codecs.create_decoder("L16", 44100).decode(payload), pcm)
        assert info in codecs.available()
    finally:
        codecs.unregister(info)
    assert info not in codecs.available()


def test_pcm_coercion_saturates_instead_of_wrapping() -> None:
    from trunkline.media.codecs.base import as_pcm

    x = np.array([0, 1, -1], dtype=np.int16)
    assert as_pcm(x) is x
    assert as_pcm([40000, -40000, 5]).tolist() == [32767, -32768, 5]
    assert as_pcm(np.array([1.6, -2.5, 1e9])).tolist() == [2, -2, 32767]
    with pytest.raises(codecs.CodecError):
        as_pcm(np.zeros((2, 160), dtype=np.int16))
