"""What an offer/answer exchange yields, and how a peer's audio stream reads (RFC 3264).

:class:`NegotiatedAudio` is what the media engine needs once an offer and an
answer met; :class:`IceParameters` and :class:`DtlsParameters` are ours to put
in SDP, :class:`RemoteIce` and :class:`RemoteDtls` the peer's; :class:`Answer`
pairs our answer with its result, and :class:`NegotiationError` carries the 488
to refuse with (RFC 3261 §13.3.1.1). The readers below (codecs of an ``m=``
line, the legacy ``c=0.0.0.0`` hold, ICE, RTCP target, ptime, telephone-event)
serve both :mod:`trunkline.sip.sdpoffer` and :mod:`trunkline.sip.sdpanswer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trunkline.sip.errors import SipError
from trunkline.sip.sdp import (
    Candidate,
    Crypto,
    Direction,
    Fingerprint,
    MediaDescription,
    SessionDescription,
)
from trunkline.sip.sdpcodecs import STATIC_PAYLOAD_TYPES, Codec

__all__ = [
    "DEFAULT_EVENTS",
    "DEFAULT_PTIME",
    "DTLS_PROTOS",
    "DYNAMIC_PAYLOAD_TYPES",
    "PLAIN_PROTOS",
    "SDES_PROTOS",
    "Answer",
    "DtlsParameters",
    "IceParameters",
    "NegotiatedAudio",
    "NegotiationError",
    "RemoteDtls",
    "RemoteIce",
    "agreed_direction",
    "is_hold",
    "legacy_hold",
    "media_codecs",
    "pick_telephone_event",
    "remote_ice",
    "remote_ptime",
    "rtcp_target",
    "same_codec",
]


class NegotiationError(SipError):
    """The session description cannot be accepted; answer with ``status`` (488).

    RFC 3261 §13.3.1.1 / RFC 3264 §6: an offer we cannot answer is refused
    with 488 Not Acceptable Here.

    ``warning`` is the RFC 3261 §20.43 warn-code for a ``Warning`` header
    (302 incompatible transport, 304 media type not available, 305
    incompatible media format, 307 parameter not understood), or None.
    """

    def __init__(self, reason: str, status: int = 488, warning: int | None = None) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.warning = warning


SDES_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
PLAIN_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
DTLS_PROTOS = frozenset({"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"})
DYNAMIC_PAYLOAD_TYPES = range(96, 128)
DEFAULT_PTIME = 20
DEFAULT_EVENTS = "0-15"  # no fmtp means events 0-15 (RFC 4733 §2.4.1)


@dataclass(frozen=True, slots=True)
class IceParameters:
    """Our ICE credentials and candidates to put in SDP (RFC 8839 §5)."""

    ufrag: str
    pwd: str
    candidates: tuple[Candidate, ...] = ()
    options: tuple[str, ...] = ()
    lite: bool = False
    end_of_candidates: bool = True


@dataclass(frozen=True, slots=True)
class DtlsParameters:
    """Our DTLS certificate fingerprints and wanted role (RFC 8842 §5)."""

    fingerprints: tuple[Fingerprint, ...]
    setup: str = "actpass"


@dataclass(frozen=True, slots=True)
class RemoteIce:
    """The peer's ICE details, passed through for the ICE agent."""

    ufrag: str | None
    pwd: str | None
    candidates: tuple[Candidate, ...]
    options: tuple[str, ...]
    lite: bool
    end_of_candidates: bool


@dataclass(frozen=True, slots=True)
class RemoteDtls:
    """The peer's fingerprints and roles (RFC 8842 §5.2-5.3)."""

    fingerprints: tuple[Fingerprint, ...]
    remote_setup: str
    local_setup: str

    @property
    def local_is_client(self) -> bool:
        """True when we start the DTLS handshake (our role is ``active``)."""
        return self.local_setup == "active"


