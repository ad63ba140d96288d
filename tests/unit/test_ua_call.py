"""Calls between two in-process phones on loopback: connect, talk, reject,
cancel, hang up both ways, hold/resume, DTMF both ways, digest on INVITE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from trunkline.media.session import WavRecorder
from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint
from trunkline.sip.auth import Credentials, DigestServer, ha1
from trunkline.sip.sdp import Direction, SessionDescription
from trunkline.ua.call import (
    Call,
    CallConfig,
    CallEnded,
    CallResult,
    CallState,
    CallStateChanged,
    DtmfReceived,
    TransferProgress,
    result_for_status,
)
from trunkline.ua.phone import (
    IncomingCall,
    Phone,
    PhoneConfig,
    PhoneEndpoint,
    PhoneEvent,
    TransferRequested,
)
from trunkline.ua.transfer import replaces_for

FAST = CallConfig(no_answer_timeout=None)


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    x = pcm.astype(np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(freqs[int(np.argmax(spec[5:])) + 5])


async def next_event(phone: Phone, kind: type, timeout: float = 5.0) -> PhoneEvent:
    """The next event of ``kind`` (others are skipped); bounded in time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        event = await asyncio.wait_for(phone.events.get(), max(left, 0.01))
        if isinstance(event, kind):
            return event


@pytest.fixture
async def phones() -> AsyncIterator[Callable[..., object]]:
    made: list[Phone] = []

    async def make(**kwargs: object) -> Phone:
        phone = await Phone.start(PhoneConfig(**kwargs))  # type: ignore[arg-type]
        made.append(phone)
        return phone

    yield make
    for phone in made:
        await phone.close(unregister=False)


def target(phone: Phone, user: str = "bob") -> str:
    host, port = phone.local_address
    return f"sip:{user}@{host}:{port}"


async def connect(alice: Phone, bob: Phone) -> tuple[Call, Call]:
    call = alice.call(target(bob))
    ring = await next_event(bob, IncomingCall)
    assert isinstance(ring, IncomingCall)
    assert ring.call.state is CallState.RINGING
    assert await ring.call.answer()
    assert call.dial_task is not None
    assert await asyncio.wait_for(call.dial_task, 5) is None
    assert call.state is CallState.CONNECTED
    return call, ring.call


async def test_call_connects_carries_tones_both_ways_and_bye_from_caller(phones) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    call = alice.call(target(bob))
    call.play(tone=440.0)
    rec_a = WavRecorder("/dev/null", 8000)
    ring = await next_event(bob, IncomingCall)
    assert isinstance(ring, IncomingCall) and not ring.waiting
    incoming = ring.call
    incoming.play(tone=1000.0)
    assert await incoming.answer()
    assert call.dial_task is not None
    assert await asyncio.wait_for(call.dial_task, 5) is None
    assert call.media is not None and incoming.media is not None
    call.media.sinks.append(rec_a)
    rec_b = WavRecorder("/dev/null", 8000)
    incoming.media.sinks.append(rec_b)
    await asyncio.sleep(1.0)
    await call.hangup()
    await asyncio.wait_for(incoming.ended.wait(), 5)
    assert call.result is CallResult.COMPLETED
    assert incoming.result is CallResult.COMPLETED
    assert call.status == 200
    assert abs(dominant_hz(rec_a.pcm, 8000) - 1000.0) < 10
    assert abs(dominant_hz(rec_b.pcm, 8000) - 440.0) < 10
    assert not alice.calls and not bob.calls


async def test_bye_from_callee_ends_caller(phones) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    call, incoming = await connect(alice, bob)
    await incoming.hangup()
    await asyncio.wait_for(call.ended.wait(), 5)
    assert call.result is CallResult.COMPLETED
    assert call.reason == "BYE received"
    ended = await next_event(alice, CallEnded)
    assert isinstance(ended, CallEnded) and ended.call is call


@pytest.mark.parametrize(
    ("status", "result"),
    [(486, CallResult.BUSY), (603, CallResult.DECLINED), (404, CallResult.NOT_FOUND)],
)
async def test_reject_gives_a_clear_result(phones, status: int, result: CallResult) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    call = alice.call(target(bob))
    ring = await next_event(bob, IncomingCall)
    assert isinstance(ring, IncomingCall)
    ring.call.reject(status)
    assert call.dial_task is not None
    assert await asyncio.wait_for(call.dial_task, 5) is result
    assert call.status == status
    assert call.state is CallState.ENDED
    assert ring.call.result is CallResult.REJECTED


