"""The Python work per G.711 packet, deterministically: no sockets, a fake clock.

``bench/media.py`` measures the engine on real sockets, where the machine's
load moves every number. This harness runs the same per-packet path,
:class:`trunkline.media.session.MediaSession` on the shared
:class:`trunkline.media.clock.MediaClock`, with the sockets replaced by
direct calls and the event loop by a fake one whose clock only moves when
told, so its counts repeat exactly from run to run:

* ``--sessions`` sessions in PCMU pairs (as in ``bench/media.py``), each with
  a looping 400 Hz tone as source and a counting sink;
* every packet time the clock's timer fires at its deadline; what the
  sessions send is delivered to their peers 1 ms later (to the receive
  handler, in sending order), then the next tick comes;
* the warm-up (``--warmup`` packet times: probation, latching, the jitter
  buffer filling, the RTP "socket" connected after 1 s) is not counted;
  then ``--ticks`` packet times are, RTCP reports included as they fall.

A packet here is one G.711 packet sent, received and played out (each
session sends one per tick and plays one). Modes:

``--count`` (default)
    Python bytecodes executed per packet, counted with ``sys.settrace`` and
    ``f_trace_opcodes`` (Python frames only; time in C, numpy's table
    lookups or the socket calls, is not in it), with a breakdown by function.
``--instructions``
    Machine instructions per packet under callgrind (``valgrind`` must be
    installed): two runs that differ only in ``--ticks``, so start-up and
    warm-up cancel out. Both are seeded (RTCP intervals, SSRCs, sequence
    numbers, string hashes); a full garbage collection inside the counted
    window or not still moves the result by up to 3k at ``--ticks 100``:
    compare versions at ``--ticks 300``.
``--time``
    Wall-clock microseconds per packet of the Python path (no I/O), best of
    five; noisy on a shared machine, unlike the two above.

Run: ``.venv/bin/python bench/media_path.py [--count|--instructions|--time]``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from _src import SRC as _SRC  # first: --src DIR runs another copy of the engine

from trunkline.media.session import MediaSession, PcmSource
from trunkline.sip.offeranswer import (
    PCMU,
    create_answer,
    create_offer,
    process_answer,
)

Address = tuple[str, int]
PTIME = 0.02
DELIVERY = 0.001  # seconds from a tick's sends to their arrival at the peer


class FakeHandle:
    def cancel(self) -> None:
        pass


class FakeLoop:
    """What the session and the clock use of an event loop: ``time`` and ``call_at``."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.timer: tuple[float, Callable[[], None]] | None = None

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeHandle:
        self.timer = (when, callback)
        return FakeHandle()


class Network:
    """Datagrams in flight: sent during a tick, delivered after it."""

    def __init__(self) -> None:
        self.in_flight: list[tuple[Address, bytes, Address]] = []
        self.endpoints: dict[Address, FakeTransport] = {}

    def deliver(self) -> None:
        in_flight, self.in_flight = self.in_flight, []
        for destination, data, source in in_flight:
            endpoint = self.endpoints.get(destination)
            if endpoint is not None and (
                endpoint.connected is None or endpoint.connected == source
            ):
                endpoint.on_rtp(data, source)


