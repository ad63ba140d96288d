"""A short in-process fuzz run for the normal test suite (20,000 inputs, seconds).

The long run uses atheris (``tests/fuzz/fuzz_message.py``, docs/fuzzing.md);
this one needs no extra package: the seeded mutation fuzzer of
``tests/fuzz/runner.py`` over the RFC 4475 / RFC 5118 messages with SIP-aware
tokens and splices, checking the invariant of ``tests/fuzz/harness.py``.
"""

from __future__ import annotations

from tests.fuzz.harness import MESSAGE
from tests.fuzz.runner import run_short


def test_short_fuzz_run_20000_inputs() -> None:
    # Generous time bound (run_short's 60 s): linear-time parsing keeps this to seconds.
    assert run_short(MESSAGE, count=20_000, seed=4475) == len(MESSAGE.seeds()) + 20_000
