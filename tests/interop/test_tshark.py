"""Wireshark's SIP dissector reads what Trunkline builds (tshark interop).

Messages made with :mod:`trunkline.sip.builder` (and URIs rendered by
:mod:`trunkline.sip.uri`) are written into a classic pcap file as UDP/IPv4
datagrams between 127.0.0.1 ports, then ``tshark`` dissects the file. The
test checks that every frame is SIP, that tshark reads the same method,
status, Call-ID, CSeq, tags and Request-URI parts that we wrote, that SDP
bodies are dissected, and that there is no "Malformed Packet" and no expert
info at warning level or above.

The pcap format (libpcap "classic": a 24-byte global header, then a 16-byte
record header per packet) and the IPv4/UDP headers (RFC 791, RFC 768) are
written here by hand; checksums are real.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

import pytest
from tests.support.peers import require_peer

from trunkline.sip import Request, Response, parse_message
from trunkline.sip.builder import make_request, make_response
from trunkline.sip.framer import KEEPALIVE_PING, KeepAlive, StreamFramer
from trunkline.sip.uri import SipUri, TelUri, parse_uri

pytestmark = pytest.mark.interop

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
CLIENT = ("127.0.0.1", 5062)
SERVER = ("127.0.0.1", 5060)
BASE_TIME = 1_780_000_000  # a fixed capture time; nothing here reads a clock

SDP_OFFER = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=sendrecv\r\n"
)
SDP_ANSWER = SDP_OFFER.replace(b"alice", b"bob").replace(b"49170", b"3456")


# -- pcap writing ----------------------------------------------------------------


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip(address: str) -> bytes:
    return bytes(int(part) for part in address.split("."))


def _ipv4(src: str, dst: str, protocol: int, payload: bytes, ident: int) -> bytes:
    """An Ethernet II frame carrying an IPv4 packet (RFC 791) with a real checksum."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,  # version 4, 5-word header
        0,
        20 + len(payload),
        ident & 0xFFFF,
        0x4000,  # don't fragment
        64,  # TTL
        protocol,
        0,
        _ip(src),
        _ip(dst),
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    ethernet = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return ethernet + header + payload


def udp_frame(src: tuple[str, int], dst: tuple[str, int], payload: bytes, ident: int) -> bytes:
    """A UDP datagram (RFC 768) with its checksum over the pseudo-header."""
    length = 8 + len(payload)
    pseudo = _ip(src[0]) + _ip(dst[0]) + struct.pack("!BBH", 0, 17, length)
    header = struct.pack("!HHHH", src[1], dst[1], length, 0)
    checksum = _checksum(pseudo + header + payload) or 0xFFFF
    udp = struct.pack("!HHHH", src[1], dst[1], length, checksum) + payload
    return _ipv4(src[0], dst[0], 17, udp, ident)


TCP_SYN, TCP_PSH, TCP_ACK = 0x02, 0x08, 0x10


def tcp_frame(
    src: tuple[str, int],
    dst: tuple[str, int],
    *,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes,
    ident: int,
) -> bytes:
    """A TCP segment (RFC 793) with a 20-byte header and a real checksum."""
    pseudo = _ip(src[0]) + _ip(dst[0]) + struct.pack("!BBH", 0, 6, 20 + len(payload))
    header = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0)
    checksum = _checksum(pseudo + header + payload)
    segment = header[:16] + struct.pack("!H", checksum) + header[18:] + payload
    return _ipv4(src[0], dst[0], 6, segment, ident)


