"""The location service contract (RFC 3261 §10.3), the same for every SQLite-backed backend.

``MemoryLocation`` (one process: an in-memory table persisted to SQLite) and
``SharedSqliteLocation`` (several workers on one database) implement the one
``LocationService`` interface; the registrar must not notice which one it
has. Each test runs on both, through that interface only, at a fixed clock.
The rules themselves are unit-tested on the sans-IO table in
``test_location.py``; the Redis backend has its own tests against a real
server in ``tests/interop/test_location_redis.py``.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from tests.support.registers import T0, register_request

from trunkline.proxy.location import ContactSpec, LocationService, RegistrarPolicy
from trunkline.proxy.location_sqlite import MemoryLocation, SharedSqliteLocation
from trunkline.store.datadir import DataDir

AOR = "sip:carol@example.com"
POLICY = RegistrarPolicy(default_expires=3600, min_expires=60, max_expires=7200, max_contacts=3)
Opener = Callable[[sqlite3.Connection, float], Awaitable[LocationService]]
BACKENDS: dict[str, Opener] = {
    "memory": MemoryLocation.open,
    "shared-sqlite": SharedSqliteLocation.open,
}

reg = functools.partial(register_request, aor=AOR)


@pytest.fixture(params=sorted(BACKENDS))
def opener(request: pytest.FixtureRequest) -> Opener:
    opener: Opener = BACKENDS[request.param]
    return opener


@pytest.fixture
async def location(opener: Opener, tmp_path: Path) -> AsyncIterator[LocationService]:
    with contextlib.closing(DataDir(tmp_path / "data").database(threads=True)) as db:
        service = await opener(db, T0)
        yield service
        await service.close()


async def uris(location: LocationService, now: float, aor: str = AOR) -> list[str]:
    return [b.contact_uri for b in await location.lookup(aor, now)]


async def test_contacts_are_found_by_q_then_most_recent(location: LocationService) -> None:
    outcome = await location.apply_register(
        reg(ContactSpec("sip:c@low", q=0.2), ContactSpec("sip:c@high", q=0.9)), T0, POLICY
    )
    assert (outcome.status, outcome.added) == (200, 2)
    await location.apply_register(reg("sip:c@newest", call_id="c2"), T0 + 5, POLICY)
    assert await uris(location, T0 + 6) == ["sip:c@newest", "sip:c@high", "sip:c@low"]
    counts = await location.counts(T0 + 6)
    assert (counts.aors, counts.bindings) == (1, 3)
    assert len(await location.all_bindings(T0 + 6)) == 3


async def test_cseq_orders_updates_of_one_call_id(location: LocationService) -> None:
    assert (await location.apply_register(reg("sip:c@h", cseq=5), T0, POLICY)).ok
    stale = await location.apply_register(
        reg(ContactSpec("sip:c@h", expires=0), cseq=5), T0 + 1, POLICY
    )
    assert stale.status == 500  # §10.3 step 7: not higher than the last CSeq of that Call-ID
    assert await uris(location, T0 + 1) == ["sip:c@h"]
    other = await location.apply_register(
        reg(ContactSpec("sip:c@h", expires=0), call_id="other", cseq=1), T0 + 2, POLICY
    )
    assert other.ok and other.removed == 1
    assert await uris(location, T0 + 2) == []


async def test_too_brief_is_423_and_changes_nothing(location: LocationService) -> None:
    await location.apply_register(reg("sip:c@h1"), T0, POLICY)
    outcome = await location.apply_register(
        reg(ContactSpec("sip:c@h2", expires=30), cseq=2), T0, POLICY
    )
    assert (outcome.status, outcome.min_expires) == (423, 60)
    assert await uris(location, T0) == ["sip:c@h1"]


async def test_star_removes_every_binding_of_the_aor_only(location: LocationService) -> None:
    await location.apply_register(reg("sip:c@h1", "sip:c@h2"), T0, POLICY)
    await location.apply_register(reg("sip:d@h", aor="sip:d@example.com"), T0, POLICY)
    outcome = await location.apply_register(reg(star=True, expires=0, cseq=2), T0 + 1, POLICY)
    assert (outcome.status, outcome.removed) == (200, 2)
    assert await uris(location, T0 + 1) == []
    assert await uris(location, T0 + 1, "sip:d@example.com") == ["sip:d@h"]


async def test_contact_limit_refuses_growth_only(location: LocationService) -> None:
    await location.apply_register(reg("sip:c@1", "sip:c@2", "sip:c@3"), T0, POLICY)
    refused = await location.apply_register(reg("sip:c@4", cseq=2), T0, POLICY)
    assert not refused.ok
    assert len(await uris(location, T0)) == 3
    refresh = await location.apply_register(reg("sip:c@1", "sip:c@2", cseq=3), T0 + 1, POLICY)
    assert refresh.ok and refresh.refreshed == 2


async def test_expired_bindings_are_invisible_then_purged(location: LocationService) -> None:
    await location.apply_register(
        reg(ContactSpec("sip:c@short", expires=60), ContactSpec("sip:c@long", expires=600)),
        T0,
        POLICY,
    )
    assert await uris(location, T0 + 60) == ["sip:c@long"]  # before any purge
    assert await location.purge_expired(T0 + 59) == 0
    assert await location.purge_expired(T0 + 60) == 1
    assert (await location.counts(T0 + 60)).bindings == 1
    assert await location.purge_expired(T0 + 600) == 1
    assert (await location.counts(T0 + 600)).aors == 0


async def test_bindings_outlive_a_restart(opener: Opener, tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    with contextlib.closing(data.database(threads=True)) as db:
        first = await opener(db, T0)
        await first.apply_register(
            reg(ContactSpec("sip:c@h", q=0.5), received="192.0.2.7:5060", transport="tcp"),
            T0,
            POLICY,
        )
        before = await first.lookup(AOR, T0 + 1)
        await first.flush()
        await first.close()
    with contextlib.closing(data.database(threads=True)) as db:
        again = await opener(db, T0 + 1)
        assert await again.lookup(AOR, T0 + 1) == before
        assert (before[0].received, before[0].transport) == ("192.0.2.7:5060", "tcp")
        await again.close()
