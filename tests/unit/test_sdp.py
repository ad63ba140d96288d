"""Tests for trunkline.sip.sdp: parse, typed views, serialize (RFC 8866 and friends)."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trunkline.sip.errors import SipParseError
from trunkline.sip.sdp import (
    Attribute,
    Bandwidth,
    Candidate,
    Connection,
    Direction,
    Group,
    MediaDescription,
    Origin,
    Rtcp,
    RtpMap,
    SessionDescription,
    Timing,
    parse_fmtp_params,
)

DATA = Path(__file__).resolve().parent.parent / "data"
SDP_FILES = sorted((DATA / "sdp").glob("*.sdp"))


def load(name: str) -> SessionDescription:
    return SessionDescription.parse((DATA / "sdp" / name).read_bytes())


def rfc5118_body(name: str) -> bytes:
    message = (DATA / "rfc5118" / name).read_bytes().replace(b"\r\n", b"\n")
    return message.split(b"\n\n", 1)[1]


# --- round trips -------------------------------------------------------------


@pytest.mark.parametrize("path", SDP_FILES, ids=lambda p: p.stem)
def test_real_world_sdp_round_trips_byte_exactly(path: Path) -> None:
    raw = path.read_bytes().replace(b"\r\n", b"\n")
    crlf = raw.replace(b"\n", b"\r\n")
    from_lf = SessionDescription.parse(raw)
    from_crlf = SessionDescription.parse(crlf)
    assert bytes(from_lf) == crlf
    assert from_lf == from_crlf
    assert str(from_crlf) == crlf.decode()


@pytest.mark.parametrize("name", ["ipv6-in-sdp.dat", "mult-ip-in-sdp.dat"])
def test_rfc5118_sdp_bodies_round_trip(name: str) -> None:
    body = rfc5118_body(name)
    sdp = SessionDescription.parse(body)
    assert bytes(sdp) == body.replace(b"\n", b"\r\n")


def test_rfc5118_ipv6_origin_and_connection() -> None:
    sdp = SessionDescription.parse(rfc5118_body("ipv6-in-sdp.dat"))
    assert sdp.origin == Origin("assistant", "971731711378798081", 0, "2001:db8::20", "IP6")
    assert sdp.connection == Connection("2001:db8::20", "IP6")
    assert sdp.session_name == "Live video feed for today's meeting"
    assert sdp.timings == [Timing(3338481189, 3370017201)]
    assert [m.media for m in sdp.media] == ["audio", "video"]
    assert sdp.media[0].rtpmap() == {2: RtpMap(2, "G726-32", 8000)}


def test_rfc5118_mixed_ip_versions_per_media() -> None:
    sdp = SessionDescription.parse(rfc5118_body("mult-ip-in-sdp.dat"))
    assert sdp.connection is None
    audio, video = sdp.media
    assert sdp.connection_for(audio) == Connection("192.0.2.1", "IP4")
    assert sdp.connection_for(video) == Connection("2001:db8::1", "IP6")
    assert sdp.session_name == ""


# --- typed views on real-world descriptions ----------------------------------


def test_baresip_offer_views() -> None:
    sdp = load("baresip.sdp")
    (audio,) = sdp.media
    assert audio.payload_types == [96, 97, 9, 0, 8, 101]
    assert audio.rtpmap()[96] == RtpMap(96, "opus", 48000, 2)
    assert audio.rtpmap()[9] == RtpMap(9, "G722", 8000)
    assert audio.fmtp() == {96: "stereo=1;sprop-stereo=1", 97: "bitrate=48000", 101: "0-15"}
    assert audio.bandwidths == [Bandwidth("AS", 125)]
    assert audio.ptime == 20
    assert audio.maxptime is None
    assert audio.rtcp_mux
    assert audio.direction is Direction.SENDRECV
    assert sdp.get("tool") == "baresip 3.10.1"
    # unknown attributes are kept, in order
    names = [a.name for a in audio.attributes]
    assert names.index("rtcp-rsize") < names.index("label") < names.index("ssrc")
    assert audio.get("label") == "1"


def test_linphone_sdes_crypto_and_rtcp() -> None:
    sdp = load("linphone-srtp.sdp")
    (audio,) = sdp.media
    assert audio.proto == "RTP/SAVP"
    first, second = audio.crypto
    assert first.tag == 1
    assert first.suite == "AES_CM_128_HMAC_SHA1_80"
    (key,) = first.keys
    assert key.method == "inline"
    assert len(key.key_bytes) == 30
    assert (key.lifetime, key.mki, key.mki_length) == ("2^20", 1, 4)
    assert second.suite == "AES_CM_128_HMAC_SHA1_32"
    assert second.keys[0].mki_length == 32
    assert audio.rtcp == Rtcp(7079)
    assert audio.rtpmap()[18] == RtpMap(18, "G729", 8000)
    assert audio.fmtp()[18] == "annexb=yes"
    assert sdp.ice_ufrag == "a0c1d2e3"
    assert sdp.ice_pwd == "a2d1c1d6bfcd6f5a36d7c812"
    assert audio.ice_ufrag is None


def test_linphone_candidates() -> None:
    audio = load("linphone-srtp.sdp").media[0]
    candidates = audio.candidates
    assert len(candidates) == 4
    srflx = candidates[2]
    assert srflx == Candidate(
        foundation="2",
        component=1,
        transport="UDP",
        priority=1694498815,
        address="203.0.113.7",
        port=7078,
        type="srflx",
        related_address="192.168.1.30",
        related_port=7078,
    )
    assert candidates[0].type == "host"
    assert candidates[0].related_address is None


def test_asterisk_offer_views() -> None:
    sdp = load("asterisk.sdp")
    audio = sdp.media[0]
    assert sdp.session_name == "Asterisk"
    assert audio.ptime == 20
    assert audio.maxptime == 150
    assert not audio.rtcp_mux
    assert audio.rtcp is None
    assert sdp.direction_of(audio) is Direction.SENDRECV
    assert audio.rtpmap()[101] == RtpMap(101, "telephone-event", 8000)
    assert parse_fmtp_params(audio.fmtp()[101]) == {"0-16": None}


def test_chrome_webrtc_offer_views() -> None:
    sdp = load("chrome-webrtc.sdp")
    assert sdp.groups == [Group("BUNDLE", ("0", "1", "2"))]
    assert sdp.get("msid-semantic") == " WMS stream1"
    audio, video, data = sdp.media
    assert (audio.mid, video.mid, data.mid) == ("0", "1", "2")
    assert audio.proto == "UDP/TLS/RTP/SAVPF"
    assert data.proto == "UDP/DTLS/SCTP"
    assert data.fmts == ["webrtc-datachannel"]
    assert data.payload_types == []
    assert audio.ice_ufrag == "Oyef"
    assert audio.ice_options == ["trickle"]
    assert audio.setup == "actpass"
    (fingerprint,) = audio.fingerprints
    assert fingerprint.hash_function == "sha-256"
    assert fingerprint.value.startswith("D1:2C:BE")
    assert audio.rtcp == Rtcp(9, Connection("0.0.0.0"))
    assert audio.msid == "stream1 3c5b8a7e-4f1e-4bb4-9b2e-2a5cb1f0e7d1"
    host_udp, host_tcp, srflx = audio.candidates
    assert host_udp.extensions == (("generation", "0"), ("network-id", "1"))
    assert host_tcp.transport == "tcp"
    assert host_tcp.extensions[0] == ("tcptype", "active")
    assert srflx.related_port == 46243
    assert srflx.extensions == (("generation", "0"), ("network-id", "1"))
    assert audio.rtpmap()[63] == RtpMap(63, "red", 48000, 2)
    assert video.rtpmap()[97] == RtpMap(97, "rtx", 90000)


def test_rfc4566_seminar_fields() -> None:
    sdp = load("rfc4566-seminar.sdp")
    assert sdp.information == "A Seminar on the session description protocol"
    assert sdp.uri == "http://www.example.com/seminars/sdp.pdf"
    assert sdp.emails == ["j.doe@example.com (Jane Doe)"]
    assert sdp.phones == ["+1 617 555-6011"]
    assert sdp.connection == Connection("224.2.17.12", ttl=127)
    assert sdp.bandwidths == [Bandwidth("CT", 128)]
    assert sdp.timings == [Timing(2873397496, 2873404696, ["604800 3600 0 90000"])]
    assert sdp.zone == "2882844526 -1h 2898848070 0"
    assert sdp.key == "prompt"
    audio, video = sdp.media
    # the session-level direction applies to every stream without its own
    assert sdp.direction is Direction.RECVONLY
    assert audio.direction is None
    assert sdp.direction_of(audio) is Direction.RECVONLY
    assert video.port == 51372
    assert video.port_count == 2
    assert video.bandwidths == [Bandwidth("AS", 64)]


def test_rfc3264_multiple_streams() -> None:
    sdp = load("rfc3264-multi.sdp")
    assert sdp.origin.session_id == "28908764872"
    first, second, _, last = sdp.media
    assert first.rejected
    assert not second.rejected
    assert sdp.direction_of(second) is Direction.SENDONLY
    assert last.connection == Connection("ff15::101", "IP6", count=3)
    assert str(last.connection) == "IN IP6 ff15::101/3"


def test_sipp_and_legacy_hold() -> None:
    sipp = load("sipp-uac.sdp")
    assert sipp.media[0].rtpmap() == {0: RtpMap(0, "PCMU", 8000)}
    hold = load("legacy-hold.sdp")
    assert hold.connection is not None
    assert hold.connection.is_hold
    assert not Connection("192.0.2.1").is_hold
    assert Connection("::", "IP6").is_hold
    # a static payload type may come without rtpmap (RFC 3551)
    assert 0 not in hold.media[0].rtpmap()
    assert hold.media[0].payload_types == [0, 101]


# --- building and editing ----------------------------------------------------


def test_build_and_serialize() -> None:
    media = MediaDescription("audio", 4000, "RTP/AVP", ["0", "101"])
    media.add("rtpmap", "0 PCMU/8000")
    media.add("rtpmap", "101 telephone-event/8000")
    media.add("fmtp", "101 0-16")
    media.add("rtcp-mux")
    media.set_direction(Direction.SENDONLY)
    sdp = SessionDescription(
        origin=Origin("-", "42", 1, "192.0.2.5"),
        connection=Connection("192.0.2.5"),
        media=[media],
    )
    assert bytes(sdp) == (
        b"v=0\r\no=- 42 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtcp-mux\r\n"
        b"a=sendonly\r\n"
    )
    assert SessionDescription.parse(bytes(sdp)) == sdp


def test_attribute_editing() -> None:
    media = load("asterisk.sdp").media[0]
    media.set_direction(Direction.INACTIVE)
    assert media.direction is Direction.INACTIVE
    assert media.get_all("sendrecv") == []
    assert media.remove("rtpmap") == 5
    assert media.rtpmap() == {}
    assert not media.has("rtpmap")
    media.set_direction(None)
    assert media.direction is None
    assert media.get("nothing") is None


def test_same_content_ignores_only_the_version() -> None:
    sdp = load("baresip.sdp")
    other = sdp.copy()
    other.origin.session_version += 1
    assert sdp.same_content(other)
    other.media[0].port += 2
    assert not sdp.same_content(other)
    assert sdp.media[0].port == 10128  # copy() is deep


def test_ptime_fraction_and_non_rtp_fmtp() -> None:
    sdp = SessionDescription.parse(
        "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 5 RTP/AVP 0\na=ptime:30.0\n"
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\na=fmtp:webrtc-datachannel x=1\n"
    )
    assert sdp.media[0].ptime == 30
    assert sdp.media[1].fmtp() == {}


# --- errors ------------------------------------------------------------------

GOOD = "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 5 RTP/AVP 0\n"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "o=- 1 1 IN IP4 h\ns=-\n",
        "v=1\no=- 1 1 IN IP4 h\ns=-\n",
        "v=0\ns=-\nt=0 0\n",
        "v=0\no=- 1 1 IN IP4 h\nt=0 0\n",
        "v=0\no=- 1 IN IP4 h\ns=-\n",
        "v=0\no=- x 1 IN IP4 h\ns=-\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\ns=again\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nr=1 2\nt=0 0\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 1.2.3.4/x\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP6 ::1/2/3\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nb=AS\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nX=1\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nnoequals\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\na=bad name\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\na=sendrecv:1\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\na=setup:sideways\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\na=group:\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\na=fingerprint:sha-256 XYZ\n",
        GOOD + "u=http://late\n",
        GOOD + "i=1\ni=2\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=audio 70000 RTP/AVP 0\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=audio -1 RTP/AVP 0\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=audio 5\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nm=audio 5/x RTP/AVP 0\n",
        GOOD + "a=rtpmap:0 PCMU\n",
        GOOD + "a=rtpmap:200 PCMU/8000\n",
        GOOD + "a=rtpmap:0 PCMU/eight\n",
        GOOD + "a=ptime:fast\n",
        GOOD + "a=rtcp:port\n",
        GOOD + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:!!!\n",
        GOOD + "a=crypto:1 AES_CM_128_HMAC_SHA1_80 uri:http://x\n",
        GOOD + "a=crypto:1 AES_CM_128_HMAC_SHA1_80\n",
        GOOD + "a=crypto:1 S inline:QUJD|1|2:3|4\n",
        GOOD + "a=candidate:1 1 UDP 1 h 5 host\n",
        GOOD + "a=candidate:1 1 UDP 1 h 5 typ host raddr\n",
        GOOD + "a=candidate:1 x UDP 1 h 5 typ host\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\x00\n",
        "v=0\no=- 1 1 IN IP4 h\ns=a\rb\n",
        "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio ² RTP/AVP 0\n",
    ],
)
def test_bad_sdp_raises_400(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        SessionDescription.parse(text)
    assert info.value.status == 400
    assert info.value.reason.startswith("Bad SDP")


def test_good_baseline_parses() -> None:
    assert SessionDescription.parse(GOOD).media[0].fmts == ["0"]


def test_non_utf8_bytes_round_trip() -> None:
    raw = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=caf\xe9\r\nt=0 0\r\n"
    assert bytes(SessionDescription.parse(raw)) == raw


# --- property tests ----------------------------------------------------------

_tokens = st.text(alphabet=string.ascii_letters + string.digits + "-.+_", min_size=1, max_size=8)
_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]),
    max_size=20,
)
_ports = st.integers(0, 65535)
_addresses = st.one_of(
    st.ip_addresses(v=4).map(str).map(Connection),
    st.ip_addresses(v=6).map(str).map(lambda a: Connection(a, "IP6")),
    st.builds(Connection, st.just("224.2.1.1"), ttl=st.integers(0, 255), count=st.integers(1, 9)),
)
_attribute_names = st.sampled_from(["rtcp-mux", "sendonly", "x-custom", "label", "tool", "foo"])
_attributes = st.one_of(
    st.builds(Attribute, _attribute_names),
    st.builds(Attribute, st.sampled_from(["label", "x-custom", "tool"]), _text),
    st.builds(
        lambda pt, enc, rate: Attribute("rtpmap", str(RtpMap(pt, enc, rate))),
        st.integers(0, 127),
        _tokens,
        st.integers(1, 96000),
    ),
    st.builds(
        lambda c: Attribute("candidate", str(c)),
        st.builds(
            Candidate,
            foundation=_tokens,
            component=st.integers(1, 2),
            transport=st.sampled_from(["udp", "tcp", "UDP"]),
            priority=st.integers(0, 2**32 - 1),
            address=st.ip_addresses().map(str),
            port=_ports,
            type=st.sampled_from(["host", "srflx", "relay", "prflx"]),
            related_address=st.none() | st.ip_addresses().map(str),
            related_port=st.none() | _ports,
            extensions=st.lists(st.tuples(_tokens, _tokens), max_size=2).map(tuple),
        ),
    ),
)


@st.composite
def _media(draw: st.DrawFn) -> MediaDescription:
    proto = draw(st.sampled_from(["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "udp"]))
    connection = draw(st.none() | _addresses)
    return MediaDescription(
        media=draw(st.sampled_from(["audio", "video", "application", "text"])),
        port=draw(_ports),
        proto=proto,
        fmts=draw(st.lists(st.integers(0, 127).map(str), min_size=1, max_size=5)),
        port_count=draw(st.none() | st.integers(1, 4)),
        information=draw(st.none() | _text),
        connection=connection,
        extra_connections=draw(st.lists(_addresses, max_size=1)) if connection else [],
        bandwidths=draw(st.lists(st.builds(Bandwidth, _tokens, st.integers(0, 10**6)), max_size=2)),
        key=draw(st.none() | _text),
        attributes=draw(st.lists(_attributes, max_size=6)),
    )


@st.composite
def _sessions(draw: st.DrawFn) -> SessionDescription:
    return SessionDescription(
        origin=Origin(
            username=draw(_tokens),
            session_id=str(draw(st.integers(0, 2**63))),
            session_version=draw(st.integers(0, 2**63)),
            address=draw(st.ip_addresses().map(str)),
            addrtype=draw(st.sampled_from(["IP4", "IP6"])),
        ),
        session_name=draw(_text),
        information=draw(st.none() | _text),
        uri=draw(st.none() | _text),
        emails=draw(st.lists(_text, max_size=2)),
        phones=draw(st.lists(_text, max_size=2)),
        connection=draw(st.none() | _addresses),
        bandwidths=draw(st.lists(st.builds(Bandwidth, _tokens, st.integers(0, 10**6)), max_size=2)),
        timings=draw(
            st.lists(
                st.builds(
                    Timing,
                    st.integers(0, 2**40),
                    st.integers(0, 2**40),
                    st.lists(_text, max_size=2),
                ),
                max_size=2,
            )
        ),
        zone=draw(st.none() | _text),
        key=draw(st.none() | _text),
        attributes=draw(st.lists(_attributes, max_size=4)),
        media=draw(st.lists(_media(), max_size=4)),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sessions())
def test_generated_sessions_survive_serialize_parse(sdp: SessionDescription) -> None:
    parsed = SessionDescription.parse(bytes(sdp))
    assert parsed == sdp
    assert bytes(parsed) == bytes(sdp)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_parse_or_raise_sip_parse_error(data: bytes) -> None:
    _parse_or_400(b"v=0\r\n" + data)
    _parse_or_400(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("vosicbtrzkamu=:/ 0123456789\r\n.ABCINP")), max_size=80))
def test_sdp_alphabet_noise_parses_or_raises(chars: list[str]) -> None:
    _parse_or_400("v=0\no=- 1 1 IN IP4 h\ns=-\n" + "".join(chars))


def _parse_or_400(data: bytes | str) -> SessionDescription | None:
    try:
        sdp = SessionDescription.parse(data)
    except SipParseError as error:
        assert error.status == 400
        return None
    # whatever parses serializes to something that parses to the same thing
    again = SessionDescription.parse(bytes(sdp))
    assert again == sdp
    return sdp


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a byte
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:  # insert an SDP-ish byte
            buf[pos:pos] = bytes([rng.choice(b" =:/\r\n0123456789aAzZ\x00\xff;|^")])
        elif op == 2:  # delete a run
            del buf[pos : pos + rng.randint(1, 8)]
        elif op == 3:  # duplicate a line
            lines = bytes(buf).split(b"\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            buf = bytearray(b"\n".join(lines))
        elif op == 4:  # truncate
            del buf[pos:]
        else:  # swap two lines
            lines = bytes(buf).split(b"\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            buf = bytearray(b"\n".join(lines))
    return bytes(buf)


def test_fuzz_twenty_thousand_mutations() -> None:
    rng = random.Random(20261127)
    corpus = [path.read_bytes() for path in SDP_FILES]
    parsed = 0
    for _ in range(20_000):
        if _parse_or_400(_mutate(rng, rng.choice(corpus))) is not None:
            parsed += 1
    # the mutations must exercise both outcomes
    assert 0 < parsed < 20_000


def test_lone_surrogate_text_is_rejected() -> None:
    with pytest.raises(SipParseError):
        SessionDescription.parse("v=0\no=- 1 1 IN IP4 h\ns=\ud800\n")


# -- lenient mode (RFC 8866 §5.13: ignore what is not understood) ---------------------


def rfc4475_body(name: str) -> bytes:
    return (DATA / "rfc4475" / name).read_bytes().partition(b"\r\n\r\n")[2]


def test_rfc4475_lpc_rtpmap_strict_rejects_lenient_keeps() -> None:
    body = rfc4475_body("esc01.dat")
    assert b"a=rtpmap:31 LPC\r\n" in body
    with pytest.raises(SipParseError) as info:
        SessionDescription.parse(body)
    assert info.value.status == 400
    sdp = SessionDescription.parse(body, strict=False)
    audio, video = sdp.media
    assert audio.payload_types == [0, 12] and audio.rtpmap() == {}
    assert video.payload_types == [31]
    assert video.rtpmap() == {}  # the malformed line is skipped by the typed view
    assert video.get("rtpmap") is None and not video.has("rtpmap")
    [kept] = video.malformed
    assert (kept.name, kept.value) == ("rtpmap", "31 LPC")
    assert sdp.problems == [f"a=rtpmap:31 LPC: {kept.malformed}"]
    assert "rtpmap" in (kept.malformed or "")
    assert bytes(sdp) == body  # kept as written


def test_every_rfc4475_sdp_body_parses_leniently() -> None:
    bodies = [rfc4475_body(p.name) for p in sorted((DATA / "rfc4475").glob("*.dat"))]
    # Those with a whole session section (mismatch02 and lwsruri omit s= on purpose).
    lpc = [
        b
        for b in bodies
        if b.startswith(b"v=0") and b"\r\ns=-\r\n" in b and b"a=rtpmap:31 LPC" in b
    ]
    assert len(lpc) >= 10
    for body in lpc:
        sdp = SessionDescription.parse(body, strict=False)
        assert [m.media for m in sdp.media] == ["audio", "video"]
        assert len(sdp.problems) == 1


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("a=ptime:twenty", "media"),
        ("a=maxptime:-", "media"),
        ("a=rtcp:notaport", "media"),
        ("a=crypto:1 NO_SUCH_SUITE", "media"),
        ("a=candidate:1 1 UDP", "media"),
        ("a=fingerprint:sha-256", "media"),
        ("a=setup:sideways", "media"),
        ("a=sendonly:now", "media"),
        ("a=group:", "session"),
        ("a=setup:sideways", "session"),
        ("a=fingerprint:nohash", "session"),
    ],
)
def test_malformed_known_attribute_strict_vs_lenient(line: str, level: str) -> None:
    session = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    media = "m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:8 PCMA/8000\r\n"
    text = (
        session + line + "\r\n" + media if level == "session" else session + media + line + "\r\n"
    )
    with pytest.raises(SipParseError):
        SessionDescription.parse(text)
    sdp = SessionDescription.parse(text, strict=False)
    assert sdp.problems and sdp.problems[0].startswith(line + ": Bad SDP:")
    [audio] = sdp.media
    # Everything understood is still there, and no typed view raises.
    assert audio.rtpmap()[8].encoding == "PCMA"
    assert audio.payload_types == [0, 8]
    _ = (audio.ptime, audio.maxptime, audio.rtcp, audio.crypto, audio.candidates)
    _ = (audio.fingerprints, audio.setup, sdp.groups, sdp.setup, sdp.fingerprints)
    assert sdp.direction_of(audio) is Direction.SENDRECV
    assert str(sdp) == text
    again = SessionDescription.parse(str(sdp), strict=False)
    assert again == sdp and again.problems == sdp.problems
    copy = sdp.copy()
    assert copy.problems == sdp.problems
    copy.validate()  # a marked attribute stays out of the strict checks of a copy too


def test_lenient_keeps_the_good_instances_of_a_repeated_attribute() -> None:
    text = (
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=ptime:x\r\na=ptime:30\r\n"
    )
    sdp = SessionDescription.parse(text, strict=False)
    [audio] = sdp.media
    assert audio.rtpmap() == {101: RtpMap(101, "telephone-event", 8000)}
    assert audio.ptime == 30
    assert len(sdp.problems) == 2


@pytest.mark.parametrize(
    "text",
    [
        "v=0\r\ns=-\r\nt=0 0\r\n",  # no o=
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nt=0 0\r\n",  # no s=
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4\r\n",  # bad c=
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nm=audio port RTP/AVP 0\r\n",  # bad m=
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\na=\r\n",  # no attribute name
    ],
)
def test_lenient_still_rejects_broken_structure(text: str) -> None:
    for strict in (True, False):
        with pytest.raises(SipParseError):
            SessionDescription.parse(text, strict=strict)


def test_strict_checks_every_instance_of_a_single_valued_attribute() -> None:
    text = (
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0\r\na=ptime:20\r\na=ptime:x\r\n"
    )
    with pytest.raises(SipParseError, match="ptime"):
        SessionDescription.parse(text)
    assert SessionDescription.parse(text, strict=False).media[0].ptime == 20
