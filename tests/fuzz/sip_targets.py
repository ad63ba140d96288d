"""Fuzz targets for SIP and SDP text: SDP bodies, URIs, digest headers, the framer, a=crypto.

Each ``exercise`` checks the project's fuzz invariant (STYLE.md habit 4, h11's
"parse or raise our error, never anything else"): for any bytes it either
returns or raises the parser's own error type; anything else -- another
exception or a failed ``assert`` on a round trip -- is a bug. Seeds are the
SDP files and torture messages in ``tests/data/`` (RFC 4475, RFC 5118).
The SIP message target itself lives in ``harness.py``.
"""

from __future__ import annotations

import contextlib
import random
import re
from pathlib import Path

from tests.fuzz.runner import Target
from trunkline.media.srtp import CryptoAttribute, SrtpError
from trunkline.sip.authheaders import Challenge, Credentials, parse_challenges
from trunkline.sip.errors import SipFramingError, SipParseError
from trunkline.sip.framer import KeepAlive, StreamFramer
from trunkline.sip.sdp import SessionDescription
from trunkline.sip.sdpcrypto import Crypto
from trunkline.sip.uri import SipUri, TelUri, parse_uri

__all__ = ["AUTH", "CRYPTO", "DATA", "FRAMER", "SDP", "URI", "sdp_seeds"]

DATA = Path(__file__).resolve().parent.parent / "data"
MESSAGE_DIRS = (DATA / "rfc4475", DATA / "rfc5118" / "wire")


# -- seeds from tests/data ----------------------------------------------------------


def _messages() -> list[bytes]:
    return [p.read_bytes() for d in MESSAGE_DIRS for p in sorted(d.glob("*.dat"))]


def _text(data: bytes) -> str:
    """Bytes as the message layer hands them to a parser (UTF-8, bad bytes kept)."""
    return data.decode("utf-8", "surrogateescape")


# -- SDP (trunkline.sip.sdp) --------------------------------------------------------


def sdp_seeds() -> list[bytes]:
    seeds = [p.read_bytes() for p in sorted((DATA / "sdp").glob("*.sdp"))]
    for message in _messages():
        _, sep, body = message.partition(b"\r\n\r\n")
        if sep and body.startswith(b"v=0"):
            seeds.append(body)
    return seeds


def exercise_sdp(data: bytes) -> None:
    """Both modes: strict and lenient agree where strict parses; each round-trips."""
    try:
        strict = SessionDescription.parse(data)
    except SipParseError:
        strict = None
    try:
        lenient = SessionDescription.parse(data, strict=False)
    except SipParseError:
        assert strict is None, "lenient parse failed where strict parse succeeded"
        return
    if strict is not None:
        assert lenient == strict and not lenient.problems, "modes differ on valid SDP"
        _check_parsed(strict, strict=True)
    _check_parsed(lenient, strict=False)


def _check_parsed(sdp: SessionDescription, *, strict: bool) -> None:
    # parse() validates typed attributes eagerly: no view may raise afterwards.
    sdp.validate(strict=strict)
    _ = (sdp.groups, sdp.ice_lite, sdp.direction, sdp.ice_ufrag, sdp.fingerprints, sdp.setup)
    for media in sdp.media:
        _ = (
            media.m_line,
            media.is_rtp,
            media.rejected,
            media.payload_types,
            media.rtpmap(),
            media.fmtp(),
            media.ptime,
            media.maxptime,
            media.rtcp,
            media.rtcp_mux,
            media.crypto,
            media.candidates,
            media.end_of_candidates,
            media.mid,
            media.msid,
            media.setup,
            media.fingerprints,
            media.ice_options,
            sdp.connection_for(media),
            sdp.direction_of(media),
        )
    wire = bytes(sdp)
    again = SessionDescription.parse(wire, strict=strict)
    assert again == sdp, "re-parse of the serialized SDP differs"
    assert again.problems == sdp.problems, "re-parse reports other problems"
    assert bytes(again) == wire, "serialization is not stable"
    copy = sdp.copy()
    assert copy == sdp and copy.problems == sdp.problems, "copy() differs"
    assert sdp.same_content(again)


