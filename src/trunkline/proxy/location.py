"""The location service: bindings from an address-of-record to contacts (RFC 3261 §10.3).

A REGISTER request, once authenticated, becomes a :class:`RegisterRequest`;
:func:`plan_register` applies RFC 3261 §10.3 steps 6-8 to the AoR's current
bindings and returns a :class:`RegisterOutcome` (200 with the new binding
set, or 400/423/500/403 and no change: updates are all or nothing, step 8).
It is a pure function of its inputs and ``now``, so every backend shares it:

- :class:`LocationTable`: the sans-IO in-memory table (``now`` passed in),
  with an expiry heap that is compacted so memory stays flat under churn.
- :class:`MemoryLocation` (``trunkline.proxy.location_sqlite``): the table
  plus SQLite persistence, the default backend.
- :class:`RedisLocation` (``trunkline.proxy.location_redis``): one Redis
  hash per AoR, shared by several servers.

All backends implement :class:`LocationService` (async, since Redis is I/O)
and register by name in :data:`LOCATION_BACKENDS`.

Binding identity follows RFC 5626 §6 where the UA gives ``+sip.instance``
and ``reg-id`` (a new registration over a new flow replaces the old one);
otherwise contacts are compared as URIs (RFC 3261 §19.1.4).
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from trunkline.sip.errors import SipParseError
from trunkline.sip.uri import parse_uri

if TYPE_CHECKING:
    from trunkline.sip.message import Request

__all__ = [
    "LOCATION_BACKENDS",
    "Binding",
    "ContactSpec",
    "LocationCounts",
    "LocationService",
    "LocationTable",
    "RegisterOutcome",
    "RegisterRequest",
    "RegistrarPolicy",
    "plan_register",
    "sort_bindings",
]


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact bound to an AoR (RFC 3261 §10.3), as the proxy needs it to route.

    ``received`` is the source ``host:port`` the REGISTER came from and
    ``flow`` the connection/flow it came over (RFC 5626 §5.2: send to the flow
    a NATed UA registered over); ``path`` the Path header values (RFC 3327
    §5.3) to use as a Route set.
    """

    aor: str
    contact_uri: str
    expires_at: float
    q: float
    call_id: str
    cseq: int
    updated_at: float
    received: str | None = None
    transport: str | None = None
    flow: str | None = None
    path: tuple[str, ...] = ()
    user_agent: str | None = None
    instance: str | None = None
    reg_id: int | None = None

    @property
    def key(self) -> str:
        """The binding's identity in storage: instance and reg-id (RFC 5626), else the URI."""
        if self.instance is not None and self.reg_id is not None:
            return f"{self.instance};reg-id={self.reg_id}"
        return self.contact_uri

    def expires_in(self, now: float) -> int:
        """Whole seconds left (never negative), for the 200's ``expires`` parameter."""
        return max(0, int(self.expires_at - now + 0.5))

    def contact_value(self, now: float) -> str:
        """This binding as a Contact header value for the 200 OK (§10.3 step 8)."""
        text = f"<{self.contact_uri}>;expires={self.expires_in(now)}"
        if self.q != 1.0:
            text += f";q={self.q:g}"
        if self.instance is not None:
            text += f';+sip.instance="{self.instance}"'
        if self.reg_id is not None:
            text += f";reg-id={self.reg_id}"
        return text


class ContactSpec(NamedTuple):
    """One Contact of a REGISTER (RFC 3261 §20.10), already parsed."""

    uri: str
    expires: int | None = None
    q: float | None = None
    instance: str | None = None
    reg_id: int | None = None


