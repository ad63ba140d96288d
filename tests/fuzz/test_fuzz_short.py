"""A short in-process fuzz run for the normal test suite (20,000 inputs, seconds).

The long run uses atheris (``tests/fuzz/fuzz_message.py``, docs/fuzzing.md);
this one needs no extra package: a seeded mutation fuzzer over the RFC 4475 /
RFC 5118 messages with SIP-aware splices, checking the same invariant.
"""

from __future__ import annotations

import random
import time

from tests.fuzz.harness import exercise, seeds

TOKENS = [
    b"\r\n",
    b"\r\n ",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"\\",
    b"=",
    b"[",
    b"]",
    b"@",
    b"%00",
    b"sip:",
    b"SIP/2.0",
    b";branch=z9hG4bK",
    b";tag=",
    b"Via: SIP/2.0/UDP h\r\n",
    b"Content-Length: 9999\r\n",
    b"l: -1\r\n",
    b"CSeq: 1 X\r\n",
    b"Contact: *\r\n",
    b"\x00",
    b"\xff",
    "é".encode(),
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four byte-level or SIP-aware edits of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(buf))
        choice = rng.randrange(10)
        if choice <= 1 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif choice <= 4:
            buf[pos:pos] = rng.choice(TOKENS)
        elif choice == 5:
            del buf[pos : pos + rng.randint(1, 16)]
        elif choice == 6:
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 4)
        elif choice == 7 and rng.random() < 0.2:
            buf = buf[:pos]
        else:
            other = rng.choice(SEEDS)
            start = rng.randrange(len(other))
            buf[pos:pos] = other[start : start + rng.randint(1, 200)]
    return bytes(buf)


SEEDS = seeds()


def test_short_fuzz_run_20000_inputs() -> None:
    rng = random.Random(4475)
    started = time.perf_counter()
    for seed in SEEDS:
        exercise(seed)
    for _ in range(20_000):
        exercise(mutate(rng, rng.choice(SEEDS)))
    # Generous bound: linear-time parsing keeps this to a few seconds.
    assert time.perf_counter() - started < 60
