"""atheris (libFuzzer) harness for SDES ``a=crypto`` values.

Targets ``CryptoAttribute.parse`` (SRTP keys) and ``sdpcrypto.Crypto`` (the SDP view).

Invariant (``tests/fuzz/targets.py``): any input parses or raises SrtpError / SipParseError, and
whatever parses survives the round trip checks. Long run, one million inputs:

    mkdir -p /tmp/fuzz-crypto
    .venv/bin/python tests/fuzz/fuzz_crypto.py -runs=1000000 /tmp/fuzz-crypto

The corpus directory is seeded when empty; see docs/fuzzing.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

with atheris.instrument_imports():
    import trunkline.media.srtp
    import trunkline.sip.sdpcrypto  # noqa: F401

from tests.fuzz.targets import CRYPTO, atheris_main

if __name__ == "__main__":
    atheris_main(CRYPTO)
