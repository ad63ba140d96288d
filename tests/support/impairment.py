"""A UDP impairment relay for media tests (asyncio, loopback only).

The kernel's netem is not available to unprivileged tests, so this relay
stands between two endpoints and degrades what it forwards, reproducibly
(one seeded RNG per direction):

* ``loss``: probability a datagram is dropped;
* ``delay``: fixed one-way delay in seconds;
* ``jitter``: an extra delay drawn uniformly from ``[0, jitter]`` per
  datagram, so later datagrams overtake earlier ones when it exceeds the
  packet spacing (reordering follows naturally);
* ``reorder``: probability a datagram is additionally held back by
  ``reorder_gap`` seconds (explicit reordering);
* ``duplicate``: probability a datagram is sent twice.

Topology: side A sends to ``relay.port_a``, side B to ``relay.port_b``; the
relay forwards A's datagrams from ``port_b`` to B and B's from ``port_a`` to
A, so each side sees the relay as its peer (symmetric RTP keeps working).
Forward targets are fixed at construction or learned from the first
datagram of each side.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, cast

Address = tuple[str, int]


@dataclass
class Impairment:
    loss: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder: float = 0.0
    reorder_gap: float = 0.03
    duplicate: float = 0.0


@dataclass
class DirectionStats:
    received: int = 0
    dropped: int = 0
    duplicated: int = 0
    held_back: int = 0
    delays: list[float] = field(default_factory=list)


class _Side(asyncio.DatagramProtocol):
    def __init__(self, relay: ImpairmentRelay, name: str) -> None:
        self.relay = relay
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.relay._forward(self.name, data, (addr[0], addr[1]))


class ImpairmentRelay:
    """Two loopback UDP ports that forward between A and B with impairments."""

    def __init__(
        self,
        a_to_b: Impairment,
        b_to_a: Impairment | None = None,
        *,
        seed: int = 1,
        a: Address | None = None,
        b: Address | None = None,
    ) -> None:
        self.impairments = {"a": a_to_b, "b": b_to_a or Impairment()}
        self.rng = {"a": random.Random(seed), "b": random.Random(seed + 1)}
        self.stats = {"a": DirectionStats(), "b": DirectionStats()}
        self.peers: dict[str, Address | None] = {"a": a, "b": b}
        self._sides: dict[str, _Side] = {}
        self._handles: set[asyncio.TimerHandle] = set()
        self.port_a = 0
        self.port_b = 0

    async def start(self, host: str = "127.0.0.1") -> ImpairmentRelay:
        loop = asyncio.get_running_loop()
        for name in ("a", "b"):
            transport, protocol = await loop.create_datagram_endpoint(
                lambda name=name: _Side(self, name),  # type: ignore[misc]
                local_addr=(host, 0),
            )
            self._sides[name] = protocol
            port = transport.get_extra_info("sockname")[1]
            if name == "a":
                self.port_a = port
            else:
                self.port_b = port
        return self

    def _forward(self, side: str, data: bytes, addr: Address) -> None:
        other = "b" if side == "a" else "a"
        if self.peers[side] is None:
            self.peers[side] = addr  # learn where this side lives
        target = self.peers[other]
        out = self._sides[other].transport
        stats = self.stats[side]
        stats.received += 1
        if target is None or out is None:
            stats.dropped += 1
            return
        imp = self.impairments[side]
        rng = self.rng[side]
        if rng.random() < imp.loss:
            stats.dropped += 1
            return
        delay = imp.delay + rng.uniform(0.0, imp.jitter)
        if rng.random() < imp.reorder:
            delay += imp.reorder_gap
            stats.held_back += 1
        copies = 2 if rng.random() < imp.duplicate else 1
        if copies == 2:
            stats.duplicated += 1
        loop = asyncio.get_running_loop()
        for i in range(copies):
            stats.delays.append(delay)
            self._handles.add(loop.call_later(delay + i * 0.0005, self._send, out, data, target))
        if len(self._handles) > 4096:
            self._handles = {h for h in self._handles if not h.cancelled()}

    def _send(self, out: asyncio.DatagramTransport, data: bytes, target: Address) -> None:
        if not out.is_closing():
            out.sendto(data, target)

    @property
    def address_a(self) -> Address:
        """Where side A sends (and what A sees as its peer)."""
        return ("127.0.0.1", self.port_a)

    @property
    def address_b(self) -> Address:
        return ("127.0.0.1", self.port_b)

    def close(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
        for side in self._sides.values():
            if side.transport is not None:
                side.transport.close()
