"""atheris (libFuzzer) harness for the SIP stream framer.

The same bytes are framed whole and in random chunks; the messages must agree.

Invariant (``tests/fuzz/targets.py``): any input parses or raises SipFramingError, and
whatever parses survives the round trip checks. Long run, one million inputs:

    mkdir -p /tmp/fuzz-framer
    .venv/bin/python tests/fuzz/fuzz_framer.py -runs=1000000 /tmp/fuzz-framer

The corpus directory is seeded when empty; see docs/fuzzing.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

with atheris.instrument_imports():
    import trunkline.sip.framer  # noqa: F401

from tests.fuzz.targets import FRAMER, atheris_main

if __name__ == "__main__":
    atheris_main(FRAMER)