class FakeTransport:
    """:class:`trunkline.media.transport.RtpTransport`'s interface, on a :class:`Network`."""

    def __init__(self, network: Network, port: int) -> None:
        self.network = network
        self.local_rtp: Address = ("127.0.0.1", port)
        self.local_rtcp: Address = ("127.0.0.1", port + 1)
        self.rtcp_mux = False
        self.closed = False
        self.connected: Address | None = None
        self.send_rtp_connected: Callable[[bytes], Any] | None = None
        self.on_rtp: Callable[[bytes, Address], None] = lambda data, addr: None
        self.on_rtcp: Callable[[bytes, Address], None] = lambda data, addr: None
        network.endpoints[self.local_rtp] = self
        self.rtcp_sent = 0

    def set_handlers(
        self, on_rtp: Callable[[bytes, Address], None], on_rtcp: Callable[[bytes, Address], None]
    ) -> None:
        self.on_rtp = on_rtp
        self.on_rtcp = on_rtcp

    def send_rtp(self, data: bytes, addr: Address) -> None:
        self.network.in_flight.append((addr, data, self.local_rtp))

    send_rtp_fast = send_rtp

    def send_rtp_failed(self, data: bytes, addr: Address, exc: OSError) -> None:
        raise exc

    def _send_connected(self, data: bytes) -> None:
        assert self.connected is not None
        self.network.in_flight.append((self.connected, data, self.local_rtp))

    def connect_rtp(self, peer: Address) -> bool:
        self.connected = peer
        self.send_rtp_connected = self._send_connected
        return True

    def disconnect_rtp(self) -> None:
        self.connected = None
        self.send_rtp_connected = None

    def send_rtcp(self, data: bytes, addr: Address) -> None:
        self.rtcp_sent += 1  # RTCP is built and protected, not delivered (not per packet)

    def close(self) -> None:
        self.closed = True


