"""The peer drivers proven on each other: baresip and linphonec register with
digest auth at the Kamailio driver and call each other through it, with real
audio both ways (each side's recording holds the other side's tone, checked
by FFT), RFC 4733 DTMF both ways and a hold/resume (RFC 3264 section 8.4)
seen by the other side. Also the audio helpers and the Kamailio driver alone.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from tests.support import audio
from tests.support.baresip import (
    Baresip,
    BaresipAccount,
    BaresipFactory,
    MediaEnc,
)
from tests.support.kamailio import (
    Kamailio,
    KamailioFactory,
    sip_options_ping,
)
from tests.support.linphone import (
    Linphone,
    LinphoneAccount,
    LinphoneFactory,
)
from tests.support.peers import require_peer
from tests.support.rtpcapture import PCMA, PCMU, RtpCapture

pytestmark = pytest.mark.interop

USERS = {name: f"{name}-{secrets.token_hex(4)}" for name in ("alice", "bob", "carol")}
ALICE_HZ = 1000.0  # baresip's microphone
BOB_HZ = 600.0  # linphonec's microphone
CAROL_HZ = 1400.0  # a second baresip's microphone
TOLERANCE_HZ = audio.TONE_TOLERANCE_HZ


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    binary = require_peer("kamailio", "kamailio")
    with Kamailio(tmp_path_factory.mktemp("kamailio"), USERS, binary=binary) as kam:
        yield kam


def alice(kam: Kamailio, tmp: Path, binary: str, **kw: object) -> Baresip:
    wav = audio.write_tone_wav(tmp / "alice-mic.wav", ALICE_HZ, 40)
    account = BaresipAccount("alice", registrar_port=kam.port, auth_pass=USERS["alice"])
    for key, value in kw.items():
        setattr(account, key, value)
    return Baresip(tmp / "alice", account, wav, binary=binary)


def carol(kam: Kamailio, tmp: Path, binary: str) -> Baresip:
    wav = audio.write_tone_wav(tmp / "carol-mic.wav", CAROL_HZ, 40)
    account = BaresipAccount(
        "carol", registrar_port=kam.port, auth_pass=USERS["carol"], answermode="auto"
    )
    return Baresip(tmp / "carol", account, wav, binary=binary)


def bob(kam: Kamailio, tmp: Path, binary: str) -> Linphone:
    wav = audio.write_tone_wav(tmp / "bob-mic.wav", BOB_HZ, 40)
    account = LinphoneAccount("bob", registrar_port=kam.port, password=USERS["bob"])
    return Linphone(tmp / "bob", account, play_wav=wav, binary=binary)


# -- audio helpers -----------------------------------------------------------


def test_audio_tone_analysis_round_trip(tmp_path: Path) -> None:
    path = audio.write_tone_wav(tmp_path / "t.wav", 440.0, 1.0, rate=16000)
    samples, rate = audio.read_wav(path)
    assert rate == 16000 and samples.size == 16000
    assert abs(audio.dominant_frequency(samples, rate) - 440.0) < 2.0
    assert audio.has_tone(samples, rate, 440.0)
    assert not audio.has_tone(samples, rate, 1000.0)
    assert -10.0 < audio.rms_dbfs(samples) < -8.0  # amplitude 0.5 sine: -9.03 dBFS
    assert audio.rms_dbfs(audio.silence(0.5)) < -150


def test_audio_dtmf_and_correlation() -> None:
    signal = audio.dtmf("147*0#D")
    assert audio.detect_dtmf(signal) == "147*0#D"
    noise = np.random.default_rng(7).normal(0, 0.1, 4000)
    delayed = np.concatenate([np.zeros(321), 0.5 * noise])
    score, lag = audio.correlation(noise, delayed)
    assert score > 0.99 and lag == 321
    unrelated, _ = audio.correlation(noise, audio.tone(900.0, 0.5))
    assert unrelated < 0.2


def test_audio_speech_from_espeak() -> None:
    require_peer("espeak-ng", "espeak-ng")
    said = audio.speech("one two three")
    assert said.size > audio.RATE // 2
    assert audio.rms_dbfs(said) > -35
    score, _ = audio.correlation(said, np.concatenate([audio.silence(0.1), said]))
    assert score > 0.99


# -- Kamailio alone ------------------------------------------------------------


def test_kamailio_answers_options_and_challenges_register(kamailio: Kamailio) -> None:
    status = sip_options_ping(kamailio.port)
    assert status is not None and status.startswith("SIP/2.0 200"), kamailio.log_text()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
        port = s.getsockname()[1]
        s.sendto(
            (
                f"REGISTER sip:127.0.0.1:{kamailio.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
                "Max-Forwards: 70\r\n"
                "From: <sip:alice@127.0.0.1>;tag=1\r\n"
                "To: <sip:alice@127.0.0.1>\r\n"
                f"Call-ID: {secrets.token_hex(6)}\r\n"
                "CSeq: 1 REGISTER\r\n"
                f"Contact: <sip:alice@127.0.0.1:{port}>\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode(),
            ("127.0.0.1", kamailio.port),
        )
        answer = s.recv(65535).decode()
    assert answer.startswith("SIP/2.0 401"), answer
    assert 'WWW-Authenticate: Digest realm="127.0.0.1"' in answer


def test_kamailio_tls_and_ws_listeners(tmp_path: Path) -> None:
    import ssl

    binary = require_peer("kamailio", "kamailio")
    with Kamailio(tmp_path, USERS, tls=True, ws=True, binary=binary) as kam:
        assert kam.tls_port is not None and kam.ws_port is not None and kam.cert is not None
        context = ssl.create_default_context(cafile=str(kam.cert))
        with (
            socket.create_connection(("127.0.0.1", kam.tls_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        with socket.create_connection(("127.0.0.1", kam.ws_port), timeout=5) as ws:
            ws.sendall(
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
            )
            reply = ws.recv(4096).decode(errors="replace")
        assert reply.startswith("HTTP/1.1 101"), reply  # RFC 7118 handshake accepted


# -- baresip <-> linphonec through Kamailio -----------------------------------


async def test_baresip_calls_linphone_audio_dtmf_hold(kamailio: Kamailio, tmp_path: Path) -> None:
    baresip_bin = require_peer("baresip", "baresip")
    linphone_bin = require_peer("linphonec", "linphone-cli")
    tshark = require_peer("tshark", "tshark")
    a = alice(kamailio, tmp_path, baresip_bin)
    b = bob(kamailio, tmp_path, linphone_bin)
    ports = [(a.rtp_base, a.rtp_base + 40), (b.rtp_base, b.rtp_base + 40)]
    with RtpCapture(tmp_path / "call.pcap", ports, binary=tshark) as capture:
        async with a, b:
            await asyncio.gather(a.wait_registered(), b.wait_registered())

            await a.checked("dial", f"sip:bob@127.0.0.1:{kamailio.port}")
            caller, _ = await b.wait_incoming()
            assert "alice" in caller
            await b.answer()
            await a.wait_established()
            await asyncio.sleep(2.0)  # audio both ways

            await a.send_dtmf("19#")
            await b.expect(r"Receiving tone # from", timeout=5)
            assert b.received_dtmf() == "19#"

            await a.hold()
            await b.wait_paused_by_remote()
            assert "PausedByRemote" in (await b.call_states()).values()
            await a.resume()
            await b.wait_state("StreamsRunning")
            await asyncio.sleep(1.0)

            await a.hangup()
            assert await b.wait_ended()
            await asyncio.sleep(0.3)  # sndfile closes its dump on call teardown

    [heard_by_alice] = a.recordings()
    audio.assert_hears(heard_by_alice, BOB_HZ, "baresip hears linphonec")
    audio.assert_hears(b.record_wav, ALICE_HZ, "linphonec hears baresip")

    # On the wire: G.711 each way with each side's tone, and RFC 4733 events
    # (a dynamic payload type) in alice's stream.
    streams = [s for s in capture.streams() if s.payload_type in (PCMU, PCMA)]
    by_hz = {round(audio.dominant_frequency(s.pcm())): s for s in streams if s.packets > 50}
    assert any(abs(hz - ALICE_HZ) < TOLERANCE_HZ for hz in by_hz), by_hz
    assert any(abs(hz - BOB_HZ) < TOLERANCE_HZ for hz in by_hz), by_hz
    alice_stream = next(s for hz, s in by_hz.items() if abs(hz - ALICE_HZ) < TOLERANCE_HZ)
    assert any(pt >= 96 for pt in alice_stream.payload_types), alice_stream.payload_types


async def test_linphone_calls_baresip_dtmf_back(kamailio: Kamailio, tmp_path: Path) -> None:
    baresip_bin = require_peer("baresip", "baresip")
    linphone_bin = require_peer("linphonec", "linphone-cli")
    async with (
        alice(kamailio, tmp_path, baresip_bin, answermode="auto") as a,
        bob(kamailio, tmp_path, linphone_bin) as b,
    ):
        await asyncio.gather(a.wait_registered(), b.wait_registered())
        await b.call("sip:alice@127.0.0.1")
        # Auto-answer: baresip 1.0 reports no CALL_INCOMING, only the result.
        established = await a.wait_established()
        assert "bob" in established.peeruri
        await asyncio.sleep(1.5)

        await b.send_dtmf("508")
        await a.wait_event("CALL_DTMF_START", timeout=5)
        await asyncio.sleep(1.0)
        assert a.received_dtmf() == "508"

        await b.terminate()
        closed = await a.wait_closed()
        assert closed.call_id == established.call_id
        await asyncio.sleep(0.3)

    [heard_by_alice] = a.recordings()
    audio.assert_hears(heard_by_alice, BOB_HZ, "baresip hears linphonec")
    audio.assert_hears(b.record_wav, ALICE_HZ, "linphonec hears baresip")


# Peers only (no Trunkline code): linphonec once, in a full CI run, did not
# follow the REFER within 15 s; it passed in every isolated run. One rerun.
@pytest.mark.flaky(reruns=1)
async def test_baresip_blind_transfer_of_linphone(kamailio: Kamailio, tmp_path: Path) -> None:
    """alice (baresip) calls bob (linphonec) and transfers him to carol
    (baresip, auto-answer) with REFER (RFC 3515); bob then talks to carol."""
    baresip_bin = require_peer("baresip", "baresip")
    linphone_bin = require_peer("linphonec", "linphone-cli")
    async with (
        alice(kamailio, tmp_path, baresip_bin) as a,
        bob(kamailio, tmp_path, linphone_bin) as b,
        carol(kamailio, tmp_path, baresip_bin) as c,
    ):
        await asyncio.gather(a.wait_registered(), b.wait_registered(), c.wait_registered())
        await a.checked("dial", f"sip:bob@127.0.0.1:{kamailio.port}")
        await b.wait_incoming()
        await b.answer()
        await a.wait_established()

        await b.set_recording(tmp_path / "bob-with-carol.wav")
        await a.transfer(f"sip:carol@127.0.0.1:{kamailio.port}")
        with_carol = await c.wait_established()
        assert "bob" in with_carol.peeruri
        await a.wait_closed()  # the transferor leaves once the REFER succeeded
        await asyncio.sleep(2.0)

        await c.hangup()
        assert await b.wait_ended(peer="carol")
        await asyncio.sleep(0.3)

    [heard_by_carol] = c.recordings()
    audio.assert_hears(heard_by_carol, BOB_HZ, "carol hears bob")
    audio.assert_hears(b.record_wav, CAROL_HZ, "bob hears carol after the transfer")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_baresip_srtp_through_trusted_relay(
    tmp_path: Path, transport: Literal["udp", "tcp"]
) -> None:
    """Kamailio in relay mode (no auth): two baresips register without
    credentials over UDP or TCP and talk SRTP (SDES, RFC 4568) through it."""
    kam_bin = require_peer("kamailio", "kamailio")
    baresip_bin = require_peer("baresip", "baresip")
    tshark = require_peer("tshark", "tshark")
    mediaenc: MediaEnc = "srtp-mand"
    with Kamailio(tmp_path / "relay", mode="relay", binary=kam_bin) as kam:
        tone_a = audio.write_tone_wav(tmp_path / "a.wav", ALICE_HZ, 40)
        tone_c = audio.write_tone_wav(tmp_path / "c.wav", CAROL_HZ, 40)
        acc_a = BaresipAccount(
            "alice", registrar_port=kam.port, mediaenc=mediaenc, transport=transport
        )
        acc_c = BaresipAccount(
            "carol",
            registrar_port=kam.port,
            mediaenc=mediaenc,
            answermode="auto",
            transport=transport,
        )
        a = Baresip(tmp_path / "alice", acc_a, tone_a, binary=baresip_bin)
        c = Baresip(tmp_path / "carol", acc_c, tone_c, binary=baresip_bin)
        ports = [(a.rtp_base, a.rtp_base + 40)]
        capture = RtpCapture(tmp_path / "srtp.pcap", ports, binary=tshark)
        async with a, c:
            await asyncio.gather(a.wait_registered(), c.wait_registered())
            with capture:
                await a.dial(f"sip:carol@127.0.0.1:{kam.port};transport={transport}")
                await c.wait_established()
                # CALL_MENC comes before CALL_ESTABLISHED: both sides keyed SRTP.
                assert a.media_encryption() == ["AES_CM_128_HMAC_SHA1_80"], a.events
                assert c.media_encryption() == ["AES_CM_128_HMAC_SHA1_80"], c.events
                await asyncio.sleep(2.0)
                await a.hangup()
                await c.wait_closed()
                await asyncio.sleep(0.3)
        log = kam.log_text(100_000)
    # Kamailio's xlog names the protocol each request arrived over ($pr).
    assert re.search(rf"REQ REGISTER \S+ from 127\.0\.0\.1:\d+/{transport}\n", log), log
    assert re.search(rf"REQ INVITE sip:carol@\S+ from 127\.0\.0\.1:\d+/{transport}\n", log), log
    [heard_by_alice] = a.recordings()
    [heard_by_carol] = c.recordings()
    audio.assert_hears(heard_by_alice, CAROL_HZ, "alice hears carol over SRTP")
    audio.assert_hears(heard_by_carol, ALICE_HZ, "carol hears alice over SRTP")
    # On the wire the payload is ciphertext: decoded as G.711 it is no tone.
    sent = [s for s in capture.streams() if s.src_port in range(a.rtp_base, a.rtp_base + 41)]
    assert sent and sent[0].packets > 50, [(s.src, s.dst, s.packets) for s in sent]
    assert not audio.has_tone(sent[0].pcm(), audio.RATE, ALICE_HZ, min_ratio=0.05)


async def test_factories_relay_forward_to_a_trunk(
    tmp_path: Path,
    kamailio_factory: KamailioFactory,
    baresip_factory: BaresipFactory,
    linphone_factory: LinphoneFactory,
) -> None:
    """The fixture factories; Kamailio as trusted relay forwarding every
    request outside its domain to one target ("trunk"), here linphonec
    listening without registering."""
    trunk_account = LinphoneAccount("trunk")
    trunk = await linphone_factory(
        trunk_account, audio.write_tone_wav(tmp_path / "t.wav", BOB_HZ, 40)
    )
    kam = kamailio_factory(mode="relay", forward_to=("127.0.0.1", trunk.sip_port))
    account = BaresipAccount("alice", outbound=f"{kam.uri};lr", regint=0)
    phone = await baresip_factory(account, audio.write_tone_wav(tmp_path / "a.wav", ALICE_HZ, 40))
    await trunk.send("autoanswer enable")
    await phone.dial("sip:+15550100@trunk.invalid")
    await trunk.expect(r"Call \d+ with .* connected", timeout=10)
    await asyncio.sleep(1.5)
    await phone.hangup()
    await trunk.wait_ended()
    assert "REQ INVITE sip:+15550100@trunk.invalid" in kam.log_text(100_000)
    await asyncio.sleep(0.3)
    audio.assert_hears(phone.recordings()[-1], BOB_HZ, "caller hears the trunk")
