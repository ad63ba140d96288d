"""Fuzz targets for every parser of network or file input except SIP messages.

Each :class:`Target` pairs an ``exercise(data)`` function with seeds and a token
dictionary. ``exercise`` checks the project's fuzz invariant (STYLE.md habit 4,
h11's "parse or raise our error, never anything else"): for any bytes it either
returns or raises the parser's own error type; anything else -- another
exception or a failed ``assert`` on a round trip -- is a bug. The atheris
harnesses (``fuzz_<name>.py``) and the short in-suite runs
(``test_fuzz_<name>.py``) share these functions; the SIP message target lives
in ``harness.py`` (helper A).

Seeds are real inputs: the SDP files and torture messages in ``tests/data/``,
the TOML files in ``tests/data/fuzz/config/``, and packets, payloads and WAV
files built by the project's own serializers.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import struct
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trunkline.config import ConfigError, parse_config
from trunkline.media.codecs.base import CodecError
from trunkline.media.codecs.telephone_event import (
    TelephoneEvent,
    TelephoneEventReceiver,
    encode_event,
)
from trunkline.media.srtp import CryptoAttribute, SrtpError
from trunkline.media.wav import WavError, read_wav_info, write_wav
from trunkline.rtp.packet import (
    HeaderExtension,
    RtpPacket,
    RtpParseError,
    build_extension,
    is_rtcp,
    parse_extension_elements,
)
from trunkline.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpApp,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    build_compound,
    parse_compound,
)
from trunkline.sip.authheaders import Challenge, Credentials, parse_challenges
from trunkline.sip.errors import SipFramingError, SipParseError
from trunkline.sip.framer import KeepAlive, StreamFramer
from trunkline.sip.sdp import SessionDescription
from trunkline.sip.sdpfields import Crypto
from trunkline.sip.uri import SipUri, TelUri, parse_uri

DATA = Path(__file__).resolve().parent.parent / "data"
MESSAGE_DIRS = (DATA / "rfc4475", DATA / "rfc5118" / "wire")


@dataclass(frozen=True)
class Target:
    """One parser under fuzz: what to call, where to start, which tokens help."""

    name: str
    exercise: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    tokens: Sequence[bytes] = ()
    modules: Sequence[str] = field(default=())
    """Modules the atheris harness instruments for coverage."""


# -- in-process mutation fuzzer (the short in-suite runs) ---------------------------


def mutate(
    rng: random.Random, data: bytes, tokens: Sequence[bytes], pool: Sequence[bytes]
) -> bytes:
    """One to four edits: byte flips, token inserts, deletions, repeats, cuts, splices."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(buf))
        choice = rng.randrange(11)
        if choice <= 1 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif choice == 2 and buf:
            at = min(pos, len(buf) - 1)
            buf[at] ^= 1 << rng.randrange(8)
        elif choice <= 5 and tokens:
            buf[pos:pos] = rng.choice(tokens)
        elif choice == 6:
            del buf[pos : pos + rng.randint(1, 16)]
        elif choice == 7:
            end = min(len(buf), pos + rng.randint(1, 32))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 4)
        elif choice == 8 and rng.random() < 0.3:
            buf = buf[:pos]
        elif choice == 9 and buf:
            # An "interesting" integer over 1, 2 or 4 bytes (lengths, counts).
            width = rng.choice((1, 2, 4))
            value = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFFFFFF, len(buf)))
            raw = (value & ((1 << (8 * width)) - 1)).to_bytes(width, rng.choice(("big", "little")))
            buf[pos : pos + width] = raw
        elif pool:
            other = rng.choice(pool)
            if other:
                start = rng.randrange(len(other))
                buf[pos:pos] = other[start : start + rng.randint(1, 64)]
    return bytes(buf)


def run_short(target: Target, count: int, seed: int, budget: float = 60.0) -> int:
    """Exercise every seed, then ``count`` mutants; return how many inputs ran."""
    rng = random.Random(seed)
    pool = target.seeds()
    assert pool, f"{target.name}: no seeds"
    started = time.perf_counter()
    for data in pool:
        target.exercise(data)
    for _ in range(count):
        target.exercise(mutate(rng, rng.choice(pool), target.tokens, pool))
    elapsed = time.perf_counter() - started
    assert elapsed < budget, f"{target.name}: {count} inputs took {elapsed:.1f} s"
    return len(pool) + count


