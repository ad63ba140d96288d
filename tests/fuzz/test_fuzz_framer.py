"""Short in-suite fuzz run for the SIP stream framer (the long run: ``fuzz_framer.py``).

A seeded mutation fuzzer (5,000 inputs) and hypothesis on arbitrary bytes,
both checking the invariant of ``tests/fuzz/targets.py``: parse or raise our
own error, and round-trip whatever parses.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import FRAMER, run_short


def test_seeds_and_5000_mutants() -> None:
    assert run_short(FRAMER, count=5000, seed=5626) == len(FRAMER.seeds()) + 5000


@settings(
    max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    FRAMER.exercise(data)
