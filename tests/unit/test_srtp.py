"""SRTP: RFC 3711 Appendix B vectors, libsrtp checked against them, SDES keys, replay."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.media.srtp import SUITES, CryptoAttribute, SrtpContext, SrtpError

# RFC 3711 Appendix B.2 (AES-CM keystream) -- checked against the RFC text.
B2_SESSION_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
B2_IV = bytes.fromhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")  # salt "already shifted"
B2_KEYSTREAM_START = bytes.fromhex(
    "E03EAD0935C95E80E166B16DD92B4EB4"
    "D23513162B02D0F72A43A2FE4A5F97AB"
    "41E95B3BB0A2E8DD477901E4FCA894C0"
)
B2_KEYSTREAM_END = bytes.fromhex(  # counters ...FEFF, ...FF00, ...FF01
    "EC8CDF7398607CB0F2D21675EA9EA1E4"
    "362B7C3C6773516318A077D7FC5073AE"
    "6A2CC3787889374FBEB4C81B17BA6C44"
)
B2_SEGMENT = 1044512  # octets (65282 AES blocks)

# RFC 3711 Appendix B.3 (key derivation, kdr = 0).
B3_MASTER_KEY = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
B3_MASTER_SALT = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
B3_CIPHER_KEY = bytes.fromhex("C61E7A93744F39EE10734AFE3FF7A087")
B3_CIPHER_SALT = bytes.fromhex("30CBBC08863D8C85D49DB34A9AE1")
B3_AUTH_KEY = bytes.fromhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")


def aes_cm(key: bytes, iv: bytes, length: int) -> bytes:
    """AES counter-mode keystream (RFC 3711 §4.1.1): the counter is the 128-bit IV + i."""
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return encryptor.update(bytes(length)) + encryptor.finalize()


def derive(label: int, length: int) -> bytes:
    """RFC 3711 §4.3.1 with kdr = 0: x = (label || 0^48) XOR master salt; IV = x * 2^16."""
    key_id = (label << 48).to_bytes(7, "big").rjust(14, b"\0")
    x = bytes(a ^ b for a, b in zip(key_id, B3_MASTER_SALT, strict=True))
    return aes_cm(B3_MASTER_KEY, x + b"\0\0", length)


def rtp_packet(seq: int, ssrc: int = 0xDECAFBAD, payload: bytes = b"\xab" * 20) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


def test_b2_aes_cm_keystream() -> None:
    stream = aes_cm(B2_SESSION_KEY, B2_IV, B2_SEGMENT)
    assert stream[:48] == B2_KEYSTREAM_START
    assert stream[-48:] == B2_KEYSTREAM_END


def test_b3_key_derivation() -> None:
    assert derive(0x00, 16) == B3_CIPHER_KEY
    assert derive(0x02, 14) == B3_CIPHER_SALT
    assert derive(0x01, 20) == B3_AUTH_KEY


def test_libsrtp_output_matches_rfc3711_with_the_b3_keys() -> None:
    """libsrtp, keyed with the B.3 master key, encrypts and tags exactly as §3.3/§4 say."""
    ctx = SrtpContext("AES_CM_128_HMAC_SHA1_80", B3_MASTER_KEY + B3_MASTER_SALT, bytes(30))
    seq, ssrc = 0x1234, 0xDECAFBAD
    plain = rtp_packet(seq, ssrc)
    srtp = ctx.protect(plain)
    header, payload = plain[:12], plain[12:]
    # §4.1.1: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16), packet index i = seq (ROC 0).
    iv_int = (int.from_bytes(B3_CIPHER_SALT, "big") << 16) ^ (ssrc << 64) ^ (seq << 16)
    keystream = aes_cm(B3_CIPHER_KEY, iv_int.to_bytes(16, "big"), len(payload))
    cipher = bytes(a ^ b for a, b in zip(payload, keystream, strict=True))
    # §4.2: tag = HMAC-SHA1(k_a, authenticated portion || ROC) truncated to 80 bits.
    tag = hmac.new(B3_AUTH_KEY, header + cipher + bytes(4), hashlib.sha1).digest()[:10]
    assert srtp == header + cipher + tag


def test_srtcp_matches_rfc3711_section_3_4() -> None:
    ctx = SrtpContext("AES_CM_128_HMAC_SHA1_80", B3_MASTER_KEY + B3_MASTER_SALT, bytes(30))
    ssrc = 0xCAFEBABE
    rtcp = struct.pack("!BBHI", 0x80, 201, 1, ssrc) + b"\x00" * 4  # an RR, one padding word
    srtcp = ctx.protect_rtcp(rtcp)
    assert len(srtcp) == len(rtcp) + 4 + 10
    e_index = struct.unpack("!I", srtcp[len(rtcp) : len(rtcp) + 4])[0]
    assert e_index >> 31 == 1  # E flag: encrypted
    index = e_index & 0x7FFFFFFF
    k_e = derive(0x03, 16)  # SRTCP labels 3, 4, 5 (§4.3.2)
    k_a = derive(0x04, 20)
    k_s = derive(0x05, 14)
    iv = ((int.from_bytes(k_s, "big") << 16) ^ (ssrc << 64) ^ (index << 16)).to_bytes(16, "big")
    body = rtcp[8:]
    cipher = bytes(a ^ b for a, b in zip(body, aes_cm(k_e, iv, len(body)), strict=True))
    assert srtcp[8 : len(rtcp)] == cipher
    tag = hmac.new(k_a, srtcp[: len(rtcp) + 4], hashlib.sha1).digest()[:10]
    assert srtcp[-10:] == tag


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_round_trip_tamper_and_replay(suite: str) -> None:
    a_key, b_key = CryptoAttribute.generate(suite), CryptoAttribute.generate(suite)
    alice = SrtpContext.from_sdes(a_key, b_key)
    bob = SrtpContext.from_sdes(b_key, a_key)
    packets = [rtp_packet(seq) for seq in range(100, 110)]
    protected = [alice.protect(p) for p in packets]
    assert all(
        len(s) == len(p) + alice.rtp_overhead for s, p in zip(protected, packets, strict=True)
    )
    assert all(s[12:32] != p[12:32] for s, p in zip(protected, packets, strict=True))
    assert [bob.unprotect(s) for s in protected[::-1]] == packets[::-1]  # reordering is fine
    with pytest.raises(SrtpError, match="replay"):
        bob.unprotect(protected[3])
    tampered = bytearray(alice.protect(rtp_packet(200)))
    tampered[15] ^= 0x01
    with pytest.raises(SrtpError, match="auth"):
        bob.unprotect(bytes(tampered))
    rtcp = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)
    srtcp = alice.protect_rtcp(rtcp)
    assert len(srtcp) == len(rtcp) + alice.rtcp_overhead
    assert bob.unprotect_rtcp(srtcp) == rtcp
    with pytest.raises(SrtpError):
        bob.unprotect_rtcp(srtcp)  # replayed SRTCP


def test_wrong_key_fails_authentication() -> None:
    a, b = CryptoAttribute.generate(), CryptoAttribute.generate()
    sender = SrtpContext.from_sdes(a, b)
    receiver = SrtpContext.from_sdes(b, CryptoAttribute.generate())
    with pytest.raises(SrtpError):
        receiver.unprotect(sender.protect(rtp_packet(1)))


def test_sdes_crypto_attribute_parse_and_format() -> None:
    # Key text as in the RFC 4568 example offers (their MKI part dropped: unsupported).
    text = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20"
    attr = CryptoAttribute.parse("a=crypto:" + text)
    assert (attr.tag, attr.suite, attr.lifetime) == (1, "AES_CM_128_HMAC_SHA1_80", 2**20)
    assert base64.b64encode(attr.key).decode() == "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
    assert str(attr) == text
    gcm = CryptoAttribute.generate("AEAD_AES_128_GCM", tag=2)
    assert len(gcm.key) == 28
    assert CryptoAttribute.parse(str(gcm)) == gcm
    params = CryptoAttribute.parse(
        "3 AES_CM_128_HMAC_SHA1_32 inline:"
        + base64.b64encode(bytes(30)).decode()
        + " UNENCRYPTED_SRTCP"
    )
    assert params.session_params == ("UNENCRYPTED_SRTCP",)


@pytest.mark.parametrize(
    "text",
    [
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(29)).decode(),  # short
        "1 F8_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(30)).decode(),  # suite
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(30)).decode() + "|1:4",
        "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64",
        "1 AES_CM_128_HMAC_SHA1_80 uri:http://example.com",
        "x AES_CM_128_HMAC_SHA1_80 inline:abcd",
        "",
    ],
)
def test_bad_crypto_attributes(text: str) -> None:
    with pytest.raises(SrtpError):
        CryptoAttribute.parse(text)


def test_context_rejects_bad_keys_and_suites() -> None:
    with pytest.raises(SrtpError):
        SrtpContext("AES_CM_128_HMAC_SHA1_80", bytes(28), bytes(30))
    with pytest.raises(SrtpError):
        SrtpContext("NULL_HMAC_SHA1_80", bytes(30), bytes(30))
    with pytest.raises(SrtpError):
        SrtpContext.from_sdes(
            CryptoAttribute.generate("AEAD_AES_128_GCM"), CryptoAttribute.generate()
        )
    ctx = SrtpContext("AES_CM_128_HMAC_SHA1_80", bytes(30), bytes(30))
    with pytest.raises(SrtpError):
        ctx.unprotect(b"\x80\x00")  # too short to be SRTP


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_crypto_parse_raises_only_srtp_error(text: str) -> None:
    try:
        attr = CryptoAttribute.parse(text)
    except SrtpError:
        return
    assert CryptoAttribute.parse(str(attr)) == attr


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_unprotect_garbage_raises_only_srtp_error(data: bytes) -> None:
    ctx = SrtpContext("AES_CM_128_HMAC_SHA1_80", bytes(30), bytes(30))
    with pytest.raises(SrtpError):
        ctx.unprotect(data)
    with pytest.raises(SrtpError):
        ctx.unprotect_rtcp(data)


@pytest.mark.parametrize("lifetime", ["0", "00", "2^0"])
def test_key_lifetime_zero_is_refused_and_one_round_trips(lifetime: str) -> None:
    # Found by tests/fuzz/fuzz_crypto.py: "|0" parsed, then str() raised ValueError.
    text = f"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|{lifetime}"
    if lifetime == "2^0":
        attr = CryptoAttribute.parse(text)
        assert attr.lifetime == 1
        assert CryptoAttribute.parse(str(attr)) == attr
    else:
        with pytest.raises(SrtpError, match="lifetime"):
            CryptoAttribute.parse(text)