def tcp_conversation(
    client: tuple[str, int], server: tuple[str, int], segments: Sequence[bytes]
) -> list[bytes]:
    """Handshake, then each client segment acknowledged by the server."""
    client_seq, server_seq = 1000, 5000

    def to_server(flags: int, payload: bytes = b"") -> bytes:
        return tcp_frame(
            client, server, seq=client_seq, ack=server_seq, flags=flags, payload=payload, ident=0
        )

    def to_client(flags: int) -> bytes:
        return tcp_frame(
            server, client, seq=server_seq, ack=client_seq, flags=flags, payload=b"", ident=0
        )

    frames = [tcp_frame(client, server, seq=999, ack=0, flags=TCP_SYN, payload=b"", ident=0)]
    server_seq -= 1
    frames.append(to_client(TCP_SYN | TCP_ACK))
    server_seq += 1
    frames.append(to_server(TCP_ACK))
    for segment in segments:
        frames.append(to_server(TCP_ACK | TCP_PSH, segment))
        client_seq += len(segment)
        frames.append(to_client(TCP_ACK))
    return frames


def write_pcap(path: Path, frames: Sequence[bytes]) -> None:
    """A classic libpcap file: global header, then one record per frame."""
    out = bytearray(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
    for index, frame in enumerate(frames):
        seconds, micros = BASE_TIME + index // 10, (index % 10) * 100_000
        out += struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))


# -- the call flow ---------------------------------------------------------------


def build_flow() -> list[tuple[tuple[str, int], tuple[str, int], Request | Response]]:
    """REGISTER with a digest challenge, a whole INVITE dialog, and some odd URIs."""
    flow: list[tuple[tuple[str, int], tuple[str, int], Request | Response]] = []
    via = "SIP/2.0/UDP 127.0.0.1:5062;rport"
    alice = "<sip:alice@127.0.0.1>"

    register = make_request(
        "REGISTER",
        parse_uri("sip:127.0.0.1"),
        from_=alice,
        to=alice,
        via=via,
        contact="<sip:alice@127.0.0.1:5062;transport=udp>",
        extra_headers=[("Expires", "3600")],
    )
    challenge = make_response(
        register,
        401,
        headers=[
            (
                "WWW-Authenticate",
                'Digest realm="trunkline", nonce="5a1e7b3c9d", algorithm=MD5, qop="auth"',
            )
        ],
    )
    flow += [(CLIENT, SERVER, register), (SERVER, CLIENT, challenge)]

    invite = make_request(
        "INVITE",
        SipUri(user="bob", host="127.0.0.1", port=5060, params={"transport": "udp"}),
        from_='"Alice Liddell" ' + alice,
        to="<sip:bob@127.0.0.1>",
        via=via,
        contact="<sip:alice@127.0.0.1:5062>",
        body=SDP_OFFER,
        content_type="application/sdp",
    )
    trying = make_response(invite, 100)
    to_tag = "b0b7a9"
    ringing = make_response(invite, 180, to_tag=to_tag)
    ok = make_response(
        invite,
        200,
        to_tag=to_tag,
        headers=[("Contact", "<sip:bob@127.0.0.1:5060>")],
        body=SDP_ANSWER,
        content_type="application/sdp",
    )
    dialog_to = f"<sip:bob@127.0.0.1>;tag={to_tag}"
    ack = make_request(
        "ACK",
        parse_uri("sip:bob@127.0.0.1:5060"),
        from_=invite.headers.get("From") or alice,
        to=dialog_to,
        call_id=invite.call_id,
        cseq=1,
        via=via,
    )
    bye = make_request(
        "BYE",
        parse_uri("sip:bob@127.0.0.1:5060"),
        from_=invite.headers.get("From") or alice,
        to=dialog_to,
        call_id=invite.call_id,
        cseq=2,
        via=via,
    )
    flow += [
        (CLIENT, SERVER, invite),
        (SERVER, CLIENT, trying),
        (SERVER, CLIENT, ringing),
        (SERVER, CLIENT, ok),
        (CLIENT, SERVER, ack),
        (CLIENT, SERVER, bye),
        (SERVER, CLIENT, make_response(bye, 200)),
    ]

    # URIs with escapes, parameters, an IPv6 reference and a tel URI.
    message = make_request(
        "MESSAGE",
        SipUri(user="I have spaces", host="127.0.0.1", params={"x-id": "a;b"}),
        from_=alice,
        to="<sip:%62ob@127.0.0.1>",
        via=via,
        body=b"hello",
        content_type="text/plain",
    )
    options_v6 = make_request(
        "OPTIONS",
        parse_uri("sip:bob@[2001:db8::10]:5070;transport=udp;lr"),
        from_=alice,
        to="<sip:bob@[2001:db8::10]>",
        via=via,
        extra_headers=[("Accept", "application/sdp")],
    )
    tel = parse_uri("tel:+1-201-555-0123;ext=12")
    assert isinstance(tel, TelUri)
    options_tel = make_request("OPTIONS", tel, from_=alice, to=f"<{tel}>", via=via)
    flow += [
        (CLIENT, SERVER, message),
        (SERVER, CLIENT, make_response(message, 202)),
        (CLIENT, SERVER, options_v6),
        (SERVER, CLIENT, make_response(options_v6, 200)),
        (CLIENT, SERVER, options_tel),
        (SERVER, CLIENT, make_response(options_tel, 404)),
    ]
    return flow


