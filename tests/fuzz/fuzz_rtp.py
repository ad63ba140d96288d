"""atheris (libFuzzer) harness for RTP packets (``RtpPacket.parse``, header extension elements).

Invariant (``tests/fuzz/targets.py``): any input parses or raises RtpParseError, and
whatever parses survives the round trip checks. Long run, one million inputs:

    mkdir -p /tmp/fuzz-rtp
    .venv/bin/python tests/fuzz/fuzz_rtp.py -runs=1000000 /tmp/fuzz-rtp

The corpus directory is seeded when empty; see docs/fuzzing.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

with atheris.instrument_imports():
    import trunkline.rtp.packet  # noqa: F401

from tests.fuzz.targets import RTP, atheris_main

if __name__ == "__main__":
    atheris_main(RTP)
