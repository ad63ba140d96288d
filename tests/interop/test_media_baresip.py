"""SRTP interop with baresip (``mediaenc=srtp-mand``: RTP/SAVP with SDES
a=crypto, RFC 4568), both ways: baresip calls a Trunkline MediaSession, and
Trunkline calls baresip. Each side sends a tone and must hear the other's
through SRTP, and SRTCP reports must flow (RFC 3711)."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.interop.test_media_sipp import MiniUas
from tests.support.peers import free_port, require_peer

from trunkline.media.codecs.base import Pcm
from trunkline.media.session import MediaSession, ToneSource, WavRecorder
from trunkline.sip import Request, Response, parse_message
from trunkline.sip.builder import make_request, make_response
from trunkline.sip.offeranswer import PCMU, create_offer, make_crypto, process_answer
from trunkline.sip.sdp import SessionDescription

pytestmark = pytest.mark.interop

CALL_SECONDS = 11  # baresip sends one RTCP report about every 5 s; leave room for two


def dominant_hz(pcm: Pcm, rate: int = 8000) -> float:
    x = pcm.astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spec[5:])) + 5])


def write_tone(path: Path, hz: float, seconds: float) -> None:
    t = np.arange(int(8000 * seconds)) / 8000
    pcm = np.rint(10000 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())


def baresip_config(conf: Path, wav: Path, snd: Path, sip_port: int, rtp_port: int) -> None:
    conf.mkdir()
    snd.mkdir()
    (conf / "accounts").write_text(
        "<sip:alice@127.0.0.1>;regint=0;mediaenc=srtp-mand;"
        "audio_codecs=PCMU/8000/1;answermode=auto\n"
    )
    (conf / "contacts").write_text("")
    lines = {
        "poll_method": "epoll",
        "sip_listen": f"127.0.0.1:{sip_port}",
        "audio_path": "/usr/share/baresip",
        "audio_source": f"aufile,{wav}",
        "audio_player": "aubridge,nil",
        "audio_alert": "aubridge,nil",
        "ausrc_srate": "8000",
        "ausrc_channels": "1",
        "auplay_srate": "8000",
        "auplay_channels": "1",
        "rtp_ports": f"{rtp_port}-{rtp_port + 19}",
        "rtcp_mux": "no",
        "net_interface": "127.0.0.1",
        "dns_server": "127.0.0.1:53",
        "module_path": "/usr/lib/baresip/modules",
        "snd_path": str(snd),
    }
    modules = ["g711.so", "aufile.so", "aubridge.so", "sndfile.so", "srtp.so"]
    text = "".join(f"{k}\t{v}\n" for k, v in lines.items())
    text += "".join(f"module\t{m}\n" for m in modules)
    text += "module_tmp\tuuid.so\nmodule_tmp\taccount.so\nmodule_app\tmenu.so\n"
    (conf / "config").write_text(text)


class MiniUac(asyncio.DatagramProtocol):
    """Just enough of a UAC for one call to baresip: INVITE (retransmitted
    until answered), ACK, BYE; answers baresip's own BYE with 200."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.responses: asyncio.Queue[Response] = asyncio.Queue()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        msg = parse_message(data)
        if isinstance(msg, Response):
            self.responses.put_nowait(msg)
        elif msg.method == "BYE":
            self.transport.sendto(bytes(make_response(msg, 200)), addr)

    async def transaction(self, request: Request, target: tuple[str, int]) -> Response:
        """Send ``request`` every 0.5 s until a final response arrives (RFC 3261 §17.1)."""
        for _ in range(20):
            self.transport.sendto(bytes(request), target)
            try:
                while True:
                    resp = await asyncio.wait_for(self.responses.get(), 0.5)
                    if resp.status >= 200 and resp.cseq.method == request.method:
                        return resp
            except TimeoutError:
                continue
        raise TimeoutError(f"no final response to {request.method}")


