"""Short in-suite fuzz run for SDES a=crypto values (the long run: ``fuzz_crypto.py``).

A seeded mutation fuzzer (8,000 inputs) and hypothesis on arbitrary bytes,
both checking the invariant of ``tests/fuzz/targets.py``: parse or raise our
own error, and round-trip whatever parses.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import CRYPTO, run_short


def test_seeds_and_8000_mutants() -> None:
    assert run_short(CRYPTO, count=8000, seed=4568) == len(CRYPTO.seeds()) + 8000


@settings(
    max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    CRYPTO.exercise(data)
