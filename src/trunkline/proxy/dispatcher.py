"""The dispatcher: named sets of destinations with selection, health checks and failover.

What Kamailio's dispatcher module does for media servers and carriers, sans-IO:

- :class:`DestinationSet` holds destinations (SIP URIs with weights) and picks
  one per call with a selection algorithm from :data:`SELECTORS`, a registry
  (STYLE habit 6): ``round-robin``, ``weighted`` (smooth weighted round robin,
  so weights 3:1 give A A B A, not A A A B) and ``hash`` (a hash of the
  Call-ID, so every request of a call reaches the same destination).
- Health checks: :meth:`DestinationSet.due_probes` says which destination to
  send an OPTIONS to and when; :meth:`DestinationSet.probe_result` takes the
  answer. ``down_after`` failures in a row mark a destination down,
  ``up_after`` successes bring it back. Down destinations are probed more
  often (``down_interval``) so they return quickly.
- Failover: :meth:`DestinationSet.candidates` is the failover order for a
  call; :func:`is_failover_status` says which final responses move on to the
  next candidate (408, 503, and a transaction timeout), and
  :meth:`DestinationSet.report` counts them toward the health state.
- :class:`DispatchRule` says which requests go to a set (a domain and/or a
  user prefix of the Request-URI); :func:`retarget` rewrites the
  Request-URI's host and port to the chosen destination (Kamailio's
  ``ds_select_domain``), keeping the user part.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from trunkline.sip.builder import make_request, new_call_id
from trunkline.sip.errors import LocalSipError, SipParseError
from trunkline.sip.message import Request
from trunkline.sip.uri import SipUri, Uri, parse_uri

__all__ = [
    "FAILOVER_STATUSES",
    "SELECTORS",
    "Destination",
    "DestinationSet",
    "DestinationState",
    "DispatchRule",
    "Dispatcher",
    "HealthPolicy",
    "is_failover_status",
    "make_probe",
    "retarget",
]

log = logging.getLogger("trunkline.proxy.dispatcher")

FAILOVER_STATUSES = frozenset({408, 503})


def is_failover_status(status: int | None) -> bool:
    """Try the next destination after this final response (None: timed out)."""
    return status is None or status in FAILOVER_STATUSES


class DestinationState(enum.Enum):
    UP = "up"
    DOWN = "down"


_TRANSITIONS = {
    DestinationState.UP: frozenset({DestinationState.DOWN}),
    DestinationState.DOWN: frozenset({DestinationState.UP}),
}


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """When to probe and how many answers change the state."""

    interval: float = 30.0
    down_interval: float = 10.0
    down_after: int = 3
    up_after: int = 2
    probing: bool = True


@dataclass(slots=True)
class Destination:
    """One member of a set: a URI, a weight and its health."""

    uri: str
    weight: int = 1
    state: DestinationState = DestinationState.UP
    failures: int = 0  # in a row
    successes: int = 0  # in a row, counted while down
    next_probe: float = 0.0
    probe_pending: bool = False
    current_weight: int = 0  # smooth weighted round robin

    @property
    def up(self) -> bool:
        return self.state is DestinationState.UP

    def set_state(self, new: DestinationState, set_name: str) -> None:
        if new is self.state:
            return
        if new not in _TRANSITIONS[self.state]:
            raise LocalSipError(f"destination {self.uri}: {self.state.name} -> {new.name}")
        log.warning("dispatcher %s: %s %s -> %s", set_name, self.uri, self.state.name, new.name)
        self.state = new


Selector = Callable[["DestinationSet", list[Destination], str], list[Destination]]
"""``(set, live destinations, key) -> failover order`` (first is the choice)."""

SELECTORS: dict[str, Selector] = {}
"""Selection algorithms by name."""


def selector(name: str) -> Callable[[Selector], Selector]:
    def register(function: Selector) -> Selector:
        SELECTORS[name] = function
        return function

    return register


@selector("round-robin")
def _round_robin(dset: DestinationSet, live: list[Destination], key: str) -> list[Destination]:
    del key
    start = dset.counter % len(live)
    dset.counter += 1
    return live[start:] + live[:start]


@selector("weighted")
def _weighted(dset: DestinationSet, live: list[Destination], key: str) -> list[Destination]:
    """Smooth weighted round robin: add weights, pick the largest, subtract the total."""
    del dset, key
    total = sum(d.weight for d in live)
    for destination in live:
        destination.current_weight += destination.weight
    chosen = max(live, key=lambda d: d.current_weight)
    chosen.current_weight -= total
    rest = sorted((d for d in live if d is not chosen), key=lambda d: -d.weight)
    return [chosen, *rest]


@selector("hash")
def _hash(dset: DestinationSet, live: list[Destination], key: str) -> list[Destination]:
    """Hash of ``key`` (the Call-ID) over the whole set, so a call sticks to its server."""
    everyone = dset.destinations
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    start = int.from_bytes(digest, "big") % len(everyone)
    ordered = everyone[start:] + everyone[:start]
    return [d for d in ordered if d in live]


@dataclass(slots=True)
class DestinationSet:
    """A named set; see the module docstring."""

    name: str
    destinations: list[Destination]
    algorithm: str = "round-robin"
    health: HealthPolicy = field(default_factory=HealthPolicy)
    counter: int = 0

    def __post_init__(self) -> None:
        if self.algorithm not in SELECTORS:
            raise LocalSipError(f"unknown dispatcher algorithm {self.algorithm!r}")
        if not self.destinations:
            raise LocalSipError(f"dispatcher set {self.name!r} is empty")

    def _find(self, uri: str) -> Destination:
        for destination in self.destinations:
            if destination.uri == uri:
                return destination
        raise LocalSipError(f"{uri} is not in dispatcher set {self.name!r}")

    # -- selection ----------------------------------------------------------------

    def candidates(self, key: str = "") -> list[Destination]:
        """Live destinations in failover order for ``key`` (empty when all are down)."""
        live = [d for d in self.destinations if d.up]
        if not live:
            return []
        return SELECTORS[self.algorithm](self, live, key)

    def select(self, key: str = "") -> Destination | None:
        ordered = self.candidates(key)
        return ordered[0] if ordered else None

    # -- health -------------------------------------------------------------------

    def report(self, uri: str, ok: bool, now: float) -> None:
        """The outcome of a probe or of a request forwarded there."""
        destination = self._find(uri)
        if ok:
            destination.failures = 0
            if not destination.up:
                destination.successes += 1
                if destination.successes >= self.health.up_after:
                    destination.successes = 0
                    destination.set_state(DestinationState.UP, self.name)
                    destination.next_probe = now + self.health.interval
            return
        destination.successes = 0
        destination.failures += 1
        if destination.up and destination.failures >= self.health.down_after:
            destination.set_state(DestinationState.DOWN, self.name)
            destination.next_probe = now + self.health.down_interval

    def due_probes(self, now: float) -> list[Destination]:
        """Destinations to send an OPTIONS probe to now (each marked as probing)."""
        if not self.health.probing:
            return []
        due: list[Destination] = []
        for destination in self.destinations:
            if not destination.probe_pending and destination.next_probe <= now:
                destination.probe_pending = True
                due.append(destination)
        return due

    def probe_result(self, uri: str, status: int | None, now: float) -> None:
        """The final response to a probe (None: no answer). Any answer but 408/5xx is alive."""
        destination = self._find(uri)
        destination.probe_pending = False
        alive = status is not None and status != 408 and status < 500
        self.report(uri, alive, now)
        interval = self.health.interval if destination.up else self.health.down_interval
        destination.next_probe = now + interval

    def get_timer(self) -> float | None:
        if not self.health.probing:
            return None
        waiting = [d.next_probe for d in self.destinations if not d.probe_pending]
        return min(waiting, default=None)


@dataclass(frozen=True, slots=True)
class DispatchRule:
    """Requests whose Request-URI matches go to dispatcher set ``set_name``.

    ``domain`` (case-insensitive host) and ``user_prefix`` must both match
    when given; a rule with neither matches nothing.
    """

    set_name: str
    domain: str | None = None
    user_prefix: str | None = None

    def matches(self, uri: Uri) -> bool:
        if not isinstance(uri, SipUri) or (self.domain is None and self.user_prefix is None):
            return False
        if self.domain is not None and uri.host.lower() != self.domain.lower():
            return False
        if self.user_prefix is not None:
            return uri.user is not None and uri.user.startswith(self.user_prefix)
        return True


def retarget(request_uri: Uri, destination_uri: str) -> str:
    """``request_uri`` sent to the destination's host, port and transport (user kept)."""
    try:
        destination = parse_uri(destination_uri)
    except SipParseError:
        raise LocalSipError(f"bad dispatcher destination {destination_uri!r}") from None
    if not isinstance(request_uri, SipUri) or not isinstance(destination, SipUri):
        return destination_uri
    params = dict(request_uri.params)
    params.pop("transport", None)
    if destination.transport is not None:
        params["transport"] = destination.transport
    uri = request_uri.copy(
        scheme=destination.scheme,
        host=destination.host,
        port=destination.port,
        params=params,
        headers={},
    )
    return str(uri)


