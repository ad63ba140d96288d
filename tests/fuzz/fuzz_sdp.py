"""atheris (libFuzzer) harness for SDP bodies (``SessionDescription.parse``).

Invariant (``tests/fuzz/targets.py``): any input parses or raises SipParseError, and
whatever parses survives the round trip checks. Long run, one million inputs:

    mkdir -p /tmp/fuzz-sdp
    .venv/bin/python tests/fuzz/fuzz_sdp.py -runs=1000000 /tmp/fuzz-sdp

The corpus directory is seeded when empty; see docs/fuzzing.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

with atheris.instrument_imports():
    import trunkline.sip.sdp
    import trunkline.sip.sdpcodecs
    import trunkline.sip.sdpcrypto
    import trunkline.sip.sdpfields
    import trunkline.sip.sdpsyntax  # noqa: F401

from tests.fuzz.targets import SDP, atheris_main

if __name__ == "__main__":
    atheris_main(SDP)
