"""The registrar and proxy server (RFC 3261 §10 and §16): Kamailio's job.

So far: the location service (:mod:`trunkline.proxy.location`) and its
backends. :func:`open_location` builds the one named in the configuration.
"""

from __future__ import annotations

import importlib
import sqlite3

from trunkline.config import LocationConfig
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
)

__all__ = [
    "LOCATION_BACKENDS",
    "Binding",
    "LocationCounts",
    "LocationService",
    "LocationTable",
    "RegisterOutcome",
    "RegisterRequest",
    "RegistrarPolicy",
    "open_location",
    "plan_register",
    "registrar_policy",
]

_BACKEND_MODULES = {
    "memory": "trunkline.proxy.location_sqlite",
    "redis": "trunkline.proxy.location_redis",
}


def registrar_policy(config: LocationConfig) -> RegistrarPolicy:
    """The expiry and contact limits of ``[location]``."""
    return RegistrarPolicy(
        default_expires=config.default_expires,
        min_expires=config.min_expires,
        max_expires=config.max_expires,
        max_contacts=config.max_contacts,
    )


async def open_location(
    config: LocationConfig,
    *,
    db: sqlite3.Connection | None,
    now: float,
    in_thread: bool = False,
) -> LocationService:
    """The backend named by ``config.backend``, opened (bindings loaded, server reached).

    ``db`` (memory backend) is where bindings persist; with ``in_thread`` it
    must be a dedicated connection opened with ``threads=True``.
    """
    if config.backend not in LOCATION_BACKENDS:
        importlib.import_module(_BACKEND_MODULES[config.backend])
    factory = LOCATION_BACKENDS[config.backend]
    if config.backend == "redis":
        return await factory(url=config.redis_url, prefix=config.redis_prefix, now=now)
    return await factory(db=db, now=now, in_thread=in_thread)