def write_dictionary(target: Target, path: Path) -> None:
    """Write ``target.tokens`` as a libFuzzer ``-dict`` file."""
    lines = [f"# libFuzzer dictionary for the {target.name} fuzz target"]
    for i, token in enumerate(target.tokens):
        escaped = "".join(
            chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}" for b in token
        )
        lines.append(f'kw{i}="{escaped}"')
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def atheris_main(target: Target) -> None:
    """The body of every ``fuzz_<name>.py``: libFuzzer options and corpus dirs in argv.

    The first corpus directory is seeded from ``target.seeds()`` when empty, and
    ``target.tokens`` are passed as ``-dict`` unless one is given. Warnings are
    errors, as in the test suite; ``TRUNKLINE_FUZZ_WARNINGS=default`` only prints
    them, to keep fuzzing past a known warning bug while its fix is pending.
    """
    import atheris  # the fuzz extra; only the long runs need it

    action = os.environ.get("TRUNKLINE_FUZZ_WARNINGS", "error")
    warnings.simplefilter("default" if action == "default" else "error")
    argv = list(sys.argv)
    corpus = [a for a in argv[1:] if not a.startswith("-")]
    if corpus and not Path(corpus[0]).is_file():
        first = Path(corpus[0])
        first.mkdir(parents=True, exist_ok=True)
        if not any(first.iterdir()):
            for i, data in enumerate(target.seeds()):
                (first / f"seed-{i:03d}").write_bytes(data)
    if target.tokens and not any(a.startswith("-dict=") for a in argv):
        path = Path(tempfile.gettempdir()) / f"trunkline-fuzz-{target.name}-{os.getpid()}.dict"
        write_dictionary(target, path)
        argv.append(f"-dict={path}")
    atheris.Setup(argv, target.exercise)
    atheris.Fuzz()


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
    try:
        sdp = SessionDescription.parse(data)
    except SipParseError:
        return
    # parse() validates typed attributes eagerly: no view may raise afterwards.
    sdp.validate()
    _ = (sdp.groups, sdp.ice_lite, sdp.direction, sdp.ice_ufrag, sdp.fingerprints)
    for media in sdp.media:
        _ = (
            media.m_line,
            media.is_rtp,
            media.rejected,
            media.payload_types,
            media.rtpmap,
            media.fmtp,
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
            media.ice_options,
            sdp.connection_for(media),
            sdp.direction_of(media),
        )
    wire = bytes(sdp)
    again = SessionDescription.parse(wire)
    assert again == sdp, "re-parse of the serialized SDP differs"
    assert bytes(again) == wire, "serialization is not stable"
    assert sdp.copy() == sdp, "copy() differs"
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
    modules=["trunkline.sip.sdp", "trunkline.sip.sdpfields"],
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


# -- RTP (trunkline.rtp.packet) -----------------------------------------------------


def rtp_seeds() -> list[bytes]:
    packets = [
        RtpPacket(0, 1, 160, 0x12345678, bytes(range(160))),
        RtpPacket(111, 65535, 0xFFFFFFFF, 1, b"\xfc\xff\xfe", marker=True),
        RtpPacket(8, 7, 1234, 99, b"\xd5" * 20, csrc=[1, 2, 3]),
        RtpPacket(101, 9, 800, 5, bytes(TelephoneEvent(5, True, 10, 800)), padding=4),
        RtpPacket(
            96,
            2,
            3,
            4,
            b"abc",
            extension=build_extension([(1, b"\x01"), (3, b"\x00\x11\x22")]),
        ),
        RtpPacket(
            96, 2, 3, 4, b"x", extension=build_extension([(1, b""), (200, bytes(17))]), padding=3
        ),
        RtpPacket(96, 2, 3, 4, b"", extension=HeaderExtension(0x1234, bytes(8))),
    ]
    return [bytes(p) for p in packets]


