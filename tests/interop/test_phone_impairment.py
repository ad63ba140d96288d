"""Three Trunkline phones whose every SIP and RTP datagram crosses the UDP
impairment relay with 5% loss each way: call, talk, hold, resume, blind
transfer and hang up all complete (SIP retransmissions, RFC 3261 §17), and
each recording still holds the other side's tone (FFT peak)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from tests.support import audio
from tests.support.impairment import Impairment, ImpairmentRelay

from trunkline.ua.call import Call
from trunkline.ua.callevents import CallConfig, CallResult, CallState
from trunkline.ua.phone import Phone
from trunkline.ua.phoneevents import IncomingCall, PhoneConfig, PhoneEvent, TransferRequested

pytestmark = pytest.mark.interop

LOSS = Impairment(loss=0.05)
TONES = {"alice": 440.0, "bob": 700.0, "carol": 1100.0}


class Lossy:
    """One phone behind relays: its SIP port and each RTP port it announces."""

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.seed = seed
        self.sip = ImpairmentRelay(LOSS, LOSS, seed=seed)
        self.spare: list[ImpairmentRelay] = []
        self.relays: list[ImpairmentRelay] = [self.sip]
        self.phone: Phone | None = None

    async def start(self, rtp_relays: int = 3) -> Phone:
        await self.sip.start()
        for i in range(rtp_relays):
            relay = await ImpairmentRelay(LOSS, LOSS, seed=self.seed * 100 + i).start()
            self.spare.append(relay)
            self.relays.append(relay)
        config = PhoneConfig(
            user=self.name,
            auto_answer=self.name != "alice",
            contact_address=self.sip.address_a,
            call=CallConfig(media_address_map=self._map),
        )
        self.phone = await Phone.start(config)
        self.sip.peers["b"] = self.phone.local_address  # the relay's B side is the phone
        return self.phone

    def _map(self, local: tuple[str, int]) -> tuple[str, int]:
        relay = self.spare.pop(0)
        relay.peers["b"] = local
        return relay.address_a

    @property
    def uri(self) -> str:
        host, port = self.sip.address_a
        return f"sip:{self.name}@{host}:{port}"

    def dropped(self) -> int:
        return sum(r.stats["a"].dropped + r.stats["b"].dropped for r in self.relays)

    async def close(self) -> None:
        if self.phone is not None:
            await self.phone.close()
        for relay in self.relays:
            close = getattr(relay, "close", None)
            if close is not None:
                result = close()
                if asyncio.iscoroutine(result):
                    await result


@pytest.fixture
async def lossy() -> AsyncIterator[Callable[[str], object]]:
    made: list[Lossy] = []

    async def make(name: str) -> Lossy:
        side = Lossy(name, seed=len(made) + 1)
        made.append(side)
        await side.start()
        return side

    yield make
    for side in made:
        await side.close()


async def next_event(phone: Phone, kind: type, timeout: float = 15.0) -> PhoneEvent:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = await asyncio.wait_for(phone.events.get(), max(deadline - loop.time(), 0.01))
        if isinstance(event, kind):
            return event


def prepare(call: Call, name: str, tmp: Path, tag: str) -> Path:
    call.play(tone=TONES[name])
    path = tmp / f"{name}-{tag}.wav"
    call.record(path)
    return path


def state_of(call: Call) -> CallState:
    """The call's state now (a function, so that mypy does not narrow it across awaits)."""
    return call.state


async def test_call_hold_resume_transfer_hangup_under_5_percent_loss(
    lossy: Callable[[str], object], tmp_path: Path
) -> None:
    alice: Lossy = await lossy("alice")  # type: ignore[misc]
    bob: Lossy = await lossy("bob")  # type: ignore[misc]
    carol: Lossy = await lossy("carol")  # type: ignore[misc]
    assert alice.phone and bob.phone and carol.phone

    call = alice.phone.call(bob.uri)
    alice_heard = prepare(call, "alice", tmp_path, "1")
    ring = await next_event(bob.phone, IncomingCall)
    assert isinstance(ring, IncomingCall)
    bob_heard = prepare(ring.call, "bob", tmp_path, "1")
    assert call.dial_task is not None
    assert await asyncio.wait_for(call.dial_task, 30) is None, call.reason
    await asyncio.sleep(2.5)  # talk

    assert await asyncio.wait_for(call.hold(), 30)
    assert state_of(call) is CallState.ON_HOLD
    assert await asyncio.wait_for(call.resume(), 30)
    assert state_of(call) is CallState.CONNECTED
    await asyncio.sleep(1.0)

    status = await asyncio.wait_for(call.transfer(carol.uri), 60)
    assert status == 200
    assert call.result is CallResult.COMPLETED
    requested = await next_event(bob.phone, TransferRequested)
    assert isinstance(requested, TransferRequested)
    new_call = requested.new_call
    assert new_call.state is CallState.CONNECTED
    (carol_call,) = carol.phone.calls.values()
    carol_heard = prepare(carol_call, "carol", tmp_path, "2")
    bob_heard_2 = tmp_path / "bob-2.wav"
    new_call.record(bob_heard_2)
    await asyncio.sleep(2.5)
    await asyncio.wait_for(new_call.hangup(), 30)
    assert new_call.result is CallResult.COMPLETED
    await asyncio.wait_for(carol_call.ended.wait(), 30)

    audio.assert_hears(alice_heard, TONES["bob"], "alice hears bob")
    audio.assert_hears(bob_heard, TONES["alice"], "bob hears alice")
    audio.assert_hears(bob_heard_2, TONES["carol"], "bob hears carol after the transfer")
    audio.assert_hears(carol_heard, TONES["bob"], "carol hears bob")
    # Every relay that carried a call's media lost some of it. Which of the two relays
    # of a call carries its media depends on which end latched first (symmetric RTP,
    # RFC 4961), so a phone's own relays may have carried only SIP.
    busy = [
        (side.name, relay)
        for side in (alice, bob, carol)
        for relay in side.relays
        if relay.stats["a"].received + relay.stats["b"].received >= 200
    ]
    assert len(busy) >= 2  # at least one media path per call
    for name, relay in busy:
        dropped = relay.stats["a"].dropped + relay.stats["b"].dropped
        assert dropped > 0, f"{name}: a relay carried media and dropped nothing"
