"""Clients behind NAT: detection, Contact fixing and keep-alive pings.

A phone behind a NAT writes its private address into Via and Contact; the
proxy only ever sees the NAT's public address. RFC 3261 §18.2.1 (``received``)
and RFC 3581 (``rport``) fix the response path; this module fixes the rest the
way Kamailio's nathelper does:

- :func:`detect_nat` compares the source of a request with its top Via and
  Contact, and looks for private addresses (RFC 1918, RFC 6598 shared space,
  IPv6 unique-local, RFC 4193) in them.
- :func:`fixed_contact_uri` / :func:`fix_contact` rewrite a Contact to the
  address the request came from, so requests in the dialog reach the NAT
  binding. The registrar does not rewrite stored contacts: it keeps the
  source as the binding's ``received`` and the proxy routes to that (RFC 5626
  §5.2 ideas, "send to the flow the UA registered over").
- :class:`KeepAliveSchedule` is the sans-IO timetable of OPTIONS pings that
  keep NAT bindings of registered UDP contacts open (RFC 5626 §3.5.1 uses
  STUN for this; OPTIONS works with every phone).

:class:`Origin` (where a request came from) lives here too: the registrar and
the router both need it and it has no I/O.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from trunkline.sip.builder import make_request, new_call_id
from trunkline.sip.errors import SipParseError
from trunkline.sip.headers import Contact
from trunkline.sip.message import Message, Request
from trunkline.sip.uri import SipUri, parse_uri

__all__ = [
    "KeepAliveSchedule",
    "NatInfo",
    "Origin",
    "detect_nat",
    "fix_contact",
    "fixed_contact_uri",
    "is_private",
    "make_keepalive",
]

_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",  # RFC 1918
        "172.16.0.0/12",  # RFC 1918
        "192.168.0.0/16",  # RFC 1918
        "100.64.0.0/10",  # RFC 6598 carrier-grade NAT
        "169.254.0.0/16",  # RFC 3927 link-local
        "fc00::/7",  # RFC 4193 unique local
        "fe80::/10",  # link-local
    )
)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from: transport (upper case), source address, flow.

    ``flow`` names the connection for stream transports (RFC 5626 §5.2);
    None for UDP.
    """

    transport: str
    host: str
    port: int
    flow: str | None = None

    @property
    def address(self) -> str:
        """``host:port`` with IPv6 brackets, as stored in a binding's ``received``."""
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def reliable(self) -> bool:
        return self.transport.upper() != "UDP"


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_private(host: str) -> bool:
    """True for RFC 1918, RFC 6598, link-local and unique-local addresses (not names)."""
    address = _ip(host)
    return address is not None and any(address in net for net in _PRIVATE_NETWORKS)


def _same_host(a: str, b: str) -> bool:
    ip_a, ip_b = _ip(a), _ip(b)
    if ip_a is not None and ip_b is not None:
        return ip_a == ip_b
    return a.strip("[]").lower() == b.strip("[]").lower()


@dataclass(frozen=True, slots=True)
class NatInfo:
    """The verdict of :func:`detect_nat` and why (for logs)."""

    behind_nat: bool
    reasons: tuple[str, ...] = ()


def detect_nat(message: Message, origin: Origin) -> NatInfo:
    """Is the sender of ``message`` behind a NAT? (nathelper's ``nat_uac_test``)

    Checks: the top Via sent-by differs from the source address or port
    (RFC 3261 §18.2.1 would add ``received``), the Via or the Contact names
    a private address, and the Contact host/port differs from the source.
    For a response (a NATed callee's 200 to INVITE) only the Contact tells:
    its top Via is ours.
    """
    reasons: list[str] = []
    try:
        vias = message.via
        contacts = message.contact
    except SipParseError:
        return NatInfo(False, ("unparsable Via or Contact",))
    if vias and message.is_request:
        top = vias[0]
        if not _same_host(top.host, origin.host):
            reasons.append("via host differs from source")
        elif (top.port or 5060) != origin.port and not origin.reliable:
            reasons.append("via port differs from source")
        if is_private(top.host) and not is_private(origin.host):
            reasons.append("private address in via")
    for contact in contacts:
        uri = contact.uri
        if contact.star or not isinstance(uri, SipUri):
            continue
        if is_private(uri.host) and not is_private(origin.host):
            reasons.append("private address in contact")
        if not _same_host(uri.host, origin.host):
            reasons.append("contact host differs from source")
        elif (uri.port or uri.default_port) != origin.port and not origin.reliable:
            reasons.append("contact port differs from source")
        break
    return NatInfo(bool(reasons), tuple(dict.fromkeys(reasons)))


