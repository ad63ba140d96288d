"""G.711 PCMU (mu-law) and PCMA (A-law): ITU-T G.711, RTP payload per RFC 3551 §4.5.14.

Both codecs are pure table lookups: a 65536-entry table maps every int16 sample to its
8-bit code (so the encoder decision boundaries are exact for every input) and a 256-entry
table maps codes back to linear PCM. The tables are computed once at import from the
segment/quantizer description of G.711 (mu-law: 14-bit magnitude, bias 33, 8 segments;
A-law: 13-bit magnitude, segments 0 and 1 share a step size, even bits inverted with 0x55)
and agree for every input with the algorithm of the ITU-T G.191 reference code
(``alaw_compress``/``ulaw_compress``, restated in the tests).

Checked in the tests against Python's ``audioop`` (the classic Sun reference code) for all
256 codes and all 65536 inputs: decoding is identical for both laws and A-law encoding is
identical. mu-law encoding differs at exactly 508 negative inputs: audioop negates *after*
dropping the two low bits, so e.g. -31610 (magnitude below the G.711 decision value 31612)
is coded as 32124 instead of 31100. We follow G.711's decision values, as G.191 does.

Lost packets are concealed with :class:`~trunkline.media.codecs.plc.WaveformPlc`
(G.711 Appendix I style waveform repetition).

Frames of many streams can be coded together: :func:`encode_many` and :func:`decode_many`
do one table lookup per law over all the frames joined, instead of a handful of small numpy
calls per frame. The media clock (:mod:`trunkline.media.clock`) does the same with the
tables directly, for the common case of one law and one frame size, and falls back to
:func:`encode_with` frame by frame. An int16 sample ``s`` indexes
the encode tables at ``s + 32768``, which is its bit pattern read as uint16 with the top bit
flipped (``view(uint16) ^ 0x8000``): no widening to int32 on the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import numpy as np
import numpy.typing as npt

from trunkline.media.codecs.base import CodecError, CodecInfo, Decoder, Encoder, Pcm, as_pcm
from trunkline.media.codecs.plc import WaveformPlc

_ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32)

_ULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])
_ULAW_CLIP = 8159
_ULAW_BIAS = 33


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    """mu-law code for every int16 input, indexed by ``sample + 32768``.

    Negative inputs take the one's complement before the shift, as ITU-T G.191 does, so
    that every input falls in the G.711 decision interval of its magnitude.
    """
    negative = _ALL_INT16 < 0
    value = np.where(negative, ~_ALL_INT16, _ALL_INT16) >> 2
    magnitude = np.minimum(value, _ULAW_CLIP) + _ULAW_BIAS
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    overflow = segment >= 8  # only the clipped maximum, 8159 + 33
    segment = np.minimum(segment, 7)
    code = np.where(overflow, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    mask = np.where(negative, 0x7F, 0xFF)
    return (code ^ mask).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    """A-law code for every int16 input, indexed by ``sample + 32768``."""
    value = _ALL_INT16 >> 3
    negative = value < 0
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    overflow = segment >= 8
    segment = np.minimum(segment, 7)
    shift = np.where(segment < 2, 1, segment)
    code = (segment << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(overflow, 0x7F, code)
    mask = np.where(negative, 0x55, 0xD5)
    return (code ^ mask).astype(np.uint8)


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    t = (code & 0x0F) << 4
    t = np.where(segment == 0, t + 8, t + 0x108)
    t = np.where(segment > 1, t << np.maximum(segment - 1, 0), t)
    return np.where(code & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE = _ulaw_encode_table()
ALAW_ENCODE = _alaw_encode_table()
ULAW_DECODE = _ulaw_decode_table()
ALAW_DECODE = _alaw_decode_table()
for _table in (ULAW_ENCODE, ALAW_ENCODE, ULAW_DECODE, ALAW_DECODE):
    _table.flags.writeable = False


def _encode_index(pcm: Pcm) -> npt.NDArray[np.uint16]:
    """Encode-table indices ``sample + 32768`` of int16 PCM (see the module docstring)."""
    index: npt.NDArray[np.uint16] = pcm.view(np.uint16) ^ np.uint16(0x8000)
    return index


def encode_with(table: npt.NDArray[np.uint8], pcm: Pcm) -> bytes:
    """Encode PCM (coerced to int16 as ``as_pcm`` does) with an encode table."""
    return table[_encode_index(as_pcm(pcm))].tobytes()


def lin2ulaw(pcm: Pcm) -> bytes:
    """Encode int16 PCM to mu-law bytes."""
    return ULAW_ENCODE[_encode_index(as_pcm(pcm))].tobytes()


def ulaw2lin(data: bytes) -> Pcm:
    """Decode mu-law bytes to int16 PCM."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def lin2alaw(pcm: Pcm) -> bytes:
    """Encode int16 PCM to A-law bytes."""
    return ALAW_ENCODE[_encode_index(as_pcm(pcm))].tobytes()


