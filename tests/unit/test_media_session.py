"""MediaSession on loopback: two sessions negotiated with offer/answer talk
G.711 (plain, rtcp-mux, SRTP), exchange RTCP (RTT), DTMF, hold, latching."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import numpy as np
import pytest
from tests.support.peers import free_port

from trunkline.media.codecs.base import Pcm
from trunkline.media.session import (
    MediaSession,
    QueueSource,
    ToneSource,
    WavRecorder,
)
from trunkline.rtp.packet import RtpPacket
from trunkline.sip.offeranswer import (
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    create_answer,
    create_offer,
    make_crypto,
    process_answer,
)
from trunkline.sip.sdp import Direction


def dominant_hz(pcm: Pcm, rate: int) -> float:
    x = pcm.astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(freqs[int(np.argmax(spec[5:])) + 5])


async def pair(
    *, rtcp_mux: bool = False, srtp: bool = False, rtcp_interval: float = 5.0
) -> tuple[MediaSession, MediaSession]:
    a = await MediaSession.open(rtcp_interval=rtcp_interval)
    b = await MediaSession.open(rtcp_interval=rtcp_interval)
    crypto = [make_crypto(1, "AES_CM_128_HMAC_SHA1_80")] if srtp else []
    offer = create_offer(
        [PCMU, PCMA, TELEPHONE_EVENT],
        "127.0.0.1",
        a.local_address[1],
        rtcp_mux=rtcp_mux,
        crypto=crypto,
    )
    answer = create_answer(
        offer,
        [PCMU, TELEPHONE_EVENT],
        "127.0.0.1",
        b.local_address[1],
        rtcp_mux=rtcp_mux,
        require_srtp=srtp,
    )
    a.apply(process_answer(offer, answer.sdp))
    b.apply(answer.audio)
    return a, b


@pytest.fixture
async def sessions() -> AsyncIterator[list[MediaSession]]:
    made: list[MediaSession] = []
    yield made
    for s in made:
        s.close()


async def run_tone(a: MediaSession, b: MediaSession, seconds: float) -> WavRecorder:
    rec = WavRecorder("/dev/null", 8000)
    b.sinks.append(rec)
    a.source = ToneSource(1000, 8000)
    a.start()
    b.start()
    await asyncio.sleep(seconds)
    return rec


async def test_tone_g711_and_rtcp_rtt(sessions: list[MediaSession]) -> None:
    a, b = await pair(rtcp_interval=0.2)
    sessions += [a, b]
    rec = await run_tone(a, b, 1.2)
    pcm = rec.pcm
    assert len(pcm) > 8000 * 0.8
    assert abs(dominant_hz(pcm[2000:], 8000) - 1000) < 10
    sa, sb = a.stats(), b.stats()
    assert sa.packets_sent >= 50
    assert sb.packets_received >= sa.packets_sent - 8  # the last few are in flight/buffered
    assert sb.packets_lost == 0 and sb.invalid == 0
    assert sb.jitter_buffer is not None and sb.jitter_buffer.late == 0
    # A sent SRs, B answered with report blocks: A knows the round trip.
    assert sa.rtt is not None and 0 <= sa.rtt < 0.1
    assert sa.remote_fraction_lost == 0.0
    assert sb.mos > 4.3


async def test_rtcp_mux_and_srtp(sessions: list[MediaSession]) -> None:
    a, b = await pair(rtcp_mux=True, srtp=True, rtcp_interval=0.2)
    sessions += [a, b]
    assert a.srtp is not None and b.srtp is not None
    # Plain RTP injected into B's SRTP port fails authentication and is dropped.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(bytes(RtpPacket(0, 1, 1, 99, b"\xff" * 160)), b.local_address)
    rec = await run_tone(a, b, 1.0)
    assert abs(dominant_hz(rec.pcm[2000:], 8000) - 1000) < 10
    assert b.stats().invalid >= 1
    assert a.stats().rtt is not None  # SRTCP over the muxed port worked


async def test_dtmf_telephone_event(sessions: list[MediaSession]) -> None:
    a, b = await pair()
    sessions += [a, b]
    got: list[str] = []
    b.on_dtmf = lambda d: got.append(d.digit)
    a.source = ToneSource(440, 8000)
    a.start()
    b.start()
    await asyncio.sleep(0.1)
    a.send_dtmf("5", 100)
    a.send_dtmf("#", 100)
    for _ in range(50):
        if len(got) >= 2:
            break
        await asyncio.sleep(0.05)
    assert got == ["5", "#"]


async def test_hold_keeps_socket_and_stops_sending(sessions: list[MediaSession]) -> None:
    a = await MediaSession.open()
    b = await MediaSession.open()
    sessions += [a, b]
    offer = create_offer([PCMU], "127.0.0.1", a.local_address[1])
    answer = create_answer(offer, [PCMU], "127.0.0.1", b.local_address[1])
    a.apply(process_answer(offer, answer.sdp))
    b.apply(answer.audio)
    a.source = ToneSource(1000, 8000)
    a.start()
    b.start()
    await asyncio.sleep(0.4)
    port = a.local_address
    # Re-INVITE with a=inactive (RFC 3264 §8.4): nobody sends, the ports stay.
    offer2 = create_offer([PCMU], "127.0.0.1", a.local_address[1], direction=Direction.INACTIVE)
    answer2 = create_answer(offer2, [PCMU], "127.0.0.1", b.local_address[1])
    a.apply(process_answer(offer2, answer2.sdp))
    b.apply(answer2.audio)
    sent = a.stats().packets_sent
    await asyncio.sleep(0.3)
    assert a.stats().packets_sent == sent
    assert a.local_address == port
    # Resume.
    offer3 = create_offer([PCMU], "127.0.0.1", a.local_address[1])
    answer3 = create_answer(offer3, [PCMU], "127.0.0.1", b.local_address[1])
    a.apply(process_answer(offer3, answer3.sdp))
    b.apply(answer3.audio)
    await asyncio.sleep(0.3)
    assert a.stats().packets_sent > sent + 5


async def test_symmetric_rtp_latches_onto_real_source(sessions: list[MediaSession]) -> None:
    a = await MediaSession.open()
    b = await MediaSession.open()
    sessions += [a, b]
    offer = create_offer([PCMU], "127.0.0.1", a.local_address[1])
    answer = create_answer(offer, [PCMU], "127.0.0.1", b.local_address[1])
    # B is told a wrong port for A (as behind a NAT): it must latch onto A's real port.
    wrong = offer.media[0]
    wrong.port = a.local_address[1] + 100
    audio_b = create_answer(offer, [PCMU], "127.0.0.1", b.local_address[1]).audio
    a.apply(process_answer(offer, answer.sdp))
    b.apply(audio_b)
    assert b.remote_address == ("127.0.0.1", a.local_address[1] + 100)
    got = QueueSource(max_samples=80000)
    a.sinks.append(got)
    a.source = ToneSource(1000, 8000)
    b.source = ToneSource(500, 8000)
    a.start()
    b.start()
    await asyncio.sleep(0.6)
    assert b.remote_address == a.local_address
    pcm = got.read(2400)
    assert pcm is not None  # B's audio reached A after latching
    assert abs(dominant_hz(pcm, 8000) - 500) < 15


@pytest.mark.slow
async def test_through_impairment_relay(sessions: list[MediaSession]) -> None:
    """5 % loss, 40 ms uniform jitter (reordering), 3 % explicit reordering and
    2 % duplication from A to B: the tone survives, concealment matches loss,
    and the reported loss and jitter match the relay's settings.

    Tolerances: loss within 1 percentage point of what the relay actually
    dropped and 2.5 points of the configured 5 %; RFC 3550 jitter of
    U(0, 40 ms) delays is E|X1 - X2| = 40/3 = 13.3 ms, accepted within
    +-5 ms (the event loop adds its own scheduling noise).
    """
    from tests.support.impairment import Impairment, ImpairmentRelay

    a = await MediaSession.open()
    b = await MediaSession.open()
    sessions += [a, b]
    relay = await ImpairmentRelay(
        Impairment(loss=0.05, jitter=0.04, reorder=0.03, reorder_gap=0.03, duplicate=0.02),
        seed=20261127,
        a=a.local_address,
        b=b.local_address,
    ).start()
    try:
        # A's offer tells B to send to the relay's B side; B's answer tells A
        # to send to the relay's A side.
        offer = create_offer([PCMU], "127.0.0.1", relay.port_b, rtcp_mux=True)
        answer = create_answer(offer, [PCMU], "127.0.0.1", relay.port_a, rtcp_mux=True)
        a.apply(process_answer(offer, answer.sdp))
        b.apply(answer.audio)
        rec = await run_tone(a, b, 5.0)
        a.source = None
        await asyncio.sleep(0.3)  # drain the relay and the jitter buffer
    finally:
        relay.close()
    sb = b.stats()
    jb = sb.jitter_buffer
    assert jb is not None
    sent = a.stats().packets_sent
    dropped = relay.stats["a"].dropped
    # Drop fraction among RTP packets (the relay also carried a few RTCP ones).
    actual_loss = dropped / relay.stats["a"].received
    assert abs(sb.fraction_lost - actual_loss) < 0.01
    assert abs(sb.fraction_lost - 0.05) < 0.025
    assert relay.stats["a"].duplicated > 0 and jb.duplicates > 0
    assert abs(sb.jitter - 0.0133) < 0.005
    # Concealment for lost frames tracks the network loss plus late drops.
    concealed_lost = jb.lost / sb.packets_expected
    assert abs(concealed_lost - (sb.fraction_lost + jb.late / sb.packets_expected)) < 0.01
    assert jb.late / sent < 0.03
    pcm = rec.pcm
    assert len(pcm) > 8000 * 4
    assert abs(dominant_hz(pcm[4000:], 8000) - 1000) < 10
    assert 3.5 < sb.mos < 4.3  # 5 % loss with PLC costs about R 15


async def test_codec_change_on_reinvite_keeps_ssrc_and_sequence(
    sessions: list[MediaSession],
) -> None:
    a, b = await pair()
    sessions += [a, b]
    got = QueueSource(max_samples=80000)
    b.sinks.append(got)
    a.source = ToneSource(800, 8000)
    a.start()
    b.start()
    await asyncio.sleep(0.3)
    assert a.info is not None and a.info.name == "PCMU"
    assert a.sender is not None
    ssrc, seq = a.sender.ssrc, a.sender.sequence
    offer = create_offer([PCMA], "127.0.0.1", a.local_address[1])
    answer = create_answer(offer, [PCMA, PCMU], "127.0.0.1", b.local_address[1])
    a.apply(process_answer(offer, answer.sdp))
    b.apply(answer.audio)
    assert a.info.name == "PCMA" and a.sender.payload_type == 8
    assert a.sender.ssrc == ssrc and a.sender.sequence == seq
    before = got.read(got._buffered)
    assert before is not None
    await asyncio.sleep(0.5)
    after = got.read(2400)
    assert after is not None  # PCMA decoded on B after the switch
    assert abs(dominant_hz(after, 8000) - 800) < 15
    assert b.stats().ssrc_changes == 0


async def test_ssrc_collision_picks_new_ssrc_once(sessions: list[MediaSession]) -> None:
    a, b = await pair()
    sessions += [a, b]
    b.start()  # A stays silent, so B latches onto the first packet it gets
    assert b.sender is not None
    ours = b.sender.ssrc
    # A packet carrying B's own SSRC from another address: RFC 3550 §8.2 collision.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        raw = bytes(RtpPacket(0, 7, 7, ours, b"\xff" * 160))
        s.sendto(raw, b.local_address)
        await asyncio.sleep(0.05)
        assert b.sender.ssrc != ours
        changed = b.sender.ssrc
        # The peer echoes our packets back: a second "collision" soon after is a loop.
        s.sendto(bytes(RtpPacket(0, 8, 8, changed, b"\xff" * 160)), b.local_address)
        await asyncio.sleep(0.05)
    assert b.sender.ssrc == changed
    assert b.looped == 1


async def test_transport_port_pair_and_mux() -> None:
    from trunkline.media.transport import RtpTransport

    t = await RtpTransport.open()
    try:
        assert t.local_rtp[1] % 2 == 0 and t.local_rtcp[1] == t.local_rtp[1] + 1
        with pytest.raises(ValueError):
            await RtpTransport.open(port=t.local_rtp[1] + 1)
        got: list[tuple[str, bytes]] = []
        t.set_handlers(lambda d, a: got.append(("rtp", d)), lambda d, a: got.append(("rtcp", d)))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(2)
            s.sendto(b"r", t.local_rtp)
            s.sendto(b"c", t.local_rtcp)
            t.send_rtcp(b"x", s.getsockname())
            assert s.recvfrom(10)[1][1] == t.local_rtcp[1]
            t.rtcp_mux = True
            t.send_rtcp(b"y", s.getsockname())
            assert s.recvfrom(10)[1][1] == t.local_rtp[1]  # RFC 5761: RTCP on the RTP port
            for _ in range(100):
                if len(got) == 2:
                    break
                await asyncio.sleep(0.01)
        assert sorted(got) == [("rtcp", b"c"), ("rtp", b"r")]
    finally:
        t.close()


async def test_peer_switches_codec_without_reoffer(sessions: list[MediaSession]) -> None:
    """RFC 3264 §5.1: the peer may change among the negotiated codecs at will."""
    from trunkline.media.codecs.g711 import lin2alaw, lin2ulaw

    b = await MediaSession.open()
    sessions.append(b)
    offer = create_offer([PCMU, PCMA], "127.0.0.1", free_port())
    answer = create_answer(offer, [PCMU, PCMA], "127.0.0.1", b.local_address[1])
    b.apply(answer.audio)
    got = QueueSource(max_samples=80000)
    b.sinks.append(got)
    b.start()
    tone = ToneSource(700, 8000, level=0.5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        for n in range(40):
            pcm = tone.read(160)
            assert pcm is not None
            pt, payload = (0, lin2ulaw(pcm)) if n < 20 else (8, lin2alaw(pcm))
            s.sendto(bytes(RtpPacket(pt, n, n * 160, 0xABC, payload)), b.local_address)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
    assert b.unknown_payload == 0
    pcm = got.read(got._buffered)
    assert pcm is not None and len(pcm) >= 38 * 160
    # Both halves decode to the tone: A-law decoded as u-law would be noise.
    # Playout starts at the first packet; frames 24-34 are A-law ones even if
    # the buffer dropped a frame or two while adapting its delay.
    for part in (pcm[2 * 160 : 18 * 160], pcm[24 * 160 : 34 * 160]):
        assert abs(dominant_hz(part, 8000) - 700) < 20
        rms = np.sqrt(np.mean(part.astype(np.float64) ** 2))
        assert 10000 < rms < 13000  # a 0.5 full-scale sine has RMS 11585


async def test_bridge_one_session_into_another(sessions: list[MediaSession]) -> None:
    """A -> B, and B's received audio is the source of C -> D (a B2BUA leg)."""
    a, b = await pair()
    c, d = await pair()
    sessions += [a, b, c, d]
    bridge = QueueSource(max_samples=1600)
    b.sinks.append(bridge)  # a QueueSource is a sink too
    c.source = bridge
    heard = QueueSource(max_samples=80000)
    d.sinks.append(heard)
    a.source = ToneSource(900, 8000)
    for s in (a, b, c, d):
        s.start()
    await asyncio.sleep(0.8)
    pcm = heard.read(heard._buffered)
    assert pcm is not None and len(pcm) > 2400
    assert abs(dominant_hz(pcm[-2400:], 8000) - 900) < 15
    assert bridge.dropped == 0


