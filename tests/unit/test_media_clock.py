"""The shared media clock: one timer per loop and ptime, drift-free ticks,
G.711 batches equal to per-frame coding, and a broken stream leaves alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from trunkline.media.clock import MediaClock
from trunkline.media.codecs import Decoder, Encoder, Pcm, get
from trunkline.media.codecs.g711 import G711Decoder, G711Encoder, ulaw2lin


class FakeStream:
    """Sends a counter-valued frame per tick and records what it plays."""

    def __init__(self, codec: str = "PCMU", clock_rate: int = 8000, *, fail_at: int = -1) -> None:
        info = get(codec, clock_rate)
        assert info.make_encoder is not None and info.make_decoder is not None
        self.encoder: Encoder = info.make_encoder()
        self.decoder: Decoder = info.make_decoder()
        assert isinstance(self.encoder, G711Encoder) and isinstance(self.decoder, G711Decoder)
        self.send_table = self.encoder.table
        self.play_table = self.decoder.table
        self.samples = info.samples_per_frame()
        self.fail_at = fail_at
        self.ticks: list[int] = []
        self.times: list[float] = []
        self.sent: list[bytes] = []
        self.played: list[Pcm] = []
        self.failed: Exception | None = None

    def frame_to_send(self, tick: int) -> Pcm | None:
        if len(self.ticks) == self.fail_at:
            raise RuntimeError("source broke")
        self.ticks.append(tick)
        self.times.append(asyncio.get_running_loop().time())
        return np.full(self.samples, 1000 * (tick % 8), dtype=np.int16)

    def send_frame(self, tick: int, payload: bytes) -> None:
        self.sent.append(payload)

    def frame_to_play(self, now: float) -> bytes | None:
        return self.sent[-1] if self.sent else None

    def play_decoded(self, pcm: Pcm) -> None:
        self.played.append(pcm)

    def clock_failed(self, exc: Exception) -> None:
        self.failed = exc


async def run_for(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def test_one_clock_per_loop_and_ptime() -> None:
    loop = asyncio.get_running_loop()
    a = MediaClock.shared(loop, 0.02)
    assert MediaClock.shared(loop, 0.02) is a
    assert MediaClock.shared(loop, 0.03) is not a


async def test_streams_share_ticks_and_the_timer_stops_with_the_last() -> None:
    clock = MediaClock(asyncio.get_running_loop(), 0.02)
    first, second = FakeStream(), FakeStream("PCMA")
    tick0, start0 = clock.join(first)
    assert tick0 == 0
    await run_for(0.1)
    tick1, start1 = clock.join(second)
    assert tick1 >= 4 and start1 == pytest.approx(start0 + tick1 * 0.02)
    await run_for(0.1)
    clock.leave(first)
    clock.leave(second)
    assert clock.schedule is None and not clock.streams
    done = len(first.ticks)
    await run_for(0.05)
    assert len(first.ticks) == done  # no timer left
    # Both streams saw the same tick numbers once the second joined.
    assert second.ticks[0] == tick1
    assert set(second.ticks) <= set(first.ticks)
    # Deadlines are start + n * ptime: firing times never run ahead of them.
    for tick, when in zip(first.ticks, first.times, strict=True):
        assert when >= start0 + tick * 0.02 - 1e-6


async def test_batched_g711_equals_per_frame_coding() -> None:
    clock = MediaClock(asyncio.get_running_loop(), 0.02)
    streams = [FakeStream("PCMU"), FakeStream("PCMA"), FakeStream("PCMU")]
    for s in streams:
        clock.join(s)
    await run_for(0.12)
    for s in streams:
        clock.leave(s)
    for s in streams:
        assert len(s.sent) >= 3
        assert isinstance(s.encoder, G711Encoder)
        reference = G711Encoder(s.encoder.info, s.encoder.table)
        for tick, payload in zip(s.ticks, s.sent, strict=True):
            frame = np.full(s.samples, 1000 * (tick % 8), dtype=np.int16)
            assert payload == reference.encode(frame)
    # Decoded playout: PCMU frames come back as the mu-law values of the frames sent.
    mu = streams[0]
    assert np.array_equal(mu.played[0], ulaw2lin(mu.sent[0]))


async def test_a_failing_stream_leaves_and_the_others_go_on() -> None:
    clock = MediaClock(asyncio.get_running_loop(), 0.02)
    good, bad = FakeStream(), FakeStream(fail_at=2)
    clock.join(good)
    clock.join(bad)
    await run_for(0.15)
    clock.leave(good)
    assert isinstance(bad.failed, RuntimeError)
    assert len(bad.ticks) == 2
    assert len(good.ticks) >= 5 and bad not in clock.streams
