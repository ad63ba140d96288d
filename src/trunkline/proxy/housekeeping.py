"""The proxy server's periodic work, on one loop (RFC 3261 §10.3, RFC 5626 §3.5.1 ideas).

- expired bindings purged from the location service, bindings flushed;
- OPTIONS keep-alive pings to contacts behind NAT, so their NAT binding
  stays open (:class:`~trunkline.proxy.nat.KeepAliveSchedule`);
- dispatcher health checks: an OPTIONS probe to each destination when due
  (RFC 3261 §11; any answer but 408/5xx means alive,
  :meth:`~trunkline.proxy.dispatcher.DestinationSet.probe_result`);
- anti-flood counters expired, and the user cache reloaded when
  ``trunkline users`` changed the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Coroutine
from typing import Any

from trunkline.proxy.antiflood import AntiFlood
from trunkline.proxy.dispatcher import Destination as DispatchDestination
from trunkline.proxy.dispatcher import Dispatcher, make_probe
from trunkline.proxy.forwarder import bracket, split_hostport
from trunkline.proxy.location import Binding, LocationService
from trunkline.proxy.nat import KeepAliveSchedule, KeepAliveTarget, make_keepalive
from trunkline.proxy.status import ServerStats
from trunkline.sip.aio.endpoint import SipEndpoint
from trunkline.sip.aio.routing import Destination
from trunkline.sip.aio.transport import TransportError
from trunkline.sip.errors import LocalSipError, SipParseError

__all__ = ["KEEPALIVE_REFRESH", "PURGE_INTERVAL", "Housekeeper", "keepalive_targets"]

log = logging.getLogger("trunkline.proxy.housekeeping")

PURGE_INTERVAL = 30.0
KEEPALIVE_REFRESH = 30.0
PROBE_TIMEOUT = 5.0


class Housekeeper:
    """Runs :meth:`run` until cancelled; see the module docstring.

    ``keepalive`` None: this process sends no NAT pings (another worker does).
    """

    def __init__(
        self,
        endpoint: SipEndpoint,
        location: LocationService,
        addresses: dict[str, tuple[str, int]],
        stats: ServerStats,
        *,
        keepalive: KeepAliveSchedule | None,
        spawn: Callable[[Coroutine[Any, Any, Any]], object],
        clock: Callable[[], float],
        flush_interval: float,
        antiflood: AntiFlood | None = None,
        dispatcher: Dispatcher | None = None,
        refresh_users: Callable[[], bool] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.location = location
        self.addresses = addresses
        self.stats = stats
        self.keepalive = keepalive
        self.spawn = spawn
        self.clock = clock
        self.flush_interval = flush_interval
        self.antiflood = antiflood
        self.dispatcher = dispatcher
        self.refresh_users = refresh_users

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_purge = loop.time() + PURGE_INTERVAL
        next_refresh = loop.time()  # the first pass builds the keep-alive schedule
        while True:
            await asyncio.sleep(min(self.flush_interval, 1.0))
            now = loop.time()
            try:
                if now >= next_purge:
                    next_purge = now + PURGE_INTERVAL
                    self.stats.purged += await self.location.purge_expired(self.clock())
                if now >= next_refresh and self.keepalive is not None:
                    next_refresh = now + KEEPALIVE_REFRESH
                    bindings = await self.location.all_bindings(self.clock())
                    self.keepalive.update(keepalive_targets(bindings), now)
                await self.location.flush()
            except (sqlite3.Error, OSError) as exc:
                log.warning("housekeeping failed: %s", exc)
            for target in self.keepalive.due(now) if self.keepalive is not None else ():
                self.spawn(self._ping(target))
            wall = self.clock()
            if self.dispatcher is not None:
                for set_name, destination in self.dispatcher.due_probes(wall):
                    self.spawn(self._probe(set_name, destination))
            if self.antiflood is not None:
                self.antiflood.handle_timer(wall)
            if self.refresh_users is not None:
                with contextlib.suppress(sqlite3.Error):
                    self.refresh_users()  # passwords changed, users removed

    def _local_uri(self, user: str) -> str | None:
        address = self.addresses.get("UDP") or next(iter(self.addresses.values()), None)
        if address is None:
            return None
        return f"sip:{user}@{bracket(address[0])}:{address[1]}"

    async def _ping(self, target: KeepAliveTarget) -> None:
        if "UDP" not in self.addresses:
            return
        local = self._local_uri("keepalive")
        assert local is not None
        ping = make_keepalive(target.contact_uri, local)
        address, rport = split_hostport(target.destination)
        self.stats.keepalives += 1
        with contextlib.suppress(TransportError, LocalSipError, ValueError):
            await self.endpoint.send_request(ping, Destination("UDP", address, rport))

    async def _probe(self, set_name: str, destination: DispatchDestination) -> None:
        """One OPTIONS health check; no answer within PROBE_TIMEOUT counts as down."""
        assert self.dispatcher is not None
        dset = self.dispatcher[set_name]
        status: int | None = None
        local = self._local_uri("dispatcher")
        try:
            if local is not None:
                probe = make_probe(destination.uri, local)
                async with asyncio.timeout(PROBE_TIMEOUT):
                    status = (await self.endpoint.send_request(probe)).status
        except (TimeoutError, TransportError, LocalSipError, SipParseError, ValueError, OSError):
            status = None
        dset.probe_result(destination.uri, status, self.clock())


def keepalive_targets(bindings: list[Binding]) -> list[KeepAliveTarget]:
    """UDP bindings whose Contact is not the address they registered from (behind NAT)."""
    targets = []
    for binding in bindings:
        if binding.received is None or (binding.transport or "udp").lower() != "udp":
            continue
        host, _, _ = binding.received.rpartition(":")
        if host.strip("[]") in binding.contact_uri:
            continue
        key = f"{binding.contact_uri}|{binding.received}"
        targets.append(KeepAliveTarget(key, binding.contact_uri, binding.received, "UDP"))
    return targets
