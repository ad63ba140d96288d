"""G.722 wideband audio (ITU-T G.722, 64 kbit/s) through PyAV's FFmpeg ``g722`` codec.

RTP: static payload type 9 with an RTP clock of 8000 Hz although the audio is sampled at
16 kHz -- an error in RFC 1890 kept for compatibility (RFC 3551 §4.5.2). A 20 ms packet thus
carries 320 samples in 160 bytes and advances the RTP timestamp by 160.

FFmpeg's encoder works on 20 ms (320-sample) frames and PyAV re-chunks anything else, so
:class:`G722Encoder` accepts frames that are whole multiples of 20 ms (ptime 20/40/60) and
refuses others rather than emit irregular packets. FFmpeg has no G.722 concealment; lost
packets are concealed by waveform repetition (:mod:`trunkline.media.codecs.plc`).
"""

from __future__ import annotations

from trunkline.media.codecs import _av
from trunkline.media.codecs.base import CodecError, CodecInfo, Decoder, Encoder, Pcm, as_pcm
from trunkline.media.codecs.plc import WaveformPlc

SAMPLE_RATE = 16000
_FFMPEG_FRAME = 320


class G722Encoder(Encoder):
    def __init__(self) -> None:
        super().__init__(G722)
        self._ctx = _av.open_context("g722", "w", SAMPLE_RATE, {})
        self._pts = 0

    def encode(self, pcm: Pcm) -> bytes:
        pcm = as_pcm(pcm)
        if len(pcm) == 0 or len(pcm) % _FFMPEG_FRAME:
            raise CodecError(
                f"G722 frames must be multiples of 20 ms (320 samples), got {len(pcm)}"
            )
        payload = _av.encode_frame(self._ctx, pcm, self._pts)
        self._pts += len(pcm)
        return payload


class G722Decoder(Decoder):
    def __init__(self) -> None:
        super().__init__(G722)
        self._ctx = _av.open_context("g722", "r", SAMPLE_RATE, {})
        self._plc = WaveformPlc(SAMPLE_RATE)

    def decode(self, payload: bytes) -> Pcm:
        if not payload:
            raise CodecError("G722: empty payload")
        return self._plc.update(_av.decode_packet(self._ctx, payload))

    def conceal(self, samples: int) -> Pcm:
        return self._plc.conceal(samples)


G722 = CodecInfo(
    name="G722",
    clock_rate=8000,
    sample_rate=SAMPLE_RATE,
    payload_type=9,
    make_encoder=G722Encoder,
    make_decoder=G722Decoder,
)
CODECS = (G722,)