def alaw2lin(data: bytes) -> Pcm:
    """Decode A-law bytes to int16 PCM."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


class G711Encoder(Encoder):
    """Stateless table-lookup encoder (one byte per sample)."""

    def __init__(self, info: CodecInfo, table: npt.NDArray[np.uint8]) -> None:
        super().__init__(info)
        self.table = table  # read by encode_many, per frame: a plain attribute

    def encode(self, pcm: Pcm) -> bytes:
        return self.table[_encode_index(as_pcm(pcm))].tobytes()


class G711Decoder(Decoder):
    """Table-lookup decoder with waveform-repetition concealment."""

    def __init__(self, info: CodecInfo, table: npt.NDArray[np.int16]) -> None:
        super().__init__(info)
        self.table = table  # read by decode_many, per frame: a plain attribute
        self._plc = WaveformPlc(info.sample_rate)
        self.plc = self._plc  # what the media session's playout inlines (steady_frame, keep)
        # What decode_many calls per frame: the concealment history's update itself,
        # bound once, rather than through the ``decoded`` method (one call less).
        self.finish = self._plc.update

    def decode(self, payload: bytes) -> Pcm:
        if not payload:
            raise CodecError(f"{self.name}: empty payload")
        pcm = self.table[np.frombuffer(payload, dtype=np.uint8)]
        return self._plc.update(pcm)

    def decoded(self, pcm: Pcm) -> Pcm:
        """Finish a frame that :func:`decode_many` table-decoded (concealment state)."""
        return self._plc.update(pcm)

    def conceal(self, samples: int) -> Pcm:
        return self._plc.conceal(samples)


def encode_many(encoders: Sequence[G711Encoder], frames: Sequence[Pcm]) -> list[bytes]:
    """``[e.encode(f) for e, f in zip(encoders, frames)]``, one table lookup per law.

    Frames that are not all 1-D int16 arrays (floats, lists) take the per-frame path,
    which coerces them as :meth:`G711Encoder.encode` does.
    """
    if not frames:
        return []
    first = encoders[0].table
    if not all(e.table is first for e in encoders):  # PCMU and PCMA: one batch per law
        out: list[bytes] = [b""] * len(frames)
        groups: dict[int, list[int]] = {}
        for i, encoder in enumerate(encoders):
            groups.setdefault(id(encoder.table), []).append(i)
        for members in groups.values():
            batch = encode_many([encoders[i] for i in members], [frames[i] for i in members])
            for i, payload in zip(members, batch, strict=True):
                out[i] = payload
        return out
    try:
        joined = np.concatenate(frames)
    except ValueError:  # mixed dimensions: let the per-frame path report it
        joined = None
    if joined is None or joined.dtype != np.int16 or joined.ndim != 1:
        return [e.encode(f) for e, f in zip(encoders, frames, strict=True)]
    coded = np.take(first, _encode_index(joined)).tobytes()
    ends = list(accumulate(map(len, frames)))
    return [coded[start:end] for start, end in zip([0, *ends], ends, strict=False)]


def decode_many(decoders: Sequence[G711Decoder], payloads: Sequence[bytes]) -> list[Pcm]:
    """``[d.decode(p) for d, p in zip(decoders, payloads)]``, one table lookup per law.

    The frames are views into one array per law; each still goes through its decoder's
    concealment state (:meth:`G711Decoder.decoded`). Raises :class:`CodecError` if any
    payload is empty, before decoding anything.
    """
    if not payloads:
        return []
    if not all(payloads):
        raise CodecError("G.711: empty payload")
    groups: list[tuple[npt.NDArray[np.int16], Sequence[int]]] = []
    first = decoders[0].table if decoders else ULAW_DECODE
    if all(d.table is first for d in decoders):  # one law: the usual case
        groups.append((first, range(len(decoders))))
    else:
        by_table: dict[int, list[int]] = {}
        for i, decoder in enumerate(decoders):
            by_table.setdefault(id(decoder.table), []).append(i)
        groups.extend((decoders[m[0]].table, m) for m in by_table.values())
    out: list[Pcm] = [ULAW_DECODE[:0]] * len(payloads)
    for table, members in groups:
        chunk = [payloads[i] for i in members]
        pcm = np.take(table, np.frombuffer(b"".join(chunk), dtype=np.uint8))
        lengths = list(map(len, chunk))
        size = lengths[0]
        if lengths.count(size) == len(lengths):  # one frame size: rows are views made in C
            for i, row in zip(members, pcm.reshape(-1, size), strict=True):
                out[i] = decoders[i].finish(row)
            continue
        start = 0
        for i, n in zip(members, lengths, strict=True):
            out[i] = decoders[i].finish(pcm[start : start + n])
            start += n
    return out


def _pcmu_encoder() -> Encoder:
    return G711Encoder(PCMU, ULAW_ENCODE)


def _pcmu_decoder() -> Decoder:
    return G711Decoder(PCMU, ULAW_DECODE)


def _pcma_encoder() -> Encoder:
    return G711Encoder(PCMA, ALAW_ENCODE)


def _pcma_decoder() -> Decoder:
    return G711Decoder(PCMA, ALAW_DECODE)


PCMU = CodecInfo(
    name="PCMU",
    clock_rate=8000,
    sample_rate=8000,
    payload_type=0,
    make_encoder=_pcmu_encoder,
    make_decoder=_pcmu_decoder,
)
PCMA = CodecInfo(
    name="PCMA",
    clock_rate=8000,
    sample_rate=8000,
    payload_type=8,
    make_encoder=_pcma_encoder,
    make_decoder=_pcma_decoder,
)
CODECS = (PCMU, PCMA)
