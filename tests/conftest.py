"""Test configuration shared by every suite."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DATA = Path(__file__).resolve().parent / "data"

# Peer fixtures (kamailio_factory, baresip_factory, linphone_factory) for every test.
pytest_plugins = ["tests.support.kamailio", "tests.support.baresip", "tests.support.linphone"]
