"""Owner: helper C. The Trunkline softphone against real peers (issue 4).

A ``trunkline phone`` process registers with digest auth (RFC 3261 §22) to
Kamailio, calls a baresip and a linphonec registered there and is called by
each. Audio flows both ways: each side's recording holds the other side's
tone (FFT peak and Goertzel share, not packet counts). DTMF digits sent by
each side are reported by the other: RFC 4733 telephone-events both ways,
and SIP INFO (``application/dtmf-relay``) from the answering Trunkline phone;
linphonec's pause and resume re-INVITEs are answered and reported. With the
``trunkline.ua`` library in-process (the CLI has no hold or transfer
commands), hold and resume by re-INVITE (RFC 3264 §8.4) and a blind transfer
(REFER, RFC 3515) complete with baresip, in both roles.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from tests.support import audio
from tests.support.baresip import Baresip, BaresipAccount, BaresipFactory
from tests.support.kamailio import Kamailio
from tests.support.linphone import Linphone, LinphoneAccount, LinphoneFactory
from tests.support.peers import free_port, require_peer
from tests.support.rtpcapture import RtpCapture
from tests.support.trunkline_phone import PhoneProcess, PhoneProcesses

from trunkline.ua.call import Call, CallConfig, CallResult, CallState, TransferProgress
from trunkline.ua.phone import IncomingCall, Phone, PhoneConfig, PhoneEvent, TransferRequested
from trunkline.ua.registration import Registered

pytestmark = pytest.mark.interop

USERS = {name: f"{name}-{secrets.token_hex(4)}" for name in ("dave", "alice", "bob", "carol")}
DAVE_HZ = 800.0  # the Trunkline phone's microphone
ALICE_HZ = 1000.0  # baresip
BOB_HZ = 600.0  # linphonec
CAROL_HZ = 1400.0  # a second baresip (transfer target)
TOLERANCE_HZ = audio.TONE_TOLERANCE_HZ
CALL_SECONDS = 5.0


@pytest.fixture
async def phones() -> AsyncIterator[PhoneProcesses]:
    processes = PhoneProcesses()
    try:
        yield processes
    finally:
        await processes.close()


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    binary = require_peer("kamailio", "kamailio")
    with Kamailio(tmp_path_factory.mktemp("kamailio"), USERS, binary=binary) as kam:
        yield kam


def via(kam: Kamailio, user: str) -> str:
    """``user``'s AOR with Kamailio's port, so that the request goes through it."""
    return f"sip:{user}@{kam.domain}:{kam.port}"


async def trunkline_phone(
    phones: PhoneProcesses,
    workdir: Path,
    kam: Kamailio,
    *args: str,
    duration: float = CALL_SECONDS,
) -> PhoneProcess:
    """``trunkline phone ARGS`` as dave, registered to ``kam`` with digest auth."""
    workdir.mkdir(parents=True, exist_ok=True)
    common = [
        "--user",
        "dave",
        "--password",
        USERS["dave"],
        "--registrar",
        kam.uri,
        "--local",
        f"127.0.0.1:{free_port()}",
        "--play",
        str(audio.write_tone_wav(workdir / "dave-mic.wav", DAVE_HZ, 40)),
        "--record",
        str(workdir / "dave-heard.wav"),
        "--duration",
        str(duration),
    ]
    return await phones.start(workdir, *args, *common)


async def alice(factory: BaresipFactory, kam: Kamailio, tmp: Path, **kw: object) -> Baresip:
    account = BaresipAccount("alice", registrar_port=kam.port, auth_pass=USERS["alice"])
    for key, value in kw.items():
        setattr(account, key, value)
    phone = await factory(account, audio.write_tone_wav(tmp / "alice-mic.wav", ALICE_HZ, 40))
    await phone.wait_registered()
    return phone


# -- the CLI phone: audio and DTMF both ways --------------------------------------

CONNECTED = r"^connected \(PCM[UA]/8000"


async def cli_caller(
    phones: PhoneProcesses, tmp_path: Path, kam: Kamailio, callee: str, dtmf: str
) -> PhoneProcess:
    """``trunkline phone call``: dave calls ``callee`` and sends ``dtmf`` (RFC 4733)."""
    phone = await trunkline_phone(
        phones, tmp_path / "dave", kam, "call", via(kam, callee), "--dtmf", dtmf
    )
    await phone.expect(r"^registered sip:dave@")
    return phone


async def cli_listener(
    phones: PhoneProcesses, tmp_path: Path, kam: Kamailio, dtmf: str, duration: float
) -> PhoneProcess:
    """``trunkline phone listen``: dave answers the first call and sends ``dtmf`` by INFO."""
    phone = await trunkline_phone(
        phones,
        tmp_path / "dave",
        kam,
        *("listen", "--auto-answer", "--dtmf", dtmf, "--dtmf-method", "info"),
        duration=duration,
    )
    await phone.expect(r"^registered sip:dave@")
    return phone


async def cli_call_ends(
    phone: PhoneProcess,
    peer_ended: Callable[[], Awaitable[object]],
    timeout: float = CALL_SECONDS + 20,
) -> None:
    """The phone hangs up after ``--duration``, exits 0, and the peer sees the call end."""
    code = await phone.wait(timeout)
    assert code == 0, phone.output()
    await peer_ended()


def assert_dtmf_both_ways(
    phone: PhoneProcess, *, to_phone: str, from_phone: str, peer_received: str
) -> None:
    assert phone.received_dtmf() == to_phone, phone.output()
    assert peer_received == from_phone


def assert_audio_both_ways(tmp_path: Path, peer: str, peer_hz: float, peer_heard: Path) -> None:
    """dave's recording holds the peer's tone and the peer's holds dave's."""
    audio.assert_hears(tmp_path / "dave" / "dave-heard.wav", peer_hz, f"trunkline hearing {peer}")
    audio.assert_hears(peer_heard, DAVE_HZ, f"{peer} hearing trunkline")


async def test_phone_calls_baresip_audio_and_dtmf(
    kamailio: Kamailio,
    baresip_factory: BaresipFactory,
    phones: PhoneProcesses,
    tmp_path: Path,
) -> None:
    bare = await alice(baresip_factory, kamailio, tmp_path, answermode="auto")
    phone = await cli_caller(phones, tmp_path, kamailio, "alice", "159#")
    await bare.wait_established(timeout=15)
    await phone.expect(CONNECTED)
    await asyncio.sleep(1.0)
    await bare.send_dtmf("37*")
    await cli_call_ends(phone, bare.wait_closed)
    assert "call completed" in phone.output()
    assert_dtmf_both_ways(
        phone, to_phone="37*", from_phone="159#", peer_received=bare.received_dtmf()
    )
    assert_audio_both_ways(tmp_path, "baresip", ALICE_HZ, bare.recordings()[-1])


async def test_baresip_calls_phone_audio_and_dtmf(
    kamailio: Kamailio,
    baresip_factory: BaresipFactory,
    phones: PhoneProcesses,
    tmp_path: Path,
) -> None:
    bare = await alice(baresip_factory, kamailio, tmp_path)
    phone = await cli_listener(phones, tmp_path, kamailio, "260", CALL_SECONDS)
    await bare.dial(via(kamailio, "dave"))
    await phone.expect(CONNECTED)
    await asyncio.sleep(1.0)
    await bare.send_dtmf("4#8")
    await cli_call_ends(phone, bare.wait_closed)
    assert "DTMF sent: 260 (info)" in phone.output()
    assert_dtmf_both_ways(
        phone, to_phone="4#8", from_phone="260", peer_received=bare.received_dtmf()
    )
    assert_audio_both_ways(tmp_path, "baresip", ALICE_HZ, bare.recordings()[-1])


async def bob(factory: LinphoneFactory, kam: Kamailio, tmp: Path) -> Linphone:
    account = LinphoneAccount("bob", registrar_port=kam.port, password=USERS["bob"])
    phone = await factory(account, audio.write_tone_wav(tmp / "bob-mic.wav", BOB_HZ, 40))
    await phone.wait_registered()
    return phone


async def test_phone_calls_linphone_audio_and_dtmf(
    kamailio: Kamailio,
    linphone_factory: LinphoneFactory,
    phones: PhoneProcesses,
    tmp_path: Path,
) -> None:
    lin = await bob(linphone_factory, kamailio, tmp_path)
    phone = await cli_caller(phones, tmp_path, kamailio, "bob", "73")
    await lin.wait_incoming()
    await lin.answer()
    await phone.expect(CONNECTED)
    await lin.send_dtmf("91")
    await cli_call_ends(phone, lin.wait_ended)
    assert_dtmf_both_ways(phone, to_phone="91", from_phone="73", peer_received=lin.received_dtmf())
    assert_audio_both_ways(tmp_path, "linphonec", BOB_HZ, lin.record_wav)


async def test_linphone_calls_phone_audio_dtmf_hold(
    kamailio: Kamailio,
    linphone_factory: LinphoneFactory,
    phones: PhoneProcesses,
    tmp_path: Path,
) -> None:
    lin = await bob(linphone_factory, kamailio, tmp_path)
    phone = await cli_listener(phones, tmp_path, kamailio, "5*", CALL_SECONDS + 2)
    await lin.call(via(kamailio, "dave"))
    await phone.expect(CONNECTED)
    await lin.send_dtmf("06")
    await phone.expect(r"^DTMF sent: ", timeout=5.0)
    # linphonec puts the phone on hold and back (re-INVITEs the phone answers).
    await lin.pause()
    await lin.expect(r"Call \d+ with .* is now paused", timeout=5.0)
    await phone.expect(r"^onhold \(", timeout=5.0)
    await lin.resume()
    await phone.expect(r"^resumed \(", timeout=5.0)
    await cli_call_ends(phone, lin.wait_ended, CALL_SECONDS + 22)
    assert "DTMF sent: 5* (info)" in phone.output()
    assert_dtmf_both_ways(phone, to_phone="06", from_phone="5*", peer_received=lin.received_dtmf())
    assert_audio_both_ways(tmp_path, "linphonec", BOB_HZ, lin.record_wav)


# -- the library in-process: hold, resume and blind transfer with baresip -----------


@pytest.fixture
async def ua(kamailio: Kamailio) -> AsyncIterator[Phone]:
    """A ``trunkline.ua`` phone registered as dave at Kamailio (auto-answer on)."""
    phone = await Phone.start(
        PhoneConfig(
            host="127.0.0.1",
            user="dave",
            password=USERS["dave"],
            identity=via(kamailio, "dave"),
            auto_answer=True,
            call=CallConfig(media_host="127.0.0.1"),
        )
    )
    try:
        event = await phone.register(phone.account(registrar=kamailio.uri), timeout=10.0)
        assert isinstance(event, Registered), event
        yield phone
    finally:
        await phone.close()


async def next_event(phone: Phone, kind: type[PhoneEvent], timeout: float = 10.0) -> PhoneEvent:
    """The next event of ``kind`` from ``phone.events`` (others are dropped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        with contextlib.suppress(TimeoutError):
            event = await asyncio.wait_for(phone.events.get(), left)
            if isinstance(event, kind):
                return event
    raise TimeoutError(f"no {kind.__name__} from the phone in {timeout} s")


async def dial(ua: Phone, kam: Kamailio, user: str, record: Path | None = None) -> Call:
    """Call ``user`` through Kamailio playing dave's tone; returns once it connected."""
    call = ua.call(via(kam, user))
    call.play(tone=DAVE_HZ)
    if record is not None:
        call.record(record)
    await connected(call)
    return call


async def connected(call: Call, timeout: float = 15.0) -> None:
    """Wait for the outgoing ``call`` to be answered (its dial task ends with None)."""
    assert call.dial_task is not None
    assert await asyncio.wait_for(call.dial_task, timeout) is None, (call.status, call.reason)


def packets_in(call: Call) -> int:
    assert call.media is not None
    return call.media.stats().packets_received


def packets_out(call: Call) -> int:
    assert call.media is not None
    return call.media.stats().packets_sent


def state_of(call: Call) -> CallState:
    """The call's state now (a function, so that mypy does not narrow it across awaits)."""
    return call.state


async def wait_for_state(call: Call, state: CallState, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while call.state is not state:
        assert loop.time() < deadline, f"{call} never reached {state}"
        await asyncio.sleep(0.05)


async def test_hold_and_resume_both_ways_with_baresip(
    kamailio: Kamailio, baresip_factory: BaresipFactory, ua: Phone, tmp_path: Path
) -> None:
    """RFC 3264 §8.4 hold and resume, by us and by baresip, with media checked on the wire.

    What baresip hears is read from the RTP itself (tshark): baresip 1.0
    re-creates its player on every re-INVITE and its sndfile decode dump
    stops there, although the RTP keeps coming (one SSRC, no sequence gap).
    """
    tshark = require_peer("tshark", "tshark")
    bare = await alice(baresip_factory, kamailio, tmp_path, answermode="auto")
    capture = RtpCapture(
        tmp_path / "hold.pcap", [(bare.rtp_base, bare.rtp_base + 40)], binary=tshark
    )
    capture.start()
    try:
        call = await dial(ua, kamailio, "alice", record=tmp_path / "dave-heard.wav")
        await bare.wait_established()
        await asyncio.sleep(1.0)
        assert packets_in(call) > 20

        # We hold (a=sendonly offer): baresip answers recvonly and stops sending.
        assert await call.hold()
        assert state_of(call) is CallState.ON_HOLD and call.local_hold
        await asyncio.sleep(0.3)
        before = packets_in(call)
        await asyncio.sleep(1.0)
        assert packets_in(call) - before < 5, "baresip kept sending while held"
        assert await call.resume()
        assert state_of(call) is CallState.CONNECTED and not call.local_hold
        before = packets_in(call)
        await asyncio.sleep(1.0)
        assert packets_in(call) - before > 20, "no audio from baresip after resume"

        # baresip holds us: the phone answers its sendonly offer with recvonly.
        await bare.hold()
        await wait_for_state(call, CallState.ON_HOLD)
        assert call.remote_hold
        await asyncio.sleep(0.3)
        sent = packets_out(call)
        await asyncio.sleep(1.0)
        assert packets_out(call) - sent < 5, "the phone kept sending while held by baresip"
        await bare.resume()
        await wait_for_state(call, CallState.CONNECTED)
        assert not call.remote_hold
        sent = packets_out(call)
        await asyncio.sleep(1.0)
        assert packets_out(call) - sent > 20, "the phone did not resume sending"

        await call.hangup()
        await bare.wait_closed()
    finally:
        capture.stop()
    assert call.result is CallResult.COMPLETED
    audio.assert_hears(tmp_path / "dave-heard.wav", ALICE_HZ, "trunkline hearing baresip")
    assert call.media is not None
    ours = [s for s in capture.streams() if s.src_port == call.media.local_address[1]]
    assert len(ours) == 1, [(s.src, s.dst, s.packets) for s in capture.streams()]
    stream = ours[0]
    gaps = [
        (a, b)
        for a, b in zip(stream.sequence, stream.sequence[1:], strict=False)
        if b != (a + 1) % 65536
    ]
    assert not gaps, f"RTP sequence gaps across the re-INVITEs: {gaps}"
    pcm = stream.pcm()
    tail = pcm[-audio.RATE :]  # the last second: after baresip's resume
    assert abs(audio.dominant_frequency(tail) - DAVE_HZ) < TOLERANCE_HZ
    assert audio.has_tone(pcm, audio.RATE, DAVE_HZ)


async def carol(factory: BaresipFactory, kam: Kamailio, tmp: Path) -> Baresip:
    account = BaresipAccount(
        "carol", registrar_port=kam.port, auth_pass=USERS["carol"], answermode="auto"
    )
    phone = await factory(account, audio.write_tone_wav(tmp / "carol-mic.wav", CAROL_HZ, 40))
    await phone.wait_registered()
    return phone


async def test_phone_transfers_baresip_blind(
    kamailio: Kamailio, baresip_factory: BaresipFactory, ua: Phone, tmp_path: Path
) -> None:
    """Trunkline as transferor: REFER alice to carol, NOTIFY 200, then BYE."""
    bare = await alice(baresip_factory, kamailio, tmp_path, answermode="auto")
    target = await carol(baresip_factory, kamailio, tmp_path)
    call = await dial(ua, kamailio, "alice")
    await bare.wait_established()
    await asyncio.sleep(0.5)
    status = await asyncio.wait_for(call.transfer(via(kamailio, "carol")), 20.0)
    assert status == 200
    progress = await next_event(ua, TransferProgress)
    assert isinstance(progress, TransferProgress)
    await asyncio.wait_for(call.ended.wait(), 5.0)
    assert call.result is CallResult.COMPLETED
    await target.wait_established()
    await asyncio.sleep(2.0)
    await target.hangup()
    audio.assert_hears(target.recordings()[-1], ALICE_HZ, "carol hearing alice after the transfer")


async def test_baresip_transfers_phone_blind(
    kamailio: Kamailio, baresip_factory: BaresipFactory, ua: Phone, tmp_path: Path
) -> None:
    """Trunkline as transferee: baresip's REFER makes the phone call carol."""
    bare = await alice(baresip_factory, kamailio, tmp_path)
    target = await carol(baresip_factory, kamailio, tmp_path)
    await bare.dial(via(kamailio, "dave"))
    incoming = await next_event(ua, IncomingCall)
    assert isinstance(incoming, IncomingCall)
    first = incoming.call
    first.play(tone=DAVE_HZ)
    first.record(tmp_path / "dave-heard.wav")
    await asyncio.sleep(1.5)
    await bare.transfer(via(kamailio, "carol"))
    requested = await next_event(ua, TransferRequested)
    assert isinstance(requested, TransferRequested)
    assert requested.target.uri.user == "carol"
    second = requested.new_call
    second.record(tmp_path / "dave-heard-carol.wav")
    await connected(second)
    await target.wait_established()
    await bare.wait_closed()
    await asyncio.wait_for(first.ended.wait(), 10.0)
    await asyncio.sleep(2.0)
    await second.hangup()
    await target.wait_closed()
    assert second.result is CallResult.COMPLETED
    audio.assert_hears(tmp_path / "dave-heard.wav", ALICE_HZ, "trunkline hearing alice before")
    audio.assert_hears(tmp_path / "dave-heard-carol.wav", CAROL_HZ, "trunkline hearing carol")
    audio.assert_hears(target.recordings()[-1], DAVE_HZ, "carol hearing trunkline")