async def call_baresip(
    session: MediaSession, uac: MiniUac, baresip_port: int, seconds: float
) -> None:
    host, port = uac.transport.get_extra_info("sockname")[:2]
    me = f"<sip:trunkline@{host}:{port}>"
    target = ("127.0.0.1", baresip_port)
    uri = f"sip:alice@127.0.0.1:{baresip_port}"
    offer = create_offer(
        [PCMU],
        "127.0.0.1",
        session.local_address[1],
        crypto=[make_crypto(1, "AES_CM_128_HMAC_SHA1_80")],
    )
    invite = make_request(
        "INVITE",
        uri,
        from_=me,
        to=f"<{uri}>",
        via=f"SIP/2.0/UDP {host}:{port};rport",
        contact=me,
        body=bytes(offer),
        content_type="application/sdp",
    )
    ok = await uac.transaction(invite, target)
    assert ok.status == 200, ok.status
    session.apply(process_answer(offer, SessionDescription.parse(ok.body)))
    session.start()

    def in_dialog(method: str, cseq: int) -> Request:
        return make_request(
            method,
            uri,
            from_=invite.from_,
            to=ok.to,
            call_id=invite.call_id,
            contact=me,
            cseq=cseq,
            via=f"SIP/2.0/UDP {host}:{port}",
        )

    uac.transport.sendto(bytes(in_dialog("ACK", 1)), target)
    await asyncio.sleep(seconds)
    bye = in_dialog("BYE", 2)
    assert (await uac.transaction(bye, target)).status == 200


@pytest.mark.parametrize("caller", ["baresip", "trunkline"])
async def test_baresip_srtp_both_directions(tmp_path: Path, caller: str) -> None:
    baresip = require_peer("baresip", "baresip")
    wav = tmp_path / "tone600.wav"
    write_tone(wav, 600, CALL_SECONDS + 8)
    conf, snd = tmp_path / "conf", tmp_path / "snd"
    baresip_port = free_port()
    baresip_config(conf, wav, snd, baresip_port, free_port() & ~1)

    session = await MediaSession.open(rtcp_interval=1.0)
    session.source = ToneSource(1000, 8000, level=0.3)
    recorder = WavRecorder(tmp_path / "heard.wav", 8000)
    session.sinks.append(recorder)
    loop = asyncio.get_running_loop()
    sip_port = free_port()
    protocol: MiniUas | MiniUac = (
        MiniUas(session, require_srtp=True) if caller == "baresip" else MiniUac()
    )
    transport, _ = await loop.create_datagram_endpoint(
        lambda: protocol, local_addr=("127.0.0.1", sip_port)
    )
    args = ["-f", str(conf), "-t", str(CALL_SECONDS + (0 if caller == "baresip" else 4))]
    if caller == "baresip":
        args += ["-e", f"/dial sip:media@127.0.0.1:{sip_port}"]
    proc = await asyncio.create_subprocess_exec(
        baresip,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = b""
    try:
        if isinstance(protocol, MiniUas):
            try:
                await asyncio.wait_for(asyncio.shield(protocol.answered), 20)
            except TimeoutError:  # say what baresip did instead of calling
                proc.kill()
                early, _ = await proc.communicate()
                pytest.fail("baresip did not call in 20 s:\n" + early.decode(errors="replace"))
        else:
            await asyncio.sleep(1.0)  # let baresip bind its SIP port
            await asyncio.wait_for(
                call_baresip(session, protocol, baresip_port, CALL_SECONDS), CALL_SECONDS + 15
            )
        assert session.srtp is not None
        output, _ = await asyncio.wait_for(proc.communicate(), CALL_SECONDS + 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        transport.close()
        stats = session.stats()
        session.close()
    log = output.decode(errors="replace")

    # baresip -> Trunkline: SRTP decrypted, the 600 Hz tone heard.
    heard = recorder.pcm
    assert len(heard) > 8000 * (CALL_SECONDS - 2), log
    assert stats.invalid == 0, log  # every RTP packet authenticated
    # baresip sends one plain RTCP APP keep-alive before SRTP is up, and its
    # final RTCP BYE does not authenticate: both must be refused, nothing else.
    assert stats.rtcp_invalid <= 2, log
    assert abs(dominant_hz(heard[4000:]) - 600) < 10
    # Trunkline -> baresip: what baresip decoded (sndfile) is our 1 kHz tone.
    decoded = sorted(snd.glob("*-dec.wav"))
    assert decoded, log
    with wave.open(str(decoded[-1])) as w:
        theirs = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert len(theirs) > 8000 * (CALL_SECONDS - 2)
    assert abs(dominant_hz(theirs[4000:].astype(np.int16)) - 1000) < 10
    # SRTCP both ways: baresip's reports authenticated here, and they carry
    # LSR/DLSR for our SRs (so baresip decrypted ours): an RTT.
    assert stats.rtcp_received >= 1 and stats.reports_received >= 1, log
    assert stats.rtt is not None and stats.rtt < 0.1, log