def _tshark(tshark: str, *args: str) -> str:
    result = subprocess.run(
        [tshark, "-n", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


FIELDS = [
    "frame.number",
    "sip.Method",
    "sip.Status-Code",
    "sip.Call-ID",
    "sip.CSeq.seq",
    "sip.CSeq.method",
    "sip.from.tag",
    "sip.to.tag",
    "sip.r-uri.user",
    "sip.r-uri.host",
    "sip.r-uri.port",
    "sip.Via.branch",
    "sdp.media",
]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, list[bytes]]:
    tshark = require_peer("tshark", "tshark")
    flow = build_flow()
    payloads = [bytes(message) for _, _, message in flow]
    path = tmp_path_factory.mktemp("tshark") / "flow.pcap"
    frames = [
        udp_frame(src, dst, data, index)
        for index, ((src, dst, _), data) in enumerate(zip(flow, payloads, strict=True))
    ]
    write_pcap(path, frames)
    return tshark, path, payloads


def test_every_frame_is_sip_and_fields_match(capture: tuple[str, Path, list[bytes]]) -> None:
    tshark, path, payloads = capture
    args = ["-r", str(path), "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    for name in FIELDS:
        args += ["-e", name]
    rows = [line.split("|") for line in _tshark(tshark, *args).splitlines()]
    assert len(rows) == len(payloads)
    for row, data in zip(rows, payloads, strict=True):
        seen = dict(zip(FIELDS, row, strict=True))
        ours = parse_message(data)
        assert seen["sip.Call-ID"] == ours.call_id
        assert seen["sip.CSeq.seq"] == str(ours.cseq.number)
        assert seen["sip.CSeq.method"] == ours.cseq.method
        assert seen["sip.from.tag"] == ours.from_tag
        assert seen["sip.to.tag"] == (ours.to_tag or "")
        assert seen["sip.Via.branch"] == ours.via[0].branch
        assert (seen["sdp.media"] != "") == (ours.content_type == "application/sdp")
        if isinstance(ours, Request):
            assert seen["sip.Method"] == ours.method
            assert seen["sip.Status-Code"] == ""
            uri = ours.uri
            if isinstance(uri, SipUri):
                # tshark shows the user part as written (escaped) and the host
                # without IPv6 brackets.
                assert seen["sip.r-uri.host"] in (uri.host, uri.host.strip("[]"))
                assert seen["sip.r-uri.port"] == ("" if uri.port is None else str(uri.port))
                written = str(uri).split(":", 1)[1].split("@", 1)[0]
                assert seen["sip.r-uri.user"] == (written if uri.user is not None else "")
        else:
            assert isinstance(ours, Response)
            assert seen["sip.Method"] == ""
            assert seen["sip.Status-Code"] == str(ours.status)


def test_no_malformed_packets_or_warnings(capture: tuple[str, Path, list[bytes]]) -> None:
    tshark, path, payloads = capture
    verbose = _tshark(tshark, "-r", str(path), "-V")
    assert "Malformed Packet" not in verbose
    assert verbose.count("Session Initiation Protocol") >= len(payloads)
    # Expert infos at warning (0x00600000) or error (0x00800000) severity.
    flagged = _tshark(
        tshark,
        "-r",
        str(path),
        "-Y",
        "_ws.malformed || _ws.expert.severity >= 0x00600000",
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
    )
    assert flagged.strip() == ""


def test_sip_statistics_count_every_message(capture: tuple[str, Path, list[bytes]]) -> None:
    tshark, path, payloads = capture
    stats = _tshark(tshark, "-r", str(path), "-q", "-z", "sip,stat")
    assert f"Number of SIP messages: {len(payloads)}" in stats
    assert "Number of resent SIP messages: 0" in stats
    lines = {line.split(":")[0].strip(): line.split(":")[-1].strip() for line in stats.splitlines()}
    methods: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for data in payloads:
        message = parse_message(data)
        if isinstance(message, Request):
            methods[message.method] = methods.get(message.method, 0) + 1
        else:
            key = f"SIP {message.status} {message.reason}"
            statuses[key] = statuses.get(key, 0) + 1
    assert len(methods) == 6
    for name, count in [*methods.items(), *statuses.items()]:
        assert lines[name] == f"{count} Packets", name


def _summary(message: Request | Response) -> tuple[str, str, str]:
    if isinstance(message, Request):
        return message.call_id, message.method, ""
    return message.call_id, message.cseq.method, str(message.status)


def test_tcp_stream_framing_agrees_with_wireshark(tmp_path: Path) -> None:
    """Our framer and Wireshark's SIP-over-TCP reassembly (Content-Length based)
    cut the same stream into the same messages: several messages per segment,
    a message split across segments mid-header and mid-body, and a CRLF CRLF
    keep-alive (RFC 5626 §3.5.1) in a segment of its own (Wireshark 4.0 does
    not look past a keep-alive inside a segment, so it gets its own)."""
    tshark = require_peer("tshark", "tshark")
    payloads = [bytes(message) for _, _, message in build_flow()]
    invite = payloads[2]
    body_start = invite.index(b"\r\n\r\n") + 4
    stream_parts = [
        payloads[0] + invite[:100],  # REGISTER + the INVITE's first 100 bytes
        invite[100 : body_start + 20],  # rest of its head, 20 bytes of its body
        invite[body_start + 20 :] + payloads[5] + payloads[6][:1],  # + 200 OK + 1 byte
        payloads[6][1:],  # ACK
        b"\r\n\r\n",  # keep-alive ping
        payloads[7] + payloads[9],  # BYE + MESSAGE
    ]
    framer = StreamFramer()
    ours: list[tuple[str, str, str]] = []
    pings = 0
    for part in stream_parts:
        for item in framer.feed(part):
            if isinstance(item, KeepAlive):
                pings += item is KEEPALIVE_PING
            else:
                ours.append(_summary(parse_message(item)))
    assert framer.at_boundary
    assert pings == 1
    assert len(ours) == 6

    path = tmp_path / "tcp.pcap"
    write_pcap(path, tcp_conversation(("127.0.0.1", 40000), SERVER, stream_parts))
    # PDML has one <proto name="sip"> element per SIP message, even when a
    # segment carries several.
    pdml = ElementTree.fromstring(_tshark(tshark, "-r", str(path), "-Y", "sip", "-T", "pdml"))
    theirs: list[tuple[str, str, str]] = []
    for proto in pdml.iter("proto"):
        if proto.get("name") != "sip":
            continue
        shown = {
            field.get("name", ""): field.get("show", "")
            for field in proto.iter("field")
            if field.get("name") in ("sip.Call-ID", "sip.CSeq.method", "sip.Status-Code")
        }
        theirs.append(
            (shown["sip.Call-ID"], shown["sip.CSeq.method"], shown.get("sip.Status-Code", ""))
        )
    assert theirs == ours
    flagged = _tshark(
        tshark,
        "-r",
        str(path),
        "-Y",
        "_ws.malformed || _ws.expert.severity >= 0x00600000",
        "-T",
        "fields",
        "-e",
        "frame.number",
    )
    assert flagged.strip() == ""
