"""G.722 wideband audio (ITU-T G.722, 64 kbit/s) through PyAV's FFmpeg ``g722`` codec.

RTP: static payload type 9 with an RTP clock of 8000 Hz although the audio is sampled at
16 kHz -- an error in RFC 1890 kept for compatibility (RFC 3551 §4.5.2). A 20 ms packet thus
carries 320 samples in 160 bytes and advances the RTP timestamp by 160.

FFmpeg's encoder defaults to 20 ms (320-sample) frames and PyAV re-chunks other sizes
through a FIFO, which would turn a 10 ms ptime into irregular packets. The FFmpeg
``frame_size`` option sets the encoder's frame, so :class:`G722Encoder` opens its context
for the length of the first frame it is given (any even number of samples: ptime 10, 20,
30, 40... ms) and reopens it if the length changes. FFmpeg has no G.722 concealment; lost
packets are concealed by waveform repetition (:mod:`trunkline.media.codecs.plc`).
"""

from __future__ import annotations

from typing import Any

from trunkline.media.codecs import _av
from trunkline.media.codecs.base import CodecError, CodecInfo, Decoder, Encoder, Pcm, as_pcm
from trunkline.media.codecs.plc import WaveformPlc

SAMPLE_RATE = 16000
_MAX_FRAME = SAMPLE_RATE * 120 // 1000  # 120 ms


class G722Encoder(Encoder):
    def __init__(self) -> None:
        super().__init__(G722)
        self._ctx: Any = None
        self._frame = 0
        self._pts = 0

    def encode(self, pcm: Pcm) -> bytes:
        pcm = as_pcm(pcm)
        if len(pcm) == 0 or len(pcm) % 2 or len(pcm) > _MAX_FRAME:
            raise CodecError(f"G722 frames need an even number of samples, got {len(pcm)}")
        if len(pcm) != self._frame:
            # A new ptime: the ADPCM state restarts, as it would for a new stream.
            options = {"frame_size": str(len(pcm))}
            self._ctx = _av.open_context("g722", "w", SAMPLE_RATE, options)
            self._frame = len(pcm)
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
