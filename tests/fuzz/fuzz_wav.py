"""atheris (libFuzzer) harness for WAV files (``read_wav_info``).

Invariant (``tests/fuzz/targets.py``): any input parses or raises WavError, and
whatever parses survives the round trip checks. Long run, one million inputs:

    mkdir -p /tmp/fuzz-wav
    .venv/bin/python tests/fuzz/fuzz_wav.py -runs=1000000 /tmp/fuzz-wav

The corpus directory is seeded when empty; see docs/fuzzing.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

with atheris.instrument_imports():
    import trunkline.media.wav  # noqa: F401

from tests.fuzz.targets import WAV, atheris_main

if __name__ == "__main__":
    atheris_main(WAV)
