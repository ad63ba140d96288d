"""Short in-suite fuzz run for URIs (the long run: ``fuzz_uri.py``).

A seeded mutation fuzzer (8,000 inputs) and hypothesis on arbitrary bytes,
both checking the invariant of ``tests/fuzz/targets.py``: parse or raise our
own error, and round-trip whatever parses.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import URI, run_short
from trunkline.sip.uri import SipUri


def test_seeds_and_8000_mutants() -> None:
    assert run_short(URI, count=8000, seed=3261) == len(URI.seeds()) + 8000


@settings(
    max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    URI.exercise(data)


def test_huge_ttl_parameter_raises_only_our_error() -> None:
    URI.exercise(b"sip:alice@example.com;ttl=" + b"9" * 5000)
    assert SipUri.parse("sip:alice@example.com;ttl=" + "9" * 5000).ttl is None
    assert SipUri.parse("sip:alice@example.com;ttl=16").ttl == 16


def test_uri_with_headers_differing_in_case_equals_itself() -> None:
    URI.exercise(b"sip:a@example.com?x=1&X=2")
    uri = SipUri.parse("sip:a@example.com?x=1&X=2")
    assert uri == SipUri.parse("sip:a@example.com?X=2&x=1")
    assert uri != SipUri.parse("sip:a@example.com?x=1&X=3")