SDP = Target(
    "sdp",
    exercise_sdp,
    sdp_seeds,
    tokens=[
        b"\r\n",
        b"\n",
        b"v=0\r\n",
        b"o=- 1 1 IN IP4 127.0.0.1\r\n",
        b"c=IN IP6 ::1\r\n",
        b"c=IN IP4 224.2.1.1/127/3\r\n",
        b"m=audio 0 RTP/AVP 0 8 101\r\n",
        b"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
        b"a=rtpmap:101 telephone-event/8000\r\n",
        b"a=fmtp:111 minptime=10;useinbandfec=1\r\n",
        b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
        b"inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n",
        b"a=candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host generation 0\r\n",
        b"a=fingerprint:sha-256 AB:CD\r\n",
        b"a=group:BUNDLE 0 1\r\n",
        b"a=rtcp:9 IN IP4 0.0.0.0\r\n",
        b"a=ptime:20\r\n",
        b"a=sendonly\r\n",
        b"t=0 0\r\n",
        b"r=7d 1h 0 25h\r\n",
        b"b=AS:64\r\n",
        b"=",
        b":",
        b" ",
        b"/",
        b"-1",
        b"4294967296",
        b"99999999999999999999",
        b"\x00",
        b"\xff",
    ],
    modules=[
        "trunkline.sip.sdp",
        "trunkline.sip.sdpcodecs",
        "trunkline.sip.sdpcrypto",
        "trunkline.sip.sdpfields",
        "trunkline.sip.sdpsyntax",
    ],
)


# -- URIs (trunkline.sip.uri) -------------------------------------------------------

_URI_IN_BRACKETS = re.compile(rb"<([^<>\r\n]{1,300})>")
_REQUEST_URI = re.compile(rb"^[A-Za-z!%*_+`'~.-]+ (\S+) SIP/", re.MULTILINE)


def uri_seeds() -> list[bytes]:
    found: dict[bytes, None] = {}
    for message in _messages():
        for match in _REQUEST_URI.finditer(message):
            found[match.group(1)] = None
        for match in _URI_IN_BRACKETS.finditer(message):
            found[match.group(1)] = None
    for extra in (
        b"sip:alice:secret@atlanta.com;transport=tcp;lr;ttl=15;maddr=239.255.255.1?subject=hi",
        b"sips:[2001:db8::10]:5061;user=phone;method=INVITE",
        b"tel:+1-201-555-0123;ext=42;isub=7;phone-context=example.com",
        b"tel:7042;phone-context=+1-201",
        b"urn:service:sos",
        b"mailto:alice@example.com",
    ):
        found[extra] = None
    return list(found)


def exercise_uri(data: bytes) -> None:
    text = _text(data)
    try:
        uri = parse_uri(text)
    except SipParseError:
        return
    wire = str(uri)
    again = parse_uri(wire)
    assert again == uri, f"re-parse of {wire!r} differs"
    assert hash(again) == hash(uri), "equal URIs hash differently"
    assert str(again) == wire, "serialization is not stable"
    assert uri.copy() == uri
    if isinstance(uri, SipUri):
        _ = (
            uri.transport,
            uri.lr,
            uri.maddr,
            uri.user_param,
            uri.method_param,
            uri.ttl,
            uri.secure,
            uri.default_port,
            uri.host_port,
            uri.aor,
        )
        stripped = uri.without_headers()
        assert parse_uri(str(stripped)) == stripped
        bare = uri.without_params(*uri.params)
        assert parse_uri(str(bare)) == bare
    elif isinstance(uri, TelUri):
        _ = (uri.is_global, uri.digits, uri.phone_context, uri.ext, uri.isub)


