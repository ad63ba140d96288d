"""atheris (libFuzzer) harness for ``parse_message``; see docs/fuzzing.md.

    .venv/bin/python tests/fuzz/fuzz_message.py -runs=1000000 /tmp/sip-corpus

The first corpus directory receives new interesting inputs; it is seeded with
the RFC 4475 / RFC 5118 messages when empty. Any exception other than
SipParseError (or a failed invariant assertion) is reported as a crash.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

with atheris.instrument_imports():
    import trunkline.sip.grammar
    import trunkline.sip.headerfields
    import trunkline.sip.headers
    import trunkline.sip.message
    import trunkline.sip.uri  # noqa: F401

from tests.fuzz.targets import MESSAGE, atheris_main

if __name__ == "__main__":
    atheris_main(MESSAGE)
