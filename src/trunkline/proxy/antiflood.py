"""Anti-flood and anti-fraud: per-source limits, bans and scanner filtering.

What Kamailio does with pike, htable bans, a User-Agent check and fail2ban
watching its log, in one sans-IO object (every entry point takes ``now``):

- **Rate limit** (pike's job): a token bucket per source address,
  ``requests_per_second`` sustained with ``burst`` at once. A source that
  empties its bucket is banned for ``flood_ban_seconds``.
- **Ban list**: banned sources are dropped silently (answering a flood only
  feeds it) until the ban expires.
- **Failed authentication** (fail2ban's job): ``auth_failures_before_ban``
  wrong credentials within ``auth_failure_window`` seconds ban the source for
  ``ban_seconds``. Every failure and ban is logged as one line with
  ``src=<ip>`` for an external fail2ban too.
- **Scanners**: requests whose User-Agent contains a known scanner name
  (SIPVicious ``friendly-scanner``, ``sipcli``, ``VaxSIPUserAgent``...) are
  dropped.
- **Per-source transaction and dialog limits**: the server reports starts
  and ends; over the limit the request is refused (503).
- **Trusted sources** (:class:`TrustedNetworks`, like Kamailio's permissions
  module) are exempt from all of it.

Memory is bounded: per-source state lives in an LRU of ``max_sources``
entries and the ban list holds at most ``max_bans``.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trunkline.config import Limits

__all__ = [
    "SCANNER_USER_AGENTS",
    "AntiFlood",
    "FloodCounters",
    "FloodPolicy",
    "TrustedNetworks",
    "Verdict",
]

log = logging.getLogger("trunkline.security")

SCANNER_USER_AGENTS: tuple[str, ...] = (
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "vaxsipuseragent",
    "pplsip",
    "sundayddr",
    "iwar",
)
"""User-Agent substrings (case-insensitive) of SIP scanners seen in the wild."""

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedNetworks:
    """An address allow-list: ``--trusted CIDR`` (repeatable)."""

    def __init__(self, networks: Iterable[str | IpNetwork] = ()) -> None:
        self.networks: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(net, strict=False) if isinstance(net, str) else net
            for net in networks
        )
        self._cache: OrderedDict[str, bool] = OrderedDict()

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str) or not self.networks:
            return False
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            result = False
        else:
            result = any(address in net for net in self.networks)
        self._cache[host] = result
        if len(self._cache) > 4096:
            self._cache.popitem(last=False)
        return result

    def __bool__(self) -> bool:
        return bool(self.networks)


class Verdict(enum.Enum):
    """What to do with a request from a source."""

    ACCEPT = "accept"
    BANNED = "banned"  # drop silently
    SCANNER = "scanner"  # drop silently
    FLOOD = "flood"  # drop silently (and the source is now banned)


@dataclass(frozen=True, slots=True)
class FloodPolicy:
    """The limits of ``[limits]`` in the configuration."""

    requests_per_second: float = 50.0
    burst: int = 100
    flood_ban_seconds: float = 60.0
    auth_failures_before_ban: int = 10
    auth_failure_window: float = 600.0
    ban_seconds: float = 600.0
    max_transactions_per_source: int = 200
    max_dialogs_per_source: int = 100
    drop_user_agents: Sequence[str] = SCANNER_USER_AGENTS
    max_sources: int = 100_000
    max_bans: int = 100_000

    @classmethod
    def from_config(cls, limits: Limits) -> FloodPolicy:
        """The policy of a ``[limits]`` table (:class:`trunkline.config.Limits`)."""
        return cls(
            requests_per_second=limits.requests_per_second,
            burst=limits.burst,
            flood_ban_seconds=limits.flood_ban_seconds,
            auth_failures_before_ban=limits.auth_failures_before_ban,
            auth_failure_window=limits.auth_failure_window,
            ban_seconds=limits.ban_seconds,
            max_transactions_per_source=limits.max_transactions_per_source,
            max_dialogs_per_source=limits.max_dialogs_per_source,
            drop_user_agents=tuple(limits.drop_user_agents),
        )


@dataclass(slots=True)
class FloodCounters:
    """Totals for ``trunkline status`` and ``/metrics``."""

    requests: int = 0
    dropped_banned: int = 0
    dropped_scanner: int = 0
    dropped_flood: int = 0
    auth_failures: int = 0
    bans: int = 0
    refused_transactions: int = 0
    refused_dialogs: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class _Source:
    tokens: float
    last: float
    failures: deque[float] = field(default_factory=deque)
    transactions: int = 0
    dialogs: int = 0


class AntiFlood:
    """Per-source limits and bans; see the module docstring."""

    def __init__(
        self, policy: FloodPolicy = FloodPolicy(), trusted: TrustedNetworks | None = None
    ) -> None:
        self.policy = policy
        self.trusted = trusted or TrustedNetworks()
        self.counters = FloodCounters()
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._bans: OrderedDict[str, float] = OrderedDict()  # source -> until
        self._scanners = tuple(name.lower() for name in policy.drop_user_agents)

    # -- state per source -------------------------------------------------------

    def _source(self, host: str, now: float) -> _Source:
        state = self._sources.get(host)
        if state is None:
            state = _Source(tokens=float(self.policy.burst), last=now)
            self._sources[host] = state
            if len(self._sources) > self.policy.max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(host)
        return state

    # -- bans -------------------------------------------------------------------

    def ban(self, host: str, now: float, seconds: float, reason: str) -> None:
        """Ban ``host`` until ``now + seconds`` (extending an existing ban)."""
        until = max(now + seconds, self._bans.get(host, 0.0))
        self._bans[host] = until
        self._bans.move_to_end(host)
        while len(self._bans) > self.policy.max_bans:
            self._bans.popitem(last=False)
        self.counters.bans += 1
        log.warning("BAN src=%s reason=%s seconds=%d", host, reason, int(seconds))

    def unban(self, host: str) -> bool:
        return self._bans.pop(host, None) is not None

    def is_banned(self, host: str, now: float) -> bool:
        until = self._bans.get(host)
        if until is None:
            return False
        if until <= now:
            del self._bans[host]
            return False
        return True

    def bans(self, now: float) -> list[tuple[str, float]]:
        """Active bans as ``(source, until)``, for ``trunkline status``."""
        self.handle_timer(now)
        return list(self._bans.items())

    def get_timer(self) -> float | None:
        """The earliest ban expiry (bans are also expired lazily on lookup)."""
        return min(self._bans.values(), default=None)

    def handle_timer(self, now: float) -> None:
        for host in [host for host, until in self._bans.items() if until <= now]:
            del self._bans[host]

    # -- the checks -------------------------------------------------------------

    def check(self, host: str, user_agent: str | None, now: float) -> Verdict:
        """The verdict for one request from ``host`` (its User-Agent if any)."""
        self.counters.requests += 1
        if host in self.trusted:
            return Verdict.ACCEPT
        if self._bans and self.is_banned(host, now):
            self.counters.dropped_banned += 1
            return Verdict.BANNED
        if user_agent and self._scanners:
            agent = user_agent.lower()
            if any(name in agent for name in self._scanners):
                self.counters.dropped_scanner += 1
                log.info("SCANNER src=%s user_agent=%r", host, user_agent)
                return Verdict.SCANNER
        state = self._source(host, now)
        policy = self.policy
        elapsed = max(0.0, now - state.last)
        state.last = now
        state.tokens = min(float(policy.burst), state.tokens + elapsed * policy.requests_per_second)
        if state.tokens < 1.0:
            self.counters.dropped_flood += 1
            self.ban(host, now, policy.flood_ban_seconds, "flood")
            state.tokens = float(policy.burst)  # a fresh bucket when the ban ends
            return Verdict.FLOOD
        state.tokens -= 1.0
        return Verdict.ACCEPT

    def auth_failed(self, host: str, now: float, user: str | None = None) -> bool:
        """Count a failed authentication; True when the source is banned for it."""
        self.counters.auth_failures += 1
        log.warning("AUTH_FAILED src=%s user=%s", host, user or "-")
        if host in self.trusted:
            return False
        state = self._source(host, now)
        window_start = now - self.policy.auth_failure_window
        failures = state.failures
        while failures and failures[0] <= window_start:
            failures.popleft()
        failures.append(now)
        if len(failures) >= self.policy.auth_failures_before_ban:
            failures.clear()
            self.ban(host, now, self.policy.ban_seconds, "auth-failures")
            return True
        return False

    # -- transactions and dialogs per source ----------------------------------

    def transaction_started(self, host: str, now: float) -> bool:
        """Count a new server transaction; False (refuse with 503) over the limit."""
        if host in self.trusted:
            return True
        state = self._source(host, now)
        if state.transactions >= self.policy.max_transactions_per_source:
            self.counters.refused_transactions += 1
            return False
        state.transactions += 1
        return True

    def transaction_ended(self, host: str) -> None:
        state = self._sources.get(host)
        if state is not None and state.transactions > 0:
            state.transactions -= 1

    def dialog_started(self, host: str, now: float) -> bool:
        """Count a new dialog; False (refuse) over the limit."""
        if host in self.trusted:
            return True
        state = self._source(host, now)
        if state.dialogs >= self.policy.max_dialogs_per_source:
            self.counters.refused_dialogs += 1
            return False
        state.dialogs += 1
        return True

    def dialog_ended(self, host: str) -> None:
        state = self._sources.get(host)
        if state is not None and state.dialogs > 0:
            state.dialogs -= 1

    @property
    def tracked_sources(self) -> int:
        return len(self._sources)
