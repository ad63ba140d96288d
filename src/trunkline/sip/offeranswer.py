"""The offer/answer model for audio calls (RFC 3264), sans-IO.

The caller describes what it can do -- a list of :class:`Codec` in local
preference order, an address and port, a wanted :class:`Direction`, and
optionally SDES keys (RFC 4568), ICE (RFC 8839) and DTLS (RFC 8842) details --
and gets SDP to send plus a :class:`NegotiatedAudio` telling the media engine
where to send, with which payload type, and how.

- :func:`create_offer` builds an offer (RFC 3264 §5).
- :func:`create_answer` answers a received offer (RFC 3264 §6): codecs are
  intersected in the answerer's preference order, dynamic payload types keep
  the offerer's numbers (§6.1), telephone-event (RFC 4733) is kept only if
  both ends support it, directions follow §6.1, streams we cannot use are
  rejected with port 0 (§6), and the legacy ``c=0.0.0.0`` hold is understood
  (§8.4).
- :func:`process_answer` turns the answer to our offer into the result.
- :class:`LocalSession` keeps ``o=`` and bumps its version only when the
  description changes (RFC 3264 §8).

When no audio stream can be used, :class:`NegotiationError` carries 488 Not
Acceptable Here (RFC 3261 §13.3.1.1) for the caller to answer with.
:class:`Codec`, the common codecs (``PCMU``, ``OPUS``, ``TELEPHONE_EVENT``...)
and :func:`make_crypto` are defined in :mod:`trunkline.sip.sdpfields` and
re-exported here.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from trunkline.sip.errors import LocalSipError, SipError
from trunkline.sip.sdp import (
    Candidate,
    Connection,
    Crypto,
    Direction,
    Fingerprint,
    MediaDescription,
    Origin,
    SessionDescription,
)
from trunkline.sip.sdpfields import (
    CN,
    G722,
    OPUS,
    PCMA,
    PCMU,
    STATIC_PAYLOAD_TYPES,
    SUPPORTED_SRTP_SUITES,
    TELEPHONE_EVENT,
    Codec,
    make_crypto,
)

__all__ = [
    "CN",
    "G722",
    "OPUS",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "SUPPORTED_SRTP_SUITES",
    "TELEPHONE_EVENT",
    "Answer",
    "Codec",
    "DtlsParameters",
    "IceParameters",
    "LocalSession",
    "NegotiatedAudio",
    "NegotiationError",
    "RemoteDtls",
    "RemoteIce",
    "create_answer",
    "create_offer",
    "is_hold",
    "make_crypto",
    "media_codecs",
    "process_answer",
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


_SDES_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
_PLAIN_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
_DTLS_PROTOS = frozenset({"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"})
_DYNAMIC = range(96, 128)
_DEFAULT_PTIME = 20
_DEFAULT_EVENTS = "0-15"  # no fmtp means events 0-15 (RFC 4733 §2.4.1)


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


def _same_codec(a: Codec, b: Codec) -> bool:
    return a.matches(b.rtpmap(0))


def _assign_payload_types(
    codecs: Sequence[Codec], previous: Sequence[tuple[int, Codec]]
) -> list[tuple[int, Codec]]:
    used: set[int] = set()
    wanted: list[int | None] = []
    for codec in codecs:
        choice = next((pt for pt, old in previous if _same_codec(old, codec)), None)
        if choice is None and codec.payload_type is not None:
            choice = codec.payload_type
        if choice is None:
            choice = next(
                (pt for pt, st in STATIC_PAYLOAD_TYPES.items() if _same_codec(st, codec)), None
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
            choice = next((pt for pt in _DYNAMIC if pt not in used), None)
            if choice is None:
                raise LocalSipError("more codecs than dynamic payload types")
            used.add(choice)
        result.append((choice, codec))
    return result


def _audio_media(
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


def _session(
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
    media = _audio_media(
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
    sdp = _session(local, address, [media])
    if ice is not None and ice.lite:
        sdp.add("ice-lite")
    if mid is not None and dtls is not None:
        sdp.add("group", f"BUNDLE {mid}")
    return local.stamp(sdp)


def _legacy_hold(sdp: SessionDescription, media: MediaDescription) -> bool:
    """``c=0.0.0.0`` hold (RFC 3264 §8.4) -- unless ICE is used.

    With ICE the default address may be 0.0.0.0 (port 9) while candidates
    are still trickling (RFC 8840 §4.1.1): that is not a hold.
    """
    connection = sdp.connection_for(media)
    if connection is None or not connection.is_hold:
        return False
    return _remote_ice(sdp, media) is None


def is_hold(sdp: SessionDescription) -> bool:
    """True if the first audio stream is held (RFC 3264 §8.4, incl. ``c=0.0.0.0``)."""
    for media in sdp.media:
        if media.media == "audio" and not media.rejected:
            return _legacy_hold(sdp, media) or not sdp.direction_of(media).receives
    return False


def _remote_ice(sdp: SessionDescription, media: MediaDescription) -> RemoteIce | None:
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


def _rtcp_target(media: MediaDescription, address: str, rtcp_mux: bool) -> tuple[str, int]:
    """Where RTCP goes: RTP's port with rtcp-mux, ``a=rtcp`` (RFC 3605), else port+1."""
    if rtcp_mux:
        return address, media.port
    rtcp = media.rtcp
    if rtcp is not None:
        return (rtcp.connection.address if rtcp.connection else address), rtcp.port
    return address, media.port + 1