async def test_cancel_while_ringing(phones) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    call = alice.call(target(bob))
    ring = await next_event(bob, IncomingCall)
    assert isinstance(ring, IncomingCall)
    await asyncio.wait_for(_state(call, CallState.RINGING), 5)
    await call.hangup()
    assert call.result is CallResult.CANCELLED
    assert call.status == 487
    await asyncio.wait_for(ring.call.ended.wait(), 5)
    assert ring.call.result is CallResult.CANCELLED


async def test_cancel_reaches_the_ringing_call_through_the_endpoint_hook(phones) -> None:  # type: ignore[no-untyped-def]
    """§9.2: the endpoint's CANCEL hook (not polling) ends the ringing call as it sends 487."""
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    assert isinstance(bob.endpoint, PhoneEndpoint)
    seen: list[tuple[str, CallState]] = []
    forward = bob.endpoint.on_cancelled
    assert forward is not None

    def spy(incoming: IncomingRequest) -> None:
        ringing = bob.calls[incoming.request.call_id]
        seen.append((incoming.request.method, ringing.state))
        forward(incoming)
        seen.append(("after", ringing.state))

    bob.endpoint.on_cancelled = spy
    call = alice.call(target(bob))
    ring = await next_event(bob, IncomingCall)
    assert isinstance(ring, IncomingCall)
    await asyncio.wait_for(_state(call, CallState.RINGING), 5)
    await call.hangup()
    assert seen == [("INVITE", CallState.RINGING), ("after", CallState.ENDED)]
    assert ring.call.result is CallResult.CANCELLED and ring.call.status == 487


async def test_no_answer_timeout_cancels(phones) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice", call=CallConfig(no_answer_timeout=0.5))
    bob = await phones(user="bob")
    call = alice.call(target(bob))
    assert call.dial_task is not None
    assert await asyncio.wait_for(call.dial_task, 5) is CallResult.NO_ANSWER


def _state_of(call: Call) -> CallState:
    """The state now (a call, so that mypy does not keep an earlier narrowing)."""
    return call.state


def _direction_of(call: Call) -> Direction | None:
    return call.audio.direction if call.audio is not None else None


async def _state(call: Call, state: CallState) -> None:
    for _ in range(200):
        if call.state is state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{call} never reached {state}")


async def test_auto_answer_and_call_waiting(phones) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice")
    carol = await phones(user="carol")
    bob = await phones(user="bob", auto_answer=True)
    first = alice.call(target(bob))
    assert first.dial_task is not None
    assert await asyncio.wait_for(first.dial_task, 5) is None
    second = carol.call(target(bob))
    ring = await next_event(bob, IncomingCall)  # the first one
    ring = await next_event(bob, IncomingCall)
    assert isinstance(ring, IncomingCall) and ring.waiting
    assert ring.call.state is CallState.RINGING  # not auto-answered while busy
    assert await bob.answer_waiting(ring.call)
    assert second.dial_task is not None
    assert await asyncio.wait_for(second.dial_task, 5) is None
    held = [c for c in bob.calls.values() if c.local_hold]
    assert len(held) == 1 and held[0].state is CallState.ON_HOLD
    assert first.remote_hold and first.state is CallState.ON_HOLD
    assert bob.active_call is ring.call


async def test_hold_and_resume_by_reinvite(phones) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    call, incoming = await connect(alice, bob)
    assert await call.hold()
    assert call.state is CallState.ON_HOLD
    assert call.audio is not None and call.audio.direction is Direction.SENDONLY
    await asyncio.wait_for(_state(incoming, CallState.ON_HOLD), 5)
    assert incoming.remote_hold
    assert incoming.audio is not None and incoming.audio.direction is Direction.RECVONLY
    assert await call.resume()
    assert _state_of(call) is CallState.CONNECTED
    await asyncio.wait_for(_state(incoming, CallState.CONNECTED), 5)
    assert _direction_of(incoming) is Direction.SENDRECV
    changes = []
    while not alice.events.empty():
        event = alice.events.get_nowait()
        if isinstance(event, CallStateChanged):
            changes.append(event.new)
    assert changes[-2:] == [CallState.ON_HOLD, CallState.CONNECTED]


