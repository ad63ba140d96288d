"""Wireshark's RTP and RTCP dissectors read what trunkline.rtp builds.

Packets made with :mod:`trunkline.rtp.packet`, :mod:`trunkline.rtp.rtcp`,
:mod:`trunkline.rtp.pacing` and :mod:`trunkline.rtp.stats` are written into a
classic pcap file as UDP/IPv4 datagrams (RTP to port 30000, RTCP to 30001),
and ``tshark -d udp.port==...`` dissects them. Every field tshark reports
must be the value we meant, with no malformed-packet or length warnings.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from tests.support.peers import require_peer

from trunkline.rtp.pacing import PacingSchedule, RtpSender
from trunkline.rtp.packet import RtpPacket, build_extension
from trunkline.rtp.rtcp import (
    Bye,
    ReceiverReport,
    RtcpApp,
    RtcpPacket,
    SourceDescription,
    build_compound,
    ntp_from_unix,
)
from trunkline.rtp.stats import SourceTable

pytestmark = pytest.mark.interop

RTP_PORT, RTCP_PORT = 30000, 30001


def write_pcap(path: Path, datagrams: list[tuple[int, bytes]]) -> None:
    """Classic pcap (magic a1b2c3d4, DLT_EN10MB) of IPv4/UDP datagrams (RFC 791, 768)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i, (port, payload) in enumerate(datagrams):
        udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0x4000, 64, 17, 0,
            bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]),
        )  # fmt: skip
        checksum = sum(struct.unpack("!10H", header))
        while checksum > 0xFFFF:
            checksum = (checksum & 0xFFFF) + (checksum >> 16)
        header = header[:10] + struct.pack("!H", ~checksum & 0xFFFF) + header[12:]
        frame = b"\x00" * 12 + b"\x08\x00" + header + udp
        out += struct.pack("<IIII", 1_780_000_000 + i, 0, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))


def tshark_fields(pcap: Path, fields: list[str]) -> list[list[str]]:
    tshark = require_peer("tshark", "tshark")
    args = [tshark, "-r", str(pcap), "-n", "-T", "fields", "-E", "separator=|"]
    args += ["-d", f"udp.port=={RTP_PORT},rtp", "-d", f"udp.port=={RTCP_PORT},rtcp"]
    for f in fields:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


def expert_warnings(pcap: Path) -> str:
    """tshark's expert info summary ("Errors (n)", "Warnings (n)", ... sections)."""
    tshark = require_peer("tshark", "tshark")
    args = [tshark, "-r", str(pcap), "-n", "-q", "-z", "expert"]
    args += ["-d", f"udp.port=={RTP_PORT},rtp", "-d", f"udp.port=={RTCP_PORT},rtcp"]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout


def test_tshark_dissects_rtp(tmp_path: Path) -> None:
    tx = RtpSender(0, 160, ssrc=0x11223344, initial_sequence=65534, initial_timestamp=1000)
    packets = [tx.packet(t, b"\xff" * 160) for t in range(3)]
    packets.append(
        RtpPacket(
            payload_type=96,
            sequence_number=7,
            timestamp=0xFFFFFFF0,
            ssrc=0xDEADBEEF,
            payload=b"opus",
            marker=True,
            csrc=[1, 2],
            extension=build_extension([(1, b"\x80"), (3, b"abc")]),
            padding=4,
        )
    )
    pcap = tmp_path / "rtp.pcap"
    write_pcap(pcap, [(RTP_PORT, bytes(p)) for p in packets])
    fields = [
        "rtp.version", "rtp.marker", "rtp.p_type", "rtp.seq", "rtp.timestamp", "rtp.ssrc",
        "rtp.cc", "rtp.csrc.item", "rtp.ext.profile", "rtp.ext.rfc5285.id",
        "rtp.ext.rfc5285.data", "rtp.padding.count",
    ]  # fmt: skip
    rows = tshark_fields(pcap, fields)
    assert len(rows) == 4
    for row, p in zip(rows, packets, strict=True):
        assert row[0] == "2"
        assert row[1] in ("1", "True") if p.marker else row[1] in ("0", "False")
        assert int(row[2]) == p.payload_type
        assert int(row[3]) == p.sequence_number
        assert int(row[4]) == p.timestamp
        assert int(row[5], 16) == p.ssrc
    assert [r[3] for r in rows[:3]] == ["65534", "65535", "0"]
    assert [int(r[4]) for r in rows[:3]] == [1000, 1160, 1320]
    last = rows[3]
    assert last[6] == "2" and [int(x, 16) for x in last[7].split(",")] == [1, 2]
    assert int(last[8], 16) == 0xBEDE
    assert last[9].split(",") == ["1", "3"]
    assert last[11] == "4"
    report = expert_warnings(pcap)
    assert "Errors (" not in report and "Warnings (" not in report, report


