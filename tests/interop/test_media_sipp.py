"""SIPp sends G.711 audio (a pcap replayed with ``play_pcap_audio``) to a
Trunkline MediaSession behind a minimal UAS; the recording must match what
was sent frame for frame, and SIPp's RFC 4733 key press must arrive as a
digit."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.support.peers import free_port, require_peer

from trunkline.media.codecs.g711 import lin2ulaw, ulaw2lin
from trunkline.media.session import MediaSession, WavRecorder
from trunkline.sip import Request, parse_message
from trunkline.sip.builder import make_response
from trunkline.sip.offeranswer import PCMU, TELEPHONE_EVENT, create_answer
from trunkline.sip.sdp import SessionDescription

pytestmark = pytest.mark.interop

TONE_HZ = 700
DTMF_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")
SECONDS = 3.0

# SIPp's built-in uac_pcap scenario, reduced: INVITE with PCMU, ACK, play the
# pcap, BYE. [media_port] is SIPp's -mp port.
SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="trunkline media interop">
  <send retrans="500"><![CDATA[
INVITE sip:media@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:media@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:media@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:media@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
  <nop><action><exec play_pcap_audio="tone.pcap"/></action></nop>
  <pause milliseconds="%(pause)d"/>
  <nop><action><exec play_pcap_audio="dtmf.pcap"/></action></nop>
  <pause milliseconds="800"/>
  <send retrans="500"><![CDATA[
BYE sip:media@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:media@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
</scenario>
"""


def write_pcap(path: Path, payloads: list[bytes]) -> None:
    """A libpcap file (Ethernet/IPv4/UDP) of RTP packets 20 ms apart.

    Formats: pcap global header (magic a1b2c3d4, v2.4, DLT_EN10MB = 1), RFC 791
    IPv4 and RFC 768 UDP headers (checksum 0 = none), RFC 3550 RTP header.
    """
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    t = 1_700_000_000.0
    for i, payload in enumerate(payloads):
        rtp = struct.pack("!BBHII", 0x80, 0x80 if i == 0 else 0, 4000 + i, i * 160, 0x7E57)
        rtp += payload
        udp = struct.pack("!HHHH", 30000, 30002, 8 + len(rtp), 0) + rtp
        ip = (
            struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(udp),
                0,
                0x4000,
                64,
                17,
                0,
                bytes([127, 0, 0, 1]),
                bytes([127, 0, 0, 1]),
            )
            + udp
        )
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        sec, usec = int(t), round((t - int(t)) * 1e6)
        out += struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame
        t += 0.02
    path.write_bytes(bytes(out))


class MiniUas(asyncio.DatagramProtocol):
    """Just enough of a UAS for one call: 200 OK with an SDP answer, 200 to BYE."""

    def __init__(self, session: MediaSession, *, require_srtp: bool = False) -> None:
        self.session = session
        self.require_srtp = require_srtp
        self.transport: Any = None
        self.answered = asyncio.get_running_loop().create_future()
        self.bye = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        msg = parse_message(data)
        if not isinstance(msg, Request):
            return
        if msg.method == "INVITE":
            try:
                self._answer(msg, addr)
            except Exception as error:  # fail the test with it, not with a timeout
                if not self.answered.done():
                    self.answered.set_exception(error)
        elif msg.method == "BYE":
            self.transport.sendto(bytes(make_response(msg, 200)), addr)
            if not self.bye.done():
                self.bye.set_result(None)

    def _answer(self, msg: Request, addr: Any) -> None:
        offer = SessionDescription.parse(msg.body)
        answer = create_answer(
            offer,
            [PCMU, TELEPHONE_EVENT],
            "127.0.0.1",
            self.session.local_address[1],
            require_srtp=self.require_srtp,
        )
        self.session.apply(answer.audio)
        self.session.start()
        host, port = self.transport.get_extra_info("sockname")[:2]
        resp = make_response(
            msg,
            200,
            headers=[("Contact", f"<sip:media@{host}:{port}>")],
            body=bytes(answer.sdp),
            content_type="application/sdp",
        )
        self.transport.sendto(bytes(resp), addr)
        if not self.answered.done():
            self.answered.set_result(None)


async def test_sipp_sends_pcmu_and_recording_matches(tmp_path: Path) -> None:
    sipp = require_peer("sipp", "sip-tester")
    n = int(SECONDS * 50)
    t = np.arange(n * 160) / 8000
    # A tone plus seeded noise, so that no two 20 ms frames are alike.
    noise = np.random.default_rng(3551).normal(0, 300, len(t))
    sent_pcm = np.rint(8000 * np.sin(2 * np.pi * TONE_HZ * t) + noise).astype(np.int16)
    payloads = [lin2ulaw(sent_pcm[i * 160 : (i + 1) * 160]) for i in range(n)]
    write_pcap(tmp_path / "tone.pcap", payloads)
    # SIPp's own RFC 4733 capture of a key press "1" (PT 101, 8 packets + 2 end repeats).
    (tmp_path / "dtmf.pcap").symlink_to(DTMF_PCAP)
    scenario = tmp_path / "uac.xml"
    scenario.write_text(SCENARIO % {"pause": int(SECONDS * 1000) + 300})

    session = await MediaSession.open()
    recorder = WavRecorder(tmp_path / "received.wav", 8000)
    session.sinks.append(recorder)
    digits: list[str] = []
    session.on_dtmf = lambda d: digits.append(d.digit)
    loop = asyncio.get_running_loop()
    sip_port = free_port()
    transport, uas = await loop.create_datagram_endpoint(
        lambda: MiniUas(session), local_addr=("127.0.0.1", sip_port)
    )
    proc = await asyncio.create_subprocess_exec(
        sipp,
        f"127.0.0.1:{sip_port}",
        "-sf",
        str(scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_port()),
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "30s",
        "-timeout_error",
        "-trace_err",
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.wait_for(uas.answered, 10)
        await asyncio.wait_for(uas.bye, SECONDS + 10)
        await asyncio.sleep(0.2)
        rc = await asyncio.wait_for(proc.wait(), 10)
        assert rc == 0, (await proc.stderr.read()).decode() if proc.stderr else rc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        transport.close()
        stats = session.stats()
        session.close()
    recorder.close()

    assert digits == ["1"]
    assert stats.packets_lost == 0 and stats.invalid == 0
    assert stats.packets_received >= n - 2
    jb = stats.jitter_buffer
    assert jb is not None and jb.late == 0
    # Frame-for-frame: each played 20 ms frame equals the decoded frame SIPp sent.
    decoded = [ulaw2lin(p) for p in payloads]
    index = {d.tobytes(): i for i, d in enumerate(decoded)}
    got = recorder.pcm
    frames = [got[i : i + 160] for i in range(0, len(got) - 159, 160)]
    matched = [index[f.tobytes()] for f in frames if f.tobytes() in index]
    assert len(set(index.values())) == n  # frames are distinct
    assert len(matched) >= n - 2 - jb.discarded
    assert matched == sorted(set(matched))  # in order, none repeated
    spec = np.abs(np.fft.rfft(got.astype(np.float64)))
    assert abs(float(np.fft.rfftfreq(len(got), 1 / 8000)[int(np.argmax(spec))]) - TONE_HZ) < 5
    assert (tmp_path / "received.wav").stat().st_size > 44 + 2 * 160 * (n - 5)