def _remote_ptime(media: MediaDescription) -> int:
    ptime = media.ptime or _DEFAULT_PTIME
    maxptime = media.maxptime
    return min(ptime, maxptime) if maxptime else ptime


def _pick_telephone_event(
    local_rates: set[int], remote: Sequence[tuple[int, Codec]], send_rate: int
) -> tuple[int, Codec] | None:
    """RFC 4733 §2.1: prefer telephone-event at the audio codec's clock rate."""
    offered = [p for p in remote if p[1].is_telephone_event and p[1].clock_rate in local_rates]
    same_rate = [p for p in offered if p[1].clock_rate == send_rate]
    choices = same_rate or offered
    return choices[0] if choices else None


def _answer_crypto(
    offered: MediaDescription,
    suites: Sequence[str],
    key: bytes | None,
    previous: Sequence[Crypto],
) -> tuple[Crypto, Crypto] | None:
    """(remote, local) SDES keys: the first offered suite we support (RFC 4568 §7.1.1).

    ``key`` is used when its length fits the chosen suite; else the key we
    answered with last time for that suite (a re-INVITE keeps the SRTP
    context); else a fresh random key (the peer, not us, picks the suite).
    """
    for remote in offered.crypto:
        length = SUPPORTED_SRTP_SUITES.get(remote.suite)
        if remote.suite in suites and length is not None and not remote.session_params:
            fitting = key if key is not None and len(key) == length else None
            if fitting is None:
                fitting = next(
                    (old.keys[0].key_bytes for old in previous if old.suite == remote.suite), None
                )
            return remote, make_crypto(remote.tag, remote.suite, fitting)
    return None


def _answer_setup(offered: str | None, wanted: str) -> str | None:
    """Our DTLS role for an offered ``a=setup`` (RFC 8842 §5.3, RFC 4145 §4.1)."""
    if offered in (None, "actpass"):
        return "passive" if wanted == "passive" else "active"
    return {"active": "passive", "passive": "active"}.get(offered)


def _rejected(offered: MediaDescription) -> MediaDescription:
    media = MediaDescription(offered.media, 0, offered.proto, list(offered.fmts[:1]) or ["0"])
    if offered.mid is not None:
        media.add("mid", offered.mid)
    return media


