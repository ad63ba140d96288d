"""A Trunkline phone and linphonec, both registered with digest auth at Kamailio,
call each other; each side's recording holds the other side's tone and
RFC 4733 DTMF from Trunkline is reported by linphonec."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.support import audio
from tests.support.kamailio import Kamailio
from tests.support.linphone import (
    LinphoneAccount,
    LinphoneFactory,
    linphone_factory,  # noqa: F401  (fixture)
)
from tests.support.peers import require_peer

from trunkline.ua.call import CallResult
from trunkline.ua.phone import IncomingCall, Phone, PhoneConfig
from trunkline.ua.registration import Registered

pytestmark = pytest.mark.interop

USERS = {name: f"{name}-{secrets.token_hex(4)}" for name in ("alice", "bob")}
ALICE_HZ = 440.0  # the Trunkline phone
BOB_HZ = 600.0  # linphonec
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


def assert_hears(path: Path, hz: float, what: str) -> None:
    samples, rate = audio.read_wav(path)
    heard = audio.active_part(samples, rate)
    assert heard.size > rate, f"{what}: less than 1 s of audio in {path}"
    peak = audio.dominant_frequency(heard, rate)
    assert abs(peak - hz) < TOLERANCE_HZ, f"{what}: peak at {peak:.1f} Hz, want {hz}"


async def start_bob(factory: LinphoneFactory, kam: Kamailio, tmp: Path):  # type: ignore[no-untyped-def]
    wav = audio.write_tone_wav(tmp / "bob-mic.wav", BOB_HZ, 40)
    account = LinphoneAccount("bob", registrar_port=kam.port, password=USERS["bob"])
    bob = await factory(account, wav)
    await bob.wait_registered()
    return bob


async def test_trunkline_calls_linphone(
    kamailio: Kamailio,
    alice: Phone,
    linphone_factory: LinphoneFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    bob = await start_bob(linphone_factory, kamailio, tmp_path)
    call = alice.call(f"sip:bob@127.0.0.1:{kamailio.port}")
    call.play(tone=ALICE_HZ)
    call.record(tmp_path / "alice-heard.wav")
    caller, _ = await bob.wait_incoming()
    assert "alice" in caller
    await bob.answer()
    assert call.dial_task is not None
    assert await asyncio.wait_for(call.dial_task, 15) is None, call.reason
    await asyncio.sleep(2.0)
    for digit in "19#":
        await call.send_dtmf(digit)
        await asyncio.sleep(0.5)
    await bob.expect(r"Receiving tone # from", timeout=5)
    assert bob.received_dtmf() == "19#"
    await call.hangup()
    assert call.result is CallResult.COMPLETED and call.status == 200
    assert await bob.wait_ended()
    await asyncio.sleep(0.3)
    assert_hears(tmp_path / "alice-heard.wav", BOB_HZ, "Trunkline hears linphonec")
    assert_hears(bob.record_wav, ALICE_HZ, "linphonec hears Trunkline")


async def test_linphone_calls_trunkline(
    kamailio: Kamailio,
    alice: Phone,
    linphone_factory: LinphoneFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    bob = await start_bob(linphone_factory, kamailio, tmp_path)
    await bob.send(f"call sip:alice@127.0.0.1:{kamailio.port}")  # call() waits for "connected"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    event = None
    while not isinstance(event, IncomingCall):
        event = await asyncio.wait_for(alice.events.get(), max(deadline - loop.time(), 0.01))
    incoming = event.call
    incoming.play(tone=ALICE_HZ)
    incoming.record(tmp_path / "alice-heard.wav")
    assert await incoming.answer()
    await bob.wait_connected()
    await asyncio.sleep(3.0)
    await bob.terminate()
    await asyncio.wait_for(incoming.ended.wait(), 10)
    assert incoming.result is CallResult.COMPLETED
    await asyncio.sleep(0.3)
    assert_hears(tmp_path / "alice-heard.wav", BOB_HZ, "Trunkline hears linphonec")
    assert_hears(bob.record_wav, ALICE_HZ, "linphonec hears Trunkline")
