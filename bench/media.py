"""How many concurrent media sessions one core carries, against a bare UDP echo.

All numbers come from this run, on one event loop (uvloop), pinned to the
least busy CPU (sampled from ``/proc/stat`` at start):

1. **udp-echo**: a client keeps 32 RTP-sized datagrams in flight to an echo
   server on loopback. Counted: datagrams *sent* per second, both ends (each
   is also received once, by the same process). Measured before every media
   trial; the ratio uses the median, and the spread is printed.
2. **G.711 media**: pairs of :class:`trunkline.media.session.MediaSession`
   talk PCMU to each other on loopback. Every session reads 50 frames/s from
   its source, encodes, numbers and sends them, and receives 50 packets/s
   through demultiplexing, RTP parsing, RFC 3550 statistics, latching, the
   jitter buffer, the decoder (and its concealment history) into a sink; SRTP
   is not negotiated here (it would add libsrtp per packet). Counted the
   same way as the echo: RTP packets *sent* per second, all sessions (each
   is also received once, by the same process).
3. **Opus<->PCMU transcoding**: calls made of four sessions: a PCMU phone
   talks to a PCMU leg that is bridged (8 <-> 48 kHz resampling through a
   queue) to an Opus leg that talks to an Opus phone. Counted as above: RTP
   packets sent per second by all four sessions. Printed, no goal.

A trial passes when under 1 % of the packets are late (dropped late by the
jitter buffer, plus send ticks the pacing had to skip) and a 20 ms timer on
the same loop fires on average less than one packet time late. The session
count is searched (double, then bisect) for the largest passing count.

Last line: ``media: <value>x udp-echo (goal 0.3x)``. Runs in about a minute.

``--fixed N [--rounds R]`` runs R trials of N G.711 sessions instead (no
search, no echo) and prints the CPU per packet of each; ``--src DIR`` runs
the engine under ``DIR/src`` (another version) with this bench.

Notes: what costs what (measured on the 2-core development VM, 27-28 Nov
2026, with other work running, so the numbers are +-10 %):

* The I/O floor. 600 sockets on uvloop, one 20 ms timer sending one 172-byte
  datagram per socket, received by a Python ``datagram_received``: about
  14 us of CPU per datagram sent and received (12 us with an empty handler).
  ``transport.sendto(data, addr)`` costs 1-2 us more than the socket's own
  ``sendto``, and a *connected* socket's ``send`` 1.5-2 us less than that
  (no address conversion, no route lookup). The session now connects the
  RTP socket to its peer once the latched peer has sent steadily for 1 s
  (``RtpTransport.connect_rtp``; the kernel then drops other sources).
  Polling every socket at the tick (one ``epoll`` plus one ``recvfrom`` per
  packet, no EAGAIN call) saved another 2.5 us, but quantizes arrival times
  to the packet time, which the RFC 3550 jitter and the jitter buffer need:
  not used. On loopback the sender's ``sendto`` also pays the receiver's
  kernel path, which is why it is the largest single self time in py-spy.
* The Python per packet, measured deterministically by ``bench/media_path.py``
  (the sessions and the shared clock as here, with the sockets replaced by
  direct calls and the loop by a fake clock; ``--count`` counts bytecodes
  with ``sys.settrace``, ``--instructions`` machine instructions with
  callgrind, ``--src DIR`` runs another copy of the engine, e.g. the last
  commit's from ``git archive``, under the same harness). One G.711 packet
  sent, received and played out, 100 sessions, the harness's own frames not
  counted: 906 bytecodes before the fused paths (27 Nov 2026, commit
  8285416), 456 after, 459 now (28 Nov 2026). Where the 906 went:
  ``_on_rtp`` 105, ``put`` 100, ``get`` 91, ``build`` 83,
  ``ReceptionStats.receive`` 83, ``parse`` 77, ``frame_to_play`` 62, the
  clock's two loops 110, the rest ~200. The design now (what the 459 are):

  - receive (~150, ``_on_rtp``): the packet the general path *armed* (same
    source address and SSRC, V=2 without P/X/CC/M, the same payload type,
    the next sequence number) with one ``unpack_from``, the in-order case of
    ``ReceptionStats.receive`` (A.1, A.8) inline and
    ``JitterBuffer.put_next`` with plain values: no ``RtpPacket``. The
    jitter buffer stores ``(pt, payload, timestamp, arrival)``.
  - playout (~75 ``frame_to_play`` + ~33 ``play_decoded`` + ~10 for the
    deferred delay average): ``JitterBuffer.pop``'s fast path (the next
    frame with four updates when nothing else is due: adaptation every
    ``adapt_interval`` frames, concealment and buffering take the general
    path); the clock decodes the batch and calls
    ``play_decoded`` (the G.711 concealment history, then the sinks).
  - send (~88 ``send_frame`` + ~27 source read + ~11 ``frame_to_send``): the
    clock encodes the batch (one ``take``, rows turned into bytes by
    ``map``); ``send_frame`` numbers it with ``RtpSender.build``
    (one counter for the sequence number and ``packets_sent``, one
    ``struct.pack`` of three words) and sends.
  - the clock (~26): ``map`` over the streams (a C loop) and
    ``itertools.compress`` pick the batch; a Python loop only hands results
    back. RTCP, the socket's link check and the DTMF timeout run from one
    deadline per session (the link check once per ``_RELATCH_AFTER`` while
    connected).

  Callgrind, same harness: 55.6k machine instructions per packet at
  8285416 (``--ticks 100``), 45.2k at 4c1888d and 41.5k / 41.7k now
  (``--ticks 300``; the harness's fake network included). ``--instructions``
  makes the run repeatable (seeded RTCP intervals, SSRCs and sequence
  numbers, string hashes), yet at ``--ticks 100`` two runs still differ by
  up to 3k per packet: a full garbage collection falls inside the counted
  window or not; compare at ``--ticks 300`` or more. Nearly all of the
  3.6k come from ``__slots__`` on ``MediaSession`` (72 attributes) and
  ``JitterBuffer`` (40), alone 45.4k -> 41.7k: past CPython 3.11's 30
  shared instance keys every attribute access was a dict lookup
  (``unicodekeys_lookup_unicode`` and ``_Py_dict_lookup`` were 5.6 % of
  perf's samples on sockets, about 1 % after). Running the bodies of
  ``put_next``, ``pop``'s fast path and ``build`` in the session itself saved
  21 bytecodes per packet (438 against 459) and nothing measurable in
  instructions, so those three copies were taken out again. ``RtpSender``,
  ``ReceptionStats``, ``WaveformPlc`` and ``PcmSource`` have slots too: no
  measurable change in instructions, but their attributes then sit in the
  object (3.11 keeps a plain instance's values in a separate allocation):
  fewer cache lines per packet on sockets, where 400+ sessions do not fit
  the caches (not separately measured: within the noise there). Of the
  41k: the eval loop ~14k, numpy's ``take`` 4.2k (+0.7k index casts; encode
  and decode, faster than ``bytes.translate`` pairs), allocation ~2.6k, the
  rest spread thin (breakdown as of 27 Nov). What is left is mostly the attribute updates that the
  RFC 3550 statistics (5), the jitter buffer (4 in, 4 out) and the sender's
  numbering (4) need once per packet, and the stages' calls.
* Tried, not kept (28 Nov 2026): the transport reading the RTP socket
  itself (``loop.add_reader``, one ``recv`` per readable event on the
  connected socket: no ``EAGAIN`` read, no address tuple; uvloop's datagram
  transport does both). 600 sockets, one datagram each per 20 ms: 8.5-9.1
  against 8.9-10.1 us per datagram sent and received; in this bench within
  the noise, and under overload it collapsed (500 sessions: 75 % late,
  73 us per packet): one read per socket and loop iteration cannot catch up
  when a late clock sends up to ``max_burst`` packets per socket at once,
  and reading until ``EAGAIN`` from Python (an exception per datagram)
  costs 11 us. Cutting the encoded batch into payloads with ``bytes``
  slices instead of numpy row views: no fewer instructions.
* On sockets (this bench, 27 Nov 2026, the machine shared with three other
  sessions' work): ``--fixed 200 --rounds 3``, the last commit's engine
  (``--src``) and this one alternately: 48.6 / 43.0 us of CPU per packet
  before, 42.5 / 37.0 after (-13 %). Three full runs each, alternating:
  before 0.111x / 0.143x / 0.178x (cost 39.7 / 47.5 / 35.3 us), after
  0.124x / 0.170x / 0.207x (cost 42.7 / 40.7 / 31.8 us): the search's
  result moves more with the load than with the code. On the quiet machine
  (no other work, load 0.0 at start, 27 Nov 2026): 0.175x and 41.6 us per
  packet (echo 9.3 us) before (commit 8285416); 0.198x (450 sessions,
  22,704 packets/s) and 35.1 us (echo 8.7 us) after. The cost ratio
  (echo/media 0.247) is above the count ratio because the 1 % late-packet
  rule ends the search at about 95 % CPU (next point).
  28 Nov 2026 (slots, and the three calls then folded), the machine shared with one
  other session's work (load 0.5-2): ``--fixed 400 --rounds 3``, commit
  4c1888d (``--src``) and this one alternately: 40.8 / 37.3 / 39.8 us of CPU
  per packet before, 29.8 / 31.6 / 35.1 after (median -21 %). Full runs,
  alternating: before 0.196x / 0.219x (cost 34.8 / 37.3 us), after
  0.238x / 0.201x / 0.212x (cost 33.3 / 33.9 / 33.2 us, echo 9.2-9.6 us,
  cost ratio 0.27-0.29). With the load at 1-2 the search mostly ends on the
  timer-lateness rule at 70-85 % CPU (another process holding the core for
  tens of ms), not on CPU: 800 sessions once sent 35,171 packets/s (0.386x)
  with 10 % late. After the proxy work of the same session was committed
  (commit ae96044), two full runs with nothing else running: 0.268x (600
  sessions, 30,199 packets/s; cost 31.9 us, echo 8.9 us, cost ratio 0.278)
  and 0.247x (550 sessions; cost 29.3 us, echo 8.8 us, cost ratio 0.302:
  600 sessions lost 0 % of their packets but the 20 ms probe timer ran
  53 ms late on average at 96 % CPU, so the trial failed).
* Garbage collection does not show in the average cost (``gc.disable()``
  changed nothing measurable); batching the receive path per tick saves
  nothing because each session gets one packet per tick.
* Why the G.711 count stops below 100 % CPU: a trial fails on 1 % late
  packets, and the jitter buffer (20 ms minimum) keeps only one or two
  frames in hand, so one stall of a packet time or two (another process
  taking the core, a full collection) across a 3 s trial is enough.
* Opus<->PCMU: the Opus encoder was 55 % of the time (py-spy), the
  8<->48 kHz resampler 15 %, the decoder 8 %. Encoding through libopus with
  ctypes instead of PyAV saves 40-80 us per frame, and complexity 5 instead
  of FFmpeg's 10 another ~30 % (``OpusEncoder``'s docstring has the SNR).
  With 16 transcoding sessions, alternating old and new code on the same
  core: 360-390 us of CPU per packet sent before, 278-292 us after. The
  resampler (PyAV's ``AudioResampler``, ~90 us per frame here) is next.
* The machine's load moves both rates: with other work on the other core
  the echo varies 47k-125k datagrams/s between trials of one run. Compare
  the ``cost`` lines (CPU per packet) more than the ratio.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import _src  # noqa: F401  # first: --src DIR runs another copy of the engine
import numpy as np

from trunkline.media.resample import Resampler
from trunkline.media.session import MediaSession, PcmSource, QueueSource
from trunkline.sip.offeranswer import (
    OPUS,
    PCMU,
    Codec,
    create_answer,
    create_offer,
    process_answer,
)

PACKET = bytes(172)  # 12-byte RTP header + 160 bytes of G.711
TRIAL_SECONDS = 3.0
ECHO_SECONDS = 1.0
WARMUP = 1.0

Pcm = Any
Sessions = list[MediaSession]


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


async def udp_echo_rate(seconds: float = ECHO_SECONDS, window: int = 32) -> tuple[float, float]:
    """Datagrams sent per second (both ends) and the CPU share used."""
    loop = asyncio.get_running_loop()
    server, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    port = server.get_extra_info("sockname")[1]
    client, proto = await loop.create_datagram_endpoint(_Client, remote_addr=("127.0.0.1", port))
    try:
        for _ in range(window):
            client.sendto(PACKET)
        await asyncio.sleep(0.3)
        start_count, start, cpu0 = proto.count, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        echoes = proto.count - start_count
        elapsed = time.perf_counter() - start
        cpu = (time.process_time() - cpu0) / elapsed
    finally:
        client.close()
        server.close()
    await asyncio.sleep(0.05)
    return 2 * echoes / elapsed, cpu  # each echo is two datagrams sent


async def _pair(codec: Codec) -> tuple[MediaSession, MediaSession]:
    a = await MediaSession.open()
    b = await MediaSession.open()
    offer = create_offer([codec], "127.0.0.1", a.local_address[1])
    answer = create_answer(offer, [codec], "127.0.0.1", b.local_address[1])
    a.apply(process_answer(offer, answer.sdp))
    b.apply(answer.audio)
    return a, b


def _tone(rate: int) -> Pcm:
    t = np.arange(rate) / rate
    return np.rint(8000 * np.sin(2 * np.pi * 400 * t)).astype(np.int16)


async def g711_calls(count: int, sink: Callable[[Pcm], None]) -> Sessions:
    """``count`` sessions in PCMU pairs, each with a looping tone and a sink."""
    tone = _tone(8000)
    sessions: Sessions = []
    for _ in range(count // 2):
        for s in await _pair(PCMU):
            s.source = PcmSource(tone, loop=True)
            s.sinks.append(sink)
            sessions.append(s)
    return sessions


def _bridge(into: MediaSession, rate_from: int, rate_to: int) -> Callable[[Pcm], None]:
    """A sink that resamples to ``into``'s rate and queues for it to send."""
    queue = QueueSource(max_samples=rate_to // 5)
    into.source = queue
    if rate_from == rate_to:
        return queue.push
    resampler = Resampler(rate_from, rate_to)
    return lambda pcm: queue.push(resampler.resample(pcm))


async def transcoding_calls(count: int, sink: Callable[[Pcm], None]) -> Sessions:
    """``count`` sessions in calls of four: PCMU phone - [PCMU leg | Opus leg] - Opus phone."""
    sessions: Sessions = []
    for _ in range(max(1, count // 4)):
        phone_u, leg_u = await _pair(PCMU)
        leg_o, phone_o = await _pair(OPUS)
        phone_u.source = PcmSource(_tone(8000), loop=True)
        phone_o.source = PcmSource(_tone(48000), loop=True)
        phone_u.sinks.append(sink)
        phone_o.sinks.append(sink)
        leg_u.sinks.append(_bridge(leg_o, 8000, 48000))
        leg_o.sinks.append(_bridge(leg_u, 48000, 8000))
        sessions += [phone_u, leg_u, leg_o, phone_o]
    return sessions


Maker = Callable[[int, Callable[[Pcm], None]], Awaitable[Sessions]]


async def media_trial(make: Maker, count: int, seconds: float = TRIAL_SECONDS) -> dict[str, float]:
    played = [0]

    def sink(pcm: Pcm) -> None:
        played[0] += 1

    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    sessions: Sessions = []
    try:
        sessions = await make(count, sink)
        for s in sessions:
            loop.call_later(random.uniform(0, 0.02), s.start)
        await asyncio.sleep(WARMUP)
        before = [s.stats() for s in sessions]
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
        after = [s.stats() for s in sessions]
    finally:
        for s in sessions:
            s.close()
        await asyncio.sleep(0.1)
    sent = late = received = skipped = 0
    for b, a in zip(before, after, strict=True):
        sent += a.packets_sent - b.packets_sent
        skipped += a.ticks_skipped - b.ticks_skipped
        if a.jitter_buffer is not None and b.jitter_buffer is not None:
            late += a.jitter_buffer.late - b.jitter_buffer.late
            received += a.jitter_buffer.received - b.jitter_buffer.received
    total = received + late + skipped
    return {
        "sessions": len(sessions),
        "rate": sent / elapsed,
        "late": (late + skipped) / total if total else 1.0,
        "mean_lateness": float(np.mean(lateness)) if lateness else 1.0,
        "cpu": cpu,
    }


def acceptable(result: dict[str, float]) -> bool:
    return result["late"] < 0.01 and result["mean_lateness"] < 0.02


async def search(
    name: str,
    make: Maker,
    start: int,
    step: int,
    *,
    budget: float,
    echoes: list[float],
    echo_costs: list[float],
) -> dict[str, float] | None:
    """Largest passing session count (a multiple of ``step``) within ``budget`` seconds."""
    deadline = time.monotonic() + budget
    best: dict[str, float] | None = None
    low, high = 0, 0
    count = start
    while time.monotonic() + TRIAL_SECONDS + WARMUP + ECHO_SECONDS + 2 < deadline:
        echo, echo_cpu = await udp_echo_rate()
        echoes.append(echo)
        echo_costs.append(echo_cpu / echo)
        result = await media_trial(make, count)
        ok = acceptable(result)
        print(
            f"  {name} {result['sessions']:4.0f} sessions: {result['rate']:7,.0f} packets/s sent"
            f" ({result['rate'] / echo:.3f}x the echo just before: {echo:,.0f}/s), "
            f"late {result['late'] * 100:.2f} %, timer lateness "
            f"{result['mean_lateness'] * 1000:.1f} ms, cpu {result['cpu'] * 100:.0f} % "
            f"-> {'ok' if ok else 'overloaded'}",
            flush=True,
        )
        if ok:
            low = count
            if best is None or result["rate"] > best["rate"]:
                best = result
        else:
            high = count
        if high == 0:
            count *= 2
        elif high - low <= max(step, low // 10):
            break
        else:
            count = max(step, (low + high) // 2 // step * step)
    return best


def least_busy_cpu() -> int | None:
    """The CPU with the most idle time over 0.3 s (``/proc/stat``), if we can tell."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))

    def idle() -> dict[int, tuple[int, int]]:
        out = {}
        try:
            lines = Path("/proc/stat").read_text().splitlines()
        except OSError:
            return {}
        for line in lines:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                values = [int(v) for v in fields]
                out[int(name[3:])] = (values[3] + values[4], sum(values))
        return out

    first = idle()
    time.sleep(0.3)
    second = idle()
    shares = {
        cpu: (second[cpu][0] - first[cpu][0]) / max(1, second[cpu][1] - first[cpu][1])
        for cpu in allowed
        if cpu in first and cpu in second
    }
    return max(shares, key=lambda cpu: shares[cpu]) if shares else allowed[-1]


async def main() -> None:
    echoes: list[float] = []
    costs: list[float] = []
    g711 = await search("G.711", g711_calls, 100, 2, budget=50, echoes=echoes, echo_costs=costs)
    opus = await search(
        "Opus<->PCMU", transcoding_calls, 16, 4, budget=25, echoes=echoes, echo_costs=costs
    )
    echo = statistics.median(echoes)
    echo_cost = statistics.median(costs)
    print(
        f"udp-echo: {echo:,.0f} datagrams/s sent (median of {len(echoes)}, "
        f"range {min(echoes):,.0f}-{max(echoes):,.0f}), "
        f"{echo_cost * 1e6:.1f} us CPU per datagram"
    )
    # The rates depend on the CPU share other processes leave us; the CPU time per
    # packet does much less: the same comparison as a cost ratio.
    for name, best in (("Opus<->PCMU", opus), ("G.711", g711)):
        if best and best["rate"]:
            cost = best["cpu"] / best["rate"]
            print(
                f"cost: {name} {cost * 1e6:.1f} us CPU per packet sent "
                f"(echo/media cost ratio {echo_cost / cost:.3f})"
            )
    for name, best in (("Opus<->PCMU transcoding", opus), ("G.711", g711)):
        rate = best["rate"] if best else 0.0
        sessions = best["sessions"] if best else 0
        print(f"media: {sessions:.0f} {name} sessions, {rate:,.0f} RTP packets/s sent")
        if best is opus:
            print(f"media (Opus<->PCMU transcoding): {rate / echo:.3f}x udp-echo (no goal)")
    rate = g711["rate"] if g711 else 0.0
    print(f"media: {rate / echo:.3f}x udp-echo (goal 0.3x)")


async def fixed(count: int, rounds: int) -> None:
    """``rounds`` G.711 trials of ``count`` sessions: the CPU per packet sent of each.

    With the load of a shared machine moving the search's result by a factor of two,
    alternating this between two versions (``--src``) compares them more directly.
    """
    costs: list[float] = []
    for _ in range(rounds):
        result = await media_trial(g711_calls, count)
        costs.append(result["cpu"] / result["rate"])
        print(
            f"  G.711 {result['sessions']:4.0f} sessions: {result['rate']:7,.0f} packets/s sent, "
            f"cpu {result['cpu'] * 100:.0f} %, late {result['late'] * 100:.2f} %, "
            f"{costs[-1] * 1e6:.1f} us CPU per packet",
            flush=True,
        )
    print(f"cost: G.711 {statistics.median(costs) * 1e6:.1f} us CPU per packet sent (median)")


def run() -> None:
    cpu = least_busy_cpu()
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
        print(f"pinned to CPU {cpu}")
    try:
        import uvloop

        runner: Callable[[Any], None] = uvloop.run
    except ImportError:
        runner = asyncio.run
    if "--fixed" in sys.argv:
        count = int(sys.argv[sys.argv.index("--fixed") + 1])
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
        runner(fixed(count, rounds))
    else:
        runner(main())


if __name__ == "__main__":
    run()