def test_session_pair_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def run() -> int:
        a, b = await pair()
        try:
            got = QueueSource(max_samples=80000)
            b.sinks.append(got)
            a.source = ToneSource(1000, 8000)
            a.start()
            b.start()
            await asyncio.sleep(0.5)
            return got._buffered
        finally:
            a.close()
            b.close()

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(run()) >= 8000 * 0.3
    finally:
        loop.close()


async def test_new_remote_ssrc_restarts_stream(sessions: list[MediaSession]) -> None:
    from trunkline.media.codecs.g711 import lin2ulaw

    b = await MediaSession.open()
    sessions.append(b)
    offer = create_offer([PCMU], "127.0.0.1", free_port())
    b.apply(create_answer(offer, [PCMU], "127.0.0.1", b.local_address[1]).audio)
    got = QueueSource(max_samples=80000)
    b.sinks.append(got)
    b.start()
    tone = ToneSource(600, 8000, level=0.5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        for n in range(60):
            pcm = tone.read(160)
            assert pcm is not None
            # At n = 30 the peer restarts: new SSRC, sequence 100 behind.
            ssrc, seq = (1, 5000 + n) if n < 30 else (2, 4900 + n)
            s.sendto(bytes(RtpPacket(0, seq, n * 160, ssrc, lin2ulaw(pcm))), b.local_address)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.15)
    stats = b.stats()
    assert stats.ssrc_changes == 1
    jb = stats.jitter_buffer
    assert jb is not None and jb.late == 0  # not mistaken for 100-packet-late packets
    assert jb.played >= 25  # the new stream's packets were played
    assert stats.packets_received >= 28 and stats.packets_lost == 0


