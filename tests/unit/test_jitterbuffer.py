"""The adaptive jitter buffer on a fake clock: reordering, duplicates, late
packets, loss concealment, underrun, delay adaptation, wrap-around."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest

from trunkline.rtp.jitterbuffer import Concealment, ConcealReason, JitterBuffer
from trunkline.rtp.packet import RtpPacket

PTIME = 0.02
FRAME = 160


def packet(n: int, seq0: int = 1000, ts0: int = 5000) -> RtpPacket:
    return RtpPacket(
        0, (seq0 + n) & 0xFFFF, (ts0 + n * FRAME) & 0xFFFFFFFF, 7, n.to_bytes(2, "big")
    )


@dataclass
class Run:
    played: list[int] = field(default_factory=list)  # frame indices, in playout order
    concealed: list[ConcealReason] = field(default_factory=list)
    sent: int = 0


def simulate(
    jb: JitterBuffer,
    frames: int,
    *,
    seed: int = 1,
    loss: float = 0.0,
    jitter: float = 0.0,
    duplicate: float = 0.0,
    delay: float = 0.03,
    jitter_of: dict[int, float] | None = None,
    pause: range | None = None,
    seq0: int = 1000,
) -> Run:
    """Send ``frames`` packets every 20 ms through a seeded lossy network and
    pull one frame every 20 ms (playout clock offset by 7 ms from the sender)."""
    rng = random.Random(seed)
    events: list[tuple[float, int, int]] = []  # (arrival, order, frame index)
    order = 0
    run = Run()
    for n in range(frames):
        if pause is not None and n in pause:
            continue
        run.sent += 1
        if rng.random() < loss:
            continue
        extra = jitter_of.get(n, 0.0) if jitter_of else rng.uniform(0.0, jitter)
        copies = 2 if rng.random() < duplicate else 1
        for c in range(copies):
            heapq.heappush(events, (n * PTIME + delay + extra + c * 0.001, order, n))
            order += 1
    t = 0.007
    end = frames * PTIME + 1.0
    while t < end:
        while events and events[0][0] <= t:
            _, _, n = heapq.heappop(events)
            jb.put(packet(n, seq0), t - 0.0005)
        out = jb.get(t)
        if isinstance(out, RtpPacket):
            run.played.append(int.from_bytes(out.payload, "big"))
        elif isinstance(out, Concealment):
            run.concealed.append(out.reason)
        t += PTIME
    return run


def in_order(run: Run, jb: JitterBuffer, frames: int) -> None:
    """Everything received was played in order, except frames dropped to shrink the delay."""
    assert run.played == sorted(set(run.played))
    assert len(run.played) + jb.discarded == jb.received
    assert run.played[-1] == frames - 1


def test_in_order_stream_plays_everything_in_order() -> None:
    jb = JitterBuffer(8000, PTIME)
    run = simulate(jb, 200)
    in_order(run, jb, 200)
    assert jb.discarded <= 2  # 60 ms initial delay shrinks towards 20 ms + a frame
    assert jb.late == 0 and jb.lost == 0 and jb.duplicates == 0
    assert all(r is ConcealReason.UNDERRUN for r in run.concealed)  # only at the end


def test_reordering_is_undone() -> None:
    # Odd frames overtaken: even frames delayed by 30 ms.
    jb = JitterBuffer(8000, PTIME, initial_delay=0.08)
    run = simulate(jb, 100, jitter_of={n: 0.03 for n in range(0, 100, 2)})
    in_order(run, jb, 100)
    assert jb.late == 0


def test_duplicates_dropped() -> None:
    jb = JitterBuffer(8000, PTIME)
    run = simulate(jb, 300, duplicate=0.2, seed=4)
    assert jb.duplicates > 30
    in_order(run, jb, 300)


def test_loss_is_concealed_and_playout_moves_on() -> None:
    jb = JitterBuffer(8000, PTIME)
    run = simulate(jb, 1000, loss=0.05, seed=7)
    lost_frames = run.sent - jb.received
    assert 30 < lost_frames < 70
    assert jb.lost == pytest.approx(lost_frames, abs=1)  # the last loss may trail the end
    assert run.concealed.count(ConcealReason.LOST) == jb.lost
    in_order(run, jb, 1000)


def test_uniform_jitter_40ms_target_follows_and_few_late() -> None:
    jb = JitterBuffer(8000, PTIME)
    simulate(jb, 1500, jitter=0.04, seed=11)
    stats = jb.stats()
    # RFC 3550 jitter of U(0, 40 ms) delays: E|X1 - X2| = 40/3 ms.
    assert stats.jitter == pytest.approx(0.0133, abs=0.003)
    assert 0.03 < stats.target_delay < 0.06
    assert stats.late / 1500 < 0.02
    assert stats.played > 1450


def test_late_packet_dropped_and_counted() -> None:
    jb = JitterBuffer(8000, PTIME, initial_delay=0.02, min_delay=0.02)
    run = simulate(jb, 60, jitter_of={30: 0.2})  # frame 30 arrives 200 ms late
    assert jb.late == 1
    assert 30 not in run.played
    assert ConcealReason.LOST in run.concealed


def test_delay_shrinks_when_jitter_goes_away() -> None:
    jb = JitterBuffer(8000, PTIME, initial_delay=0.3)
    simulate(jb, 600)
    assert jb.discarded >= 5
    assert jb.current_delay < 0.1
    assert jb.late == 0


def test_delay_grows_when_jitter_appears() -> None:
    jb = JitterBuffer(8000, PTIME, initial_delay=0.02, min_delay=0.02)
    jit = {n: (0.06 * ((n * 7919) % 100) / 100 if n > 100 else 0.0) for n in range(800)}
    simulate(jb, 800, jitter_of=jit)
    assert jb.target_delay > 0.04
    assert jb.stretched + jb.underruns > 0
    assert jb.current_delay > 0.03


def test_underrun_conceals_without_advancing() -> None:
    jb = JitterBuffer(8000, PTIME)
    run = simulate(jb, 200, pause=range(100, 110))
    # Ten frames never sent: seq numbers are per-frame here, so they are
    # "lost" to the buffer, but the gap first shows as an underrun.
    assert ConcealReason.UNDERRUN in run.concealed
    in_order(run, jb, 200)
    assert not set(range(100, 110)) & set(run.played)


def test_sequence_wraparound() -> None:
    jb = JitterBuffer(8000, PTIME)
    run = simulate(jb, 300, seq0=65500, jitter=0.01, seed=3)
    in_order(run, jb, 300)
    assert jb.late == 0 and jb.resets == 0


def test_stream_restart_resets() -> None:
    jb = JitterBuffer(8000, PTIME)
    for n in range(5):
        jb.put(packet(n), n * PTIME)
    jb.put(RtpPacket(0, 40000, 0, 7, b"\x00"), 0.2)
    assert jb.resets == 1
    assert jb.stats().buffered == 1


def test_nothing_until_filled() -> None:
    jb = JitterBuffer(8000, PTIME, initial_delay=0.06)
    assert jb.get(0.0) is None
    jb.put(packet(0), 0.0)
    assert jb.get(0.02) is None
    assert isinstance(jb.get(0.061), RtpPacket)


def test_shared_jitter_estimate_sets_the_target() -> None:
    """A caller that keeps the RFC 3550 jitter (the session's statistics) passes it
    in; the buffer then adapts its target to it instead of its own estimate."""
    jb = JitterBuffer(8000, 0.02, min_delay=0.02, max_delay=0.4, jitter_factor=3.0)
    for n in range(40):
        jb.put(packet(n), n * 0.02, jitter=8000 * 0.03)  # 30 ms, in timestamp units
        jb.get(n * 0.02 + 0.001)
    assert jb.jitter == pytest.approx(0.03)
    assert jb.target_delay == pytest.approx(0.09)


def test_lost_frame_carries_the_following_packet_for_fec() -> None:
    """Frames 10 and 20-21 never arrive: the concealment for 10 brings packet 11
    (its in-band FEC may hold 10), that for 20 brings nothing (21 is missing too),
    that for 21 brings 22; the following packets still play in their own slots."""
    jb = JitterBuffer(8000, PTIME)
    missing = {10, 20, 21}
    lost: dict[int, int | None] = {}
    played: list[int] = []
    t = 0.0
    for n in range(40):
        if n not in missing:
            jb.put(packet(n), t)
        out = jb.get(t + 0.001)
        if isinstance(out, Concealment) and out.reason is ConcealReason.LOST:
            index = (out.sequence - 1000) & 0xFFFF
            following = out.following
            lost[index] = None if following is None else (following.sequence_number - 1000)
            if following is not None:
                jb.note_recovered()
        elif isinstance(out, RtpPacket):
            played.append(out.sequence_number - 1000)
        t += PTIME
    assert lost == {10: 11, 20: None, 21: 22}
    assert {11, 22} <= set(played) and not missing & set(played)
    stats = jb.stats()
    assert stats.lost == 3 and stats.recovered == 2
