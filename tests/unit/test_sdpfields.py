"""Tests for trunkline.sip.sdpfields: SDP line and attribute values (RFC 8866, 3605, 4568, 8839)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.sip.errors import LocalSipError, SipParseError
from trunkline.sip.sdpcodecs import (
    G722,
    OPUS,
    PCMU,
    STATIC_PAYLOAD_TYPES,
    Codec,
    RtpMap,
    parse_fmtp_params,
)
from trunkline.sip.sdpcrypto import Crypto, CryptoKey, Fingerprint, make_crypto
from trunkline.sip.sdpfields import (
    Attribute,
    Bandwidth,
    Candidate,
    Connection,
    Direction,
    Group,
    Origin,
    Rtcp,
    Timing,
)


@pytest.mark.parametrize(
    ("cls", "text"),
    [
        (RtpMap, "111 opus/48000/2"),
        (RtpMap, "0 PCMU/8000"),
        (Rtcp, "53020 IN IP6 2001:db8::9"),
        (
            Crypto,
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
        ),
        (Crypto, "7 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"),
        (
            Crypto,
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4;"
            "inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP",
        ),
        (Candidate, "a0+b 1 UDP 2130706431 2001:db8::3 9000 typ relay raddr :: rport 0 x y"),
        (Candidate, "1 2 tcp 1 host.local 9 typ host tcptype passive"),
        (Fingerprint, "sha-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB"),
        (Group, "LS 1 2"),
        (Connection, "IN IP4 224.2.1.1/127/3"),
        (Origin, "- 0 0 IN IP4 h.example.com"),
        (Bandwidth, "TIAS:64000"),
        (Attribute, "rtcp-fb:* nack"),
    ],
)
def test_typed_values_round_trip(cls: type[Any], text: str) -> None:
    value = cls.parse(text)
    assert str(value) == text


def test_crypto_with_several_keys_and_session_params() -> None:
    crypto = Crypto.parse(
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4;"
        "inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|2^20|2:4 FEC_ORDER=FEC_SRTP"
    )
    assert [k.mki for k in crypto.keys] == [1, 2]
    assert crypto.session_params == ("FEC_ORDER=FEC_SRTP",)
    assert CryptoKey.parse("inline:QUJjZGVmMTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5|1:4").lifetime is None


def test_fmtp_params() -> None:
    assert parse_fmtp_params("minptime=10; useinbandfec=1") == {
        "minptime": "10",
        "useinbandfec": "1",
    }
    assert parse_fmtp_params("") == {}


def test_direction_algebra() -> None:
    assert Direction.SENDONLY.reversed() is Direction.RECVONLY
    assert Direction.INACTIVE.reversed() is Direction.INACTIVE
    assert Direction.SENDRECV.reversed() is Direction.SENDRECV
    assert Direction.from_flags(sends=False, receives=True) is Direction.RECVONLY
    assert Direction.SENDRECV.sends and Direction.SENDRECV.receives
    assert not Direction.INACTIVE.sends


@pytest.mark.parametrize(
    ("cls", "text"),
    [
        (Origin, "- 1 1 IN IP4"),
        (Origin, "- 1 -1 IN IP4 h"),
        (Connection, "IN IP4"),
        (Connection, "IN IP4 /5"),
        (Connection, "IN IP4 224.2.1.1/300"),
        (Bandwidth, "AS:-1"),
        (Timing, "0"),
        (Attribute, "bad name:1"),
        (RtpMap, "0 PCMU/8000/2/1"),
        (RtpMap, "x PCMU/8000"),
        (Rtcp, ""),
        (Rtcp, "99999"),
        (CryptoKey, "inline:"),
        (CryptoKey, "inline:QUJD|never"),
        (CryptoKey, "inline:QUJD|1:x"),
        (Crypto, "x AES_CM_128_HMAC_SHA1_80 inline:QUJD"),
        (Candidate, "1 1 UDP 1 h 5 typ host generation"),
        (Candidate, "1 1 UDP 99999999999 h 5 typ host"),
        (Fingerprint, "sha-256"),
        (Fingerprint, "sha-256 A:B"),
        (Group, ""),
    ],
)
def test_bad_values_raise_400(cls: type[Any], text: str) -> None:
    with pytest.raises(SipParseError) as info:
        cls.parse(text)
    assert info.value.status == 400


def test_timing_and_connection_defaults() -> None:
    assert str(Timing()) == "0 0"
    assert str(Connection("ff15::101", "IP6", count=3)) == "IN IP6 ff15::101/3"
    # other address types are kept as written
    assert Connection.parse("IN X-ATM 1/2/3").address == "1/2/3"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([RtpMap, Rtcp, CryptoKey, Crypto, Candidate, Fingerprint, Group]), st.text())
def test_value_parsers_raise_only_sip_parse_error(cls: type[Any], text: str) -> None:
    try:
        value = cls.parse(text)
    except SipParseError:
        return
    assert cls.parse(str(value)) == value


def test_crypto_key_without_base64_padding_is_accepted() -> None:
    # AEAD_AES_128_GCM: 28 bytes of key and salt, 38 base64 characters unpadded
    key = CryptoKey.parse("inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3OA")
    assert key.key_bytes == b"1234567890123456789012345678"
    assert str(key) == "inline:MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3OA"


def test_make_crypto_key_lengths() -> None:
    crypto = make_crypto(1, "AEAD_AES_256_GCM")
    assert len(crypto.keys[0].key_bytes) == 44
    with pytest.raises(LocalSipError):
        make_crypto(1, "NULL_HMAC")
    with pytest.raises(LocalSipError):
        make_crypto(1, "AES_CM_128_HMAC_SHA1_80", b"short")


def test_codec_matching_and_rtpmap() -> None:
    assert PCMU.matches(RtpMap(0, "pcmu", 8000))
    assert PCMU.matches(RtpMap(0, "PCMU", 8000, 1))
    assert not PCMU.matches(RtpMap(0, "PCMU", 16000))
    assert OPUS.matches(RtpMap(111, "OPUS", 48000, 2))
    assert not OPUS.matches(RtpMap(111, "opus", 48000))  # opus is always /2 (RFC 7587)
    assert str(PCMU.rtpmap(0)) == "0 PCMU/8000"
    assert str(OPUS.rtpmap(96)) == "96 opus/48000/2"
    # RFC 3551: G.722 is written with an 8000 Hz clock, static type 9
    assert STATIC_PAYLOAD_TYPES[9] == G722
    assert STATIC_PAYLOAD_TYPES[18] == Codec("G729", 8000, payload_type=18)
    assert Codec("telephone-event", 16000).is_telephone_event
    assert Codec("cn", 8000).is_comfort_noise