URI = Target(
    "uri",
    exercise_uri,
    uri_seeds,
    tokens=[
        b"sip:",
        b"sips:",
        b"tel:",
        b"@",
        b":",
        b";",
        b"?",
        b"&",
        b"=",
        b"%",
        b"%25",
        b"%00",
        b"%zz",
        b"[",
        b"]",
        b"[::1]",
        b"[2001:db8::1]:5060",
        b":65536",
        b";lr",
        b";transport=TLS",
        b";ttl=",
        b";maddr=",
        b";user=phone",
        b";phone-context=",
        b";ext=",
        b";isub=",
        b"+1",
        b"*#",
        b"\xc3\xa9",
        b"\x00",
    ],
    modules=["trunkline.sip.uri"],
)


# -- digest authentication headers (trunkline.sip.authheaders) ---------------------


def auth_seeds() -> list[bytes]:
    # RFC 3261 §22.4 / §25.1, RFC 2617 §3.5, RFC 8760 §2 examples, and RFC 7235 token68.
    seeds = [
        b'Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth", '
        b'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5',
        b'Digest username="Alice", realm="atlanta.com", nonce="84a4cc6f3082121f32b42a2187831a9e", '
        b'response="7587245234b3434cc3412213e5f113a5432"',
        b'Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        b'uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", '
        b'response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
        b'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        b'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        b'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", userhash=true',
        b'Digest realm="a", nonce="b", domain="sip:a sip:b", stale=true, Basic realm="x", Bearer',
        b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        b"NoOneKnowsThisScheme opaque-data=here",
    ]
    for message in _messages():
        for line in message.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep and name.strip().lower() in (
                b"authorization",
                b"proxy-authorization",
                b"www-authenticate",
                b"proxy-authenticate",
            ):
                seeds.append(value.strip())
    return seeds


def _touch_auth(value: Challenge | Credentials) -> None:
    _ = (value.is_digest, value.realm, value.nonce, value.opaque, value.algorithm, value.userhash)
    if isinstance(value, Challenge):
        _ = (value.qop_options, value.stale, value.domain)
    else:
        _ = (value.username, value.uri, value.response, value.cnonce, value.qop, value.nc)


def exercise_auth(data: bytes) -> None:
    text = _text(data)
    for kind in (Challenge, Credentials):
        try:
            value = kind.parse(text)
        except SipParseError:
            continue
        _touch_auth(value)
        wire = str(value)
        again = kind.parse(wire)
        assert str(again) == wire, f"{kind.__name__} serialization is not stable: {wire!r}"
        assert again.scheme.lower() == value.scheme.lower()
    try:
        challenges = parse_challenges(text)
    except SipParseError:
        return
    for challenge in challenges:
        _touch_auth(challenge)
        wire = str(challenge)
        assert str(Challenge.parse(wire)) == wire


AUTH = Target(
    "authheaders",
    exercise_auth,
    auth_seeds,
    tokens=[
        b"Digest ",
        b"Basic ",
        b", ",
        b",",
        b"=",
        b'"',
        b'\\"',
        b"\\",
        b' realm="r"',
        b" nonce=",
        b" qop=auth-int",
        b' qop="auth,auth-int"',
        b" algorithm=SHA-512-256-sess",
        b" userhash=true",
        b" stale=TRUE",
        b" nc=00000001",
        b' domain="sip:a /b"',
        b"==",
        b"\r\n",
        b"\t",
        b"\x00",
        b"\xc3\xa9",
    ],
    modules=["trunkline.sip.authheaders"],
)


# -- the stream framer (trunkline.sip.framer), fed in random chunks ----------------


def framer_seeds() -> list[bytes]:
    with_length = [m for m in _messages() if b"\nContent-Length:" in m or b"\nl:" in m]
    seeds = list(with_length)
    seeds.append(b"\r\n\r\n" + b"".join(with_length[:3]) + b"\r\n")
    seeds.append(b"".join(with_length[3:6]) + b"\r\n\r\n\r\n")
    return seeds


