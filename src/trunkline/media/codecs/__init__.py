"""Codec registry: look codecs up by SDP encoding name and clock rate.

API summary (everything a media session needs)::

    from trunkline.media import codecs

    info = codecs.get("PCMU")                 # CodecInfo; name is case-insensitive
    info = codecs.get("opus", 48000)          # clock rate disambiguates (telephone-event)
    info = codecs.by_payload_type(9)          # static payload types 0, 8, 9 (RFC 3551)
    enc = codecs.create_encoder("G722")       # a new Encoder for one outgoing stream
    dec = codecs.create_decoder("PCMA", 8000) # a new Decoder for one incoming stream
    codecs.available()                        # every registered CodecInfo
    codecs.register(info)                     # add a codec (plug-ins); unregister(info)

    payload: bytes = enc.encode(pcm)          # pcm: 1-D numpy int16 at info.sample_rate,
    pcm = dec.decode(payload)                 #      info.samples_per_frame(ptime) long
    pcm = dec.conceal(n)                      # packet loss concealment, n samples
    enc.name, enc.clock_rate, enc.sample_rate, enc.channels, enc.payload_type, enc.fmtp

    info.rtpmap()                             # "opus/48000/2" for a=rtpmap (RFC 4566 §6)
    info.timestamp_increment(20)              # RTP timestamp units per 20 ms packet

Registered: PCMU/8000 (PT 0), PCMA/8000 (PT 8), G722/8000 (PT 9, 16 kHz audio),
opus/48000/2 (dynamic), telephone-event/8000, /16000, /48000 (dynamic; RFC 4733 helpers in
:mod:`trunkline.media.codecs.telephone_event`). Errors: :class:`CodecError`.
"""

from __future__ import annotations

from collections.abc import Iterable

from trunkline.media.codecs import g711, g722, opus, telephone_event
from trunkline.media.codecs.base import CodecError, CodecInfo, Decoder, Encoder, Pcm

__all__ = [
    "CodecError",
    "CodecInfo",
    "Decoder",
    "Encoder",
    "Pcm",
    "available",
    "by_payload_type",
    "create_decoder",
    "create_encoder",
    "get",
    "register",
    "unregister",
]

_REGISTRY: dict[tuple[str, int], CodecInfo] = {}


def register(info: CodecInfo, *, replace: bool = False) -> None:
    """Add ``info`` under (lower-case name, clock rate)."""
    if info.key in _REGISTRY and not replace:
        raise CodecError(f"codec already registered: {info.rtpmap()}")
    _REGISTRY[info.key] = info


def unregister(info: CodecInfo) -> None:
    """Remove ``info`` (plug-ins and tests)."""
    _REGISTRY.pop(info.key, None)


def get(name: str, clock_rate: int | None = None) -> CodecInfo:
    """The codec called ``name`` (any case) at ``clock_rate``.

    Without a clock rate the name must be unambiguous, or the 8000 Hz entry is taken
    (telephone-event is registered at several rates).
    """
    key = name.lower()
    if clock_rate is not None:
        try:
            return _REGISTRY[(key, clock_rate)]
        except KeyError:
            raise CodecError(f"unknown codec {name}/{clock_rate}") from None
    matches = [info for (n, _), info in _REGISTRY.items() if n == key]
    if len(matches) == 1:
        return matches[0]
    for info in matches:
        if info.clock_rate == 8000:
            return info
    if not matches:
        raise CodecError(f"unknown codec {name}")
    raise CodecError(f"codec {name} needs a clock rate: {[m.clock_rate for m in matches]}")


def by_payload_type(payload_type: int) -> CodecInfo:
    """The codec with static RTP payload type ``payload_type`` (RFC 3551 Table 4)."""
    for info in _REGISTRY.values():
        if info.payload_type == payload_type:
            return info
    raise CodecError(f"no codec with static payload type {payload_type}")


def available() -> list[CodecInfo]:
    return list(_REGISTRY.values())


def create_encoder(name: str, clock_rate: int | None = None) -> Encoder:
    info = get(name, clock_rate)
    if info.make_encoder is None:
        raise CodecError(f"{info.rtpmap()} is not an audio codec")
    return info.make_encoder()


def create_decoder(name: str, clock_rate: int | None = None) -> Decoder:
    info = get(name, clock_rate)
    if info.make_decoder is None:
        raise CodecError(f"{info.rtpmap()} is not an audio codec")
    return info.make_decoder()


def _register_all(groups: Iterable[tuple[CodecInfo, ...]]) -> None:
    for group in groups:
        for info in group:
            register(info)


_register_all((g711.CODECS, g722.CODECS, opus.CODECS, telephone_event.CODECS))