def tone_snr(pcm: Pcm, hz: float, rate: int, window: int) -> float:
    """SNR (dB) of a received tone: per ``window`` samples, the least-squares fit
    of a sine and cosine at ``hz`` (plus DC) is the signal, the rest is noise."""
    n = len(pcm) // window * window
    x = pcm[:n].astype(np.float64).reshape(-1, window)
    t = np.arange(window) / rate
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t), np.ones(window)])
    coef, *_ = np.linalg.lstsq(basis.T, x.T, rcond=None)
    fitted = (basis.T @ coef).T
    return float(10 * np.log10(np.sum(fitted**2) / max(np.sum((x - fitted) ** 2), 1.0)))


@pytest.mark.slow
async def test_opus_in_band_fec_through_impairment_relay(sessions: list[MediaSession]) -> None:
    """Opus with 5 % loss, twice at once through identically seeded relays: with FEC
    the lost packets whose successor carries LBRR are rebuilt (``recovered``), and
    the tone comes out cleaner than with FEC off (libopus PLC for every loss).

    The tone is 2 kHz: for it libopus (32 kbit/s, ``voip``, 10 % expected loss) puts
    LBRR data in every packet; for a 1 kHz tone it does so in only about a third.
    After a loss the decoder needs ~0.5 s to converge on a pure tone again either way,
    which FEC shortens but does not remove.
    """
    from tests.support.impairment import Impairment, ImpairmentRelay

    from trunkline.sip.offeranswer import OPUS

    relays: list[ImpairmentRelay] = []
    receivers: list[tuple[MediaSession, list[Pcm]]] = []
    try:
        for fec in (True, False):
            a = await MediaSession.open()
            b = await MediaSession.open(fec=fec)
            sessions += [a, b]
            relay = await ImpairmentRelay(
                Impairment(loss=0.05), seed=7, a=a.local_address, b=b.local_address
            ).start()
            relays.append(relay)
            offer = create_offer([OPUS], "127.0.0.1", relay.port_b, rtcp_mux=True)
            answer = create_answer(offer, [OPUS], "127.0.0.1", relay.port_a, rtcp_mux=True)
            a.apply(process_answer(offer, answer.sdp))
            b.apply(answer.audio)
            frames: list[Pcm] = []
            b.sinks.append(frames.append)
            a.source = ToneSource(2000, 48000)
            receivers.append((b, frames))
        for s in sessions:
            s.start()
        await asyncio.sleep(4.0)
    finally:
        for relay in relays:
            relay.close()
    (with_fec, fec_frames), (without, plc_frames) = receivers
    jb_fec, jb_plc = with_fec.stats().jitter_buffer, without.stats().jitter_buffer
    assert jb_fec is not None and jb_plc is not None
    assert jb_fec.lost >= 5 and jb_plc.lost >= 5
    assert jb_fec.recovered > 0 and jb_plc.recovered == 0
    assert jb_fec.recovered <= jb_fec.lost
    skip = 25  # the first half second: start-up and the jitter buffer settling
    snr_fec = tone_snr(np.concatenate(fec_frames[skip:]), 2000, 48000, 4800)
    snr_plc = tone_snr(np.concatenate(plc_frames[skip:]), 2000, 48000, 4800)
    print(f"recovered {jb_fec.recovered}/{jb_fec.lost}: {snr_fec:.1f} dB vs {snr_plc:.1f} dB")
    assert jb_fec.recovered >= jb_fec.lost // 2  # all but back-to-back losses
    assert snr_fec > snr_plc + 4.0
    assert with_fec.stats().mos > without.stats().mos


