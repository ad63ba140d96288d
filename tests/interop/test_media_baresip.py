"""SRTP interop with baresip: baresip calls a Trunkline MediaSession with
``mediaenc=srtp-mand`` (RTP/SAVP, SDES a=crypto, RFC 4568); each side sends
a tone and must hear the other's through SRTP/SRTCP (RFC 3711)."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.interop.test_media_sipp import MiniUas
from tests.support.peers import free_port, require_peer
from trunkline.media.codecs.base import Pcm
from trunkline.media.session import MediaSession, ToneSource, WavRecorder

pytestmark = pytest.mark.interop

CALL_SECONDS = 4


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


async def test_baresip_srtp_both_directions(tmp_path: Path) -> None:
    baresip = require_peer("baresip", "baresip")
    wav = tmp_path / "tone600.wav"
    write_tone(wav, 600, CALL_SECONDS + 4)
    conf, snd = tmp_path / "conf", tmp_path / "snd"
    baresip_config(conf, wav, snd, free_port(), free_port() & ~1)

    session = await MediaSession.open(rtcp_interval=1.0)
    session.source = ToneSource(1000, 8000, level=0.3)
    recorder = WavRecorder(tmp_path / "heard.wav", 8000)
    session.sinks.append(recorder)
    loop = asyncio.get_running_loop()
    sip_port = free_port()
    transport, uas = await loop.create_datagram_endpoint(
        lambda: MiniUas(session, require_srtp=True), local_addr=("127.0.0.1", sip_port)
    )
    proc = await asyncio.create_subprocess_exec(
        baresip,
        "-f",
        str(conf),
        "-e",
        f"/dial sip:media@127.0.0.1:{sip_port}",
        "-t",
        str(CALL_SECONDS),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = b""
    try:
        await asyncio.wait_for(uas.answered, 10)
        assert session.srtp is not None
        output, _ = await asyncio.wait_for(proc.communicate(), CALL_SECONDS + 10)
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
    assert stats.invalid == 0, log  # every packet authenticated
    assert abs(dominant_hz(heard[4000:]) - 600) < 10
    # Trunkline -> baresip: what baresip decoded (sndfile) is our 1 kHz tone.
    decoded = sorted(snd.glob("*-dec.wav"))
    assert decoded, log
    with wave.open(str(decoded[-1])) as w:
        theirs = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert len(theirs) > 8000 * (CALL_SECONDS - 2)
    assert abs(dominant_hz(theirs[4000:].astype(np.int16)) - 1000) < 10
    # SRTCP both ways: baresip's receiver reports about our stream gave an RTT.
    assert stats.rtt is not None, log