@pytest.mark.parametrize("method", ["rfc4733", "info"])
async def test_dtmf(phones, method: str) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    call, incoming = await connect(alice, bob)
    call.play(tone=440.0)
    await asyncio.sleep(0.2)
    await call.send_dtmf("1#9", method=method, duration_ms=100)
    digits = []
    for _ in range(3):
        event = await next_event(bob, DtmfReceived)
        assert isinstance(event, DtmfReceived)
        assert event.method == method
        digits.append(event.digit)
    assert "".join(digits) == "1#9"
    await asyncio.sleep(0.1)  # the audio after the last event
    assert incoming.media is not None
    stats = incoming.media.stats()
    # RFC 4733 events share the audio's sequence space: received, not lost.
    assert stats.packets_received > 0
    assert stats.packets_lost == 0


async def test_invite_challenged_with_digest_is_retried(phones) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice", password="secret")
    server = SipEndpoint()
    await server.listen("UDP", "127.0.0.1", 0)
    digest = DigestServer("trunkline.test", secret=b"k" * 32)
    seen: list[str] = []

    async def handler(incoming: IncomingRequest) -> None:
        request = incoming.request
        seen.append(request.method)
        if request.method != "INVITE":
            return
        value = request.headers.get("Authorization")
        if value is not None:
            creds = Credentials.parse(value)
            result = digest.verify(
                creds, "INVITE", request.body, lambda u, r, a: ha1(u, r, "secret", a), 0.0
            )
            if result.ok and result.username == "alice":
                incoming.respond(486)
                return
        challenges = [("WWW-Authenticate", str(c)) for c in digest.challenge(0.0)]
        incoming.respond(401, headers=challenges)

    server.on_request = handler
    try:
        host, port = server.transport.listener_for("UDP", False).address  # type: ignore[union-attr]
        call = alice.call(f"sip:bob@{host}:{port}")
        assert call.dial_task is not None
        assert await asyncio.wait_for(call.dial_task, 5) is CallResult.BUSY
        assert seen.count("INVITE") == 2
    finally:
        await server.close()


async def test_bad_offer_is_refused_with_488(phones) -> None:  # type: ignore[no-untyped-def]
    from trunkline.sip.offeranswer import G722

    alice = await phones(user="alice", call=CallConfig(codecs=(G722,), dtmf=False))
    bob = await phones(user="bob", auto_answer=True)
    call = alice.call(target(bob))
    assert call.dial_task is not None
    assert await asyncio.wait_for(call.dial_task, 5) is CallResult.FAILED
    assert call.status == 488