async def test_latched_socket_is_connected_and_reopens_when_the_peer_falls_silent(
    sessions: list[MediaSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the latched peer has kept sending a while, the RTP socket is connected to
    it; when the peer is silent for the re-latch delay it is disconnected, so a new
    source (a NAT rebinding) can take over, and the session connects to that one."""
    import trunkline.media.session as session_module

    monkeypatch.setattr(session_module, "_RELATCH_AFTER", 0.2)
    monkeypatch.setattr(session_module, "_CONNECT_AFTER", 0.2)
    a, b = await pair()
    sessions += [a, b]
    a.source = ToneSource(1000, 8000)
    a.start()
    b.start()
    for _ in range(100):
        if b.transport.connected is not None:
            break
        await asyncio.sleep(0.01)
    assert b.transport.connected == a.local_address
    a.close()  # the peer goes away...
    await asyncio.sleep(0.4)
    assert b.transport.connected is None
    # ...and comes back from another port, sending every 20 ms.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        assert a.sender is not None
        for seq in range(50):
            pkt = RtpPacket(0, 100 + seq, 160 * seq, a.sender.ssrc, b"\xff" * 160)
            s.sendto(bytes(pkt), b.local_address)
            await asyncio.sleep(0.02)
            if b.transport.connected is not None:
                break
        assert b.remote_address == s.getsockname()
        assert b.transport.connected == s.getsockname()


async def test_both_ends_latching_at_once_through_two_relays_converge(
    sessions: list[MediaSession],
) -> None:
    """Each session sits behind its own relay that forwards from its other side (as a
    TURN server does) and both start on the same tick: each first hears the other's
    packets through its *own* relay and latches there, then answers into a path the
    other no longer listens on. The end with the lower SSRC follows the stream to its
    new address (``_stream_moved``) at once instead of both waiting 2 s in silence."""
    from tests.support.impairment import Impairment, ImpairmentRelay

    a = await MediaSession.open()
    b = await MediaSession.open()
    sessions += [a, b]
    relay_a = await ImpairmentRelay(Impairment(), b=a.local_address).start()
    relay_b = await ImpairmentRelay(Impairment(), b=b.local_address).start()
    try:
        # A announces its relay's A side, B its own: each sends to the other's relay.
        offer = create_offer([PCMU], "127.0.0.1", relay_a.port_a)
        answer = create_answer(offer, [PCMU], "127.0.0.1", relay_b.port_a)
        a.apply(process_answer(offer, answer.sdp))
        b.apply(answer.audio)
        got_a = QueueSource(max_samples=80000)
        got_b = QueueSource(max_samples=80000)
        a.sinks.append(got_a)
        b.sinks.append(got_b)
        a.source = ToneSource(500, 8000)
        b.source = ToneSource(900, 8000)
        a.start()
        b.start()  # same clock tick as A
        await asyncio.sleep(0.8)
        sa, sb = a.stats(), b.stats()
        # Without following, both would receive only their first packet or two.
        assert sa.packets_received > 20 and sb.packets_received > 20
        assert got_a.read(1600) is not None and got_b.read(1600) is not None
        assert sa.foreign + sb.foreign < 10  # a couple of packets before following
    finally:
        relay_a.close()
        relay_b.close()
