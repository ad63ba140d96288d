"""Short in-suite fuzz run for WAV files (the long run: ``fuzz_wav.py``).

A seeded mutation fuzzer (6,000 inputs) and hypothesis on arbitrary bytes,
both checking the invariant of ``tests/fuzz/targets.py``: parse or raise our
own error, and round-trip whatever parses.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import WAV, run_short


def test_seeds_and_6000_mutants() -> None:
    assert run_short(WAV, count=6000, seed=2361) == len(WAV.seeds()) + 6000


@settings(
    max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    WAV.exercise(data)