def make_probe(uri: str, local_uri: str) -> Request:
    """The OPTIONS health check for ``uri`` (RFC 3261 §11)."""
    return make_request(
        "OPTIONS",
        uri,
        from_=f"<{local_uri}>",
        to=f"<{uri}>",
        call_id=new_call_id(),
        max_forwards=70,
    )


class Dispatcher:
    """Every configured set by name, with one timer for all their probes."""

    def __init__(self, sets: Iterable[DestinationSet] = ()) -> None:
        self.sets: dict[str, DestinationSet] = {}
        for dset in sets:
            self.add(dset)

    def add(self, dset: DestinationSet) -> None:
        if dset.name in self.sets:
            raise LocalSipError(f"duplicate dispatcher set {dset.name!r}")
        self.sets[dset.name] = dset

    @classmethod
    def from_uris(
        cls,
        name: str,
        uris: Sequence[str],
        algorithm: str = "round-robin",
        health: HealthPolicy | None = None,
        weights: Sequence[int] | None = None,
    ) -> Dispatcher:
        """A dispatcher with one set made of ``uris`` (weights 1 unless given)."""
        weights = weights or [1] * len(uris)
        destinations = [Destination(uri, weight) for uri, weight in zip(uris, weights, strict=True)]
        return cls([DestinationSet(name, destinations, algorithm, health or HealthPolicy())])

    def __getitem__(self, name: str) -> DestinationSet:
        try:
            return self.sets[name]
        except KeyError:
            raise LocalSipError(f"no dispatcher set {name!r}") from None

    def due_probes(self, now: float) -> list[tuple[str, Destination]]:
        return [(name, d) for name, dset in self.sets.items() for d in dset.due_probes(now)]

    def get_timer(self) -> float | None:
        timers = [t for dset in self.sets.values() if (t := dset.get_timer()) is not None]
        return min(timers, default=None)