def fixed_contact_uri(uri: str, origin: Origin) -> str:
    """``uri`` with host and port replaced by the source address (``fix_nated_contact``).

    Non-SIP URIs and unparsable text are returned unchanged.
    """
    try:
        parsed = parse_uri(uri)
    except SipParseError:
        return uri
    if not isinstance(parsed, SipUri):
        return uri
    host = origin.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return str(parsed.copy(host=host, port=origin.port))


def fix_contact(message: Message, origin: Origin) -> bool:
    """Rewrite every Contact of ``message`` to the source address; True if changed.

    Used on dialog-creating requests and their responses from NATed UAs so
    that in-dialog requests sent to the Contact reach the NAT binding.
    """
    contacts = message.contact
    fixed: list[Contact] = []
    changed = False
    for contact in contacts:
        if contact.star or not isinstance(contact.uri, SipUri):
            fixed.append(contact)
            continue
        new_uri = fixed_contact_uri(str(contact.uri), origin)
        if new_uri != str(contact.uri):
            changed = True
            fixed.append(Contact(contact.display_name, new_uri, dict(contact.params)))
        else:
            fixed.append(contact)
    if changed:
        message.contact = fixed
    return changed


def make_keepalive(target_uri: str, local_uri: str, destination: str | None = None) -> Request:
    """An OPTIONS ping to a NATed contact (Max-Forwards 0: the UA answers, no one forwards)."""
    del destination  # the caller sends it there; kept for symmetry with the schedule entries
    return make_request(
        "OPTIONS",
        target_uri,
        from_=f"<{local_uri}>",
        to=f"<{target_uri}>",
        call_id=new_call_id(),
        max_forwards=0,
    )


@dataclass(order=True, slots=True)
class _Due:
    at: float
    key: str = field(compare=False)


@dataclass(frozen=True, slots=True)
class KeepAliveTarget:
    """One contact to ping: its URI and where its NAT binding is (``received``)."""

    key: str
    contact_uri: str
    destination: str
    transport: str | None = None


class KeepAliveSchedule:
    """When to ping which NATed contact: sans-IO, deadlines only.

    :meth:`update` with the current set of NATed bindings (after each
    registration change or on a slow timer); :meth:`due` returns those whose
    ping is due at ``now`` and schedules the next one ``interval`` later.
    Bindings not in the last update are forgotten lazily.
    """

    def __init__(self, interval: float = 25.0) -> None:
        self.interval = interval
        self._targets: dict[str, KeepAliveTarget] = {}
        self._heap: list[_Due] = []
        self.sent = 0

    def update(self, targets: Iterable[KeepAliveTarget], now: float) -> None:
        fresh = {target.key: target for target in targets}
        for key in fresh.keys() - self._targets.keys():
            heapq.heappush(self._heap, _Due(now + self.interval, key))
        self._targets = fresh
        if len(self._heap) > 2 * len(self._targets) + 64:
            self._heap = [due for due in self._heap if due.key in self._targets]
            heapq.heapify(self._heap)

    def add(self, target: KeepAliveTarget, now: float) -> None:
        if target.key not in self._targets:
            heapq.heappush(self._heap, _Due(now + self.interval, target.key))
        self._targets[target.key] = target

    def remove(self, key: str) -> None:
        self._targets.pop(key, None)

    def get_timer(self) -> float | None:
        while self._heap and self._heap[0].key not in self._targets:
            heapq.heappop(self._heap)
        return self._heap[0].at if self._heap else None

    def due(self, now: float) -> list[KeepAliveTarget]:
        out: list[KeepAliveTarget] = []
        seen: set[str] = set()
        while self._heap and self._heap[0].at <= now:
            item = heapq.heappop(self._heap)
            target = self._targets.get(item.key)
            if target is None or item.key in seen:
                continue
            seen.add(item.key)
            out.append(target)
            heapq.heappush(self._heap, _Due(now + self.interval, item.key))
        self.sent += len(out)
        return out

    def __len__(self) -> int:
        return len(self._targets)
