"""Short in-suite fuzz run for trunkline.toml (the long run: ``fuzz_config.py``).

A seeded mutation fuzzer (4,000 inputs) and hypothesis on arbitrary bytes,
both checking the invariant of ``tests/fuzz/targets.py``: parse or raise our
own error, and round-trip whatever parses.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import CONFIG, run_short
from trunkline.config import ConfigError, parse_config


def test_seeds_and_4000_mutants() -> None:
    assert run_short(CONFIG, count=4000, seed=8259) == len(CONFIG.seeds()) + 4000


@settings(
    max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    CONFIG.exercise(data)


def test_boolean_trusted_network_is_a_config_error() -> None:
    CONFIG.exercise(b"trusted = [true]\n")
    with pytest.raises(ConfigError, match=r"trunkline.toml:1: trusted: .*CIDR string"):
        parse_config("trusted = [true]\n")
    with pytest.raises(ConfigError, match=r"trusted"):
        parse_config("trusted = [1]\n")
