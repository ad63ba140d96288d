"""The fused per-packet paths against the reference implementations, on random streams.

* Receive: :meth:`MediaSession._on_rtp` (fused path armed by the general one) against
  :class:`SourceTable`/:class:`ReceptionStats` and a :class:`JitterBuffer` fed through
  ``RtpPacket.parse`` and ``put``: the same RFC 3550 counters and jitter, the same
  buffered frames, the same playout.
* Playout: :meth:`JitterBuffer.pop`'s fast path against the general path alone.
* Playout: :meth:`MediaSession.frame_to_play` (through pop's fast path) against a
  jitter buffer with the fast path turned off.
* Send: :meth:`RtpSender.build` and :meth:`MediaSession.send_frame` (through build)
  against :meth:`RtpSender.packet` through marks, silences, a tick restart and an
  SSRC change.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.media.session import MediaSession
from trunkline.rtp.jitterbuffer import Concealment, Entry, JitterBuffer
from trunkline.rtp.pacing import RtpSender
from trunkline.rtp.packet import RtpPacket
from trunkline.rtp.stats import SourceTable
from trunkline.sip.offeranswer import PCMA, PCMU, create_answer, create_offer, process_answer

PEER = ("127.0.0.1", 40000)
OTHER = ("127.0.0.1", 40002)
REMOTE_SSRC = 0x11223344


class FakeLoop:
    def __init__(self) -> None:
        self.now = 100.0

    def time(self) -> float:
        return self.now


class FakeTransport:
    """What MediaSession uses of RtpTransport, without sockets (nothing is sent)."""

    def __init__(self) -> None:
        self.local_rtp = ("127.0.0.1", 30000)
        self.local_rtcp = ("127.0.0.1", 30001)
        self.rtcp_mux = False
        self.connected: Any = None
        self.send_rtp_connected: Any = None
        self.sent: list[bytes] = []

    def set_handlers(self, on_rtp: Any, on_rtcp: Any) -> None:
        pass

    def disconnect_rtp(self) -> None:
        self.connected = None

    def connect_rtp(self, peer: Any) -> bool:
        self.connected = peer
        return True

    def send_rtp(self, data: bytes, addr: Any) -> None:
        pass

    def send_rtp_fast(self, data: bytes, addr: Any) -> None:
        self.sent.append(data)

    def send_rtcp(self, data: bytes, addr: Any) -> None:
        pass

    def close(self) -> None:
        pass


class CountingSession(MediaSession):
    """Counts the datagrams that take the general receive path, and keeps what
    playout hands to the general play path."""

    general = 0
    played_other: Entry | Concealment | None = None

    def _receive(self, data: bytes, addr: Any) -> None:
        self.general += 1
        super()._receive(data, addr)

    def _play_other(self, out: Entry | Concealment) -> None:
        self.played_other = out
        super()._play_other(out)


def receiving_session(loop: FakeLoop) -> CountingSession:
    session = CountingSession(FakeTransport(), cname="test@fastpath")  # type: ignore[arg-type]
    offer = create_offer([PCMU, PCMA], "127.0.0.1", 30000)
    answer = create_answer(offer, [PCMU, PCMA], PEER[0], PEER[1])
    session.apply(process_answer(offer, answer.sdp))
    session._loop = loop  # type: ignore[assignment]  # started without a clock
    session.sinks.append(lambda pcm: None)
    return session


# One step of a stream: (sequence step, extra delay in ms, marker, payload type,
# from the other address, new SSRC, empty payload).
steps = st.lists(
    st.tuples(
        st.sampled_from([1] * 12 + [0, 2, 3, -1, -2, 40, 4000]),
        st.integers(0, 60),
        st.integers(0, 4).map(lambda n: n == 0),
        st.sampled_from([0] * 20 + [8, 101]),
        st.integers(0, 40).map(lambda n: n == 0),
        st.integers(0, 80).map(lambda n: n == 0),
        st.integers(0, 60).map(lambda n: n == 0),
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(steps=steps, seq0=st.sampled_from([0, 1000, 65500, 65534]), ts0=st.integers(0, 2**32 - 1))
def test_fused_receive_equals_the_reference(steps: list[Any], seq0: int, ts0: int) -> None:
    loop = FakeLoop()
    session = receiving_session(loop)
    ref_sources = SourceTable(8000, session.sender.ssrc)  # type: ignore[union-attr]
    ref_jb = JitterBuffer(8000, 0.02)
    ref_ssrc: int | None = None
    seq, ssrc, n = seq0, REMOTE_SSRC, 0
    for step, delay_ms, marker, pt, other, new_ssrc, empty in steps:
        seq = (seq + step) & 0xFFFF
        n += step
        if new_ssrc:
            ssrc = (ssrc * 7 + 1) & 0xFFFFFFFF
        loop.now += 0.02 + delay_ms / 1000 * (1 if n % 3 else -0.5)
        payload = b"" if empty else bytes([n & 0xFF]) * 160
        packet = RtpPacket(pt, seq, (ts0 + n * 160) & 0xFFFFFFFF, ssrc, payload, marker)
        data = bytes(packet)
        addr = OTHER if other else PEER
        session._on_rtp(data, addr)
        # The reference: what the session's general path does, without fusing.
        if addr == session.remote_address and pt in (0, 8):
            stats = ref_sources.receive(packet, loop.now)
            if stats is not None:
                if ref_ssrc is not None and ssrc != ref_ssrc:
                    ref_jb = JitterBuffer(8000, 0.02)
                ref_ssrc = ssrc
                ref_jb.put(packet, loop.now, stats.jitter)
        if n % 5 == 0:  # playout now and then, on both
            ours, theirs = session.jitter.pop(loop.now), ref_jb.pop(loop.now)  # type: ignore[union-attr]
            assert same_frame(ours, theirs)
        if session.remote_address != PEER:
            return  # latched elsewhere: the reference above does not follow
    current = session.sources.current  # type: ignore[union-attr]
    ref = ref_sources.current
    assert (current is None) == (ref is None)
    if current is not None and ref is not None:
        for name in ("ssrc", "received", "expected", "lost", "cycles", "max_seq"):
            assert getattr(current, name) == getattr(ref, name), name
        for name in ("duplicates", "reordered", "jitter", "last_transit"):
            assert getattr(current, name) == getattr(ref, name), name
        assert current.report_block(loop.now) == ref.report_block(loop.now)
    jb = session.jitter
    assert jb is not None
    assert jb.stats() == ref_jb.stats()
    assert jb._packets == ref_jb._packets
    if len(steps) > 50 and sum(s[0] == 1 for s in steps) > 0.9 * len(steps):
        assert session.general < len(steps)  # the fused path did take packets


def same_frame(a: Entry | Concealment | None, b: Entry | Concealment | None) -> bool:
    return a == b


arrivals = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 50)),  # (packets arriving, playout jitter ms)
    min_size=1,
    max_size=400,
)


class GeneralOnly(JitterBuffer):
    """The jitter buffer with pop's fast path turned off."""

    def pop(self, now: float) -> Entry | Concealment | None:
        self._fast_until = 0
        return super().pop(now)


