"""RTP payload formats in SDP: ``a=rtpmap``, ``a=fmtp`` and :class:`Codec` (RFC 8866 §6.6).

:class:`RtpMap` is the ``a=rtpmap`` value and :func:`parse_fmtp_params` splits
``a=fmtp`` parameters (RFC 4855 §3); a :class:`Codec` is an rtpmap + fmtp pair
with a preferred payload type, as offers and answers use them. The common
codecs (``PCMU``, ``PCMA``, ``G722``, ``CN``, ``OPUS``, ``TELEPHONE_EVENT``)
and the RFC 3551 static payload type table are here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trunkline.sip.sdpsyntax import fail, parse_int, parse_token, split_fields

__all__ = [
    "CN",
    "G722",
    "OPUS",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "Codec",
    "RtpMap",
    "parse_fmtp_params",
]


_RTPMAP = re.compile(
    r"\s*([0-9]{1,3})\s+([!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)/([0-9]{1,20})(?:/([0-9]{1,3}))?\s*"
)


@dataclass(slots=True, frozen=True)
class RtpMap:
    """``a=rtpmap:<payload type> <encoding>/<clock rate>[/<channels>]`` (§6.6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, text: str) -> RtpMap:
        match = _RTPMAP.fullmatch(text)
        if match is not None:  # the common, well-formed case in one regex
            pt_text, name, rate, channels_text = match.groups()
            channels_value = None if channels_text is None else int(channels_text)
            if int(pt_text) <= 127 and (channels_value is None or channels_value <= 255):
                return cls(int(pt_text), name, int(rate), channels_value)
        pt, encoding = split_fields(text, "rtpmap", 2, 2)
        parts = encoding.split("/")
        if len(parts) not in (2, 3) or not parts[0]:
            raise fail(f"malformed rtpmap: {text[:60]!r}")
        channels = parse_int(parts[2], "rtpmap channels", 255) if len(parts) == 3 else None
        return cls(
            payload_type=parse_int(pt, "rtpmap payload type", 127),
            encoding=parse_token(parts[0], "rtpmap encoding"),
            clock_rate=parse_int(parts[1], "rtpmap clock rate"),
            channels=channels,
        )

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


def parse_fmtp_params(text: str) -> dict[str, str | None]:
    """Split ``a=fmtp`` parameters written as ``name=value;name2=value2`` (RFC 4855 §3).

    Parameters without ``=`` (``0-16`` for telephone-event) map to None.
    """
    params: dict[str, str | None] = {}
    for raw in text.split(";"):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        params[name.strip()] = value.strip() if sep else None
    return params


@dataclass(frozen=True, slots=True)
class Codec:
    """An RTP payload format as SDP names it (``a=rtpmap`` + ``a=fmtp``).

    ``payload_type`` is the preferred number (the static one for PCMU, PCMA,
    G722...); the offerer's number wins in an answer.
    """

    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None
    payload_type: int | None = None

    @property
    def is_telephone_event(self) -> bool:
        return self.name.lower() == "telephone-event"

    @property
    def is_comfort_noise(self) -> bool:
        return self.name.upper() == "CN"

    def matches(self, rtpmap: RtpMap) -> bool:
        """Same encoding name (case-insensitive), clock rate and channel count."""
        return (
            self.name.lower() == rtpmap.encoding.lower()
            and self.clock_rate == rtpmap.clock_rate
            and self.channels == (rtpmap.channels or 1)
        )

    def rtpmap(self, payload_type: int) -> RtpMap:
        channels = None if self.channels == 1 else self.channels
        return RtpMap(payload_type, self.name, self.clock_rate, channels)


PCMU = Codec("PCMU", 8000, payload_type=0)
PCMA = Codec("PCMA", 8000, payload_type=8)
# G.722 samples at 16 kHz but is written 8000 in SDP (RFC 3551 §4.5.2).
G722 = Codec("G722", 8000, payload_type=9)
CN = Codec("CN", 8000, payload_type=13)
# Opus is always written opus/48000/2 (RFC 7587 §7).
OPUS = Codec("opus", 48000, 2, "minptime=10;useinbandfec=1", 111)
TELEPHONE_EVENT = Codec("telephone-event", 8000, fmtp="0-16", payload_type=101)

STATIC_PAYLOAD_TYPES: dict[int, Codec] = {
    pt: Codec(name, rate, channels, payload_type=pt)
    for pt, name, rate, channels in [
        # RFC 3551 §6, table 4 (audio).
        (0, "PCMU", 8000, 1),
        (3, "GSM", 8000, 1),
        (4, "G723", 8000, 1),
        (5, "DVI4", 8000, 1),
        (6, "DVI4", 16000, 1),
        (7, "LPC", 8000, 1),
        (8, "PCMA", 8000, 1),
        (9, "G722", 8000, 1),
        (10, "L16", 44100, 2),
        (11, "L16", 44100, 1),
        (12, "QCELP", 8000, 1),
        (13, "CN", 8000, 1),
        (14, "MPA", 90000, 1),
        (15, "G728", 8000, 1),
        (16, "DVI4", 11025, 1),
        (17, "DVI4", 22050, 1),
        (18, "G729", 8000, 1),
    ]
}