def exercise_rtp(data: bytes) -> None:
    is_rtcp(data)
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError:
        return
    assert 0 <= packet.payload_type < 128 and len(packet.csrc) <= 15
    if packet.extension is not None:
        try:
            elements = parse_extension_elements(packet.extension.profile, packet.extension.data)
        except RtpParseError:
            pass
        else:
            for ident, value in elements:
                assert 0 < ident < 256 and len(value) < 256
    wire = bytes(packet)
    assert len(wire) == len(data), "re-serialized packet changed length"
    # Only the content of padding octets (all but the count) may change.
    kept = len(data) - packet.padding
    assert wire[:kept] == data[:kept], "header or payload changed"
    assert wire[-1:] == data[-1:]
    assert RtpPacket.parse(wire) == packet, "re-parse differs"


RTP = Target(
    "rtp",
    exercise_rtp,
    rtp_seeds,
    tokens=[b"\x80", b"\x90", b"\xa0", b"\xbe\xde", b"\x10\x00", b"\x00\x01", b"\xff\xff"],
    modules=["trunkline.rtp.packet"],
)


# -- RTCP (trunkline.rtp.rtcp) ------------------------------------------------------


def rtcp_seeds() -> list[bytes]:
    block = ReportBlock(0x1111, 12, 345, 70000, 42, 0xAABBCCDD, 65536)
    compounds: list[list[RtcpPacket]] = [
        [
            SenderReport(1, 0x83AA7E80_00000000, 160, 1, 160, [block]),
            SourceDescription.cname_for(1, "a@b"),
        ],
        [ReceiverReport(2, [block, block]), Bye([2, 3], b"gone")],
        [ReceiverReport(2, []), RtcpApp(0, 2, b"name", b"\x00" * 8)],
        [Bye([7])],
    ]
    seeds = [build_compound(c) for c in compounds]
    # An RTPFB generic NACK (RFC 4585 §6.2.1), kept opaque, with padding on the last packet.
    seeds.append(b"\x81\xcd\x00\x03" + struct.pack("!IIHH", 1, 2, 100, 0))
    seeds.append(b"\xa0\xc9\x00\x02\x00\x00\x00\x05\x00\x00\x00\x04")
    return seeds


def exercise_rtcp(data: bytes) -> None:
    with contextlib.suppress(RtpParseError):
        parse_compound(data, strict=True)
    try:
        packets = parse_compound(data)
    except RtpParseError:
        return
    wire = build_compound(packets)
    assert parse_compound(wire) == packets, "re-parse of the rebuilt compound differs"


RTCP = Target(
    "rtcp",
    exercise_rtcp,
    rtcp_seeds,
    tokens=[
        b"\x80\xc8",
        b"\x81\xc9",
        b"\x81\xca",
        b"\x81\xcb",
        b"\x80\xcc",
        b"\xa0",
        b"\x01",
        b"\x00\x00",
    ],
    modules=["trunkline.rtp.rtcp", "trunkline.rtp.packet"],
)


# -- SRTP a=crypto (trunkline.media.srtp and sdpfields.Crypto) ----------------------


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
    modules=["trunkline.media.srtp", "trunkline.sip.sdpfields"],
)


# -- telephone-event payloads (trunkline.media.codecs.telephone_event) -------------


def telephone_event_seeds() -> list[bytes]:
    seeds = []
    for digit, ms in (("5", 100), ("#", 250), ("flash", 1000), ("D", 40)):
        seeds.append(b"".join(p.payload for p in encode_event(digit, duration_ms=ms)))
    return seeds


