"""Short in-suite fuzz run for telephone-event payloads (the long run: ``fuzz_telephone_event.py``).

A seeded mutation fuzzer (6,000 inputs) and hypothesis on arbitrary bytes,
both checking the invariant of ``tests/fuzz/targets.py``: parse or raise our
own error, and round-trip whatever parses.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import TELEPHONE_EVENT, run_short


def test_seeds_and_6000_mutants() -> None:
    assert run_short(TELEPHONE_EVENT, count=6000, seed=4733) == len(TELEPHONE_EVENT.seeds()) + 6000


@settings(
    max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    TELEPHONE_EVENT.exercise(data)