class RegisterRequest(NamedTuple):
    """What the location service needs from an authenticated REGISTER.

    ``star`` is ``Contact: *``; ``contacts`` is then empty. ``aor`` is the
    canonical AoR from the To header (§10.3 step 5).
    """

    aor: str
    call_id: str
    cseq: int
    contacts: Sequence[ContactSpec] = ()
    star: bool = False
    expires: int | None = None
    received: str | None = None
    transport: str | None = None
    flow: str | None = None
    path: tuple[str, ...] = ()
    user_agent: str | None = None

    @classmethod
    def from_request(
        cls,
        request: Request,
        aor: str,
        *,
        received: str | None = None,
        transport: str | None = None,
        flow: str | None = None,
    ) -> RegisterRequest:
        """Collect the fields of a REGISTER; raises SipParseError on bad headers."""
        star = False
        contacts: list[ContactSpec] = []
        raw_contacts = request.contact
        for contact in raw_contacts:
            if contact.star:
                star = True
                continue
            instance = contact.params.get("+sip.instance")
            reg_id = contact.params.get("reg-id")
            contacts.append(
                ContactSpec(
                    uri=str(contact.uri),
                    expires=contact.expires,
                    q=contact.q,
                    instance=instance.strip('"') if instance else None,
                    reg_id=int(reg_id) if reg_id is not None and reg_id.isdigit() else None,
                )
            )
        if star and contacts:
            raise SipParseError("Contact: * must be the only Contact")
        return cls(
            aor=aor,
            call_id=request.call_id,
            cseq=request.cseq.number,
            contacts=tuple(contacts),
            star=star,
            expires=request.expires,
            received=received,
            transport=transport,
            flow=flow,
            path=tuple(request.headers.get_all("Path")),
            user_agent=request.headers.get("User-Agent"),
        )


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    """Local registrar settings (RFC 3261 §10.3 step 7, §10.2.8)."""

    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 86400
    max_contacts: int = 16


class RegisterOutcome(NamedTuple):
    """The result of a REGISTER: the response status and, on 200, the AoR's bindings.

    ``bindings`` are all current bindings of the AoR (the 200 lists them,
    §10.3 step 8); ``min_expires`` is set for 423 (Min-Expires header).
    """

    status: int
    reason: str
    bindings: tuple[Binding, ...] = ()
    min_expires: int | None = None
    added: int = 0
    refreshed: int = 0
    removed: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def changed(self) -> bool:
        return self.added + self.refreshed + self.removed > 0


def sort_bindings(bindings: Iterable[Binding]) -> list[Binding]:
    """q descending, then the most recently updated first (the target order, §16.6)."""
    return sorted(bindings, key=lambda b: (-b.q, -b.updated_at))


def _same_contact(binding: Binding, spec: ContactSpec) -> bool:
    """RFC 5626 §6 identity when both give instance and reg-id, else §19.1.4 URI equality."""
    if spec.instance is not None and spec.reg_id is not None:
        return binding.instance == spec.instance and binding.reg_id == spec.reg_id
    if binding.reg_id is not None and binding.instance is not None:
        return False
    if binding.contact_uri == spec.uri:
        return True
    try:
        return parse_uri(binding.contact_uri) == parse_uri(spec.uri)
    except SipParseError:
        return False


def _intern(value: str | None) -> str | None:
    # Transports and User-Agents repeat across thousands of bindings.
    return None if value is None else sys.intern(value)


