"""Wireshark's SDP dissector reads the SDP Trunkline writes (tshark interop).

Offers and answers made by :mod:`trunkline.sip.offeranswer` (plain RTP,
SDES-SRTP with an MKI, IPv6, WebRTC with ICE and DTLS, the RFC 4566
multicast example re-serialized) ride in SIP INVITEs written into a classic
pcap file (UDP over IPv4 on 127.0.0.1, built here by hand); ``tshark``
dissects the file and must read back the same media lines, connection
addresses, crypto suites and keys, and ICE candidates, with no malformed
packet and no expert warning.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from tests.support.peers import require_peer

from trunkline.sip.offeranswer import (
    OPUS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    DtlsParameters,
    IceParameters,
    create_answer,
    create_offer,
    make_crypto,
)
from trunkline.sip.sdp import Candidate, Fingerprint, SessionDescription

pytestmark = pytest.mark.interop

DATA = Path(__file__).resolve().parent.parent / "data" / "sdp"
FIELDS = [
    "sdp.owner.version",
    "sdp.connection_info.address",
    "sdp.media.port",
    "sdp.media.proto",
    "sdp.media.format",
    "sdp.crypto.crypto_suite",
    "sdp.crypto.master_key",
    "sdp.crypto.master_salt",
    "sdp.crypto.mki-valu",
    "sdp.ice_candidate.address",
    "sdp.ice_candidate.port",
    "_ws.expert.severity",
    "_ws.malformed",
]


def _frame(payload: bytes, ident: int) -> bytes:
    """Ethernet II + IPv4 (RFC 791) + UDP (RFC 768, checksum 0: none) to 127.0.0.1:5060."""
    udp = struct.pack("!HHHH", 5062, 5060, 8 + len(payload), 0) + payload
    loopback = b"\x7f\x00\x00\x01"
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0x4000, 64, 17, 0, loopback, loopback
    )
    words = struct.unpack("!10H", ip)
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    ip = ip[:10] + struct.pack("!H", ~total & 0xFFFF) + ip[12:]
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + udp


def _invite(body: bytes, number: int) -> bytes:
    head = (
        "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKsdp{number}\r\n"
        f"From: <sip:alice@127.0.0.1>;tag=a{number}\r\n"
        "To: <sip:bob@127.0.0.1>\r\n"
        f"Call-ID: sdp-{number}@127.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _descriptions() -> list[SessionDescription]:
    fingerprint = Fingerprint("sha-256", ":".join(f"{i:02X}" for i in range(32)))
    chrome = SessionDescription.parse((DATA / "chrome-webrtc.sdp").read_bytes())
    webrtc = create_answer(
        chrome,
        [OPUS, PCMU, TELEPHONE_EVENT],
        "192.0.2.10",
        20000,
        ice=IceParameters(
            "uf01", "p" * 24, (Candidate("1", 1, "udp", 2130706431, "192.0.2.10", 20000, "host"),)
        ),
        dtls=DtlsParameters((fingerprint,)),
    ).sdp
    srtp = make_crypto(1, "AES_CM_128_HMAC_SHA1_80", bytes(range(30)))
    return [
        create_offer([PCMU, PCMA, TELEPHONE_EVENT], "127.0.0.1", 4000, ptime=20),
        create_offer([OPUS, PCMU], "127.0.0.1", 4002, crypto=[srtp], rtcp_mux=True),
        create_offer([PCMU], "2001:db8::7", 4004),
        webrtc,
        SessionDescription.parse((DATA / "rfc4566-seminar.sdp").read_bytes()),
        SessionDescription.parse((DATA / "linphone-srtp.sdp").read_bytes()),
    ]


def test_tshark_dissects_our_sdp(tmp_path: Path) -> None:
    tshark = require_peer("tshark", "tshark")
    sdps = _descriptions()
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for number, sdp in enumerate(sdps):
        frame = _frame(_invite(bytes(sdp), number), number)
        out += struct.pack("<IIII", 1_780_000_000, number, len(frame), len(frame)) + frame
    pcap = tmp_path / "sdp.pcap"
    pcap.write_bytes(bytes(out))
    command = [tshark, "-n", "-r", str(pcap), "-d", "udp.port==5060,sip", "-T", "fields"]
    for name in FIELDS:
        command += ["-e", name]
    result = subprocess.run(
        [*command, "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [dict(zip(FIELDS, line.split("|"), strict=True)) for line in result.stdout.splitlines()]
    assert len(rows) == len(sdps)
    for row, sdp in zip(rows, sdps, strict=True):
        seen = {name: value.split(",") if value else [] for name, value in row.items()}
        assert seen["_ws.malformed"] == [], row
        assert seen["_ws.expert.severity"] == [], row
        assert seen["sdp.owner.version"] == [str(sdp.origin.session_version)]
        connections = [sdp.connection, *(m.connection for m in sdp.media)]
        assert seen["sdp.connection_info.address"] == [c.address for c in connections if c]
        assert seen["sdp.media.port"] == [str(m.port) for m in sdp.media]
        assert seen["sdp.media.proto"] == [m.proto for m in sdp.media]
        dynamic = [f for f in seen["sdp.media.format"] if f.startswith("DynamicRTP-Type-")]
        assert dynamic == [
            f"DynamicRTP-Type-{pt}" for m in sdp.media for pt in m.payload_types if pt >= 96
        ]
        cryptos = [c for m in sdp.media for c in m.crypto]
        assert seen["sdp.crypto.crypto_suite"] == [c.suite for c in cryptos]
        keys = [c.keys[0] for c in cryptos]
        assert seen["sdp.crypto.master_key"] == [k.key_bytes[:16].hex() for k in keys]
        assert seen["sdp.crypto.master_salt"] == [k.key_bytes[16:].hex() for k in keys]
        assert seen["sdp.crypto.mki-valu"] == [str(k.mki) for k in keys if k.mki is not None]
        candidates = [c for m in sdp.media for c in m.candidates]
        assert seen["sdp.ice_candidate.address"] == [c.address for c in candidates]
        assert seen["sdp.ice_candidate.port"] == [str(c.port) for c in candidates]
    # the SDES offer carries the key we gave it
    assert rows[1]["sdp.crypto.master_key"] == bytes(range(16)).hex()
