"""The default location backend: bindings in memory, persisted to SQLite.

Lookups never touch the disk: the :class:`~trunkline.proxy.location.LocationTable`
answers. Changes are written behind: every AoR changed since the last
:meth:`MemoryLocation.flush` is rewritten in one transaction (delete its rows,
insert its live bindings). The server calls ``flush()`` every
``[location] flush_interval`` seconds and on shutdown; with
``write_through=True`` every change is flushed at once. At start
:meth:`MemoryLocation.open` loads the bindings that have not expired, so
registrations survive a restart (issue 6).

With several workers, :class:`SharedSqliteLocation` reads and writes the
same table directly instead (no copy in memory), so every worker sees every
registration at once.

The ``bindings`` table is defined with the rest of the schema in
``trunkline.store.datadir``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from trunkline.proxy.location import (
    LOCATION_BACKENDS,
    Binding,
    LocationCounts,
    LocationService,
    LocationTable,
    RegisterOutcome,
    RegisterRequest,
    RegistrarPolicy,
    plan_register,
    sort_bindings,
)

__all__ = ["MemoryLocation", "SharedSqliteLocation", "SqliteBindings"]

_COLUMNS = (
    "aor, key, contact_uri, expires_at, q, call_id, cseq, received, transport, flow,"
    " path, user_agent, instance, reg_id, updated_at"
)


_INSERT = f"INSERT INTO bindings ({_COLUMNS}) VALUES ({', '.join('?' * 15)})"


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
            json.dumps(b.path) if b.path else "[]",
            b.user_agent,
            b.instance,
            b.reg_id,
            b.updated_at,
        )

    @staticmethod
    def _binding(row: tuple[Any, ...]) -> Binding:
        # Columns come back with the types they were stored with (see _row).
        (aor, _key, uri, expires_at, q, call_id, cseq, received, transport, flow, path) = row[:11]
        user_agent, instance, reg_id, updated_at = row[11:]
        return Binding(
            aor=aor,
            contact_uri=uri,
            expires_at=expires_at,
            q=q,
            call_id=call_id,
            cseq=cseq,
            updated_at=updated_at,
            received=received,
            transport=None if transport is None else sys.intern(transport),
            flow=flow,
            path=() if path == "[]" else tuple(json.loads(path)),
            user_agent=None if user_agent is None else sys.intern(user_agent),
            instance=instance,
            reg_id=reg_id,
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

    def rows(self, table: LocationTable, aors: Iterable[str]) -> list[tuple[object, ...]]:
        """The rows to store for ``aors``: a snapshot of ``table`` (taken on the loop)."""
        return [self._row(b) for aor in aors for b in table.current(aor)]

    def write(self, aors: Sequence[str], rows: Sequence[tuple[object, ...]]) -> None:
        """Replace the rows of ``aors`` by ``rows`` in one transaction."""
        with self._db:
            self._db.executemany("DELETE FROM bindings WHERE aor = ?", [(a,) for a in aors])
            self._db.executemany(_INSERT, rows)

    def save(self, table: LocationTable, aors: Iterable[str]) -> int:
        """Rewrite the rows of ``aors`` from ``table``; returns rows written."""
        names = list(aors)
        rows = self.rows(table, names)
        self.write(names, rows)
        return len(rows)


class MemoryLocation(LocationService):
    """A :class:`LocationTable` with optional SQLite persistence (``db=None``: memory only).

    With ``in_thread=True`` the rows are written by a worker thread (SQLite
    releases the GIL while it works), so a flush of many changes does not
    stall the event loop; ``db`` must then be a connection of its own opened
    with ``threads=True`` (``DataDir.database(threads=True)``).
    """

    def __init__(
        self,
        db: sqlite3.Connection | None = None,
        *,
        write_through: bool = False,
        in_thread: bool = False,
    ) -> None:
        self.table = LocationTable(track_changes=db is not None)
        self._store = None if db is None else SqliteBindings(db)
        self._write_through = write_through
        self._in_thread = in_thread
        self._flushing = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        db: sqlite3.Connection | None,
        now: float,
        *,
        write_through: bool = False,
        in_thread: bool = False,
    ) -> MemoryLocation:
        """A location service loaded with the bindings in ``db`` still alive at ``now``."""
        location = cls(db, write_through=write_through, in_thread=in_thread)
        if location._store is not None:
            for aor, bindings in location._store.load(now).items():
                location.table.replace(aor, sort_bindings(bindings))
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
        """Write every AoR changed since the last flush (its rows are snapshot first)."""
        async with self._flushing:
            dirty = self.table.take_dirty()
            if self._store is None or not dirty:
                return
            names = list(dirty)
            rows = self._store.rows(self.table, names)
            try:
                if self._in_thread:
                    await asyncio.to_thread(self._store.write, names, rows)
                else:
                    self._store.write(names, rows)
            except sqlite3.Error:
                self.table.dirty |= dirty  # try again at the next flush
                raise

    async def close(self) -> None:
        await self.flush()


class SharedSqliteLocation(LocationService):
    """Bindings read and written straight in SQLite, shared by several worker processes.

    Every worker of ``trunkline serve`` opens the data directory's database
    (WAL mode, so readers never wait for the writer; a busy timeout, so
    writers queue) and uses this backend over the same ``bindings`` table the
    :class:`MemoryLocation` persists to (a restart with one worker finds the
    registrations, and the other way round). There is no cache: a REGISTER
    or un-REGISTER committed by one worker is what the next lookup of any
    worker reads, and any worker's purge removes expired rows for all.

    A REGISTER runs read-plan-write inside ``BEGIN IMMEDIATE``: SQLite's
    write lock serializes REGISTERs for the same AoR across processes, so the
    all-or-nothing rule and the CSeq checks of RFC 3261 §10.3 steps 6-8 see
    the bindings as the last committed REGISTER left them. Lookups are one
    indexed ``SELECT`` (the primary key starts with ``aor``). The calls are
    synchronous on the event loop (a lookup costs 15-20 us here, a REGISTER
    about 100 us; ``synchronous=NORMAL``: no fsync per commit), except the
    wait for the write lock: SQLite's busy handler would sleep the whole
    event loop for milliseconds while another worker writes, so the lock is
    tried without waiting and the retry is awaited (:meth:`_begin`).
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._store = SqliteBindings(db)
        row = db.execute("PRAGMA busy_timeout").fetchone()
        self._busy_ms = int(row[0]) if row else 0
        self.lock_waits = 0
        """How often a write found another worker holding the lock (then retried)."""

    @classmethod
    async def open(cls, db: sqlite3.Connection, now: float) -> SharedSqliteLocation:
        """The shared backend on ``db`` (a connection of this process, in WAL mode)."""
        location = cls(db)
        await location.purge_expired(now)
        return location

    def _rows(self, aor: str) -> list[Binding]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM bindings WHERE aor = ?", (aor,))
        return [self._store._binding(row) for row in rows]

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        live = [b for b in self._rows(aor) if b.expires_at > now]
        return sort_bindings(live) if len(live) > 1 else live

    def _try_begin(self) -> bool:
        """``BEGIN IMMEDIATE`` without SQLite's sleeping busy handler; False when locked."""
        db = self._db
        db.execute("PRAGMA busy_timeout = 0")
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                return False
            raise
        finally:
            db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        return True

    async def _begin(self) -> None:
        """Take the write lock, awaiting (not sleeping the loop) while another worker has it.

        Gives up like SQLite's own busy timeout would (``sqlite3.OperationalError``).
        """
        self._db.commit()  # nothing of ours may be pending before the explicit transaction
        delay, waited = 0.0002, 0.0
        while not self._try_begin():
            self.lock_waits += 1
            if waited * 1000 >= max(self._busy_ms, 1000):
                raise sqlite3.OperationalError("database is locked")
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.01)

    async def apply_register(
        self, request: RegisterRequest, now: float, policy: RegistrarPolicy
    ) -> RegisterOutcome:
        db = self._db
        await self._begin()
        try:
            current = self._rows(request.aor)
            outcome = plan_register(current, request, now, policy)
            expired = any(b.expires_at <= now for b in current)
            if outcome.ok and (outcome.changed or expired):
                db.execute("DELETE FROM bindings WHERE aor = ?", (request.aor,))
                db.executemany(_INSERT, [SqliteBindings._row(b) for b in outcome.bindings])
        except BaseException:
            db.rollback()
            raise
        db.commit()
        return outcome

    async def purge_expired(self, now: float) -> int:
        await self._begin()
        try:
            cursor = self._db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
        except BaseException:
            self._db.rollback()
            raise
        self._db.commit()
        return max(0, cursor.rowcount)

    async def counts(self, now: float) -> LocationCounts:
        row = self._db.execute(
            "SELECT COUNT(DISTINCT aor), COUNT(*) FROM bindings WHERE expires_at > ?", (now,)
        ).fetchone()
        return LocationCounts(aors=int(row[0]), bindings=int(row[1]))

    async def all_bindings(self, now: float) -> list[Binding]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM bindings WHERE expires_at > ? ORDER BY aor", (now,)
        )
        return [self._store._binding(row) for row in rows]

    async def flush(self) -> None:
        """Nothing to do: every change is committed when it is made."""

    async def close(self) -> None:
        """Nothing to do: the connection belongs to the server."""


async def _open_memory(
    *,
    db: sqlite3.Connection | None = None,
    now: float,
    write_through: bool = False,
    in_thread: bool = False,
) -> LocationService:
    return await MemoryLocation.open(db, now, write_through=write_through, in_thread=in_thread)


LOCATION_BACKENDS["memory"] = _open_memory