def create_answer(
    offer: SessionDescription,
    codecs: Sequence[Codec],
    address: str,
    port: int,
    *,
    session: LocalSession | None = None,
    direction: Direction = Direction.SENDRECV,
    ptime: int | None = None,
    rtcp_mux: bool = True,
    srtp_suites: Sequence[str] = tuple(SUPPORTED_SRTP_SUITES),
    require_srtp: bool = False,
    single_codec: bool = False,
    srtp_key: bytes | None = None,
    ice: IceParameters | None = None,
    dtls: DtlsParameters | None = None,
) -> Answer:
    """Answer ``offer`` with one audio stream and reject the rest (RFC 3264 §6).

    ``direction`` is what we want (``SENDONLY`` to put the peer on hold); the
    answer's direction is that combined with the offer's (§6.1). SDES
    (``RTP/SAVP``) is answered with the first offered suite in
    ``srtp_suites``; DTLS-SRTP (``UDP/TLS/RTP/SAVPF``) only when ``dtls`` is
    given. ``ice`` is included when the offer uses ICE. ``single_codec``
    answers with only the codec we send with (plus telephone-event and CN),
    for peers that do not cope with several. Raises
    :class:`NegotiationError` (488) if no audio stream is acceptable.
    """
    local = session or LocalSession(address)
    answer_media: list[MediaDescription] = []
    audio: NegotiatedAudio | None = None
    reasons: list[tuple[int, str]] = []
    for offered in offer.media:
        result = None
        if audio is None:
            result, reason = _answer_audio(
                offer,
                offered,
                codecs,
                address,
                port,
                direction=direction,
                ptime=ptime,
                rtcp_mux=rtcp_mux,
                srtp_suites=srtp_suites,
                require_srtp=require_srtp,
                single_codec=single_codec,
                srtp_key=srtp_key,
                previous_crypto=local.previous_crypto(),
                ice=ice,
                dtls=dtls,
            )
            if reason is not None:
                reasons.append(reason)
        if result is None:
            answer_media.append(_rejected(offered))
        else:
            answer_media.append(result[0])
            audio = result[1]
    if audio is None:
        if not reasons:
            raise NegotiationError("no audio stream offered", warning=304)
        raise NegotiationError("; ".join(text for _, text in reasons), warning=reasons[0][0])
    sdp = _session(local, address, answer_media)
    if ice is not None and ice.lite and audio.ice is not None:
        sdp.add("ice-lite")
    if audio.mid is not None and any(
        g.semantics == "BUNDLE" and audio.mid in g.mids for g in offer.groups
    ):
        sdp.add("group", f"BUNDLE {audio.mid}")
    return Answer(local.stamp(sdp), audio)


