"""What a fuzz target is, and the two ways it runs: short in-suite runs and atheris.

A :class:`Target` pairs an ``exercise(data)`` function with seeds and a token
dictionary. :func:`run_short` is the seeded in-process mutation fuzzer the test
suite runs (``test_fuzz_<name>.py``); :func:`atheris_main` is the body of every
long libFuzzer run (``fuzz_<name>.py``). The targets themselves are in
:mod:`tests.fuzz.sip_targets`, :mod:`tests.fuzz.media_targets` and
:mod:`tests.fuzz.targets`.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Target", "atheris_main", "mutate", "run_short", "write_dictionary"]


@dataclass(frozen=True)
class Target:
    """One parser under fuzz: what to call, where to start, which tokens help."""

    name: str
    exercise: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    tokens: Sequence[bytes] = ()
    modules: Sequence[str] = field(default=())
    """Modules the atheris harness instruments for coverage."""


# -- in-process mutation fuzzer (the short in-suite runs) ---------------------------


def mutate(
    rng: random.Random, data: bytes, tokens: Sequence[bytes], pool: Sequence[bytes]
) -> bytes:
    """One to four edits: byte flips, token inserts, deletions, repeats, cuts, splices."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(buf))
        choice = rng.randrange(11)
        if choice <= 1 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif choice == 2 and buf:
            at = min(pos, len(buf) - 1)
            buf[at] ^= 1 << rng.randrange(8)
        elif choice <= 5 and tokens:
            buf[pos:pos] = rng.choice(tokens)
        elif choice == 6:
            del buf[pos : pos + rng.randint(1, 16)]
        elif choice == 7:
            end = min(len(buf), pos + rng.randint(1, 32))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 4)
        elif choice == 8 and rng.random() < 0.3:
            buf = buf[:pos]
        elif choice == 9 and buf:
            # An "interesting" integer over 1, 2 or 4 bytes (lengths, counts).
            width = rng.choice((1, 2, 4))
            value = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFFFFFF, len(buf)))
            raw = (value & ((1 << (8 * width)) - 1)).to_bytes(width, rng.choice(("big", "little")))
            buf[pos : pos + width] = raw
        elif pool:
            other = rng.choice(pool)
            if other:
                start = rng.randrange(len(other))
                buf[pos:pos] = other[start : start + rng.randint(1, 64)]
    return bytes(buf)


def run_short(target: Target, count: int, seed: int, budget: float = 60.0) -> int:
    """Exercise every seed, then ``count`` mutants; return how many inputs ran."""
    rng = random.Random(seed)
    pool = target.seeds()
    assert pool, f"{target.name}: no seeds"
    started = time.perf_counter()
    for data in pool:
        target.exercise(data)
    for _ in range(count):
        target.exercise(mutate(rng, rng.choice(pool), target.tokens, pool))
    elapsed = time.perf_counter() - started
    assert elapsed < budget, f"{target.name}: {count} inputs took {elapsed:.1f} s"
    return len(pool) + count


def write_dictionary(target: Target, path: Path) -> None:
    """Write ``target.tokens`` as a libFuzzer ``-dict`` file."""
    lines = [f"# libFuzzer dictionary for the {target.name} fuzz target"]
    for i, token in enumerate(target.tokens):
        escaped = "".join(
            chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}" for b in token
        )
        lines.append(f'kw{i}="{escaped}"')
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def atheris_main(target: Target) -> None:
    """The body of every ``fuzz_<name>.py``: libFuzzer options and corpus dirs in argv.

    The first corpus directory is seeded from ``target.seeds()`` when empty, and
    ``target.tokens`` are passed as ``-dict`` unless one is given: a temporary
    file, deleted once libFuzzer has read it (kept, and named on stderr, when
    ``-jobs``/``-workers``/``-fork`` start processes that each read it). Warnings are
    errors, as in the test suite; ``TRUNKLINE_FUZZ_WARNINGS=default`` only prints
    them, to keep fuzzing past a known warning bug while its fix is pending.
    """
    import atheris  # the fuzz extra; only the long runs need it

    action = os.environ.get("TRUNKLINE_FUZZ_WARNINGS", "error")
    warnings.simplefilter("default" if action == "default" else "error")
    argv = list(sys.argv)
    corpus = [a for a in argv[1:] if not a.startswith("-")]
    if corpus and not Path(corpus[0]).is_file():
        first = Path(corpus[0])
        first.mkdir(parents=True, exist_ok=True)
        if not any(first.iterdir()):
            for i, data in enumerate(target.seeds()):
                (first / f"seed-{i:03d}").write_bytes(data)
    exercise = target.exercise
    if target.tokens and not any(a.startswith("-dict=") for a in argv):
        folder = Path(tempfile.mkdtemp(prefix=f"trunkline-fuzz-{target.name}-"))
        path = folder / f"{target.name}.dict"
        write_dictionary(target, path)
        argv.append(f"-dict={path}")
        if any(a.startswith(PARALLEL_OPTIONS) for a in argv):
            print(f"fuzz dictionary: {path} (remove it after the run)", file=sys.stderr)
        else:
            exercise = _removing_first(folder, exercise)
    atheris.Setup(argv, exercise)
    atheris.Fuzz()


#: libFuzzer options that start worker processes, each of which reads ``-dict`` itself.
PARALLEL_OPTIONS = ("-jobs=", "-workers=", "-fork=")


def _removing_first(folder: Path, exercise: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``exercise``, deleting ``folder`` (the ``-dict`` file's) before the first input.

    libFuzzer reads its dictionary before it calls the target, and it leaves
    the process with ``exit()``, so no ``finally`` or ``atexit`` would run
    after the last input: the first input is the one moment to clean up.
    """
    pending = [folder]

    def run(data: bytes) -> None:
        if pending:
            shutil.rmtree(pending.pop(), ignore_errors=True)
        exercise(data)

    return run