async def test_malformed_sdp_attributes_are_ignored_not_fatal(  # type: ignore[no-untyped-def]
    phones, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 8866 §5.13: offer and answer each carry a broken known attribute; the call connects."""
    from trunkline.sip.offeranswer import Answer
    from trunkline.ua.callmedia import CallMedia

    def spoil(sdp: SessionDescription) -> SessionDescription:
        sdp.media[0].add("rtpmap", "31 LPC")  # RFC 4475's bodies: no clock rate
        sdp.media[0].add("ptime", "soon")
        return SessionDescription.parse(bytes(sdp), strict=False)  # as the wire carries it

    real_offer, real_answer = CallMedia.offer, CallMedia.answer

    def offer(self: CallMedia, direction: Direction = Direction.SENDRECV) -> SessionDescription:
        return spoil(real_offer(self, direction))

    def answer(self: CallMedia, offer: SessionDescription, direction: Direction) -> Answer:
        result = real_answer(self, offer, direction)
        return Answer(spoil(result.sdp), result.audio)

    monkeypatch.setattr(CallMedia, "offer", offer)
    monkeypatch.setattr(CallMedia, "answer", answer)
    caplog.set_level("INFO", logger="trunkline.ua.callmedia")
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    call, incoming = await connect(alice, bob)
    assert call.audio is not None and incoming.audio is not None, call.reason
    assert call.audio.codec.name == "PCMU" and incoming.audio.codec.name == "PCMU"
    assert call.audio.ptime == 20  # the bad a=ptime is skipped, the default applies
    ignored = [r.getMessage() for r in caplog.records if "SDP attribute ignored" in r.getMessage()]
    assert any(incoming.call_id in m and "a=rtpmap:31 LPC" in m for m in ignored)  # offer
    assert any(call.call_id in m and "a=ptime:soon" in m for m in ignored)  # answer
    await call.hangup()
    await asyncio.wait_for(incoming.ended.wait(), 5)


def test_result_for_status() -> None:
    assert result_for_status(486) is CallResult.BUSY
    assert result_for_status(600) is CallResult.BUSY
    assert result_for_status(480) is CallResult.NO_ANSWER
    assert result_for_status(408) is CallResult.NO_ANSWER
    assert result_for_status(503) is CallResult.FAILED
    assert result_for_status(604) is CallResult.NOT_FOUND


async def test_offer_carries_our_codecs_and_telephone_event(phones) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    call, _incoming = await connect(alice, bob)
    assert call.audio is not None
    assert call.audio.codec.name == "PCMU"
    assert call.audio.telephone_event_pt is not None
    assert call.local_session is not None and call.local_session.last is not None
    sdp = SessionDescription.parse(bytes(call.local_session.last))
    assert sdp.media[0].port == call.media.local_address[1]  # type: ignore[union-attr]


async def test_blind_transfer_transferor_and_transferee(phones) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    carol = await phones(user="carol", auto_answer=True)
    call, incoming = await connect(alice, bob)
    status = await asyncio.wait_for(call.transfer(target(carol, "carol")), 10)
    assert status == 200
    assert call.result is CallResult.COMPLETED  # the transferor hung up on the final NOTIFY
    progress = []
    while not alice.events.empty():
        event = alice.events.get_nowait()
        if isinstance(event, TransferProgress):
            progress.append(event.status)
    assert progress[0] == 100 and progress[-1] == 200
    requested = await next_event(bob, TransferRequested)
    assert isinstance(requested, TransferRequested)
    assert requested.call is incoming and not requested.target.attended
    await asyncio.wait_for(incoming.ended.wait(), 5)
    new_call = requested.new_call
    assert new_call.state is CallState.CONNECTED
    assert new_call._extra_headers[0][0] == "Referred-By"
    (carol_call,) = carol.calls.values()
    assert carol_call.is_active


async def test_attended_transfer_with_replaces(phones) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    carol = await phones(user="carol", auto_answer=True)
    to_bob, bob_side = await connect(alice, bob)
    to_carol = alice.call(target(carol, "carol"))
    assert to_carol.dial_task is not None
    assert await asyncio.wait_for(to_carol.dial_task, 5) is None
    assert await to_bob.hold()
    assert to_carol.dialog is not None
    status = await asyncio.wait_for(
        to_bob.transfer(target(carol, "carol"), replaces=replaces_for(to_carol.dialog)), 10
    )
    assert status == 200
    await asyncio.wait_for(to_carol.ended.wait(), 5)  # carol replaced it and sent BYE
    assert to_bob.ended.is_set() and to_carol.ended.is_set()
    requested = await next_event(bob, TransferRequested)
    assert isinstance(requested, TransferRequested) and requested.target.attended
    assert requested.new_call.state is CallState.CONNECTED
    await asyncio.wait_for(bob_side.ended.wait(), 5)
    (carol_call,) = carol.calls.values()
    assert carol_call.is_active and carol_call.call_id == requested.new_call.call_id


async def test_refer_to_unreachable_target_reports_failure(phones) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice")
    bob = await phones(user="bob")
    carol = await phones(user="carol")
    call, _incoming = await connect(alice, bob)
    pending = asyncio.ensure_future(call.transfer(target(carol, "carol"), timeout=10))
    ring = await next_event(carol, IncomingCall)
    assert isinstance(ring, IncomingCall)
    ring.call.reject(486)
    assert await asyncio.wait_for(pending, 10) == 486
    assert call.is_active  # a failed transfer keeps the call


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_call_over_stream_transports(phones, transport: str) -> None:  # type: ignore[no-untyped-def]
    alice = await phones(user="alice", transport=transport)
    bob = await phones(user="bob", transport=transport, auto_answer=True)
    assert f"transport={transport}" in bob.contact()
    call = alice.call(f"{target(bob)};transport={transport}")
    assert call.dial_task is not None
    assert await asyncio.wait_for(call.dial_task, 5) is None, call.reason
    assert await call.hold() and await call.resume()
    await call.hangup()
    assert call.result is CallResult.COMPLETED and call.status == 200