def _answer_audio(
    offer: SessionDescription,
    offered: MediaDescription,
    codecs: Sequence[Codec],
    address: str,
    port: int,
    *,
    direction: Direction,
    ptime: int | None,
    rtcp_mux: bool,
    srtp_suites: Sequence[str],
    require_srtp: bool,
    single_codec: bool,
    srtp_key: bytes | None,
    previous_crypto: Sequence[Crypto],
    ice: IceParameters | None,
    dtls: DtlsParameters | None,
) -> tuple[tuple[MediaDescription, NegotiatedAudio] | None, tuple[int, str] | None]:
    """Answer one offered stream, or say why it is rejected."""
    if offered.media != "audio":
        return None, None
    if offered.rejected:
        return None, (304, "audio stream offered with port 0")
    connection = offer.connection_for(offered)
    if connection is None:
        return None, (307, "audio stream without c= line")
    # Transport and keys.
    keys: tuple[Crypto, Crypto] | None = None
    setup: str | None = None
    if offered.proto in _SDES_PROTOS:
        keys = _answer_crypto(offered, srtp_suites, srtp_key, previous_crypto)
        if keys is None:
            return None, (302, "no supported SRTP crypto suite")
    elif offered.proto in _DTLS_PROTOS:
        fingerprints = offered.fingerprints or offer.fingerprints
        if dtls is None or not fingerprints:
            return None, (302, "DTLS-SRTP not available")
        setup = _answer_setup(offered.setup or offer.setup, dtls.setup)
        if setup is None:
            return None, (302, "unusable DTLS setup role")
    elif offered.proto not in _PLAIN_PROTOS:
        return None, (302, f"unsupported transport {offered.proto}")
    elif require_srtp:
        return None, (302, "SRTP required")
    # Codecs, in our order, with the offerer's payload type numbers (§6.1).
    remote = media_codecs(offered)
    common: list[tuple[int, Codec, Codec]] = []  # (offered pt, their codec, our codec)
    for mine in codecs:
        if mine.is_telephone_event:
            continue
        match = next(
            (
                (pt, theirs)
                for pt, theirs in remote
                if _same_codec(theirs, mine) and pt not in (c[0] for c in common)
            ),
            None,
        )
        if match is not None:
            common.append((match[0], match[1], mine))
    sendable = [c for c in common if not c[1].is_comfort_noise]
    if not sendable:
        return None, (305, "no common audio codec")
    send_pt, send, _ = sendable[0]
    event = _pick_telephone_event(
        {c.clock_rate for c in codecs if c.is_telephone_event}, remote, send.clock_rate
    )
    if single_codec:  # only what we send with (and comfort noise), for picky peers
        common = [c for c in common if c[0] == send_pt or c[1].is_comfort_noise]
    formats = [(pt, dataclasses.replace(mine, payload_type=pt)) for pt, _, mine in common]
    if event is not None:
        formats.append(event)
    # Direction (§6.1) with the legacy hold address (§8.4).
    offered_direction = offer.direction_of(offered)
    remote_receives = offered_direction.receives and not _legacy_hold(offer, offered)
    answer_direction = Direction.from_flags(
        sends=remote_receives and direction.sends,
        receives=offered_direction.sends and direction.receives,
    )
    mux = rtcp_mux and offered.rtcp_mux
    media = _audio_media(
        port,
        offered.proto,
        formats,
        answer_direction,
        ptime=ptime,
        rtcp_mux=mux,
        crypto=[keys[1]] if keys else [],
        ice=ice if _remote_ice(offer, offered) else None,
        dtls=dtls if setup else None,
        setup=setup,
        mid=offered.mid,
    )
    rtcp_address, rtcp_port = _rtcp_target(offered, connection.address, mux)
    remote_dtls = None
    if setup is not None:
        remote_dtls = RemoteDtls(
            tuple(offered.fingerprints or offer.fingerprints),
            offered.setup or offer.setup or "actpass",
            setup,
        )
    negotiated = NegotiatedAudio(
        remote_address=connection.address,
        remote_port=offered.port,
        rtcp_address=rtcp_address,
        rtcp_port=rtcp_port,
        rtcp_mux=mux,
        payload_type=send_pt,
        codec=send,
        codecs=tuple(theirs for _, theirs, _ in common),
        receive_payload_types=dict(formats),
        telephone_event_pt=event[0] if event else None,
        telephone_events=(event[1].fmtp or _DEFAULT_EVENTS) if event else None,
        ptime=_remote_ptime(offered),
        direction=answer_direction,
        held_by_remote=not remote_receives,
        proto=offered.proto,
        local_crypto=keys[1] if keys else None,
        remote_crypto=keys[0] if keys else None,
        ice=_remote_ice(offer, offered),
        dtls=remote_dtls,
        mid=offered.mid,
    )
    return (media, negotiated), None


