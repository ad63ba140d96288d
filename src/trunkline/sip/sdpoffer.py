"""Our side of an SDP exchange: the ``o=`` line and the offer (RFC 3264 §5, §8).

:class:`LocalSession` keeps ``o=`` across a dialog's offers and answers and
bumps its version only when the description changes (§8);
:func:`create_offer` builds an offer with one audio stream, numbering payload
types stably across re-offers (§8.3.2). :func:`audio_media` and
:func:`session_description` write our ``m=`` and session sections, for offers
and for :mod:`trunkline.sip.sdpanswer` alike.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from trunkline.sip.errors import LocalSipError
from trunkline.sip.negotiated import (
    DYNAMIC_PAYLOAD_TYPES,
    DtlsParameters,
    IceParameters,
    media_codecs,
    same_codec,
)
from trunkline.sip.sdp import (
    Connection,
    Crypto,
    Direction,
    MediaDescription,
    Origin,
    SessionDescription,
)
from trunkline.sip.sdpcodecs import STATIC_PAYLOAD_TYPES, Codec

__all__ = ["LocalSession", "audio_media", "create_offer", "session_description"]


@dataclass
class LocalSession:
    """Our ``o=`` line across a dialog's offers and answers (RFC 3264 §8).

    :meth:`stamp` writes ``o=`` into each new description and increments the
    version only if the description differs from the previous one.
    """

    address: str
    username: str = "-"
    session_id: str = field(default_factory=lambda: str(secrets.randbits(62)))
    version: int = 1
    session_name: str = "-"
    last: SessionDescription | None = None

    @property
    def addrtype(self) -> str:
        return "IP6" if ":" in self.address else "IP4"

    def origin(self) -> Origin:
        return Origin(self.username, self.session_id, self.version, self.address, self.addrtype)

    def stamp(self, sdp: SessionDescription) -> SessionDescription:
        """Set ``o=`` on ``sdp`` (bumping the version if it changed) and remember it."""
        sdp.origin = self.origin()
        if self.last is not None and not sdp.same_content(self.last):
            self.version += 1
            sdp.origin.session_version = self.version
        self.last = sdp.copy()
        return sdp

    def _last_audio(self) -> MediaDescription | None:
        if self.last is None:
            return None
        return next((m for m in self.last.media if m.media == "audio" and not m.rejected), None)

    def previous_payload_types(self) -> list[tuple[int, Codec]]:
        """The payload types of our last audio stream, to keep them stable (§8.3.2)."""
        media = self._last_audio()
        return [] if media is None else media_codecs(media)

    def previous_crypto(self) -> list[Crypto]:
        """The SDES keys of our last audio stream (reused when answering a re-INVITE)."""
        media = self._last_audio()
        return [] if media is None else media.crypto


def _assign_payload_types(
    codecs: Sequence[Codec], previous: Sequence[tuple[int, Codec]]
) -> list[tuple[int, Codec]]:
    used: set[int] = set()
    wanted: list[int | None] = []
    for codec in codecs:
        choice = next((pt for pt, old in previous if same_codec(old, codec)), None)
        if choice is None and codec.payload_type is not None:
            choice = codec.payload_type
        if choice is None:
            choice = next(
                (pt for pt, st in STATIC_PAYLOAD_TYPES.items() if same_codec(st, codec)), None
            )
        if choice in used:
            choice = None
        if choice is not None:
            used.add(choice)
        wanted.append(choice)
    result: list[tuple[int, Codec]] = []
    for codec, wanted_pt in zip(codecs, wanted, strict=True):
        choice = wanted_pt
        if choice is None:
            choice = next((pt for pt in DYNAMIC_PAYLOAD_TYPES if pt not in used), None)
            if choice is None:
                raise LocalSipError("more codecs than dynamic payload types")
            used.add(choice)
        result.append((choice, codec))
    return result


def audio_media(
    port: int,
    proto: str,
    formats: Sequence[tuple[int, Codec]],
    direction: Direction,
    *,
    ptime: int | None,
    rtcp_mux: bool,
    crypto: Sequence[Crypto],
    ice: IceParameters | None,
    dtls: DtlsParameters | None,
    setup: str | None = None,
    mid: str | None = None,
) -> MediaDescription:
    media = MediaDescription("audio", port, proto, [str(pt) for pt, _ in formats])
    if mid is not None:
        media.add("mid", mid)
    for pt, codec in formats:
        media.add("rtpmap", str(codec.rtpmap(pt)))
        if codec.fmtp:
            media.add("fmtp", f"{pt} {codec.fmtp}")
    if ptime is not None:
        media.add("ptime", str(ptime))
    for line in crypto:
        media.add("crypto", str(line))
    if ice is not None:
        media.add("ice-ufrag", ice.ufrag)
        media.add("ice-pwd", ice.pwd)
        if ice.options:
            media.add("ice-options", " ".join(ice.options))
        for candidate in ice.candidates:
            media.add("candidate", str(candidate))
        if ice.end_of_candidates:
            media.add("end-of-candidates")
    if dtls is not None:
        for fingerprint in dtls.fingerprints:
            media.add("fingerprint", str(fingerprint))
        media.add("setup", setup or dtls.setup)
    if rtcp_mux:
        media.add("rtcp-mux")
    media.set_direction(direction)
    return media


def session_description(
    local: LocalSession, address: str, media: list[MediaDescription]
) -> SessionDescription:
    """Our session section: ``o=`` from ``local``, ``c=`` with the media address."""
    return SessionDescription(
        origin=local.origin(),
        session_name=local.session_name,
        connection=Connection(address, "IP6" if ":" in address else "IP4"),
        media=media,
    )


def create_offer(
    codecs: Sequence[Codec],
    address: str,
    port: int,
    *,
    session: LocalSession | None = None,
    direction: Direction = Direction.SENDRECV,
    ptime: int | None = None,
    rtcp_mux: bool = False,
    crypto: Sequence[Crypto] = (),
    ice: IceParameters | None = None,
    dtls: DtlsParameters | None = None,
    mid: str | None = None,
) -> SessionDescription:
    """An offer with one audio stream (RFC 3264 §5).

    Payload types: the previous offer's numbers for the same codec (§8.3.2),
    else the codec's preferred or static number, else a free dynamic one.
    Hold (§8.4) is ``direction=Direction.SENDONLY`` (or INACTIVE).
    """
    if not codecs:
        raise LocalSipError("an offer needs at least one codec")
    local = session or LocalSession(address)
    formats = _assign_payload_types(codecs, local.previous_payload_types())
    if dtls is not None:
        proto = "UDP/TLS/RTP/SAVPF"
    elif crypto:
        proto = "RTP/SAVP"
    else:
        proto = "RTP/AVP"
    media = audio_media(
        port,
        proto,
        formats,
        direction,
        ptime=ptime,
        rtcp_mux=rtcp_mux,
        crypto=crypto,
        ice=ice,
        dtls=dtls,
        mid=mid,
    )
    sdp = session_description(local, address, [media])
    if ice is not None and ice.lite:
        sdp.add("ice-lite")
    if mid is not None and dtls is not None:
        sdp.add("group", f"BUNDLE {mid}")
    return local.stamp(sdp)