def plan_register(
    current: Sequence[Binding],
    request: RegisterRequest,
    now: float,
    policy: RegistrarPolicy = RegistrarPolicy(),
) -> RegisterOutcome:
    """RFC 3261 §10.3 steps 6-8 for ``request`` against the AoR's ``current`` bindings.

    Expired entries in ``current`` are ignored. Nothing is changed in place;
    the caller stores ``outcome.bindings`` only when ``outcome.ok``.
    """
    live = [b for b in current if b.expires_at > now]
    # Step 6: "*" removes everything, with Expires: 0 only.
    if request.star:
        if request.contacts or request.expires != 0:
            return RegisterOutcome(400, "Invalid wildcard Contact (needs Expires: 0)")
        for binding in live:
            if binding.call_id == request.call_id and request.cseq <= binding.cseq:
                return RegisterOutcome(500, "Out of order CSeq")
        return RegisterOutcome(200, "OK", (), removed=len(live))

    # Step 7: the expiration interval of every contact, checked before any change.
    intervals: list[int] = []
    for spec in request.contacts:
        if spec.expires is not None:
            expires = spec.expires
        elif request.expires is not None:
            expires = request.expires
        else:
            expires = policy.default_expires
        if 0 < expires < min(policy.min_expires, 3600):
            return RegisterOutcome(423, "Interval Too Brief", min_expires=policy.min_expires)
        intervals.append(min(expires, policy.max_expires))

    # Step 8, the common case on its own: one Contact for an AoR with no live
    # bindings (nothing to compare with, no CSeq to check, nothing to sort).
    if not live and len(intervals) == 1 and policy.max_contacts >= 1:
        if intervals[0] == 0:
            return RegisterOutcome(200, "OK")
        binding = _new_binding(request, request.contacts[0], intervals[0], now)
        return RegisterOutcome(200, "OK", (binding,), added=1)
    # Step 8: add, update or remove each contact; abort on an out-of-order CSeq.
    # (binding, was live before this request, made by this request): a Contact
    # listed twice updates what this request made without a CSeq conflict.
    entries: list[tuple[Binding, bool, bool]] = [(b, True, False) for b in live]
    removed = 0
    for spec, expires in zip(request.contacts, intervals, strict=True):
        index = next((i for i, e in enumerate(entries) if _same_contact(e[0], spec)), None)
        if index is not None:
            old, was_live, touched = entries[index]
            if not touched and old.call_id == request.call_id and request.cseq <= old.cseq:
                return RegisterOutcome(500, "Out of order CSeq")
            if expires == 0:
                del entries[index]
                removed += was_live
                continue
            # Everything but the identity (RFC 5626 §6) comes from this request.
            entries[index] = (_new_binding(request, spec, expires, now), was_live, True)
        elif expires > 0:
            entries.append((_new_binding(request, spec, expires, now), False, True))
    result = [binding for binding, _, _ in entries]
    added = sum(not was_live for _, was_live, _ in entries)
    refreshed = sum(was_live and touched for _, was_live, touched in entries)
    if added > 0 and len(result) > policy.max_contacts:
        return RegisterOutcome(403, "Too Many Contacts")
    return RegisterOutcome(
        200,
        "OK",
        tuple(sort_bindings(result) if len(result) > 1 else result),
        added=added,
        refreshed=refreshed,
        removed=removed,
    )


def _q(spec: ContactSpec) -> float:
    return 1.0 if spec.q is None else spec.q


def _new_binding(request: RegisterRequest, spec: ContactSpec, expires: int, now: float) -> Binding:
    return Binding(
        aor=request.aor,
        contact_uri=spec.uri,
        expires_at=now + expires,
        q=_q(spec),
        call_id=request.call_id,
        cseq=request.cseq,
        updated_at=now,
        received=request.received,
        transport=_intern(request.transport),
        flow=request.flow,
        path=request.path,
        user_agent=_intern(request.user_agent),
        instance=spec.instance,
        reg_id=spec.reg_id,
    )


@dataclass(frozen=True, slots=True)
class LocationCounts:
    """Sizes for ``trunkline status`` and metrics."""

    aors: int
    bindings: int