@dataclass(frozen=True, slots=True)
class NegotiatedAudio:
    """What the media engine needs once an offer and an answer met.

    ``codec``/``payload_type`` are what we send with, numbered as the peer
    wrote them (the receiver's numbers, RFC 3264 §6.1); ``codecs`` lists every
    common codec in the peer's numbering; ``receive_payload_types`` maps the
    numbers we wrote in our own SDP. ``direction`` is from our side (sendonly
    means we send and do not receive). ``held_by_remote`` is true when the
    peer asked us not to send (sendonly/inactive, or ``c=0.0.0.0``, §8.4).
    ``telephone_events`` is the peer's event list (``0-15`` when it gave no
    fmtp, RFC 4733 §2.4.1).
    """

    remote_address: str
    remote_port: int
    rtcp_address: str
    rtcp_port: int
    rtcp_mux: bool
    payload_type: int
    codec: Codec
    codecs: tuple[Codec, ...]
    receive_payload_types: dict[int, Codec]
    telephone_event_pt: int | None
    telephone_events: str | None
    ptime: int
    direction: Direction
    held_by_remote: bool
    proto: str
    local_crypto: Crypto | None = None
    remote_crypto: Crypto | None = None
    ice: RemoteIce | None = None
    dtls: RemoteDtls | None = None
    mid: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to send and the negotiated audio stream."""

    sdp: SessionDescription
    audio: NegotiatedAudio


def media_codecs(media: MediaDescription) -> list[tuple[int, Codec]]:
    """Every payload type of ``media`` we can name, in m= line order.

    A payload type is named by its ``a=rtpmap`` or, for static types without
    one, by the RFC 3551 table; ``a=fmtp`` parameters are attached.
    """
    rtpmaps, fmtps = media.rtpmap(), media.fmtp()
    result: list[tuple[int, Codec]] = []
    for pt in media.payload_types:
        rtpmap = rtpmaps.get(pt)
        if rtpmap is None:
            static = STATIC_PAYLOAD_TYPES.get(pt)
            if static is None:
                continue
            rtpmap = static.rtpmap(pt)
        codec = Codec(rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels or 1, fmtps.get(pt), pt)
        result.append((pt, codec))
    return result


def same_codec(a: Codec, b: Codec) -> bool:
    """True when ``a`` and ``b`` name the same encoding, clock rate and channels."""
    return a.matches(b.rtpmap(0))


def legacy_hold(sdp: SessionDescription, media: MediaDescription) -> bool:
    """``c=0.0.0.0`` hold (RFC 3264 §8.4) -- unless ICE is used.

    With ICE the default address may be 0.0.0.0 (port 9) while candidates
    are still trickling (RFC 8840 §4.1.1): that is not a hold.
    """
    connection = sdp.connection_for(media)
    if connection is None or not connection.is_hold:
        return False
    return remote_ice(sdp, media) is None


def agreed_direction(
    wanted: Direction, peer: SessionDescription, stream: MediaDescription
) -> tuple[Direction, bool]:
    """Our direction with the peer's ``stream`` when we want ``wanted`` (RFC 3264 §6.1).

    We send if we want to and the peer receives, and receive if we want to and
    the peer sends. The flag is whether the peer holds us: it does not receive
    (``sendonly``/``inactive``, or the ``c=0.0.0.0`` of §8.4).
    """
    theirs = peer.direction_of(stream)
    peer_receives = theirs.receives and not legacy_hold(peer, stream)
    direction = Direction.from_flags(
        sends=wanted.sends and peer_receives, receives=wanted.receives and theirs.sends
    )
    return direction, not peer_receives


def is_hold(sdp: SessionDescription) -> bool:
    """True if the first audio stream is held (RFC 3264 §8.4, incl. ``c=0.0.0.0``)."""
    for media in sdp.media:
        if media.media == "audio" and not media.rejected:
            return agreed_direction(Direction.SENDRECV, sdp, media)[1]
    return False


def remote_ice(sdp: SessionDescription, media: MediaDescription) -> RemoteIce | None:
    ufrag = media.ice_ufrag or sdp.ice_ufrag
    candidates = media.candidates
    if ufrag is None and not candidates:
        return None
    return RemoteIce(
        ufrag=ufrag,
        pwd=media.ice_pwd or sdp.ice_pwd,
        candidates=tuple(candidates),
        options=tuple(media.ice_options or sdp.ice_options),
        lite=sdp.ice_lite,
        end_of_candidates=media.end_of_candidates or sdp.has("end-of-candidates"),
    )


def rtcp_target(media: MediaDescription, address: str, rtcp_mux: bool) -> tuple[str, int]:
    """Where RTCP goes: RTP's port with rtcp-mux, ``a=rtcp`` (RFC 3605), else port+1."""
    if rtcp_mux:
        return address, media.port
    rtcp = media.rtcp
    if rtcp is not None:
        return (rtcp.connection.address if rtcp.connection else address), rtcp.port
    return address, media.port + 1


def remote_ptime(media: MediaDescription) -> int:
    ptime = media.ptime or DEFAULT_PTIME
    maxptime = media.maxptime
    return min(ptime, maxptime) if maxptime else ptime


def pick_telephone_event(
    local_rates: set[int], remote: Sequence[tuple[int, Codec]], send_rate: int
) -> tuple[int, Codec] | None:
    """RFC 4733 §2.1: prefer telephone-event at the audio codec's clock rate."""
    offered = [p for p in remote if p[1].is_telephone_event and p[1].clock_rate in local_rates]
    same_rate = [p for p in offered if p[1].clock_rate == send_rate]
    choices = same_rate or offered
    return choices[0] if choices else None
