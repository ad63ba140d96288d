"""Short in-suite fuzz run for compound RTCP (the long run: ``fuzz_rtcp.py``).

A seeded mutation fuzzer (10,000 inputs) and hypothesis on arbitrary bytes,
both checking the invariant of ``tests/fuzz/targets.py``: parse or raise our
own error, and round-trip whatever parses.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import RTCP, run_short


def test_seeds_and_10000_mutants() -> None:
    assert run_short(RTCP, count=10000, seed=3551) == len(RTCP.seeds()) + 10000


@settings(
    max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    RTCP.exercise(data)
