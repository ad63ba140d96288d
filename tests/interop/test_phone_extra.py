"""Softphone cases that :mod:`tests.interop.test_phone_peers` does not cover.

- Two Trunkline phones register at Kamailio with digest auth over TCP and over
  TLS (our listener with a dev certificate, Kamailio's checked against its
  own) and call each other through it; each hears the other's tone.
- Call waiting with real peers: while the Trunkline phone talks to one
  baresip, a second baresip calls; answering it puts the first call on hold
  by re-INVITE (RFC 3264 §8.4) and the new caller hears us; then the first
  call is resumed and both are hung up.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
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

from trunkline.sip.aio.tls import client_ssl_context, create_dev_certificates, server_ssl_context
from trunkline.ua.call import Call, CallResult, CallState
from trunkline.ua.phone import IncomingCall, Phone, PhoneConfig, PhoneEvent
from trunkline.ua.registration import Registered

pytestmark = pytest.mark.interop

USERS = {name: f"{name}-{secrets.token_hex(4)}" for name in ("alice", "bob", "carol", "dave")}
TOLERANCE_HZ = 15.0


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    binary = require_peer("kamailio", "kamailio")
    with Kamailio(tmp_path_factory.mktemp("kamailio"), USERS, tls=True, binary=binary) as kam:
        yield kam


async def registered(kam: Kamailio, config: PhoneConfig, registrar: str) -> Phone:
    phone = await Phone.start(config)
    try:
        aor = kam.aor(config.user)
        event = await phone.register(phone.account(aor, registrar=registrar))
        assert isinstance(event, Registered), event
    except BaseException:
        await phone.close(unregister=False)
        raise
    return phone


def peak(path: Path) -> float:
    samples, rate = audio.read_wav(path)
    return audio.dominant_frequency(audio.active_part(samples, rate), rate)


async def next_event(phone: Phone, kind: type, timeout: float = 15.0) -> PhoneEvent:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = await asyncio.wait_for(phone.events.get(), max(deadline - loop.time(), 0.01))
        if isinstance(event, kind):
            return event


async def test_tcp_caller_tls_callee_through_kamailio(kamailio: Kamailio, tmp_path: Path) -> None:
    assert kamailio.cert is not None and kamailio.tls_port is not None
    certs = create_dev_certificates(tmp_path / "certs")
    alice = await registered(
        kamailio,
        PhoneConfig(user="alice", transport="tcp", password=USERS["alice"]),
        f"sip:127.0.0.1:{kamailio.port};transport=tcp",
    )
    bob = None
    try:
        bob = await registered(
            kamailio,
            PhoneConfig(
                user="bob",
                transport="tls",
                password=USERS["bob"],
                ssl_context=server_ssl_context(certs.cert, certs.key),
                client_ssl=client_ssl_context(kamailio.cert),
            ),
            f"sip:127.0.0.1:{kamailio.tls_port};transport=tls",
        )
        call = alice.call(f"sip:bob@127.0.0.1:{kamailio.port};transport=tcp")
        call.play(tone=500.0)
        call.record(tmp_path / "alice.wav")
        event = await next_event(bob, IncomingCall)
        assert isinstance(event, IncomingCall)
        incoming = event.call
        assert incoming.remote_uri == kamailio.aor("alice")  # From is alice's AOR (§8.1.1.3)
        incoming.play(tone=900.0)
        incoming.record(tmp_path / "bob.wav")
        assert await incoming.answer()
        assert call.dial_task is not None
        assert await asyncio.wait_for(call.dial_task, 15) is None, call.reason
        await asyncio.sleep(2.0)
        await call.hangup()
        assert call.result is CallResult.COMPLETED and call.status == 200
        await asyncio.wait_for(incoming.ended.wait(), 10)
        assert abs(peak(tmp_path / "alice.wav") - 900.0) < TOLERANCE_HZ
        assert abs(peak(tmp_path / "bob.wav") - 500.0) < TOLERANCE_HZ
    finally:
        await alice.close()
        if bob is not None:
            await bob.close()


async def _state(call: Call, state: CallState, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while call.state is not state:
        assert loop.time() < deadline, f"{call} never reached {state}"
        await asyncio.sleep(0.05)


async def test_call_waiting_with_two_baresips(
    kamailio: Kamailio,
    baresip_factory: BaresipFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    dave = await registered(
        kamailio, PhoneConfig(user="dave", password=USERS["dave"]), kamailio.uri
    )
    try:
        alice = await baresip_factory(
            BaresipAccount(
                "alice", registrar_port=kamailio.port, auth_pass=USERS["alice"], answermode="auto"
            ),
            audio.write_tone_wav(tmp_path / "alice-mic.wav", 1400.0, 40),
        )
        carol = await baresip_factory(
            BaresipAccount("carol", registrar_port=kamailio.port, auth_pass=USERS["carol"]),
            audio.write_tone_wav(tmp_path / "carol-mic.wav", 1100.0, 40),
        )
        await alice.wait_registered()
        await carol.wait_registered()

        first = dave.call(f"sip:alice@127.0.0.1:{kamailio.port}")
        first.play(tone=440.0)
        assert first.dial_task is not None
        assert await asyncio.wait_for(first.dial_task, 15) is None, first.reason
        await alice.wait_established()

        await carol.checked("dial", f"sip:dave@127.0.0.1:{kamailio.port}")
        ring = await next_event(dave, IncomingCall)
        assert isinstance(ring, IncomingCall)
        assert ring.waiting and "carol" in ring.call.remote_uri
        second = ring.call
        second.play(tone=660.0)
        second.record(tmp_path / "dave-hears-carol.wav")
        assert await dave.answer_waiting(second)
        assert first.state is CallState.ON_HOLD and first.local_hold
        await carol.wait_established()
        assert dave.active_call is second
        await asyncio.sleep(2.5)

        await second.hangup()
        assert second.result is CallResult.COMPLETED
        await carol.wait_closed()
        assert await first.resume()
        await _state(first, CallState.CONNECTED)
        await asyncio.sleep(0.5)
        await first.hangup()
        assert first.result is CallResult.COMPLETED and first.status == 200
        await alice.wait_closed()
        assert abs(peak(tmp_path / "dave-hears-carol.wav") - 1100.0) < TOLERANCE_HZ
        carol_heard = carol.recordings()[-1]
        assert abs(peak(carol_heard) - 660.0) < TOLERANCE_HZ
    finally:
        await dave.close()
