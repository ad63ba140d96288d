"""How many concurrent G.711 calls one core carries, against a bare UDP echo.

Both numbers are measured in this run, on the same event loop (uvloop),
pinned to one CPU:

1. **udp-echo**: a client keeps 32 RTP-sized datagrams in flight to an echo
   server on loopback; rate = datagrams sent per second (both ends).
2. **media**: pairs of :class:`trunkline.media.session.MediaSession` talk
   PCMU to each other on loopback: every session encodes and sends 50
   packets/s and receives 50 packets/s through SRTP-less RTP parsing,
   statistics, the jitter buffer and the decoder into a sink. The number of
   sessions is searched (double, then bisect) for the largest count with
   under 1 % late packets (jitter-buffer late drops plus send ticks the
   pacing had to skip) and no timer firing more than a packet time late
   on average; rate = RTP packets sent per second.

The ratio media / udp-echo is printed last:
``media: <value>x udp-echo (goal 0.3x)``. Runs in about a minute.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from trunkline.media.session import MediaSession, PcmSource
from trunkline.sip.offeranswer import PCMU, create_answer, create_offer, process_answer

PACKET = bytes(172)  # 12-byte RTP header + 160 bytes of G.711
TRIAL_SECONDS = 4.0
WARMUP = 1.0


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.count = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.count += 1
        self.transport.sendto(data)


async def udp_echo_rate(seconds: float = 3.0, window: int = 32) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    server, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    port = server.get_extra_info("sockname")[1]
    client, proto = await loop.create_datagram_endpoint(_Client, remote_addr=("127.0.0.1", port))
    try:
        for _ in range(window):
            client.sendto(PACKET)
        await asyncio.sleep(0.5)
        start_count, start, cpu0 = proto.count, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        echoes = proto.count - start_count
        elapsed = time.perf_counter() - start
        cpu = (time.process_time() - cpu0) / elapsed
    finally:
        client.close()
        server.close()
    return 2 * echoes / elapsed, cpu  # each echo is two datagrams sent


async def media_trial(pairs: int, seconds: float = TRIAL_SECONDS) -> dict[str, float]:
    t = np.arange(8000) / 8000
    tone = np.rint(8000 * np.sin(2 * np.pi * 400 * t)).astype(np.int16)
    sessions: list[MediaSession] = []
    played = [0]

    def sink(pcm: Any) -> None:
        played[0] += 1

    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    try:
        for _ in range(pairs):
            a = await MediaSession.open()
            b = await MediaSession.open()
            offer = create_offer([PCMU], "127.0.0.1", a.local_address[1])
            answer = create_answer(offer, [PCMU], "127.0.0.1", b.local_address[1])
            a.apply(process_answer(offer, answer.sdp))
            b.apply(answer.audio)
            for s in (a, b):
                s.source = PcmSource(tone, loop=True)
                s.sinks.append(sink)
                loop.call_later(random.uniform(0, 0.02), s.start)
                sessions.append(s)
        await asyncio.sleep(WARMUP)
        sent0 = sum(s.stats().packets_sent for s in sessions)
        start = time.perf_counter()
        cpu0 = time.process_time()
        # Timer lateness probe: how late a 20 ms timer fires under this load.
        probe_deadline = loop.time() + 0.02
        while time.perf_counter() - start < seconds:
            await asyncio.sleep(max(0.0, probe_deadline - loop.time()))
            lateness.append(loop.time() - probe_deadline)
            probe_deadline += 0.02
        elapsed = time.perf_counter() - start
        cpu = (time.process_time() - cpu0) / elapsed
        sent = sum(s.stats().packets_sent for s in sessions) - sent0
        late = received = skipped = 0
        for s in sessions:
            st = s.stats()
            if st.jitter_buffer is not None:
                late += st.jitter_buffer.late
                received += st.jitter_buffer.received
            skipped += st.ticks_skipped
    finally:
        for s in sessions:
            s.close()
        await asyncio.sleep(0.05)
    total = received + skipped
    return {
        "sessions": 2 * pairs,
        "rate": sent / elapsed,
        "late": (late + skipped) / total if total else 1.0,
        "mean_lateness": float(np.mean(lateness)) if lateness else 1.0,
        "cpu": cpu,
    }


def acceptable(result: dict[str, float]) -> bool:
    return result["late"] < 0.01 and result["mean_lateness"] < 0.02


async def main() -> None:
    deadline = time.monotonic() + 55
    echo, echo_cpu = await udp_echo_rate()
    print(f"udp-echo: {echo:,.0f} datagrams/s sent, cpu {echo_cpu * 100:.0f} %")
    best: dict[str, float] | None = None
    low, high = 0, 0
    pairs = 25
    while time.monotonic() + TRIAL_SECONDS + 3 < deadline:
        result = await media_trial(pairs)
        ok = acceptable(result)
        print(
            f"  {result['sessions']:5.0f} sessions: {result['rate']:8,.0f} packets/s sent, "
            f"late {result['late'] * 100:.2f} %, timer lateness "
            f"{result['mean_lateness'] * 1000:.1f} ms, cpu {result['cpu'] * 100:.0f} % "
            f"-> {'ok' if ok else 'overloaded'}"
        )
        if ok:
            low = pairs
            if best is None or result["rate"] > best["rate"]:
                best = result
        else:
            high = pairs
        if high == 0:
            pairs *= 2
        elif high - low <= max(2, low // 10):
            break
        else:
            pairs = (low + high) // 2
    rate = best["rate"] if best else 0.0
    sessions = best["sessions"] if best else 0
    print(f"media: {sessions:.0f} G.711 sessions, {rate:,.0f} RTP packets/s sent")
    print(f"media: {rate / echo:.3f}x udp-echo (goal 0.3x)")


def run() -> None:
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


if __name__ == "__main__":
    run()
