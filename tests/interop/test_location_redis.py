"""The Redis location backend against a real redis-server started by the test."""

from __future__ import annotations

import asyncio
import functools
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.support.peers import free_port, require_peer
from tests.support.registers import register_request

from trunkline.config import LocationConfig
from trunkline.proxy import open_location
from trunkline.proxy.location import ContactSpec, RegistrarPolicy
from trunkline.proxy.location_redis import RedisLocation, decode_binding, encode_binding

pytestmark = pytest.mark.interop

T0 = time.time()  # Redis expires keys on its own clock, so bindings use the real one.
AOR = "sip:alice@example.com"
POLICY = RegistrarPolicy(default_expires=3600, min_expires=60, max_expires=7200, max_contacts=50)


reg = functools.partial(register_request, aor=AOR)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require_peer("redis-server", "redis-server")
    port = free_port(socket.SOCK_STREAM)
    workdir: Path = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--daemonize", "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def prefix() -> str:
    return f"test-{secrets.token_hex(4)}:"


@pytest.fixture
async def servers(
    redis_url: str, prefix: str
) -> AsyncIterator[tuple[RedisLocation, RedisLocation]]:
    """Two servers sharing one Redis, as in a scaled-out deployment."""
    first = RedisLocation.from_url(redis_url, prefix)
    second = RedisLocation.from_url(redis_url, prefix)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_registration_on_one_server_is_seen_by_the_other(
    servers: tuple[RedisLocation, RedisLocation],
) -> None:
    one, two = servers
    outcome = await one.apply_register(
        reg(
            ContactSpec("sip:alice@192.0.2.1:5060", q=0.5),
            ContactSpec("sip:alice@192.0.2.2:5060", instance="<urn:uuid:1>", reg_id=1),
            received="192.0.2.1:5060",
            transport="tcp",
            flow="tcp:42",
            path=("<sip:edge.example.com;lr>",),
            user_agent="Phone/1",
        ),
        T0,
        POLICY,
    )
    assert (outcome.status, outcome.added) == (200, 2)
    seen = await two.lookup(AOR, T0 + 1)
    assert seen == list(outcome.bindings)
    assert [b.q for b in seen] == [1.0, 0.5]
    assert seen[0].path == ("<sip:edge.example.com;lr>",)
    assert (seen[0].flow, seen[0].transport, seen[0].reg_id) == ("tcp:42", "tcp", 1)
    counts = await two.counts(T0)
    assert (counts.aors, counts.bindings) == (1, 2)
    assert len(await two.all_bindings(T0)) == 2


async def test_cseq_order_is_enforced_across_servers(
    servers: tuple[RedisLocation, RedisLocation],
) -> None:
    one, two = servers
    assert (await one.apply_register(reg("sip:a@h1", cseq=5), T0, POLICY)).ok
    stale = await two.apply_register(reg("sip:a@h2", "sip:a@h1", cseq=5), T0, POLICY)
    assert stale.status == 500
    assert [b.contact_uri for b in await one.lookup(AOR, T0)] == ["sip:a@h1"]
    too_brief = await two.apply_register(
        reg(ContactSpec("sip:a@h3", expires=5), cseq=6), T0, POLICY
    )
    assert (too_brief.status, too_brief.min_expires) == (423, 60)


async def test_concurrent_registers_for_one_aor_are_all_kept(
    servers: tuple[RedisLocation, RedisLocation],
) -> None:
    """WATCH/MULTI retries: 40 phones registering at once from two servers lose nothing."""
    one, two = servers
    requests = [
        (one if i % 2 else two).apply_register(
            reg(f"sip:phone{i}@192.0.2.{i}", call_id=f"c{i}"), T0, POLICY
        )
        for i in range(40)
    ]
    outcomes = await asyncio.wait_for(asyncio.gather(*requests), timeout=20)
    assert all(o.ok for o in outcomes)
    assert len(await one.lookup(AOR, T0)) == 40


async def test_unregister_star_expiry_and_purge(
    servers: tuple[RedisLocation, RedisLocation], redis_url: str, prefix: str
) -> None:
    one, two = servers
    await one.apply_register(reg(ContactSpec("sip:a@short", expires=60), "sip:a@long"), T0, POLICY)
    bob = reg("sip:bob@h", aor="sip:bob@example.com")
    await one.apply_register(bob, T0, POLICY)
    ttl = await one._redis.pttl(f"{prefix}loc:{AOR}")
    assert 3_000_000 < ttl <= 3_601_000
    # Redis drops nothing yet; the expired binding is filtered on read and dropped on write.
    assert [b.contact_uri for b in await two.lookup(AOR, T0 + 61)] == ["sip:a@long"]
    outcome = await two.apply_register(reg(star=True, expires=0, cseq=2), T0 + 61, POLICY)
    assert (outcome.status, outcome.removed) == (200, 1)
    assert await one.lookup(AOR, T0 + 61) == []
    assert not await one._redis.exists(f"{prefix}loc:{AOR}")
    assert (await one.counts(T0 + 61)).aors == 1
    assert await one.purge_expired(T0 + 3601) == 1
    assert (await one.counts(T0)).aors == 0


async def test_foreign_data_in_a_hash_is_ignored(
    servers: tuple[RedisLocation, RedisLocation], prefix: str
) -> None:
    one, _ = servers
    await one._redis.hset(f"{prefix}loc:{AOR}", mapping={"junk": "not json", "list": "[1]"})
    assert await one.lookup(AOR, T0) == []
    assert (await one.apply_register(reg("sip:a@h"), T0, POLICY)).ok
    assert [b.contact_uri for b in await one.lookup(AOR, T0)] == ["sip:a@h"]


async def test_open_location_selects_redis(redis_url: str, prefix: str) -> None:
    config = LocationConfig(backend="redis", redis_url=redis_url, redis_prefix=prefix)
    location = await open_location(config, db=None, now=T0)
    try:
        assert isinstance(location, RedisLocation)
        assert (await location.apply_register(reg("sip:a@h"), T0, POLICY)).ok
    finally:
        await location.close()


def test_binding_json_round_trip() -> None:
    request = reg(
        ContactSpec("sip:a@h;ob", q=0.3, instance="<urn:uuid:x>", reg_id=7),
        path=("<sip:p1;lr>", "<sip:p2;lr>"),
        received="[2001:db8::1]:5060",
    )
    from trunkline.proxy.location import plan_register

    [binding] = plan_register((), request, T0, POLICY).bindings
    assert decode_binding(encode_binding(binding)) == binding
    assert binding.key == "<urn:uuid:x>;reg-id=7"
    with pytest.raises(ValueError):
        decode_binding("{}")
