"""SIP timer values and named deadlines (RFC 3261 §17.1.1.1, Table 4 of §A).

Nothing here reads a clock: a :class:`Deadlines` holds absolute times that
the caller computed from the ``now`` it was given, and tells the driver the
earliest one (``get_timer()``), as aioquic does.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1, T2, T4 and the timers derived from them (RFC 3261 Appendix A).

    ``timer_d`` is the Timer D wait on unreliable transports ("at least 32
    s"); on reliable transports D, I, J and K are zero (§17.1.1.2, §17.2.2).
    ``trying_delay`` is the 200 ms after which an INVITE server transaction
    sends 100 Trying itself (§17.2.1).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0
    trying_delay: float = 0.2

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J, L, M and the 2xx/ACK give-up (§13.3.1.4)."""
        return 64.0 * self.t1


DEFAULT_TIMERS = TimerConfig()


class Deadlines:
    """A small set of named absolute deadlines (``"A"``, ``"B"`` ...).

    The earliest one is kept up to date as timers are armed and cancelled, so
    :meth:`earliest`, which the driver asks after every entry point of a
    machine, is one attribute read, and :meth:`pop_due` returns at once when
    nothing is due (the usual case).
    """

    __slots__ = ("_at", "_next")

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        self._next: float | None = None

    def set(self, name: str, at: float) -> None:
        """Arm (or re-arm) timer ``name`` to fire at ``at``."""
        times = self._at
        old = times.get(name)
        times[name] = at
        nxt = self._next
        if nxt is None or at < nxt:
            self._next = at
        elif old is not None and old <= nxt:  # the earliest one moved later
            self._next = min(times.values())

    def cancel(self, *names: str) -> None:
        """Disarm the named timers (missing names are ignored)."""
        times = self._at
        moved = False
        for name in names:
            old = times.pop(name, None)
            if old is not None and old == self._next:
                moved = True
        if moved:
            self._next = min(times.values()) if times else None

    def clear(self) -> None:
        """Disarm everything."""
        self._at.clear()
        self._next = None

    def __contains__(self, name: object) -> bool:
        return name in self._at

    def get(self, name: str) -> float | None:
        """The deadline of ``name``, or None when it is not armed."""
        return self._at.get(name)

    def earliest(self) -> float | None:
        """The next deadline, or None when nothing is armed."""
        return self._next

    def pop_due(self, now: float) -> Iterator[str]:
        """Yield and disarm the timers due at ``now``, earliest first.

        The set is re-read after each yield, so a handler may arm or cancel
        timers (a re-armed timer that is already due fires in the same call).
        """
        times = self._at
        while True:
            nxt = self._next
            if nxt is None or nxt > now:
                return
            name = min(times, key=times.__getitem__)
            del times[name]
            self._next = min(times.values()) if times else None
            yield name


class TimerHeap(Generic[K]):
    """Deadlines for many keyed timers, earliest first (lazy-deletion heap).

    ``set(key, at)`` re-arms, ``set(key, None)`` disarms; stale heap entries
    are skipped, so each operation is O(log n) however many dialogs run.
    """

    __slots__ = ("_armed", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._armed: dict[K, float] = {}
        self._seq = itertools.count()

    def set(self, key: K, at: float | None) -> None:
        """Arm ``key`` at ``at`` (replacing any earlier deadline) or disarm it."""
        if at is None:
            self._armed.pop(key, None)
            return
        if self._armed.get(key) == at:
            return
        self._armed[key] = at
        heapq.heappush(self._heap, (at, next(self._seq), key))

    def get(self, key: K) -> float | None:
        """The deadline of ``key``, or None."""
        return self._armed.get(key)

    def earliest(self) -> float | None:
        """The next deadline, or None."""
        heap = self._heap
        while heap:
            at, _, key = heap[0]
            if self._armed.get(key) == at:
                return at
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> list[K]:
        """Disarm and return the keys due at ``now``, earliest first."""
        due: list[K] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            if self._armed.get(key) == at:
                del self._armed[key]
                due.append(key)
        return due

    def __len__(self) -> int:
        return len(self._armed)
