"""Answering an offer and reading the answer to ours (RFC 3264 §6, §7).

:func:`create_answer` answers a received offer (§6): codecs are intersected in
the answerer's preference order, dynamic payload types keep the offerer's
numbers (§6.1), telephone-event (RFC 4733) is kept only if both ends support
it, directions follow §6.1, streams we cannot use are rejected with port 0,
SDES (RFC 4568) and DTLS-SRTP (RFC 8842) are answered when we can.
:func:`process_answer` turns the peer's answer to our offer into the
:class:`~trunkline.sip.negotiated.NegotiatedAudio` to run (§7).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from trunkline.sip.negotiated import (
    DEFAULT_EVENTS,
    DTLS_PROTOS,
    PLAIN_PROTOS,
    SDES_PROTOS,
    Answer,
    DtlsParameters,
    IceParameters,
    NegotiatedAudio,
    NegotiationError,
    RemoteDtls,
    agreed_direction,
    media_codecs,
    pick_telephone_event,
    remote_ice,
    remote_ptime,
    rtcp_target,
    same_codec,
)
from trunkline.sip.sdp import Crypto, Direction, MediaDescription, SessionDescription
from trunkline.sip.sdpcodecs import Codec
from trunkline.sip.sdpcrypto import SUPPORTED_SRTP_SUITES, make_crypto
from trunkline.sip.sdpoffer import LocalSession, audio_media, session_description

__all__ = ["create_answer", "process_answer"]


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
    sdp = session_description(local, address, answer_media)
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
    if offered.proto in SDES_PROTOS:
        keys = _answer_crypto(offered, srtp_suites, srtp_key, previous_crypto)
        if keys is None:
            return None, (302, "no supported SRTP crypto suite")
    elif offered.proto in DTLS_PROTOS:
        fingerprints = offered.fingerprints or offer.fingerprints
        if dtls is None or not fingerprints:
            return None, (302, "DTLS-SRTP not available")
        setup = _answer_setup(offered.setup or offer.setup, dtls.setup)
        if setup is None:
            return None, (302, "unusable DTLS setup role")
    elif offered.proto not in PLAIN_PROTOS:
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
                if same_codec(theirs, mine) and pt not in (c[0] for c in common)
            ),
            None,
        )
        if match is not None:
            common.append((match[0], match[1], mine))
    sendable = [c for c in common if not c[1].is_comfort_noise]
    if not sendable:
        return None, (305, "no common audio codec")
    send_pt, send, _ = sendable[0]
    event = pick_telephone_event(
        {c.clock_rate for c in codecs if c.is_telephone_event}, remote, send.clock_rate
    )
    if single_codec:  # only what we send with (and comfort noise), for picky peers
        common = [c for c in common if c[0] == send_pt or c[1].is_comfort_noise]
    formats = [(pt, dataclasses.replace(mine, payload_type=pt)) for pt, _, mine in common]
    if event is not None:
        formats.append(event)
    # Direction (§6.1) with the legacy hold address (§8.4).
    answer_direction, held = agreed_direction(direction, offer, offered)
    mux = rtcp_mux and offered.rtcp_mux
    media = audio_media(
        port,
        offered.proto,
        formats,
        answer_direction,
        ptime=ptime,
        rtcp_mux=mux,
        crypto=[keys[1]] if keys else [],
        ice=ice if remote_ice(offer, offered) else None,
        dtls=dtls if setup else None,
        setup=setup,
        mid=offered.mid,
    )
    rtcp_address, rtcp_port = rtcp_target(offered, connection.address, mux)
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
        telephone_events=(event[1].fmtp or DEFAULT_EVENTS) if event else None,
        ptime=remote_ptime(offered),
        direction=answer_direction,
        held_by_remote=held,
        proto=offered.proto,
        local_crypto=keys[1] if keys else None,
        remote_crypto=keys[0] if keys else None,
        ice=remote_ice(offer, offered),
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
    common = [(pt, c) for pt, c in answered if any(same_codec(c, o) for _, o in offered)]
    sendable = [p for p in common if not p[1].is_telephone_event and not p[1].is_comfort_noise]
    if not sendable:
        raise NegotiationError("answer has no codec from the offer")
    send_pt, send = sendable[0]
    event = pick_telephone_event(
        {c.clock_rate for _, c in offered if c.is_telephone_event}, common, send.clock_rate
    )
    local_crypto = remote_crypto = None
    if theirs.proto in SDES_PROTOS:
        answered_keys = theirs.crypto
        if len(answered_keys) != 1:
            raise NegotiationError("SRTP answer must carry exactly one crypto line")
        remote_crypto = answered_keys[0]
        wanted_key = (remote_crypto.tag, remote_crypto.suite)
        local_crypto = next((c for c in ours.crypto if (c.tag, c.suite) == wanted_key), None)
        if local_crypto is None:
            raise NegotiationError("answer crypto does not match an offered one")
    remote_dtls = None
    if theirs.proto in DTLS_PROTOS:
        remote_setup = theirs.setup or answer.setup or "active"
        local_setup = {"active": "passive", "passive": "active"}.get(remote_setup)
        fingerprints = tuple(theirs.fingerprints or answer.fingerprints)
        if local_setup is None or not fingerprints:
            raise NegotiationError("answer lacks a usable DTLS fingerprint or setup role")
        remote_dtls = RemoteDtls(fingerprints, remote_setup, local_setup)
    direction, held = agreed_direction(offer.direction_of(ours), answer, theirs)
    mux = ours.rtcp_mux and theirs.rtcp_mux
    rtcp_address, rtcp_port = rtcp_target(theirs, connection.address, mux)
    receive = {pt: c for pt, c in offered if any(same_codec(c, o) for _, o in common)}
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
        telephone_events=(event[1].fmtp or DEFAULT_EVENTS) if event else None,
        ptime=remote_ptime(theirs),
        direction=direction,
        held_by_remote=held,
        proto=theirs.proto,
        local_crypto=local_crypto,
        remote_crypto=remote_crypto,
        ice=remote_ice(answer, theirs),
        dtls=remote_dtls,
        mid=theirs.mid or ours.mid,
    )
