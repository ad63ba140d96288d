"""atheris (libFuzzer) harness for RFC 4733 telephone-event payloads and their receiver.

Invariant (``tests/fuzz/targets.py``): any input parses or raises CodecError, and
whatever parses survives the round trip checks. Long run, one million inputs:

    mkdir -p /tmp/fuzz-telephone_event
    .venv/bin/python tests/fuzz/fuzz_telephone_event.py -runs=1000000 /tmp/fuzz-telephone_event

The corpus directory is seeded when empty; see docs/fuzzing.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

with atheris.instrument_imports():
    import trunkline.media.codecs.telephone_event  # noqa: F401

from tests.fuzz.targets import TELEPHONE_EVENT, atheris_main

if __name__ == "__main__":
    atheris_main(TELEPHONE_EVENT)
