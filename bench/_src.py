"""``--src DIR``: which copy of the engine a bench imports.

Without the option the benches run this checkout's ``src/``; with ``--src DIR``
they run ``DIR/src`` instead, e.g. the last commit's engine from
``git archive HEAD src | tar -x -C DIR``, for A/B runs under the same harness.
Importing this module puts the chosen ``src`` first on ``sys.path``, so it
must come before any ``trunkline`` import.
"""

from __future__ import annotations

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
if "--src" in sys.argv:
    SRC = Path(sys.argv[sys.argv.index("--src") + 1]).resolve() / "src"
sys.path.insert(0, str(SRC))