@settings(max_examples=60, deadline=None)
@given(pattern=arrivals, seq0=st.sampled_from([0, 65530]), interval=st.sampled_from([1, 5, 25]))
def test_fast_pop_and_put_next_equal_the_general_path(
    pattern: list[tuple[int, int]], seq0: int, interval: int
) -> None:
    fast = JitterBuffer(8000, 0.02, adapt_interval=interval)
    general = GeneralOnly(8000, 0.02, adapt_interval=interval)
    rng = random.Random(len(pattern))
    now, n = 0.0, 0
    for count, jitter_ms in pattern:
        for _ in range(count):
            n += rng.choice([1, 1, 1, 1, 2, 0, -1])
            seq = (seq0 + n) & 0xFFFF
            packet = RtpPacket(0, seq, n * 160 & 0xFFFFFFFF, 9, bytes([n & 0xFF]))
            jitter = rng.uniform(0, 400)
            if fast.next_sequence() == seq:
                fast.put_next(0, packet.payload, packet.timestamp, now, jitter)
                assert general.put(packet, now, jitter)
            else:
                assert fast.put(packet, now, jitter) == general.put(packet, now, jitter)
        now += 0.02 + jitter_ms / 1000
        assert fast.pop(now) == general.pop(now)
        assert fast.stats() == general.stats()


