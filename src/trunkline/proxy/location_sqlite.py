"""The default location backend: bindings in memory, persisted to SQLite.

Lookups never touch the disk: the :class:`~trunkline.proxy.location.LocationTable`
answers. Changes are written behind: every AoR changed since the last
:meth:`MemoryLocation.flush` is rewritten in one transaction (delete its rows,
insert its live bindings). The server calls ``flush()`` every
``[location] flush_interval`` seconds and on shutdown; with
``write_through=True`` every change is flushed at once. At start
:meth:`MemoryLocation.open` loads the bindings that have not expired, so
registrations survive a restart (issue 6).

The ``bindings`` table is defined with the rest of the schema in
``trunkline.store.datadir``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from trunkline.proxy.location import (
    LOCATION_BACKENDS,
    Binding,
    LocationCounts,
    LocationService,
    LocationTable,
    RegisterOutcome,
    RegisterRequest,
    RegistrarPolicy,
)

__all__ = ["MemoryLocation", "SqliteBindings"]

_COLUMNS = (
    "aor, key, contact_uri, expires_at, q, call_id, cseq, received, transport, flow,"
    " path, user_agent, instance, reg_id, updated_at"
)


class SqliteBindings:
    """Reads and writes bindings in the ``bindings`` table of ``db``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    @staticmethod
    def _row(b: Binding) -> tuple[object, ...]:
        return (
            b.aor,
            b.key,
            b.contact_uri,
            b.expires_at,
            b.q,
            b.call_id,
            b.cseq,
            b.received,
            b.transport,
            b.flow,
            json.dumps(list(b.path)),
            b.user_agent,
            b.instance,
            b.reg_id,
            b.updated_at,
        )

    @staticmethod
    def _binding(row: tuple[object, ...]) -> Binding:
        (aor, _key, uri, expires_at, q, call_id, cseq, received, transport, flow, path) = row[:11]
        user_agent, instance, reg_id, updated_at = row[11:]
        return Binding(
            aor=str(aor),
            contact_uri=str(uri),
            expires_at=float(str(expires_at)),
            q=float(str(q)),
            call_id=str(call_id),
            cseq=int(str(cseq)),
            updated_at=float(str(updated_at)),
            received=None if received is None else str(received),
            transport=None if transport is None else str(transport),
            flow=None if flow is None else str(flow),
            path=tuple(str(p) for p in json.loads(str(path))),
            user_agent=None if user_agent is None else str(user_agent),
            instance=None if instance is None else str(instance),
            reg_id=None if reg_id is None else int(str(reg_id)),
        )

    def load(self, now: float) -> dict[str, list[Binding]]:
        """Every binding alive at ``now``, grouped by AoR; expired rows are deleted."""
        with self._db:
            self._db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
        grouped: dict[str, list[Binding]] = {}
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM bindings"):
            binding = self._binding(row)
            grouped.setdefault(binding.aor, []).append(binding)
        return grouped

    def save(self, table: LocationTable, aors: Iterable[str]) -> int:
        """Rewrite the rows of ``aors`` from ``table`` in one transaction; returns rows written."""
        written = 0
        with self._db:
            for aor in aors:
                self._db.execute("DELETE FROM bindings WHERE aor = ?", (aor,))
                rows = [self._row(b) for b in table.current(aor)]
                self._db.executemany(
                    f"INSERT INTO bindings ({_COLUMNS}) VALUES ({', '.join('?' * 15)})", rows
                )
                written += len(rows)
        return written


class MemoryLocation(LocationService):
    """A :class:`LocationTable` with optional SQLite persistence (``db=None``: memory only)."""

    def __init__(self, db: sqlite3.Connection | None = None, *, write_through: bool = False):
        self.table = LocationTable(track_changes=db is not None)
        self._store = None if db is None else SqliteBindings(db)
        self._write_through = write_through

    @classmethod
    async def open(
        cls, db: sqlite3.Connection | None, now: float, *, write_through: bool = False
    ) -> MemoryLocation:
        """A location service loaded with the bindings in ``db`` still alive at ``now``."""
        location = cls(db, write_through=write_through)
        if location._store is not None:
            for aor, bindings in location._store.load(now).items():
                location.table.replace(aor, bindings)
            location.table.take_dirty()
        return location

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        return self.table.lookup(aor, now)

    async def apply_register(
        self, request: RegisterRequest, now: float, policy: RegistrarPolicy
    ) -> RegisterOutcome:
        outcome = self.table.apply_register(request, now, policy)
        if self._write_through and outcome.changed:
            await self.flush()
        return outcome

    async def purge_expired(self, now: float) -> int:
        purged = self.table.purge_expired(now)
        if self._write_through and purged:
            await self.flush()
        return purged

    async def counts(self, now: float) -> LocationCounts:
        return self.table.counts()

    async def all_bindings(self, now: float) -> list[Binding]:
        return self.table.all_bindings(now)

    async def flush(self) -> None:
        dirty = self.table.take_dirty()
        if self._store is not None and dirty:
            try:
                self._store.save(self.table, dirty)
            except sqlite3.Error:
                self.table.dirty |= dirty  # try again at the next flush
                raise

    async def close(self) -> None:
        await self.flush()


async def _open_memory(
    *, db: sqlite3.Connection | None = None, now: float, write_through: bool = False
) -> LocationService:
    return await MemoryLocation.open(db, now, write_through=write_through)


LOCATION_BACKENDS["memory"] = _open_memory
