"""The serving process's collector policy (trunkline.sip.aio.gcpolicy)."""

from __future__ import annotations

import asyncio
import gc
import weakref

from trunkline.sip.aio.gcpolicy import ServingCollector


class _Node:
    """An object in a reference cycle, to see what the collector frees and when."""

    def __init__(self) -> None:
        self.me = self


async def test_start_freezes_survivors_and_raises_the_first_threshold() -> None:
    before = gc.get_threshold()
    collector = ServingCollector(asyncio.get_running_loop(), interval=0.01, threshold=50_000)
    collector.start()
    try:
        assert collector.running
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == max(before[0], 50_000)
        kept = _Node()
        await asyncio.sleep(0.05)  # a few ticks: the cycle is frozen with the rest
        assert gc.get_freeze_count() > 0
        del kept
    finally:
        collector.stop()
    assert not collector.running
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0  # everything handed back at stop


async def test_stop_sweeps_cycles_that_were_frozen() -> None:
    collector = ServingCollector(asyncio.get_running_loop(), interval=10.0)
    collector.start()
    node = _Node()
    alive = weakref.ref(node)
    gc.freeze()  # as a tick would
    del node
    gc.collect()
    assert alive() is not None  # frozen: a full collection does not see the cycle
    collector.stop()
    assert collector.sweeps == 1
    assert alive() is None  # handed back and collected at stop


async def test_periodic_sweep_runs_when_due() -> None:
    collector = ServingCollector(asyncio.get_running_loop(), interval=0.01, sweep_interval=0.02)
    collector.start()
    try:
        await asyncio.sleep(0.1)
        assert collector.sweeps >= 1
    finally:
        collector.stop()


async def test_start_and_stop_are_idempotent() -> None:
    before = gc.get_threshold()
    collector = ServingCollector(asyncio.get_running_loop())
    collector.stop()  # not started: nothing to undo
    assert collector.sweeps == 0
    collector.start()
    collector.start()
    collector.stop()
    collector.stop()
    assert collector.sweeps == 1
    assert gc.get_threshold() == before
