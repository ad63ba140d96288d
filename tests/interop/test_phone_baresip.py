"""A Trunkline phone and baresip, both registered with digest auth at Kamailio.

Trunkline calls baresip through Kamailio (407 answered on the INVITE) and is
called by it; audio flows both ways and each side's recording holds the
other side's tone (FFT peak); RFC 4733 DTMF goes both ways; hold and resume
by re-INVITE; a blind transfer (REFER + NOTIFY sipfrag, RFC 3515) of baresip
to a second Trunkline phone completes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.support import audio
from tests.support.baresip import (
    BaresipAccount,
    BaresipFactory,
    baresip_factory,  # noqa: F401  (fixture)
)
from tests.support.kamailio import Kamailio
from tests.support.peers import require_peer

from trunkline.sip.sdp import Direction
from trunkline.ua.call import CallConfig, CallResult, CallState, DtmfReceived
from trunkline.ua.phone import IncomingCall, Phone, PhoneConfig, PhoneEvent, TransferRequested
from trunkline.ua.registration import Registered

pytestmark = pytest.mark.interop

USERS = {name: f"{name}-{secrets.token_hex(4)}" for name in ("alice", "carol")}
ALICE_HZ = 440.0  # the Trunkline phone
CAROL_HZ = 1400.0  # baresip
TOLERANCE_HZ = 15.0


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    binary = require_peer("kamailio", "kamailio")
    with Kamailio(tmp_path_factory.mktemp("kamailio"), USERS, binary=binary) as kam:
        yield kam


@pytest.fixture
async def alice(kamailio: Kamailio) -> AsyncIterator[Phone]:
    phone = await Phone.start(
        PhoneConfig(user="alice", password=USERS["alice"], identity=kamailio.aor("alice"))
    )
    try:
        event = await phone.register(phone.account(kamailio.aor("alice"), registrar=kamailio.uri))
        assert isinstance(event, Registered), event
        yield phone
    finally:
        await phone.close()


async def carol_phone(factory: BaresipFactory, kam: Kamailio, tmp: Path, answermode: str):  # type: ignore[no-untyped-def]
    require_peer("baresip", "baresip")
    wav = audio.write_tone_wav(tmp / "carol-mic.wav", CAROL_HZ, 40)
    account = BaresipAccount(
        "carol",
        registrar_port=kam.port,
        auth_pass=USERS["carol"],
        answermode=answermode,  # type: ignore[arg-type]
    )
    phone = await factory(account, wav)
    await phone.wait_registered()
    return phone


def assert_hears(path: Path, hz: float, what: str) -> None:
    samples, rate = audio.read_wav(path)
    heard = audio.active_part(samples, rate)
    assert heard.size > rate, f"{what}: less than 1 s of audio in {path}"
    peak = audio.dominant_frequency(heard, rate)
    assert abs(peak - hz) < TOLERANCE_HZ, f"{what}: peak at {peak:.1f} Hz, want {hz}"


async def next_event(phone: Phone, kind: type, timeout: float = 10.0) -> PhoneEvent:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = await asyncio.wait_for(phone.events.get(), max(deadline - loop.time(), 0.01))
        if isinstance(event, kind):
            return event


async def test_trunkline_calls_baresip_audio_dtmf_hold(
    kamailio: Kamailio,
    alice: Phone,
    baresip_factory: BaresipFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    carol = await carol_phone(baresip_factory, kamailio, tmp_path, "auto")
    call = alice.call(f"sip:carol@127.0.0.1:{kamailio.port}")
    call.play(tone=ALICE_HZ)
    call.record(tmp_path / "alice-heard.wav")
    assert call.dial_task is not None
    assert await asyncio.wait_for(call.dial_task, 15) is None, call.reason
    await asyncio.sleep(2.0)
    await call.send_dtmf("19#")
    for _ in range(50):
        if carol.received_dtmf() == "19#":
            break
        await asyncio.sleep(0.1)
    assert carol.received_dtmf() == "19#"
    await carol.send_dtmf("508")
    digits = []
    for _ in range(3):
        event = await next_event(alice, DtmfReceived)
        assert isinstance(event, DtmfReceived)
        digits.append(event.digit)
    assert "".join(digits) == "508"
    assert await call.hold()
    assert call.state is CallState.ON_HOLD
    assert call.audio is not None and not call.audio.direction.receives
    assert await call.resume()
    assert call.state is CallState.CONNECTED
    assert call.audio is not None and call.audio.direction is Direction.SENDRECV
    await asyncio.sleep(1.5)
    await call.hangup()
    assert call.result is CallResult.COMPLETED and call.status == 200
    await carol.wait_closed()
    assert_hears(tmp_path / "alice-heard.wav", CAROL_HZ, "Trunkline hears baresip")
    assert_hears(carol.recordings()[-1], ALICE_HZ, "baresip hears Trunkline")


async def test_baresip_calls_trunkline(
    kamailio: Kamailio,
    alice: Phone,
    baresip_factory: BaresipFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    carol = await carol_phone(baresip_factory, kamailio, tmp_path, "manual")
    await carol.checked("dial", f"sip:alice@127.0.0.1:{kamailio.port}")
    ring = await next_event(alice, IncomingCall)
    assert isinstance(ring, IncomingCall)
    incoming = ring.call
    assert "carol" in incoming.remote_uri
    incoming.play(tone=ALICE_HZ)
    incoming.record(tmp_path / "alice-heard.wav")
    assert await incoming.answer()
    await carol.wait_established()
    await asyncio.sleep(3.0)
    await carol.hangup()
    await asyncio.wait_for(incoming.ended.wait(), 10)
    assert incoming.result is CallResult.COMPLETED
    assert_hears(tmp_path / "alice-heard.wav", CAROL_HZ, "Trunkline hears baresip")
    assert_hears(carol.recordings()[-1], ALICE_HZ, "baresip hears Trunkline")


async def test_blind_transfer_of_baresip(
    kamailio: Kamailio,
    alice: Phone,
    baresip_factory: BaresipFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    carol = await carol_phone(baresip_factory, kamailio, tmp_path, "auto")
    dave = await Phone.start(PhoneConfig(user="dave", auto_answer=True, call=CallConfig()))
    try:
        call = alice.call(f"sip:carol@127.0.0.1:{kamailio.port}")
        assert call.dial_task is not None
        assert await asyncio.wait_for(call.dial_task, 15) is None, call.reason
        await asyncio.sleep(0.5)
        host, port = dave.local_address
        status = await asyncio.wait_for(call.transfer(f"sip:dave@{host}:{port}"), 30)
        assert status == 200
        assert call.ended.is_set()
        ring = await next_event(dave, IncomingCall)
        assert isinstance(ring, IncomingCall)
        assert ring.call.is_active
        assert "carol" in ring.call.remote_uri
        await ring.call.hangup()
        await carol.wait_closed()
        assert not any(isinstance(e, TransferRequested) for e in _drain(alice))
    finally:
        await dave.close()


def _drain(phone: Phone) -> list[PhoneEvent]:
    events = []
    while not phone.events.empty():
        events.append(phone.events.get_nowait())
    return events
