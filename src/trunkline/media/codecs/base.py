"""The tiny Encoder/Decoder interface every codec implements.

A codec is described once by a :class:`CodecInfo` (what SDP says about it: RFC 4566 §6
``a=rtpmap:<pt> <name>/<clock rate>[/<channels>]`` and ``a=fmtp``) and instantiated as a
stateful :class:`Encoder` or :class:`Decoder` per RTP stream.

Audio crosses this interface as one-dimensional ``numpy.int16`` arrays of mono PCM at the
codec's *audio* ``sample_rate``, which may differ from the RTP ``clock_rate`` (G.722 runs at
16 kHz behind an 8 kHz RTP clock, RFC 3551 §4.5.2; Opus may decode at 8-48 kHz behind its
48 kHz clock, RFC 7587 §4.1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]
"""Mono 16-bit linear PCM, one sample per array element."""


class CodecError(Exception):
    """A codec is unknown, misconfigured, or could not process its input."""


@dataclass(frozen=True)
class CodecInfo:
    """What is known about a codec before any stream uses it.

    ``channels`` is the SDP encoding-parameters value (Opus is always ``2`` in SDP, RFC 7587
    §7, even though Trunkline encodes and decodes mono). ``payload_type`` is the static RTP
    payload type of RFC 3551 Table 4, or ``None`` for codecs that need a dynamic one.
    ``make_encoder``/``make_decoder`` are ``None`` for non-audio payloads (telephone-event).
    """

    name: str
    clock_rate: int
    sample_rate: int
    channels: int = 1
    payload_type: int | None = None
    fmtp: str | None = None
    ptime_ms: int = 20
    make_encoder: Callable[[], Encoder] | None = field(default=None, compare=False, repr=False)
    make_decoder: Callable[[], Decoder] | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, int]:
        """Registry key: the encoding name folded to lower case and the RTP clock rate."""
        return (self.name.lower(), self.clock_rate)

    @property
    def is_audio(self) -> bool:
        return self.make_encoder is not None and self.make_decoder is not None

    def samples_per_frame(self, ptime_ms: int | None = None) -> int:
        """PCM samples (at ``sample_rate``) in one packet of ``ptime_ms`` (default ptime)."""
        return self.sample_rate * (ptime_ms or self.ptime_ms) // 1000

    def timestamp_increment(self, ptime_ms: int | None = None) -> int:
        """RTP timestamp units per packet of ``ptime_ms``: counted at ``clock_rate``."""
        return self.clock_rate * (ptime_ms or self.ptime_ms) // 1000

    def rtpmap(self) -> str:
        """The ``a=rtpmap`` encoding part, e.g. ``PCMU/8000`` or ``opus/48000/2``."""
        if self.channels != 1:
            return f"{self.name}/{self.clock_rate}/{self.channels}"
        return f"{self.name}/{self.clock_rate}"


class _CodecObject:
    """Shared attributes of encoders and decoders: everything delegates to ``info``."""

    def __init__(self, info: CodecInfo) -> None:
        self.info = info

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def clock_rate(self) -> int:
        return self.info.clock_rate

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def channels(self) -> int:
        return self.info.channels

    @property
    def payload_type(self) -> int | None:
        return self.info.payload_type

    @property
    def fmtp(self) -> str | None:
        return self.info.fmtp


class Encoder(_CodecObject, ABC):
    """Turns PCM frames into RTP payloads; one instance per outgoing stream."""

    @abstractmethod
    def encode(self, pcm: Pcm) -> bytes:
        """Encode one frame (``samples_per_frame()`` samples) into one RTP payload."""


class Decoder(_CodecObject, ABC):
    """Turns RTP payloads into PCM; one instance per incoming stream."""

    @abstractmethod
    def decode(self, payload: bytes) -> Pcm:
        """Decode one RTP payload. Raises :class:`CodecError` on a corrupt payload."""

    @abstractmethod
    def conceal(self, samples: int) -> Pcm:
        """Packet loss concealment: synthesize ``samples`` samples for a lost packet."""

    @property
    def supports_fec(self) -> bool:
        """True if :meth:`decode_fec` can do better than :meth:`conceal` (Opus with libopus)."""
        return False

    def decode_fec(self, next_payload: bytes, samples: int) -> Pcm:
        """Recover ``samples`` samples of a lost packet from the payload that follows it.

        For the jitter buffer: when packet N is missing and packet N+1 has arrived, call
        ``decode_fec(payload_n1, samples_n)`` for N's slot, then ``decode(payload_n1)`` for
        N+1's. Codecs without in-band FEC (the default here) conceal instead; ``next_payload``
        is not consumed either way.
        """
        del next_payload
        return self.conceal(samples)


def as_pcm(samples: npt.ArrayLike) -> Pcm:
    """Coerce ``samples`` to a contiguous 1-D int16 array (no copy when already one).

    Other integer or float arrays are rounded and saturated to the int16 range rather than
    wrapped around.
    """
    array = np.asarray(samples)
    if array.dtype != np.int16:
        if array.dtype.kind == "f":
            array = np.rint(array)
        array = np.clip(array, -32768, 32767)
    pcm = np.ascontiguousarray(array, dtype=np.int16)
    if pcm.ndim != 1:
        raise CodecError(f"PCM must be one-dimensional mono, got shape {pcm.shape}")
    return pcm