def _frame_all(data: bytes, cuts: list[int]) -> tuple[list[bytes], bool, int]:
    """Feed ``data`` cut at ``cuts``; (messages, failed, bytes consumed before a failure)."""
    framer = StreamFramer(max_message=16384, max_header=8192)
    messages: list[bytes] = []
    start = 0
    for end in [*cuts, len(data)]:
        try:
            items = framer.feed(data[start:end])
        except SipFramingError:
            return messages, True, start
        messages.extend(item for item in items if not isinstance(item, KeepAlive))
        if framer.error is not None:
            return messages, True, end
        start = end
    try:
        framer.eof()
    except SipFramingError:
        return messages, True, len(data)
    assert framer.at_boundary and framer.buffered == 0
    return messages, False, len(data)


def exercise_framer(data: bytes) -> None:
    """Framing must not depend on how the stream was cut into chunks."""
    whole, whole_failed, _ = _frame_all(data, [])
    # The chunking comes from the input itself, so a crash reproduces.
    rng = random.Random(data)
    pieces = min(len(data) - 1, rng.randint(1, 12))
    cuts = sorted(rng.sample(range(1, len(data)), pieces)) if pieces > 0 else []
    if rng.random() < 0.1 and len(data) < 400:
        cuts = list(range(1, len(data)))  # one byte at a time
    chunked, chunked_failed, _ = _frame_all(data, cuts)
    assert sum(map(len, whole)) <= len(data)
    for message in whole:
        assert message and not message.startswith(b"\r\n")
    if whole_failed == chunked_failed:
        assert chunked == whole, "chunking changed the framed messages"
    elif whole_failed:
        # Only a size limit can fail earlier on the whole buffer than on pieces of it.
        assert chunked[: len(whole)] == whole
    else:
        assert whole[: len(chunked)] == chunked
        assert chunked_failed and not whole_failed
        raise AssertionError("chunked feed failed where the whole buffer framed")


FRAMER = Target(
    "framer",
    exercise_framer,
    framer_seeds,
    tokens=[
        b"\r\n",
        b"\r\n\r\n",
        b"\r",
        b"\n",
        b"Content-Length: 0\r\n",
        b"Content-Length: 10\r\n",
        b"Content-Length: 99999999\r\n",
        b"l: 4\r\n",
        b"l: -1\r\n",
        b"Content-Length: 1\r\nContent-Length: 2\r\n",
        b"content-length:\t 3 \r\n",
        b"INVITE sip:a@b SIP/2.0\r\n",
        b"SIP/2.0 200 OK\r\n",
        b"\x00",
    ],
    modules=["trunkline.sip.framer"],
)


# -- SRTP a=crypto (trunkline.media.srtp and sdpcrypto.Crypto) ----------------------


def crypto_seeds() -> list[bytes]:
    seeds = [
        # RFC 4568 §9.1 / §10.1 examples.
        b"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
        b"1 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20",
        b"crypto:2 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|1048576 "
        b"KDR=1 UNENCRYPTED_SRTCP",
        b"a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:" + b"QUJD" * 16,
    ]
    for sdp in sdp_seeds():
        for line in sdp.splitlines():
            if line.startswith(b"a=crypto:"):
                seeds.append(line[len(b"a=crypto:") :])
    for suite in ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM"):
        try:
            seeds.append(str(CryptoAttribute.generate(suite)).encode())
        except SrtpError:
            continue
    return seeds


def exercise_crypto(data: bytes) -> None:
    text = _text(data)
    with contextlib.suppress(SipParseError):
        Crypto.parse(text)  # the SDP layer's view of the same attribute
    try:
        attribute = CryptoAttribute.parse(text)
    except SrtpError:
        return
    again = CryptoAttribute.parse(str(attribute))
    assert again == attribute, "re-parse of the crypto attribute differs"


CRYPTO = Target(
    "crypto",
    exercise_crypto,
    crypto_seeds,
    tokens=[
        b"inline:",
        b"|2^20",
        b"|2^99",
        b"|1:4",
        b"|",
        b";",
        b" ",
        b"AES_CM_128_HMAC_SHA1_80",
        b"AES_256_CM_HMAC_SHA1_32",
        b"AEAD_AES_256_GCM",
        b"KDR=1",
        b"==",
        b"a=crypto:",
        b"999999999",
    ],
    modules=["trunkline.media.srtp", "trunkline.sip.sdpcrypto"],
)
