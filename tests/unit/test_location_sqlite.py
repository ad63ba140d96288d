"""The shared SQLite location of several workers: every connection sees every change at once."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.registers import T0, register_request

from trunkline.proxy.location import ContactSpec, RegistrarPolicy
from trunkline.proxy.location_sqlite import MemoryLocation, SharedSqliteLocation
from trunkline.store.datadir import DataDir

AOR = "sip:bob@example.com"
POLICY = RegistrarPolicy(default_expires=3600, min_expires=60, max_expires=7200, max_contacts=64)


reg = functools.partial(register_request, aor=AOR)


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    return DataDir(tmp_path / "data")


@contextlib.contextmanager
def connections(data: DataDir, count: int = 2) -> Iterator[list[sqlite3.Connection]]:
    """``count`` connections to one database, as ``count`` workers hold them."""
    dbs = [data.database(threads=True) for _ in range(count)]
    try:
        yield dbs
    finally:
        for db in dbs:
            db.close()


async def test_a_register_on_one_worker_is_seen_by_another_at_once(data: DataDir) -> None:
    with connections(data) as (db_a, db_b):
        a = await SharedSqliteLocation.open(db_a, T0)
        b = await SharedSqliteLocation.open(db_b, T0)
        outcome = await a.apply_register(reg("sip:bob@192.0.2.1"), T0, POLICY)
        assert outcome.ok and outcome.added == 1
        assert [x.contact_uri for x in await b.lookup(AOR, T0 + 1)] == ["sip:bob@192.0.2.1"]
        # A second contact registered through B, q-ordered for both.
        await b.apply_register(
            reg(ContactSpec("sip:bob@192.0.2.2", q=0.9), call_id="c2"), T0 + 2, POLICY
        )
        expected = ["sip:bob@192.0.2.1", "sip:bob@192.0.2.2"]
        assert [x.contact_uri for x in await a.lookup(AOR, T0 + 3)] == expected
        # Un-REGISTER on B: gone for A with no delay.
        await b.apply_register(
            reg(ContactSpec("sip:bob@192.0.2.1", expires=0), cseq=2), T0 + 4, POLICY
        )
        assert [x.contact_uri for x in await a.lookup(AOR, T0 + 4)] == ["sip:bob@192.0.2.2"]
        assert (await a.counts(T0 + 4)).bindings == 1


async def test_cseq_order_holds_across_workers(data: DataDir) -> None:
    with connections(data) as (db_a, db_b):
        a = await SharedSqliteLocation.open(db_a, T0)
        b = await SharedSqliteLocation.open(db_b, T0)
        assert (await a.apply_register(reg("sip:bob@h", cseq=5), T0, POLICY)).ok
        stale = await b.apply_register(
            reg(ContactSpec("sip:bob@h", expires=0), cseq=4), T0 + 1, POLICY
        )
        assert stale.status == 500  # §10.3 step 8: same Call-ID, lower CSeq: no change
        assert [x.contact_uri for x in await b.lookup(AOR, T0 + 1)] == ["sip:bob@h"]
        star = await b.apply_register(reg(star=True, expires=0, cseq=6), T0 + 2, POLICY)
        assert star.ok and await a.lookup(AOR, T0 + 2) == []


async def test_expiry_and_purge_by_any_worker(data: DataDir) -> None:
    with connections(data) as (db_a, db_b):
        a = await SharedSqliteLocation.open(db_a, T0)
        b = await SharedSqliteLocation.open(db_b, T0)
        await a.apply_register(reg(ContactSpec("sip:bob@h", expires=60)), T0, POLICY)
        await a.apply_register(reg("sip:carol@h", aor="sip:carol@example.com"), T0, POLICY)
        assert len(await b.all_bindings(T0 + 59)) == 2
        assert await b.lookup(AOR, T0 + 60) == []  # expired: invisible before any purge
        assert await b.purge_expired(T0 + 60) == 1
        assert db_a.execute("SELECT count(*) FROM bindings").fetchone()[0] == 1
        assert (await a.counts(T0 + 60)).aors == 1
        # Re-registering an AoR whose only row expired rewrites it.
        await b.apply_register(reg(ContactSpec("sip:bob@h", expires=60), cseq=2), T0 + 61, POLICY)
        assert len(await a.lookup(AOR, T0 + 62)) == 1


async def test_memory_backend_finds_shared_registrations_after_a_restart(data: DataDir) -> None:
    """Workers = N, then workers = 1: one table, so the registrations carry over both ways."""
    with connections(data, 1) as (db,):
        shared = await SharedSqliteLocation.open(db, T0)
        await shared.apply_register(reg("sip:bob@h"), T0, POLICY)
        single = await MemoryLocation.open(db, T0 + 1)
        assert [x.contact_uri for x in await single.lookup(AOR, T0 + 1)] == ["sip:bob@h"]
        await single.apply_register(reg("sip:bob@h2", call_id="c9"), T0 + 2, POLICY)
        await single.close()
        assert len(await shared.lookup(AOR, T0 + 3)) == 2


def test_concurrent_registers_lose_no_update(data: DataDir) -> None:
    """Two writers add contacts to one AoR at once: read-plan-write is one transaction."""
    per_writer = 25

    def writer(db: sqlite3.Connection, name: str) -> None:
        async def run() -> None:
            location = SharedSqliteLocation(db)
            for n in range(per_writer):
                contact = f"sip:bob@{name}-{n}"
                outcome = await location.apply_register(
                    reg(contact, call_id=f"{name}-{n}"), T0, POLICY
                )
                assert outcome.ok, outcome

        asyncio.run(run())

    policy_room = 2 * per_writer
    assert policy_room <= POLICY.max_contacts
    with connections(data) as dbs:
        threads = [
            threading.Thread(target=writer, args=(db, name))
            for db, name in zip(dbs, ("a", "b"), strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        location = SharedSqliteLocation(dbs[0])
        assert len(asyncio.run(location.lookup(AOR, T0))) == 2 * per_writer


async def test_a_locked_database_is_waited_for_without_blocking_the_loop(data: DataDir) -> None:
    with connections(data) as (db_a, db_b):
        a = await SharedSqliteLocation.open(db_a, T0)
        db_b.execute("BEGIN IMMEDIATE")  # another worker in the middle of a write
        register = asyncio.ensure_future(a.apply_register(reg("sip:bob@h"), T0, POLICY))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the REGISTER waits
            await asyncio.sleep(0.005)
            ticks += 1
        assert not register.done() and ticks == 20
        db_b.commit()
        outcome = await asyncio.wait_for(register, 5)
        assert outcome.ok and a.lock_waits > 0
        assert db_a.execute("PRAGMA busy_timeout").fetchone()[0] == 10000  # restored
        b = SharedSqliteLocation(db_b)
        assert len(await b.lookup(AOR, T0)) == 1
        assert await b.purge_expired(T0 + 7200) == 1
