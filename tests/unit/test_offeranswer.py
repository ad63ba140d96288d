"""Tests for trunkline.sip.offeranswer: RFC 3264 offer/answer for audio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.sip.errors import LocalSipError, SipParseError
from trunkline.sip.offeranswer import (
    CN,
    G722,
    OPUS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Answer,
    Codec,
    DtlsParameters,
    IceParameters,
    LocalSession,
    NegotiationError,
    create_answer,
    create_offer,
    is_hold,
    make_crypto,
    process_answer,
)
from trunkline.sip.sdp import (
    Candidate,
    Connection,
    Direction,
    Fingerprint,
    Group,
    RtpMap,
    SessionDescription,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "sdp"
ME = "192.0.2.10"
LOCAL = [OPUS, G722, PCMU, PCMA, TELEPHONE_EVENT]
KEY = bytes(range(30))
FINGERPRINT = Fingerprint("sha-256", ":".join(["AB"] * 32))


def load(name: str) -> SessionDescription:
    return SessionDescription.parse((DATA / name).read_bytes())


def offer_text(media: str, *, session: str = "", connection: str = "c=IN IP4 198.51.100.7") -> str:
    return f"v=0\no=- 1 1 IN IP4 h\ns=-\n{connection}\nt=0 0\n{session}{media}"


def answer(offer: SessionDescription | str, codecs: list[Codec] | None = None, **kw: Any) -> Answer:
    if isinstance(offer, str):
        offer = SessionDescription.parse(offer)
    return create_answer(offer, codecs or LOCAL, ME, 20000, **kw)


# --- answering real-world offers ---------------------------------------------


def test_answer_baresip_keeps_offered_dynamic_numbers() -> None:
    result = answer(load("baresip.sdp"))
    (media,) = result.sdp.media
    # our order (opus, G722, PCMU, PCMA), the offerer's numbers (opus is 96 there)
    assert media.fmts == ["96", "9", "0", "8", "101"]
    assert media.rtpmap()[96] == RtpMap(96, "opus", 48000, 2)
    assert media.fmtp()[101] == "0-15"  # the offerer's event list
    assert media.direction is Direction.SENDRECV
    assert media.rtcp_mux  # offered and supported
    audio = result.audio
    assert (audio.remote_address, audio.remote_port) == ("192.168.1.20", 10128)
    assert (audio.rtcp_address, audio.rtcp_port) == ("192.168.1.20", 10128)
    assert audio.payload_type == 96
    assert audio.codec.name == "opus"
    assert audio.codec.fmtp == "stereo=1;sprop-stereo=1"  # the receiver's fmtp governs sending
    assert [c.name for c in audio.codecs] == ["opus", "G722", "PCMU", "PCMA"]
    assert audio.receive_payload_types[96].payload_type == 96
    assert audio.telephone_event_pt == 101
    assert audio.telephone_events == "0-15"
    assert audio.ptime == 20
    assert not audio.held_by_remote


def test_answer_asterisk_in_our_preference_order() -> None:
    result = answer(load("asterisk.sdp"), [PCMA, PCMU, TELEPHONE_EVENT])
    media = result.sdp.media[0]
    assert media.fmts == ["8", "0", "101"]
    assert result.audio.payload_type == 8
    assert result.audio.rtcp_port == 14569  # no rtcp-mux, no a=rtcp: port + 1
    assert not result.audio.rtcp_mux
    assert not media.rtcp_mux
    assert result.audio.telephone_events == "0-16"
    # maxptime caps the ptime we send with
    assert result.audio.ptime == 20


def test_answer_sipp_pcmu_only() -> None:
    result = answer(load("sipp-uac.sdp"))
    assert result.sdp.media[0].fmts == ["0"]
    assert result.audio.telephone_event_pt is None
    assert result.audio.codec == Codec("PCMU", 8000, payload_type=0)


def test_answer_linphone_sdes() -> None:
    result = answer(load("linphone-srtp.sdp"), srtp_key=KEY)
    media = result.sdp.media[0]
    assert media.proto == "RTP/SAVP"
    (local,) = media.crypto
    assert (local.tag, local.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    assert local.keys[0].key_bytes == KEY
    audio = result.audio
    assert audio.local_crypto == local
    assert audio.remote_crypto is not None
    assert audio.remote_crypto.keys[0].mki == 1
    assert audio.rtcp_port == 7079  # a=rtcp (RFC 3605)
    # telephone-event at the opus rate is not supported locally: 8000 is kept
    assert audio.telephone_event_pt == 100
    assert audio.ice is not None
    assert audio.ice.ufrag == "a0c1d2e3"  # session-level ICE passed through
    assert len(audio.ice.candidates) == 4


def test_answer_sdes_picks_first_supported_suite() -> None:
    offer = offer_text(
        "m=audio 5000 RTP/SAVP 0\n"
        "a=crypto:1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\n"
        "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\n"
    )
    result = answer(offer)
    (crypto,) = result.sdp.media[0].crypto
    assert (crypto.tag, crypto.suite) == (2, "AES_CM_128_HMAC_SHA1_32")
    assert len(crypto.keys[0].key_bytes) == 30


def test_answer_chrome_webrtc() -> None:
    ice = IceParameters(
        "uf01",
        "p" * 24,
        (Candidate("1", 1, "udp", 2130706431, ME, 20000, "host"),),
    )
    result = answer(load("chrome-webrtc.sdp"), ice=ice, dtls=DtlsParameters((FINGERPRINT,)))
    audio_m, video_m, data_m = result.sdp.media
    assert audio_m.proto == "UDP/TLS/RTP/SAVPF"
    assert audio_m.fmts[0] == "111"
    assert audio_m.setup == "active"  # answerer to actpass (RFC 8842 §5.3)
    assert audio_m.fingerprints == [FINGERPRINT]
    assert audio_m.ice_ufrag == "uf01"
    assert audio_m.candidates == list(ice.candidates)
    assert audio_m.mid == "0"
    assert audio_m.rtcp_mux
    assert (video_m.port, data_m.port) == (0, 0)
    assert (video_m.mid, data_m.mid) == ("1", "2")
    assert result.sdp.groups == [Group("BUNDLE", ("0",))]
    audio = result.audio
    # c=0.0.0.0 with ICE is "candidates come later", not a hold
    assert not audio.held_by_remote
    assert audio.direction is Direction.SENDRECV
    assert audio.dtls is not None
    assert audio.dtls.local_is_client
    assert audio.dtls.remote_setup == "actpass"
    assert audio.ice is not None
    assert audio.ice.options == ("trickle",)
    assert audio.telephone_event_pt == 126  # 8000 Hz is what we support
    assert audio.mid == "0"


def test_dtls_offer_without_local_dtls_is_refused() -> None:
    with pytest.raises(NegotiationError) as info:
        answer(load("chrome-webrtc.sdp"))
    assert info.value.status == 488
    assert "DTLS" in info.value.reason


def test_telephone_event_at_the_codec_rate_is_preferred() -> None:
    local = [OPUS, TELEPHONE_EVENT, Codec("telephone-event", 48000, fmtp="0-16")]
    result = answer(load("chrome-webrtc.sdp"), local, dtls=DtlsParameters((FINGERPRINT,)))
    assert result.audio.telephone_event_pt == 110
    assert result.sdp.media[0].fmts == ["111", "110"]


def test_telephone_event_dropped_unless_both_support_it() -> None:
    result = answer(load("asterisk.sdp"), [PCMU])
    assert result.sdp.media[0].fmts == ["0"]
    assert result.audio.telephone_event_pt is None
    only_ours = answer(offer_text("m=audio 5000 RTP/AVP 0\n"), [PCMU, TELEPHONE_EVENT])
    assert only_ours.sdp.media[0].fmts == ["0"]


def test_static_payload_types_match_without_rtpmap() -> None:
    result = answer(offer_text("m=audio 5000 RTP/AVP 18 8 0\n"), [PCMU, PCMA])
    assert result.sdp.media[0].fmts == ["0", "8"]
    assert result.audio.codec == Codec("PCMU", 8000, payload_type=0)


def test_dynamic_type_without_rtpmap_is_not_matched() -> None:
    with pytest.raises(NegotiationError):
        answer(offer_text("m=audio 5000 RTP/AVP 96\n"), [OPUS])


def test_comfort_noise_is_negotiated_but_never_sent_as_audio() -> None:
    result = answer(offer_text("m=audio 5000 RTP/AVP 13 0\n"), [CN, PCMU])
    assert result.sdp.media[0].fmts == ["13", "0"]
    assert result.audio.payload_type == 0
    with pytest.raises(NegotiationError):
        answer(offer_text("m=audio 5000 RTP/AVP 13\n"), [CN, PCMU])


def test_ptime_from_the_offer_and_our_own() -> None:
    result = answer(offer_text("m=audio 5000 RTP/AVP 0\na=ptime:30\n"), ptime=40)
    assert result.audio.ptime == 30
    assert result.sdp.media[0].ptime == 40
    capped = answer(offer_text("m=audio 5000 RTP/AVP 0\na=ptime:60\na=maxptime:40\n"))
    assert capped.audio.ptime == 40


# --- rejecting streams -------------------------------------------------------


def test_multi_stream_offer_answers_every_m_line() -> None:
    result = answer(load("rfc3264-multi.sdp"))
    ports = [m.port for m in result.sdp.media]
    # first audio offered with port 0; second accepted; video rejected
    assert ports == [0, 20000, 0, 0]
    assert [m.media for m in result.sdp.media] == ["audio", "audio", "video", "video"]
    assert result.sdp.media[1].fmts == ["0", "8"]
    # the offer is sendonly: we answer recvonly and are held
    assert result.sdp.media[1].direction is Direction.RECVONLY
    assert result.audio.held_by_remote
    assert result.audio.remote_address == "2001:db8::1"


def test_only_the_first_usable_audio_stream_is_accepted() -> None:
    offer = offer_text("m=audio 5000 RTP/AVP 0\nm=audio 5002 RTP/AVP 0\n")
    assert [m.port for m in answer(offer).sdp.media] == [20000, 0]


def test_unsupported_streams_rejected_with_port_zero() -> None:
    offer = offer_text("m=audio 5000 RTP/AVP 97\na=rtpmap:97 AMR/8000\nm=audio 5002 RTP/AVP 8\n")
    result = answer(offer)
    assert [m.port for m in result.sdp.media] == [0, 20000]
    assert result.sdp.media[0].fmts == ["97"]


@pytest.mark.parametrize(
    ("offer", "reason", "warning"),
    [
        (offer_text("m=audio 0 RTP/AVP 0\n"), "port 0", 304),
        (offer_text("m=video 5000 RTP/AVP 31\n"), "no audio", 304),
        (offer_text("m=audio 5000 RTP/AVP 97\na=rtpmap:97 AMR/8000\n"), "codec", 305),
        (offer_text("m=audio 5000 RTP/SAVP 0\n"), "SRTP", 302),
        (offer_text("m=audio 5000 TCP/MSRP *\n"), "transport", 302),
        (offer_text("m=audio 5000 RTP/AVP 0\n", connection=""), "c= line", 307),
        (offer_text(""), "no audio", 304),
    ],
)
def test_unacceptable_offers_raise_488(offer: str, reason: str, warning: int) -> None:
    with pytest.raises(NegotiationError) as info:
        answer(offer)
    assert info.value.status == 488
    assert reason in info.value.reason
    assert info.value.warning == warning


def test_require_srtp_refuses_plain_rtp() -> None:
    with pytest.raises(NegotiationError):
        answer(load("sipp-uac.sdp"), require_srtp=True)


def test_sdes_disabled_refuses_savp() -> None:
    with pytest.raises(NegotiationError):
        answer(load("linphone-srtp.sdp"), srtp_suites=())


# --- directions and hold (RFC 3264 §6.1, §8.4) --------------------------------

S, R, SR, NO = Direction.SENDONLY, Direction.RECVONLY, Direction.SENDRECV, Direction.INACTIVE


@pytest.mark.parametrize(
    ("offered", "wanted", "expected"),
    [
        (SR, SR, SR),
        (SR, S, S),  # we put the peer on hold
        (SR, R, R),
        (SR, NO, NO),
        (S, SR, R),  # the peer puts us on hold
        (S, S, NO),  # both on hold
        (S, R, R),
        (S, NO, NO),
        (R, SR, S),
        (R, S, S),
        (R, R, NO),
        (NO, SR, NO),
        (NO, S, NO),
    ],
)
def test_answer_direction(offered: Direction, wanted: Direction, expected: Direction) -> None:
    result = answer(offer_text(f"m=audio 5000 RTP/AVP 0\na={offered.value}\n"), direction=wanted)
    assert result.sdp.media[0].direction is expected
    assert result.audio.direction is expected
    assert result.audio.held_by_remote == (not offered.receives)


def test_session_level_direction_applies() -> None:
    result = answer(offer_text("m=audio 5000 RTP/AVP 0\n", session="a=sendonly\n"))
    assert result.sdp.media[0].direction is Direction.RECVONLY


def test_legacy_hold_address() -> None:
    offer = load("legacy-hold.sdp")
    assert is_hold(offer)
    result = answer(offer)
    assert result.audio.held_by_remote
    assert result.audio.direction is Direction.RECVONLY
    assert result.sdp.media[0].direction is Direction.RECVONLY
    assert not is_hold(load("sipp-uac.sdp"))
    assert not is_hold(load("chrome-webrtc.sdp"))  # 0.0.0.0 + ICE is not hold


def test_hold_offer_and_resume() -> None:
    session = LocalSession(ME, session_id="77")
    active = create_offer([PCMU], ME, 4000, session=session)
    assert not is_hold(active)
    held = create_offer([PCMU], ME, 4000, session=session, direction=Direction.SENDONLY)
    assert is_hold(held)
    assert held.origin.session_version == active.origin.session_version + 1
    peer = create_answer(held, [PCMU], "198.51.100.7", 6000)
    assert peer.sdp.media[0].direction is Direction.RECVONLY
    ours = process_answer(held, peer.sdp)
    assert ours.direction is Direction.SENDONLY
    assert not ours.held_by_remote


# --- offers, answers processed, o= versions -----------------------------------


def test_create_offer_layout() -> None:
    session = LocalSession(ME, session_id="12345", username="trunkline")
    offer = create_offer(
        [OPUS, PCMU, Codec("speex", 16000), TELEPHONE_EVENT],
        ME,
        4000,
        session=session,
        ptime=20,
        rtcp_mux=True,
    )
    assert str(offer) == (
        "v=0\r\no=trunkline 12345 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n"
        "t=0 0\r\nm=audio 4000 RTP/AVP 111 0 96 101\r\na=rtpmap:111 opus/48000/2\r\n"
        "a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:96 speex/16000\r\na=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\na=ptime:20\r\na=rtcp-mux\r\na=sendrecv\r\n"
    )
    assert SessionDescription.parse(bytes(offer)) == offer


def test_payload_type_collisions_get_dynamic_numbers() -> None:
    offer = create_offer(
        [Codec("a", 8000, payload_type=96), Codec("b", 8000, payload_type=96)], ME, 1
    )
    assert offer.media[0].fmts == ["96", "97"]
    with pytest.raises(LocalSipError):
        create_offer([Codec(f"x{i}", 8000) for i in range(40)], ME, 1)
    with pytest.raises(LocalSipError):
        create_offer([], ME, 1)


def test_reoffer_keeps_payload_types() -> None:
    session = LocalSession(ME)
    first = create_offer([Codec("speex", 16000), Codec("iLBC", 8000)], ME, 4000, session=session)
    again = create_offer([Codec("iLBC", 8000), Codec("speex", 16000)], ME, 4000, session=session)
    assert first.media[0].fmts == ["96", "97"]
    assert again.media[0].fmts == ["97", "96"]


def test_version_bumps_only_on_change() -> None:
    session = LocalSession("2001:db8::5", session_id="9")
    first = create_offer([PCMU], "2001:db8::5", 4000, session=session)
    assert first.origin.addrtype == "IP6"
    assert first.connection == Connection("2001:db8::5", "IP6")
    same = create_offer([PCMU], "2001:db8::5", 4000, session=session)
    changed = create_offer([PCMU], "2001:db8::5", 4002, session=session)
    back = create_offer([PCMU], "2001:db8::5", 4002, session=session)
    versions = [sdp.origin.session_version for sdp in (first, same, changed, back)]
    assert versions == [1, 1, 2, 2]
    assert {sdp.origin.session_id for sdp in (first, same, changed)} == {"9"}


def test_answers_to_reinvites_keep_the_version() -> None:
    session = LocalSession(ME)
    offer = load("asterisk.sdp")
    first = answer(offer, session=session).sdp
    second = answer(offer, session=session).sdp
    held = answer(offer, session=session, direction=Direction.SENDONLY).sdp
    assert first.origin.session_version == second.origin.session_version
    assert held.origin.session_version == first.origin.session_version + 1


def test_process_asterisk_style_answer() -> None:
    offer = create_offer(LOCAL, ME, 4000, rtcp_mux=True)
    reply = SessionDescription.parse(
        "v=0\r\no=- 1 2 IN IP4 10.0.0.5\r\ns=Asterisk\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n"
        "m=audio 14568 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
        "a=maxptime:150\r\na=sendrecv\r\n"
    )
    audio = process_answer(offer, reply)
    assert (audio.remote_address, audio.remote_port) == ("10.0.0.5", 14568)
    assert (audio.rtcp_port, audio.rtcp_mux) == (14569, False)
    assert audio.payload_type == 8  # the answer's first codec
    assert [c.name for c in audio.codecs] == ["PCMA", "PCMU"]
    assert sorted(audio.receive_payload_types) == [0, 8, 101]
    assert audio.telephone_event_pt == 101
    assert audio.direction is Direction.SENDRECV


def test_process_answer_with_renumbered_dynamic_type() -> None:
    offer = create_offer([OPUS, TELEPHONE_EVENT], ME, 4000)
    reply = SessionDescription.parse(
        offer_text(
            "m=audio 7000 RTP/AVP 107 98\na=rtpmap:107 OPUS/48000/2\n"
            "a=rtpmap:98 telephone-event/8000\n"
        )
    )
    audio = process_answer(offer, reply)
    assert audio.payload_type == 107  # we send with the receiver's number
    assert audio.receive_payload_types[111].name == "opus"  # we receive on ours
    assert audio.telephone_event_pt == 98
    assert audio.telephone_events == "0-15"


@pytest.mark.parametrize(
    "reply",
    [
        offer_text("m=audio 0 RTP/AVP 0\n"),
        offer_text("m=audio 7000 RTP/AVP 0\nm=video 0 RTP/AVP 31\n"),
        offer_text("m=video 7000 RTP/AVP 0\n"),
        offer_text("m=audio 7000 RTP/AVP 18\n"),
        offer_text("m=audio 7000 RTP/AVP 0\n", connection=""),
    ],
)
def test_process_bad_answers(reply: str) -> None:
    offer = create_offer([PCMU], ME, 4000)
    with pytest.raises(NegotiationError):
        process_answer(offer, SessionDescription.parse(reply))


def test_sdes_end_to_end() -> None:
    suites = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"]
    crypto = [make_crypto(i + 1, suite) for i, suite in enumerate(suites)]
    offer = create_offer([PCMU], ME, 4000, crypto=crypto)
    assert offer.media[0].proto == "RTP/SAVP"
    reply = create_answer(offer, [PCMU], "198.51.100.7", 6000, srtp_suites=suites[1:])
    theirs = reply.audio
    ours = process_answer(offer, reply.sdp)
    assert ours.local_crypto == crypto[1]
    assert ours.remote_crypto == theirs.local_crypto
    assert theirs.remote_crypto == crypto[1]
    assert ours.remote_crypto is not None
    assert ours.remote_crypto.keys[0].key_bytes != crypto[1].keys[0].key_bytes


def test_sdes_answer_must_match_an_offered_tag() -> None:
    offer = create_offer([PCMU], ME, 4000, crypto=[make_crypto(1, "AES_CM_128_HMAC_SHA1_80")])
    reply = create_answer(offer, [PCMU], "198.51.100.7", 6000).sdp
    reply.media[0].remove("crypto")
    reply.media[0].add("crypto", str(make_crypto(5, "AES_CM_128_HMAC_SHA1_80")))
    with pytest.raises(NegotiationError):
        process_answer(offer, reply)


def test_dtls_ice_end_to_end() -> None:
    offerer_ice = IceParameters("aaaa", "a" * 24, options=("trickle",), end_of_candidates=False)
    answerer_ice = IceParameters("bbbb", "b" * 24, lite=True)
    offer = create_offer(
        [OPUS],
        "0.0.0.0",
        9,
        ice=offerer_ice,
        dtls=DtlsParameters((FINGERPRINT,)),
        rtcp_mux=True,
        mid="a0",
    )
    assert offer.groups == [Group("BUNDLE", ("a0",))]
    assert not is_hold(offer)
    reply = create_answer(
        offer,
        [OPUS],
        ME,
        30000,
        ice=answerer_ice,
        dtls=DtlsParameters((FINGERPRINT,), setup="passive"),
    )
    assert reply.sdp.ice_lite
    assert reply.sdp.media[0].setup == "passive"
    assert not reply.audio.dtls.local_is_client  # type: ignore[union-attr]
    ours = process_answer(offer, reply.sdp)
    assert ours.dtls is not None
    assert ours.dtls.local_is_client
    assert ours.ice is not None
    assert ours.ice.lite
    assert ours.ice.ufrag == "bbbb"
    assert ours.ice.end_of_candidates
    assert ours.rtcp_mux
    assert ours.mid == "a0"


# --- properties --------------------------------------------------------------

_codec_pool = [
    OPUS,
    G722,
    PCMU,
    PCMA,
    CN,
    TELEPHONE_EVENT,
    Codec("speex", 16000),
    Codec("iLBC", 8000, fmtp="mode=30"),
    Codec("GSM", 8000, payload_type=3),
    Codec("telephone-event", 48000, fmtp="0-16"),
]
_codec_lists = st.lists(st.sampled_from(_codec_pool), min_size=1, max_size=6, unique=True)


@settings(max_examples=200, deadline=None)
@given(
    _codec_lists, _codec_lists, st.sampled_from(list(Direction)), st.sampled_from(list(Direction))
)
def test_offer_answer_agree(
    offerer: list[Codec], answerer: list[Codec], d_offer: Direction, d_answer: Direction
) -> None:
    offer = create_offer(offerer, ME, 4000, direction=d_offer)
    offer = SessionDescription.parse(bytes(offer))
    try:
        reply = create_answer(offer, answerer, "198.51.100.7", 6000, direction=d_answer)
    except NegotiationError as error:
        assert error.status == 488
        audio_in_both = {
            c.name.lower() for c in offerer if not c.is_telephone_event and not c.is_comfort_noise
        } & {c.name.lower() for c in answerer}
        assert not audio_in_both
        return
    ours = process_answer(offer, SessionDescription.parse(bytes(reply.sdp)))
    theirs = reply.audio
    # each side sends to the other's address with a number the receiver declared
    assert (ours.remote_address, ours.remote_port) == ("198.51.100.7", 6000)
    assert (theirs.remote_address, theirs.remote_port) == (ME, 4000)
    assert ours.payload_type in theirs.receive_payload_types
    assert theirs.payload_type in ours.receive_payload_types
    # the answerer sends its most preferred codec that was offered
    expected = next(
        mine
        for mine in answerer
        if not mine.is_telephone_event
        and not mine.is_comfort_noise
        and any(mine.matches(c.rtpmap(0)) for c in offerer)
    )
    assert theirs.codec.matches(expected.rtpmap(0))
    assert ours.codec.name.lower() == theirs.receive_payload_types[ours.payload_type].name.lower()
    # directions mirror each other
    assert ours.direction.sends == theirs.direction.receives
    assert ours.direction.receives == theirs.direction.sends
    assert ours.direction.sends <= d_offer.sends
    assert theirs.direction.sends <= d_answer.sends
    assert (ours.telephone_event_pt is None) == (theirs.telephone_event_pt is None)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_answering_garbage_raises_only_our_errors(data: bytes) -> None:
    try:
        offer = SessionDescription.parse(offer_text("m=audio 5000 RTP/AVP 0 101\n").encode() + data)
    except SipParseError:
        return
    try:
        answer(offer)
    except NegotiationError as error:
        assert error.status == 488


def test_given_srtp_key_of_the_wrong_size_is_replaced() -> None:
    offer = offer_text(
        "m=audio 5000 RTP/SAVP 0\n"
        "a=crypto:1 AEAD_AES_128_GCM inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3OA==\n"
    )
    result = answer(offer, srtp_key=KEY, srtp_suites=["AEAD_AES_128_GCM", "MADE_UP"])
    local = result.audio.local_crypto
    assert local is not None
    assert len(local.keys[0].key_bytes) == 28
    made_up = offer_text("m=audio 5000 RTP/SAVP 0\na=crypto:1 MADE_UP inline:QUJD\n")
    with pytest.raises(NegotiationError):
        answer(made_up, srtp_suites=["MADE_UP"])


def test_reinvite_answer_keeps_srtp_key_and_version() -> None:
    session = LocalSession(ME)
    offer = load("linphone-srtp.sdp")
    first = answer(offer, session=session)
    again = answer(offer, session=session)
    assert first.audio.local_crypto == again.audio.local_crypto
    assert first.sdp.origin.session_version == again.sdp.origin.session_version
    fresh = answer(offer)
    assert fresh.audio.local_crypto != first.audio.local_crypto


def test_media_address_may_differ_from_origin() -> None:
    session = LocalSession("192.0.2.1", session_id="5")
    offer = create_offer([PCMU], "2001:db8::7", 4000, session=session)
    assert offer.origin.address == "192.0.2.1"
    assert offer.connection == Connection("2001:db8::7", "IP6")
    moved = create_offer([PCMU], "198.51.100.3", 4000, session=session)
    assert moved.origin.session_version == offer.origin.session_version + 1


RFC4317_OFFER = (
    "v=0\r\no=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\ns=\r\n"
    "c=IN IP4 host.atlanta.example.com\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 97\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:97 iLBC/8000\r\n"
    "m=video 51372 RTP/AVP 31 32\r\na=rtpmap:31 H261/90000\r\na=rtpmap:32 MPV/90000\r\n"
)


def test_rfc4317_audio_and_video_exchange() -> None:
    """The audio+video exchange in the style of RFC 4317 §2.1, from both ends."""
    offer = SessionDescription.parse(RFC4317_OFFER)
    assert bytes(offer) == RFC4317_OFFER.encode()
    # Bob, an audio-only PCMU phone here, rejects the video
    ours = answer(offer, [PCMU])
    assert [(m.media, m.port, m.fmts) for m in ours.sdp.media] == [
        ("audio", 20000, ["0"]),
        ("video", 0, ["31"]),
    ]
    assert ours.audio.remote_address == "host.atlanta.example.com"
    # Alice processing Bob's answer from the RFC (PCMU, and MPV video)
    bob = SessionDescription.parse(
        "v=0\r\no=bob 2808844564 2808844564 IN IP4 host.biloxi.example.com\r\ns=\r\n"
        "c=IN IP4 host.biloxi.example.com\r\nt=0 0\r\nm=audio 49174 RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\nm=video 49170 RTP/AVP 32\r\na=rtpmap:32 MPV/90000\r\n"
    )
    audio = process_answer(offer, bob)
    assert (audio.remote_address, audio.remote_port, audio.payload_type) == (
        "host.biloxi.example.com",
        49174,
        0,
    )
    assert list(audio.receive_payload_types) == [0]


def test_single_codec_answer() -> None:
    result = answer(load("asterisk.sdp"), [G722, PCMU, TELEPHONE_EVENT], single_codec=True)
    assert result.sdp.media[0].fmts == ["9", "101"]
    assert [c.name for c in result.audio.codecs] == ["G722"]
    assert sorted(result.audio.receive_payload_types) == [9, 101]


def test_answer_freeswitch_offer() -> None:
    result = answer(load("freeswitch.sdp"), [PCMA, PCMU, CN, TELEPHONE_EVENT])
    assert result.sdp.media[0].fmts == ["8", "0", "13", "101"]
    audio = result.audio
    assert (audio.rtcp_address, audio.rtcp_port) == ("203.0.113.20", 16385)  # RFC 3605
    assert audio.payload_type == 8
    assert audio.telephone_events == "0-15"
    opus = answer(load("freeswitch.sdp"), [OPUS, PCMU])
    assert opus.audio.payload_type == 102  # FreeSWITCH's number for opus
    assert opus.audio.codec.fmtp is not None
    assert "maxplaybackrate=48000" in opus.audio.codec.fmtp


def test_answer_polycom_offer_with_session_level_direction() -> None:
    result = answer(load("polycom.sdp"), [G722, PCMU, TELEPHONE_EVENT], direction=S)
    media = result.sdp.media[0]
    assert media.fmts == ["9", "0", "127"]
    assert media.direction is Direction.SENDONLY  # we hold; the phone offered sendrecv
    assert media.rtpmap()[127] == RtpMap(127, "telephone-event", 8000)
    assert result.audio.codec == Codec("G722", 8000, payload_type=9)
    assert not result.audio.held_by_remote