def process_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedAudio:
    """What to do after the peer answered our ``offer`` (RFC 3264 §7).

    We send with the first codec of the answer that we offered, numbered as
    the answer numbers it. Raises :class:`NegotiationError` if the answer
    does not fit the offer or rejected our audio stream.
    """
    if len(answer.media) != len(offer.media):
        raise NegotiationError("answer has a different number of m= lines (RFC 3264 §6)")
    for ours, theirs in zip(offer.media, answer.media, strict=True):
        if ours.media != "audio" or ours.rejected:
            continue
        if theirs.media != ours.media:
            raise NegotiationError("answer m= line does not match the offer")
        if theirs.rejected:
            raise NegotiationError("audio stream rejected by the answer")
        return _negotiate_answer(offer, ours, answer, theirs)
    raise NegotiationError("the offer had no audio stream")


def _negotiate_answer(
    offer: SessionDescription,
    ours: MediaDescription,
    answer: SessionDescription,
    theirs: MediaDescription,
) -> NegotiatedAudio:
    connection = answer.connection_for(theirs)
    if connection is None:
        raise NegotiationError("answer audio stream without c= line")
    offered = media_codecs(ours)
    answered = media_codecs(theirs)
    common = [(pt, c) for pt, c in answered if any(_same_codec(c, o) for _, o in offered)]
    sendable = [p for p in common if not p[1].is_telephone_event and not p[1].is_comfort_noise]
    if not sendable:
        raise NegotiationError("answer has no codec from the offer")
    send_pt, send = sendable[0]
    event = _pick_telephone_event(
        {c.clock_rate for _, c in offered if c.is_telephone_event}, common, send.clock_rate
    )
    local_crypto = remote_crypto = None
    if theirs.proto in _SDES_PROTOS:
        answered_keys = theirs.crypto
        if len(answered_keys) != 1:
            raise NegotiationError("SRTP answer must carry exactly one crypto line")
        remote_crypto = answered_keys[0]
        wanted_key = (remote_crypto.tag, remote_crypto.suite)
        local_crypto = next((c for c in ours.crypto if (c.tag, c.suite) == wanted_key), None)
        if local_crypto is None:
            raise NegotiationError("answer crypto does not match an offered one")
    remote_dtls = None
    if theirs.proto in _DTLS_PROTOS:
        remote_setup = theirs.setup or answer.setup or "active"
        local_setup = {"active": "passive", "passive": "active"}.get(remote_setup)
        fingerprints = tuple(theirs.fingerprints or answer.fingerprints)
        if local_setup is None or not fingerprints:
            raise NegotiationError("answer lacks a usable DTLS fingerprint or setup role")
        remote_dtls = RemoteDtls(fingerprints, remote_setup, local_setup)
    ours_direction = offer.direction_of(ours)
    theirs_direction = answer.direction_of(theirs)
    remote_receives = theirs_direction.receives and not _legacy_hold(answer, theirs)
    mux = ours.rtcp_mux and theirs.rtcp_mux
    rtcp_address, rtcp_port = _rtcp_target(theirs, connection.address, mux)
    receive = {pt: c for pt, c in offered if any(_same_codec(c, o) for _, o in common)}
    return NegotiatedAudio(
        remote_address=connection.address,
        remote_port=theirs.port,
        rtcp_address=rtcp_address,
        rtcp_port=rtcp_port,
        rtcp_mux=mux,
        payload_type=send_pt,
        codec=send,
        codecs=tuple(c for _, c in common if not c.is_telephone_event),
        receive_payload_types=receive,
        telephone_event_pt=event[0] if event else None,
        telephone_events=(event[1].fmtp or _DEFAULT_EVENTS) if event else None,
        ptime=_remote_ptime(theirs),
        direction=Direction.from_flags(
            sends=ours_direction.sends and remote_receives,
            receives=ours_direction.receives and theirs_direction.sends,
        ),
        held_by_remote=not remote_receives,
        proto=theirs.proto,
        local_crypto=local_crypto,
        remote_crypto=remote_crypto,
        ice=_remote_ice(answer, theirs),
        dtls=remote_dtls,
        mid=theirs.mid or ours.mid,
    )