def test_build_matches_packet_through_marks_restarts_and_ssrc_changes() -> None:
    a = RtpSender(0, 160, ssrc=7, initial_sequence=65530, initial_timestamp=2**32 - 500)
    b = RtpSender(0, 160, ssrc=7, initial_sequence=65530, initial_timestamp=2**32 - 500)
    tick = 0
    for step in range(200):
        payload = bytes([step & 0xFF]) * (160 if step % 7 else 80)
        assert a.build(tick, payload) == bytes(b.packet(tick, payload))
        tick += 1 if step % 11 else 4  # a silence now and then: talkspurt, marker
        if step % 37 == 0:
            a.mark_next()
            b.mark_next()
        if step == 90:
            a.restart_ticks()
            b.restart_ticks()
            tick = 0
        if step == 150:
            a.change_ssrc(99)
            b.change_ssrc(99)
        assert (a.sequence, a.packets_sent, a.octets_sent, a.last_timestamp) == (
            b.sequence,
            b.packets_sent,
            b.octets_sent,
            b.last_timestamp,
        )


def test_an_in_order_stream_takes_the_fused_path() -> None:
    loop = FakeLoop()
    session = receiving_session(loop)
    for n in range(200):
        loop.now += 0.02
        packet = RtpPacket(0, (65400 + n) & 0xFFFF, 160 * n, REMOTE_SSRC, b"\xff" * 160, n == 0)
        session._on_rtp(bytes(packet), PEER)
    # Probation (RFC 3550 A.1: two packets), the packet that arms, the wrap-around.
    assert session.general <= 5
    stats = session.stats()
    # A.1 counts from the packet that ends probation: 199 of the 200.
    assert stats.packets_received == stats.packets_expected == 199 and stats.packets_lost == 0
    assert stats.jitter_buffer is not None and stats.jitter_buffer.received == 200


@settings(max_examples=40, deadline=None)
@given(pattern=arrivals, seq0=st.sampled_from([0, 65530]), interval=st.sampled_from([1, 5, 25]))
def test_session_playout_equals_the_general_path(
    pattern: list[tuple[int, int]], seq0: int, interval: int
) -> None:
    """What ``frame_to_play`` gives the clock's batch or plays by itself, frame by
    frame, against ``pop`` with its fast path off (fed the same packets)."""
    loop = FakeLoop()
    session = receiving_session(loop)
    session.jitter = JitterBuffer(8000, 0.02, adapt_interval=interval)
    session._chores_at = float("inf")  # no RTCP here
    general = GeneralOnly(8000, 0.02, adapt_interval=interval)
    rng = random.Random(len(pattern))
    n = 0
    for count, jitter_ms in pattern:
        for _ in range(count):
            n += rng.choice([1, 1, 1, 1, 2, 0, -1])
            pt = 8 if n % 50 == 49 else 0  # now and then another codec: the general play path
            packet = RtpPacket(pt, (seq0 + n) & 0xFFFF, n * 160 & 0xFFFFFFFF, 9, bytes([n & 0xFF]))
            session.jitter.put(packet, loop.now, 80.0)
            general.put(packet, loop.now, 80.0)
        loop.now += 0.02 + jitter_ms / 1000
        session.played_other = None
        batch = session.frame_to_play(loop.now)
        expected = general.pop(loop.now)
        if batch is not None:
            assert isinstance(expected, tuple) and expected[1] == batch
            assert expected[0] == session._play_pt
        else:
            assert session.played_other == expected
        assert session.jitter.stats() == general.stats()


def test_session_send_frame_numbers_as_the_sender_does() -> None:
    loop = FakeLoop()
    session = receiving_session(loop)
    session.sender = RtpSender(0, 160, ssrc=7, initial_sequence=65530, initial_timestamp=2**32 - 5)
    session._tick0 = 1000  # the clock's tick of our tick 0
    session._update_send_path()  # as apply() does for the sender it makes
    reference = RtpSender(0, 160, ssrc=7, initial_sequence=65530, initial_timestamp=2**32 - 5)
    sent = session.transport.sent  # type: ignore[attr-defined]
    tick = 0
    for step in range(120):
        payload = bytes([step & 0xFF]) * (160 if step % 7 else 80)
        session.send_frame(1000 + tick, payload)
        assert sent[-1] == bytes(reference.packet(tick, payload))
        tick += 1 if step % 11 else 3  # a silence now and then: a marker after it
        if step == 60:
            session.sender.change_ssrc(99)
            reference.change_ssrc(99)
    a, b = session.sender, reference
    assert (a.sequence, a.packets_sent, a.octets_sent, a.last_timestamp) == (
        b.sequence,
        b.packets_sent,
        b.octets_sent,
        b.last_timestamp,
    )