def test_tshark_dissects_rtcp_reports(tmp_path: Path) -> None:
    # A receiver that got 100 packets with 5 lost, then reports; and a sender report.
    table = SourceTable(8000, local_ssrc=0xAAAA0001)
    for n in range(100):
        if n % 20 == 7:
            continue
        table.receive(RtpPacket(0, 500 + n, n * 160, 0xBBBB0002, b""), now=n * 0.02)
    rr = ReceiverReport(0xAAAA0001, table.report_blocks(now=2.0))
    sched = PacingSchedule(start=10.0, ptime=0.02)
    tx = RtpSender(0, 160, ssrc=0xCCCC0003, initial_sequence=1, initial_timestamp=5000)
    for tick in range(50):
        tx.packet(tick, b"\x00" * 160)
    sr = tx.sender_report(sched, now=11.0, wallclock=1_780_000_000.5)
    sr.reports = rr.reports
    compound: list[RtcpPacket] = [
        sr,
        SourceDescription.cname_for(0xCCCC0003, "alice@trunkline.test"),
        Bye([0xCCCC0003], b"hang up"),
    ]
    pcap = tmp_path / "rtcp.pcap"
    write_pcap(
        pcap,
        [
            (RTCP_PORT, build_compound([rr, SourceDescription.cname_for(0xAAAA0001, "bob")])),
            (RTCP_PORT, build_compound(compound)),
            (RTCP_PORT, build_compound([rr, RtcpApp(1, 0xAAAA0001, b"TEST", b"\x00" * 4)])),
        ],
    )
    fields = [
        "rtcp.pt", "rtcp.senderssrc", "rtcp.ssrc.identifier", "rtcp.ssrc.fraction",
        "rtcp.ssrc.cum_nr", "rtcp.ssrc.high_seq", "rtcp.ssrc.jitter", "rtcp.sdes.text",
        "rtcp.timestamp.ntp.msw", "rtcp.timestamp.rtp", "rtcp.sender.packetcount",
        "rtcp.sender.octetcount", "rtcp.length_check", "rtcp.app.name",
    ]  # fmt: skip
    rows = tshark_fields(pcap, fields)
    assert len(rows) == 3
    block = rr.reports[0]
    rr_row, sr_row, app_row = rows
    assert rr_row[0].split(",") == ["201", "202"]
    assert int(rr_row[1].split(",")[0], 16) == 0xAAAA0001
    assert int(rr_row[2].split(",")[0], 16) == 0xBBBB0002
    assert int(rr_row[3]) == block.fraction_lost
    assert int(rr_row[4]) == block.cumulative_lost == 5
    assert int(rr_row[5]) == block.highest_sequence == 599
    assert rr_row[7] == "bob"
    assert sr_row[0].split(",") == ["200", "202", "203"]
    assert sr_row[7].split(",") == ["alice@trunkline.test", "hang up"]  # CNAME, BYE reason
    assert int(sr_row[8]) == ntp_from_unix(1_780_000_000.5) >> 32
    assert int(sr_row[9]) == sr.rtp_timestamp == 5000 + 8000
    assert (int(sr_row[10]), int(sr_row[11])) == (50, 8000)
    assert all(v in ("1", "True") for r in rows for v in r[12].split(","))
    assert app_row[13] == "TEST"
    report = expert_warnings(pcap)
    assert "Errors (" not in report and "Warnings (" not in report, report
