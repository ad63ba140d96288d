"""Locating SIP servers: RFC 3263 NAPTR -> SRV -> A/AAAA.

Given a SIP or SIPS URI, :class:`Locator` returns the ordered list of
:class:`Target` (transport, host, port, address) to try: the caller sends to
the first and moves to the next on a transport error, a timeout or a 503
(RFC 3263 §4.3). The rules, RFC 3263 §4.1 (transport) and §4.2 (port and
address), in the order they apply:

1. ``maddr`` replaces the host as the TARGET (RFC 3263 §4).
2. A ``transport`` parameter fixes the transport; a numeric IP or an explicit
   port fixes it to UDP (SIP) or TLS (SIPS) when there is none.
3. A numeric IP is used as is; an explicit port means A/AAAA only.
4. Otherwise NAPTR records (services ``SIP+D2U``, ``SIP+D2T``, ``SIPS+D2T``,
   ``SIP+D2S``, ``SIP+D2W``, ``SIPS+D2W`` of RFC 3263 §4.1 and RFC 7118 §5)
   name SRV records, tried by order then preference; without NAPTR, the SRV
   names ``_sip._udp``, ``_sip._tcp``, ``_sips._tcp``, ... are queried for each
   supported transport; without SRV, A/AAAA with the default port (5060, 5061
   for TLS, 80/443 for WebSocket).
5. SRV records are sorted by priority and, within a priority, in the weighted
   random order of RFC 2782 (the random source is injectable for tests).

The selection logic is plain functions over record dataclasses; the only
I/O goes through a pluggable :class:`Resolver` (a protocol class):
:class:`StaticResolver` is an in-memory table for tests and for deployments
without DNS; the production backend, on dnspython's asyncio resolver, lives
at the asyncio edge in :mod:`trunkline.sip.aio.dns`. Nothing here does I/O:
the locator is a coroutine only because the resolver it is given may be one.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from trunkline.sip.errors import LocalSipError
from trunkline.sip.uri import SipUri

__all__ = [
    "DEFAULT_PORTS",
    "Locator",
    "Naptr",
    "Resolver",
    "Srv",
    "StaticResolver",
    "Target",
    "order_naptr",
    "order_srv",
]

logger = logging.getLogger(__name__)

DEFAULT_PORTS: Mapping[str, int] = {
    "udp": 5060,
    "tcp": 5060,
    "sctp": 5060,
    "tls": 5061,
    "ws": 80,
    "wss": 443,
}
"""Default port per transport (RFC 3261 §19.1.2, RFC 7118 §5 for WebSocket)."""

# NAPTR service field -> transport (RFC 3263 §4.1, RFC 7118 §5).
_NAPTR_SERVICES: Mapping[str, str] = {
    "SIP+D2U": "udp",
    "SIP+D2T": "tcp",
    "SIP+D2S": "sctp",
    "SIPS+D2T": "tls",
    "SIP+D2W": "ws",
    "SIPS+D2W": "wss",
}
_SECURE = frozenset({"tls", "wss"})
# Transport -> SRV service prefix for the RFC 3263 §4.1 fallback queries.
_SRV_PREFIX: Mapping[str, str] = {
    "udp": "_sip._udp",
    "tcp": "_sip._tcp",
    "sctp": "_sip._sctp",
    "tls": "_sips._tcp",
    "ws": "_sip._ws",
    "wss": "_sips._ws",
}


@dataclass(frozen=True)
class Target:
    """One place to send a request: ``address`` is an IP literal (no brackets).

    ``host`` is the name the address was found for (an SRV target, or the
    URI's host). ``domain`` is the host (or maddr) of the URI itself: RFC 5922
    §4 checks a TLS server's certificate against it, not against the SRV
    target. It does not take part in equality.
    """

    transport: str
    host: str
    port: int
    address: str
    domain: str = field(default="", compare=False)

    @property
    def secure(self) -> bool:
        return self.transport in _SECURE


@dataclass(frozen=True)
class Naptr:
    """A NAPTR record (RFC 3403 §4.1); ``replacement`` without the final dot."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


@dataclass(frozen=True)
class Srv:
    """An SRV record (RFC 2782); ``target`` without the final dot, "" or "." for none."""

    priority: int
    weight: int
    port: int
    target: str


class Resolver(Protocol):
    """The DNS queries RFC 3263 needs. Failures and empty answers give ``[]``."""

    async def naptr(self, name: str) -> list[Naptr]: ...

    async def srv(self, name: str) -> list[Srv]: ...

    async def addresses(self, name: str) -> list[str]:
        """A and AAAA addresses of ``name`` as IP literals."""
        ...


def _normalise(name: str) -> str:
    return name.rstrip(".").lower()


def _ip_literal(host: str) -> str | None:
    """``host`` as a bare IP address if it is one (IPv6 brackets removed)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


def order_naptr(
    records: Iterable[Naptr], *, secure: bool, transports: Sequence[str]
) -> list[tuple[str, Naptr]]:
    """Usable NAPTR records with their transport, by order then preference.

    RFC 3263 §4.1: keep only SIP services whose transport we support; a SIPS
    URI keeps only ``SIPS+`` services; only the "s" (SRV) and "a" (address)
    flags lead anywhere for SIP.
    """
    usable: list[tuple[str, Naptr]] = []
    for record in records:
        transport = _NAPTR_SERVICES.get(record.service.upper())
        if transport is None or transport not in transports:
            continue
        if secure and transport not in _SECURE:
            continue
        if record.flags.lower() not in ("s", "a") or not _normalise(record.replacement):
            continue
        usable.append((transport, record))
    usable.sort(key=lambda item: (item[1].order, item[1].preference))
    return usable


def order_srv(records: Iterable[Srv], rng: random.Random) -> list[Srv]:
    """SRV records in the order to try them (RFC 2782, "Usage rules").

    Lowest priority first; within one priority, repeatedly pick a record with
    probability proportional to its weight (zero-weight records first in the
    running sum, so they are chosen only rarely). Records whose target is
    "." mean the service is not offered and are dropped.
    """
    by_priority: dict[int, list[Srv]] = {}
    for record in records:
        if _normalise(record.target):
            by_priority.setdefault(record.priority, []).append(record)
    ordered: list[Srv] = []
    for priority in sorted(by_priority):
        group = sorted(by_priority[priority], key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.randint(0, total)
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    ordered.append(group.pop(index))
                    break
    return ordered


@dataclass
class Locator:
    """RFC 3263 §4 client-side server location.

    ``transports`` lists what this endpoint can send on, in the order to
    prefer when DNS leaves the choice to us (no NAPTR records).
    """

    resolver: Resolver
    transports: Sequence[str] = ("udp", "tcp", "tls")
    rng: random.Random = field(default_factory=random.Random)
    prefer_ipv6: bool = False

    def __post_init__(self) -> None:
        unknown = [t for t in self.transports if t not in DEFAULT_PORTS]
        if unknown:
            raise LocalSipError(f"unknown transports {unknown}; known: {sorted(DEFAULT_PORTS)}")

    async def locate(self, uri: SipUri) -> list[Target]:
        """Targets to try for ``uri``, best first; ``[]`` if nothing is reachable."""
        targets = await self._locate(uri)
        domain = _ip_literal(uri.maddr or uri.host) or _normalise(uri.maddr or uri.host)
        return [replace(target, domain=domain) for target in targets]

    async def _locate(self, uri: SipUri) -> list[Target]:
        secure = uri.scheme == "sips"
        host = uri.maddr or uri.host
        transport = self._explicit_transport(uri, secure)
        if transport is not None and transport not in self.transports:
            logger.info("cannot reach %s: transport %s not supported", uri, transport)
            return []
        literal = _ip_literal(host)
        if literal is not None or uri.port is not None:
            chosen = transport or ("tls" if secure else "udp")
            if chosen not in self.transports:
                return []
            port = uri.port if uri.port is not None else DEFAULT_PORTS[chosen]
            if literal is not None:
                return [Target(chosen, literal, port, literal)]
            return await self._addresses(chosen, host, port)
        if transport is not None:
            return await self._srv_or_address(transport, host)
        targets = await self._via_naptr(host, secure)
        if targets:
            return targets
        targets = []
        for candidate in self._fallback_transports(secure):
            found = await self._via_srv(candidate, _srv_name(candidate, host))
            targets.extend(t for t in found if t not in targets)
        if targets:
            return targets
        # RFC 3263 §4.2: no SRV at all -> A/AAAA, UDP for SIP, TCP (TLS) for SIPS.
        chosen = "tls" if secure else "udp"
        if chosen not in self.transports:
            others = self._fallback_transports(secure)
            if not others:
                return []
            chosen = others[0]
        return await self._addresses(chosen, host, DEFAULT_PORTS[chosen])

    async def locate_sent_by(self, transport: str, host: str, port: int | None) -> list[Target]:
        """Where to send a response when the Via sent-by must be resolved (RFC 3263 §5).

        Used once RFC 3261 §18.2.2 leaves the sent-by to resolve (no
        ``received``, or the connection is gone): a numeric IP is used as is;
        a name with a port means A/AAAA; a name without a port means SRV for
        the Via transport, then A/AAAA on the default port. ``transport`` is
        the Via transport token (``UDP``, ``TLS``, ``WSS``, ...).
        """
        transport = transport.lower()
        if transport not in DEFAULT_PORTS:
            return []
        literal = _ip_literal(host)
        if literal is not None:
            port = port if port is not None else DEFAULT_PORTS[transport]
            return [Target(transport, literal, port, literal, domain=literal)]
        if port is not None:
            found = await self._addresses(transport, host, port)
        else:
            found = await self._srv_or_address(transport, host)
        return [replace(target, domain=_normalise(host)) for target in found]

    # -- steps ------------------------------------------------------------------

    @staticmethod
    def _explicit_transport(uri: SipUri, secure: bool) -> str | None:
        """The transport the URI asks for (RFC 3263 §4.1), SIPS lifting TCP to TLS."""
        transport = uri.transport
        if transport is None:
            return None
        if secure:
            # RFC 3261 §26.2.2: sips with transport=tcp means TLS, with ws WSS; sips
            # over udp is a contradiction and maps to no transport at all.
            return {"tcp": "tls", "tls": "tls", "ws": "wss", "wss": "wss"}.get(transport, "none")
        return transport

    def _fallback_transports(self, secure: bool) -> list[str]:
        return [t for t in self.transports if t in _SRV_PREFIX and (not secure or t in _SECURE)]

    async def _via_naptr(self, host: str, secure: bool) -> list[Target]:
        records = order_naptr(
            await self.resolver.naptr(host), secure=secure, transports=self.transports
        )
        targets: list[Target] = []
        for transport, record in records:
            name = _normalise(record.replacement)
            if record.flags.lower() == "a":
                found = await self._addresses(transport, name, DEFAULT_PORTS[transport])
            else:
                found = await self._via_srv(transport, name)
            targets.extend(t for t in found if t not in targets)
        return targets

    async def _srv_or_address(self, transport: str, host: str) -> list[Target]:
        """RFC 3263 §4.2: SRV for the explicit transport, else A/AAAA and default port."""
        targets = await self._via_srv(transport, _srv_name(transport, host))
        if targets:
            return targets
        return await self._addresses(transport, host, DEFAULT_PORTS[transport])

    async def _via_srv(self, transport: str, name: str) -> list[Target]:
        targets: list[Target] = []
        for record in order_srv(await self.resolver.srv(name), self.rng):
            found = await self._addresses(transport, _normalise(record.target), record.port)
            targets.extend(t for t in found if t not in targets)
        return targets

    async def _addresses(self, transport: str, host: str, port: int) -> list[Target]:
        literal = _ip_literal(host)
        found = [literal] if literal is not None else await self.resolver.addresses(host)
        ordered = sorted(found, key=lambda a: (":" in a) != self.prefer_ipv6)
        return [Target(transport, host, port, address) for address in ordered]


def _srv_name(transport: str, host: str) -> str:
    return f"{_SRV_PREFIX[transport]}.{_normalise(host)}"


class StaticResolver:
    """An in-memory DNS: host table plus optional SRV and NAPTR records.

    For tests and for deployments without DNS (``{"pbx.example.com":
    ["192.0.2.10"]}``). Names are case-insensitive; a final dot is ignored.
    ``queries`` records every lookup as ``(type, name)``.
    """

    def __init__(
        self,
        hosts: Mapping[str, Sequence[str]] | None = None,
        srv: Mapping[str, Sequence[Srv]] | None = None,
        naptr: Mapping[str, Sequence[Naptr]] | None = None,
    ) -> None:
        self.hosts = {_normalise(k): list(v) for k, v in (hosts or {}).items()}
        self.srv_records = {_normalise(k): list(v) for k, v in (srv or {}).items()}
        self.naptr_records = {_normalise(k): list(v) for k, v in (naptr or {}).items()}
        self.queries: list[tuple[str, str]] = []

    async def naptr(self, name: str) -> list[Naptr]:
        self.queries.append(("NAPTR", _normalise(name)))
        return list(self.naptr_records.get(_normalise(name), ()))

    async def srv(self, name: str) -> list[Srv]:
        self.queries.append(("SRV", _normalise(name)))
        return list(self.srv_records.get(_normalise(name), ()))

    async def addresses(self, name: str) -> list[str]:
        self.queries.append(("A/AAAA", _normalise(name)))
        return list(self.hosts.get(_normalise(name), ()))
