"""The dispatcher from ``[dispatcher]`` in ``trunkline.toml`` (Kamailio's dispatcher list).

::

    [[dispatcher.sets]]
    name = "carriers"
    destinations = ["sip:gw1.example.net", "sip:gw2.example.net:5080"]
    algorithm = "round-robin"      # or "weighted" (with weights = [...]) or "hash"
    probe_interval = 30            # OPTIONS health checks (RFC 3261 §11)

    [[dispatcher.rules]]
    set = "carriers"
    user_prefix = "00"             # and/or domain = "pstn.example.com"

Requests whose Request-URI matches a rule are forwarded to the set's live
destinations in failover order (``router.Router.dispatch``); probes and
forwarded traffic mark destinations up and down.
"""

from __future__ import annotations

from trunkline.config import DispatcherConfig
from trunkline.proxy.dispatcher import (
    Destination,
    DestinationSet,
    Dispatcher,
    DispatchRule,
    HealthPolicy,
)

__all__ = ["build_dispatcher"]


def build_dispatcher(
    config: DispatcherConfig,
) -> tuple[Dispatcher | None, tuple[DispatchRule, ...]]:
    """The configured sets and rules; ``(None, ())`` when none are configured."""
    if not config.sets:
        return None, ()
    sets = []
    for spec in config.sets:
        weights = spec.weights or [1] * len(spec.destinations)
        destinations = [
            Destination(uri, weight) for uri, weight in zip(spec.destinations, weights, strict=True)
        ]
        health = HealthPolicy(
            interval=spec.probe_interval,
            down_interval=spec.down_probe_interval,
            probing=spec.probe,
        )
        sets.append(DestinationSet(spec.name, destinations, spec.algorithm, health))
    rules = tuple(
        DispatchRule(rule.set, domain=rule.domain, user_prefix=rule.user_prefix)
        for rule in config.rules
    )
    return Dispatcher(sets), rules