def exercise_telephone_event(data: bytes) -> None:
    try:
        event = TelephoneEvent.parse(data)
    except CodecError:
        assert len(data) < 4
        return
    # The R bit (0x40) is reserved: ignored on receipt (RFC 4733 §2.3), so not kept.
    assert bytes(event) == bytes((data[0], data[1] & 0xBF)) + data[2:4], "round trip differs"
    assert event.name
    # The stream view: consecutive 4-byte payloads, each with a timestamp taken
    # from the input so that retransmissions, restarts and reordering all occur.
    receiver = TelephoneEventReceiver(clock_rate=8000, timeout=0.5)
    now = 0.0
    reported = 0
    for pos in range(0, len(data) - 3, 4):
        payload = data[pos : pos + 4]
        timestamp = 1000 * (payload[0] % 3)
        now += 0.02
        for digit in receiver.feed(payload, timestamp, now):
            assert 0 <= digit.duration <= 0xFFFF and digit.duration_ms >= 0
            reported += 1
        for digit in receiver.handle_timer(now):
            assert not digit.end_seen
            reported += 1
    deadline = receiver.get_timer()
    if deadline is not None:
        assert receiver.handle_timer(deadline), "a pending event was not reported at its deadline"
        assert receiver.get_timer() is None
    assert reported <= len(data) // 4


TELEPHONE_EVENT = Target(
    "telephone_event",
    exercise_telephone_event,
    telephone_event_seeds,
    tokens=[b"\x05\x0a\x00\xa0", b"\x0b\x8a\x03\x20", b"\x10\x80\xff\xff", b"\xff\x3f\x00\x00"],
    modules=["trunkline.media.codecs.telephone_event"],
)


# -- WAV headers (trunkline.media.wav) ----------------------------------------------


def wav_seeds() -> list[bytes]:
    seeds = []
    tone = (8000 * np.sin(np.arange(64) * 0.3)).astype(np.int16)
    for rate, width in ((8000, 2), (16000, 1), (48000, 3), (8000, 4)):
        out = io.BytesIO()
        write_wav(out, tone, rate, width)
        seeds.append(out.getvalue())
    # A float WAV, and WAVE_FORMAT_EXTENSIBLE (PCM sub-format), built by hand.
    floats = (tone / 32768.0).astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
    seeds.append(_riff([(b"fmt ", fmt), (b"LIST", b"INFOjunk"), (b"data", floats)]))
    ext = struct.pack("<HHIIHH", 0xFFFE, 2, 8000, 64000, 4, 16) + struct.pack("<HHI", 22, 16, 3)
    ext += struct.pack("<H", 1) + bytes(14)
    seeds.append(_riff([(b"fmt ", ext), (b"data", tone.tobytes())]))
    return seeds


def _riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        cid + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)
        for cid, data in chunks
    )
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def exercise_wav(data: bytes) -> None:
    try:
        pcm, info = read_wav_info(io.BytesIO(data))
    except WavError:
        return
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert len(pcm) == info.frames
    assert info.channels >= 1 and info.sample_rate > 0


WAV = Target(
    "wav",
    exercise_wav,
    wav_seeds,
    tokens=[
        b"RIFF",
        b"WAVE",
        b"fmt ",
        b"data",
        b"LIST",
        b"\xfe\xff",
        b"\x03\x00",
        b"\xff\xff\xff\xff",
    ],
    modules=["trunkline.media.wav"],
)


# -- config TOML (trunkline.config) -------------------------------------------------


def config_seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted((DATA / "fuzz" / "config").glob("*.toml"))]


def exercise_config(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    try:
        parse_config(text)
    except ConfigError as exc:
        assert str(exc).startswith("trunkline.toml"), f"error does not name the file: {exc}"


CONFIG = Target(
    "config",
    exercise_config,
    config_seeds,
    tokens=[
        b"\n",
        b"[listen.udp]\n",
        b"[[users]]\n",
        b"[location]\n",
        b"[limits]\n",
        b"[logging]\n",
        b" = ",
        b'"',
        b"'''",
        b'"""',
        b"{ ",
        b" }",
        b"[",
        b"]",
        b"port = 65536\n",
        b'ha1 = { md5 = "" }\n',
        b"true",
        b"1e309",
        b"-0",
        b"nan",
        b"1979-05-27T07:32:00Z",
        b'"\\u0000"',
        b"#",
        b".",
    ],
    modules=["trunkline.config"],
)

TARGETS: dict[str, Target] = {
    t.name: t for t in (SDP, URI, AUTH, FRAMER, RTP, RTCP, CRYPTO, TELEPHONE_EVENT, WAV, CONFIG)
}
