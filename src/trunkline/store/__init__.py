"""Persistent state: the data directory, its database and the user store.

Embedded by default (one SQLite file in ``./trunkline-data/``); see
DESIGN.md "Embedded default, real engines to scale".
"""

from __future__ import annotations

from trunkline.store.datadir import DEFAULT_DATA_DIR, DataDir, open_database
from trunkline.store.users import User, UserError, UserStore, demo_password

__all__ = [
    "DEFAULT_DATA_DIR",
    "DataDir",
    "User",
    "UserError",
    "UserStore",
    "demo_password",
    "open_database",
]