class LocationService(Protocol):
    """What the registrar and the proxy use; every backend implements it."""

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of ``aor``, q descending then most recent first."""
        ...

    async def apply_register(
        self, request: RegisterRequest, now: float, policy: RegistrarPolicy
    ) -> RegisterOutcome:
        """Apply a REGISTER atomically (RFC 3261 §10.3 steps 6-8)."""
        ...

    async def purge_expired(self, now: float) -> int:
        """Drop expired bindings; returns how many."""
        ...

    async def counts(self, now: float) -> LocationCounts: ...

    async def all_bindings(self, now: float) -> list[Binding]:
        """Every live binding (``trunkline status``, NAT keep-alive pings)."""
        ...

    async def flush(self) -> None:
        """Persist pending changes (a no-op where writes are immediate)."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class LocationTable:
    """The sans-IO in-memory location table.

    ``_aors`` maps each AoR with live bindings to a tuple of them (no empty
    entries are kept); ``_expiry`` is a heap of ``(expires_at, aor)`` that
    may hold stale entries and is rebuilt when it grows past twice the live
    size, so memory follows the live bindings, not the churn. ``dirty`` names
    the AoRs changed since the last :meth:`take_dirty` (for persistence;
    ``track_changes=False`` when nothing persists them).
    """

    _aors: dict[str, tuple[Binding, ...]] = field(default_factory=dict)
    _expiry: list[tuple[float, str]] = field(default_factory=list)
    _count: int = 0
    dirty: set[str] = field(default_factory=set)
    track_changes: bool = True

    def lookup(self, aor: str, now: float) -> list[Binding]:
        bindings = self._aors.get(aor, ())
        return [b for b in bindings if b.expires_at > now]

    def current(self, aor: str) -> tuple[Binding, ...]:
        return self._aors.get(aor, ())

    def apply_register(
        self,
        request: RegisterRequest,
        now: float,
        policy: RegistrarPolicy = RegistrarPolicy(),
    ) -> RegisterOutcome:
        outcome = plan_register(self._aors.get(request.aor, ()), request, now, policy)
        if outcome.ok:
            self.replace(request.aor, outcome.bindings)
        return outcome

    def replace(self, aor: str, bindings: Sequence[Binding]) -> None:
        """Set the bindings of ``aor``, already in :func:`sort_bindings` order.

        They are a plan's result or loaded from storage (sorted by the loader).
        """
        old = self._aors.pop(aor, ())
        self._count -= len(old)
        if bindings:
            # One string object for the AoR everywhere (dict key, heap, bindings).
            key = bindings[0].aor
            self._aors[key] = tuple(bindings)
            self._count += len(bindings)
            heapq.heappush(self._expiry, (min(b.expires_at for b in bindings), key))
        if self.track_changes:
            self.dirty.add(aor)
        if len(self._expiry) > 2 * len(self._aors) + 1024:
            self._compact()

    def _compact(self) -> None:
        self._expiry = [(min(b.expires_at for b in bs), aor) for aor, bs in self._aors.items()]
        heapq.heapify(self._expiry)

    def purge_expired(self, now: float) -> int:
        """Remove bindings that expired at or before ``now``; returns how many."""
        purged = 0
        while self._expiry and self._expiry[0][0] <= now:
            _, aor = heapq.heappop(self._expiry)
            bindings = self._aors.get(aor)
            if bindings is None:
                continue
            live = tuple(b for b in bindings if b.expires_at > now)
            if len(live) == len(bindings):
                continue  # a stale heap entry: the AoR was refreshed
            purged += len(bindings) - len(live)
            self.replace(aor, live)
        return purged

    def next_expiry(self) -> float | None:
        """The earliest time :meth:`purge_expired` may have work (stale entries included)."""
        return self._expiry[0][0] if self._expiry else None

    def counts(self) -> LocationCounts:
        return LocationCounts(aors=len(self._aors), bindings=self._count)

    def all_bindings(self, now: float) -> list[Binding]:
        return [b for bs in self._aors.values() for b in bs if b.expires_at > now]

    def take_dirty(self) -> set[str]:
        dirty, self.dirty = self.dirty, set()
        return dirty

    @property
    def heap_size(self) -> int:
        return len(self._expiry)

    def __len__(self) -> int:
        return self._count


LocationFactory = Callable[..., Awaitable[LocationService]]
LOCATION_BACKENDS: dict[str, LocationFactory] = {}
"""Backends by the name used in ``[location] backend``; filled by their modules."""
