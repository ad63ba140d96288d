"""The shared location backend: bindings in Redis, for several servers (issue 6).

Layout, under a configurable prefix (default ``trunkline:``):

- ``loc:<aor>``: a hash per AoR, field = binding key (the contact URI, or
  ``<instance>;reg-id=<n>`` for RFC 5626 registrations), value = the binding
  as a JSON array. The key expires (``PEXPIREAT``) with its last binding, so
  Redis itself forgets dead AoRs; bindings that expired inside a live hash
  are filtered on read and dropped at the next write.
- ``loc:index``: a sorted set of AoRs scored by their last expiry, for
  ``trunkline status``, counts and NAT keep-alives; :meth:`purge_expired`
  trims it.

A REGISTER is applied with optimistic locking (``WATCH`` the AoR's hash,
read, :func:`~trunkline.proxy.location.plan_register`, ``MULTI``/``EXEC``),
retried after a short random back-off when another server changed the
same AoR in between (up to 50 times, then 500), so the
all-or-nothing rule of RFC 3261 §10.3 step 8 holds across servers.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from trunkline.proxy.location import (
    LOCATION_BACKENDS,
    Binding,
    LocationCounts,
    LocationService,
    RegisterOutcome,
    RegisterRequest,
    RegistrarPolicy,
    plan_register,
    sort_bindings,
)

__all__ = ["RedisLocation", "decode_binding", "encode_binding"]

_RETRIES = 50
_BACKOFF = 0.002  # seconds; jittered and growing with each conflict


def encode_binding(b: Binding) -> str:
    """A binding as compact JSON (field order is the wire format: append only)."""
    return json.dumps(
        [
            b.aor,
            b.contact_uri,
            b.expires_at,
            b.q,
            b.call_id,
            b.cseq,
            b.updated_at,
            b.received,
            b.transport,
            b.flow,
            list(b.path),
            b.user_agent,
            b.instance,
            b.reg_id,
        ],
        separators=(",", ":"),
    )


def decode_binding(data: bytes | str) -> Binding:
    """The inverse of :func:`encode_binding`; raises ValueError on foreign data."""
    fields = json.loads(data)
    if not isinstance(fields, list) or len(fields) < 14:
        raise ValueError("not a Trunkline binding")
    return Binding(
        aor=fields[0],
        contact_uri=fields[1],
        expires_at=float(fields[2]),
        q=float(fields[3]),
        call_id=fields[4],
        cseq=int(fields[5]),
        updated_at=float(fields[6]),
        received=fields[7],
        transport=fields[8],
        flow=fields[9],
        path=tuple(fields[10]),
        user_agent=fields[11],
        instance=fields[12],
        reg_id=fields[13],
    )


class RedisLocation(LocationService):
    """The location service on a Redis server (the asyncio ``redis`` client)."""

    def __init__(self, client: aioredis.Redis, prefix: str = "trunkline:") -> None:
        self._redis = client
        self._prefix = prefix
        self._index = f"{prefix}loc:index"

    @classmethod
    def from_url(cls, url: str, prefix: str = "trunkline:") -> RedisLocation:
        return cls(aioredis.from_url(url), prefix)

    def _key(self, aor: str) -> str:
        return f"{self._prefix}loc:{aor}"

    @staticmethod
    def _decode_all(raw: dict[Any, Any], now: float) -> list[Binding]:
        bindings = []
        for value in raw.values():
            try:
                binding = decode_binding(value)
            except (ValueError, TypeError, IndexError):
                continue
            if binding.expires_at > now:
                bindings.append(binding)
        return bindings

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        raw = await self._redis.hgetall(self._key(aor))
        return sort_bindings(self._decode_all(raw, now))

    async def apply_register(
        self, request: RegisterRequest, now: float, policy: RegistrarPolicy
    ) -> RegisterOutcome:
        key = self._key(request.aor)
        attempt = 0
        async with self._redis.pipeline(transaction=True) as pipe:
            while attempt < _RETRIES:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hgetall(key)
                    outcome = plan_register(self._decode_all(raw, now), request, now, policy)
                    if not outcome.ok:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return outcome
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.delete(key)
                    if outcome.bindings:
                        last = max(b.expires_at for b in outcome.bindings)
                        mapping: dict[Any, Any] = {
                            b.key: encode_binding(b) for b in outcome.bindings
                        }
                        pipe.hset(key, mapping=mapping)
                        pipe.pexpireat(key, int(last * 1000) + 1)
                        pipe.zadd(self._index, {request.aor: last})
                    else:
                        pipe.zrem(self._index, request.aor)
                    await pipe.execute()
                    return outcome
                except WatchError:
                    # Another server changed this AoR meanwhile: back off, re-read, re-plan.
                    attempt += 1
                    await asyncio.sleep(random.uniform(0, _BACKOFF * attempt))
        return RegisterOutcome(500, "Location service busy")

    async def purge_expired(self, now: float) -> int:
        """Drop index entries of AoRs whose last binding expired (their hashes expire in Redis)."""
        removed = await self._redis.zremrangebyscore(self._index, "-inf", now)
        return int(removed)

    async def _live_aors(self, now: float) -> list[str]:
        members = await self._redis.zrangebyscore(self._index, f"({now}", "+inf")
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def counts(self, now: float) -> LocationCounts:
        aors = await self._live_aors(now)
        total = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for aor in aors:
                pipe.hlen(self._key(aor))
            for size in await pipe.execute():
                total += int(size)
        return LocationCounts(aors=len(aors), bindings=total)

    async def all_bindings(self, now: float) -> list[Binding]:
        aors = await self._live_aors(now)
        result: list[Binding] = []
        async with self._redis.pipeline(transaction=False) as pipe:
            for aor in aors:
                pipe.hgetall(self._key(aor))
            for raw in await pipe.execute():
                result.extend(self._decode_all(raw, now))
        return result

    async def flush(self) -> None:
        """Nothing to do: every change is written when it is made."""

    async def close(self) -> None:
        await self._redis.aclose()


async def _open_redis(
    *, url: str, prefix: str = "trunkline:", now: float | None = None, **_: object
) -> LocationService:
    location = RedisLocation.from_url(url, prefix)
    await location._redis.ping()
    return location


LOCATION_BACKENDS["redis"] = _open_redis