class Harness:
    """``sessions`` PCMU sessions in pairs on one fake loop and clock."""

    def __init__(self, sessions: int) -> None:
        self.loop = FakeLoop()
        self.network = Network()
        self.played = 0
        tone = np.rint(8000 * np.sin(2 * np.pi * 400 * np.arange(8000) / 8000)).astype(np.int16)
        self.sessions: list[MediaSession] = []
        port = 20000
        for _ in range(sessions // 2):
            a = MediaSession(FakeTransport(self.network, port), cname="a@bench")  # type: ignore[arg-type]
            b = MediaSession(FakeTransport(self.network, port + 2), cname="b@bench")  # type: ignore[arg-type]
            port += 4
            offer = create_offer([PCMU], "127.0.0.1", a.local_address[1])
            answer = create_answer(offer, [PCMU], "127.0.0.1", b.local_address[1])
            a.apply(process_answer(offer, answer.sdp))
            b.apply(answer.audio)
            for s in (a, b):
                s.source = PcmSource(tone, loop=True)
                s.sinks.append(self._sink)
                self.sessions.append(s)
        for i, s in enumerate(self.sessions):
            # MediaSession.start() without asyncio.get_running_loop(); RTCP deadlines
            # spread deterministically over the 0.5-1.5 randomization range.
            s._loop = self.loop  # type: ignore[assignment]
            s._join_clock()
            s._next_rtcp = self.loop.now + s.rtcp_interval * (0.5 + i / max(1, sessions))

    def _sink(self, pcm: Any) -> None:
        self.played += 1

    def run(self, ticks: int) -> None:
        loop = self.loop
        network = self.network
        for _ in range(ticks):
            assert loop.timer is not None
            when, callback = loop.timer
            loop.now = when
            callback()
            loop.now = when + DELIVERY
            network.deliver()

    def sent(self) -> int:
        return sum(s.stats().packets_sent for s in self.sessions)

    def summary(self) -> str:
        late = lost = concealed = received = 0
        for s in self.sessions:
            jb = s.stats().jitter_buffer
            assert jb is not None
            late += jb.late
            lost += jb.lost
            concealed += jb.concealed
            received += jb.received
        rtcp = sum(s.transport.rtcp_sent for s in self.sessions)  # type: ignore[attr-defined]
        return (
            f"{len(self.sessions)} sessions: {self.sent()} sent, {received} received, "
            f"{self.played} played, {late} late, {lost} lost, {concealed} concealed, "
            f"{rtcp} RTCP reports"
        )

    def close(self) -> None:
        for s in self.sessions:
            s.close()


def _counted(harness: Harness, ticks: int) -> tuple[int, Counter[str]]:
    """Bytecodes executed in ``ticks`` packet times, total and by function."""
    by_function: Counter[str] = Counter()

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            code = frame.f_code
            key = f"{Path(code.co_filename).name}:{code.co_qualname}"

            def local(frame: FrameType, event: str, arg: Any) -> Any:
                if event == "opcode":
                    by_function[key] += 1
                return local

            return local
        return None

    sys.settrace(trace)
    try:
        harness.run(ticks)
    finally:
        sys.settrace(None)
    engine = sum(n for name, n in by_function.items() if not name.startswith(_HARNESS))
    return engine, by_function


_HARNESS = Path(__file__).name + ":"  # the fake network, loop and sink: not the engine


def count(sessions: int, warmup: int, ticks: int, top: int) -> None:
    harness = Harness(sessions)
    harness.run(warmup)
    before = harness.sent()
    total, by_function = _counted(harness, ticks)
    packets = harness.sent() - before
    print(harness.summary())
    print(f"counted {ticks} packet times, {packets} packets sent, received and played")
    for name, n in by_function.most_common(top):
        print(f"  {n / packets:7.1f}  {name}")
    harness_share = sum(n for name, n in by_function.items() if name.startswith(_HARNESS))
    print(f"(harness: fake network, loop and sink, not counted: {harness_share / packets:.1f})")
    print(f"bytecodes per packet: {total / packets:.1f}")
    harness.close()


def _callgrind_total(sessions: int, warmup: int, ticks: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--run",
                f"--sessions={sessions}",
                f"--warmup={warmup}",
                f"--ticks={ticks}",
                "--src",
                str(_SRC.parent),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise RuntimeError(f"no callgrind total in:\n{result.stderr}")
    return int(match.group(1))


def instructions(sessions: int, warmup: int, ticks: int) -> None:
    short = _callgrind_total(sessions, warmup, ticks // 5)
    long = _callgrind_total(sessions, warmup, ticks)
    packets = sessions * (ticks - ticks // 5)
    print(f"callgrind: {long:,} - {short:,} instructions over {packets} packets")
    print(f"instructions per packet: {(long - short) / packets:,.0f}")


def timed(sessions: int, warmup: int, ticks: int) -> None:
    harness = Harness(sessions)
    harness.run(warmup)
    best = float("inf")
    for _ in range(5):
        before = harness.sent()
        start = time.perf_counter()
        harness.run(ticks)
        elapsed = time.perf_counter() - start
        best = min(best, elapsed / (harness.sent() - before))
    print(harness.summary())
    print(f"us per packet (Python path, no I/O, best of 5): {best * 1e6:.2f}")
    harness.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--count", action="store_true", help="bytecodes per packet (default)")
    mode.add_argument("--instructions", action="store_true", help="callgrind instructions")
    mode.add_argument("--time", action="store_true", help="wall-clock us per packet")
    mode.add_argument("--run", action="store_true", help=argparse.SUPPRESS)  # under callgrind
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=100, help="packet times not counted")
    parser.add_argument("--ticks", type=int, default=100, help="packet times counted")
    parser.add_argument("--top", type=int, default=25, help="functions listed by --count")
    parser.add_argument("--src", help="the repository copy whose src/ to run (default: this one)")
    args = parser.parse_args()
    if args.run:
        # Under callgrind: the same run every time. The RTCP intervals come from
        # ``random``; SSRCs and initial sequence numbers from ``secrets`` (a sequence
        # wrap takes the general path, and the allocations it makes move the next
        # full garbage collection, a few million instructions, in or out of the
        # counted window).
        random.seed(0)
        secrets.randbits = random.Random(1).getrandbits  # type: ignore[assignment]
        harness = Harness(args.sessions)
        harness.run(args.warmup + args.ticks)
        harness.close()
    elif args.instructions:
        instructions(args.sessions, args.warmup, args.ticks)
    elif args.time:
        timed(args.sessions, args.warmup, args.ticks)
    else:
        count(args.sessions, args.warmup, args.ticks, args.top)


if __name__ == "__main__":
    main()
