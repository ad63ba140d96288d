"""The cyclic garbage collector in a long-running SIP server process.

A server keeps every transaction for up to 64*T1 = 32 s after its last
message (RFC 3261 §17 Timers D, J, K; RFC 6026 Timer M): at a thousand calls
a second that is a hundred thousand transactions, millions of small objects
that reference counting frees on time and that are almost never part of a
reference cycle. CPython's collector does not know that: each time a quarter
more objects reached its oldest generation it traverses all of them, and that
full collection grows with the load (hundreds of milliseconds at a few
hundred calls a second here), long enough for every peer to retransmit.

:class:`ServingCollector` keeps those traversals small: every ``interval``
seconds it moves whatever survived so far out of the collector's view
(``gc.freeze()``); reference counting still frees those objects as usual, so
the memory of finished transactions comes back as before. What it gives up
is the collection of reference cycles among frozen objects until the next
``sweep`` (every ``sweep_interval`` seconds, and at :meth:`stop`): there the
objects are handed back (``gc.unfreeze()``) and one full collection runs.
The first generation's threshold is raised too, so that short-lived message
objects are not traversed every 700 allocations.
"""

from __future__ import annotations

import asyncio
import gc

__all__ = ["ServingCollector"]


class ServingCollector:
    """Freeze survivors periodically; sweep cycles rarely (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        interval: float = 1.0,
        sweep_interval: float = 3600.0,
        threshold: int = 10_000,
    ) -> None:
        self.loop = loop
        self.interval = interval
        self.sweep_interval = sweep_interval
        self.threshold = threshold
        self.sweeps = 0
        self._saved: tuple[int, int, int] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._next_sweep = 0.0

    @property
    def running(self) -> bool:
        return self._saved is not None

    def start(self) -> None:
        """Freeze what exists now (startup objects) and every ``interval`` from here on."""
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        first, second, third = self._saved
        gc.set_threshold(max(first, self.threshold), second, third)
        self._next_sweep = self.loop.time() + self.sweep_interval
        gc.freeze()
        self._timer = self.loop.call_later(self.interval, self._tick)

    def stop(self) -> None:
        """Give every object back to the collector, restore the thresholds, collect once."""
        if self._saved is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gc.set_threshold(*self._saved)
        self._saved = None
        self.sweep()

    def sweep(self) -> None:
        """Unfreeze and run one full collection (cycles among frozen objects are freed)."""
        gc.unfreeze()
        gc.collect()
        self.sweeps += 1

    def _tick(self) -> None:
        self._timer = None
        if self._saved is None:
            return
        now = self.loop.time()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_interval
            self.sweep()
        gc.freeze()
        self._timer = self.loop.call_later(self.interval, self._tick)
