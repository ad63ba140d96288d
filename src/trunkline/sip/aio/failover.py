"""Failing over between the targets of RFC 3263 server location.

RFC 3263 §4.3: the locator gives an ordered list of targets (transport,
address, port); the client sends to the first and, when that fails, "SHOULD
create a new request, which is identical to the previous, but has a different
value of the Via branch ID than the previous (and therefore constitutes a new
SIP transaction)", sent to the next target. Failure means:

- the transaction layer reports a transport failure (connection refused,
  fatal ICMP, TLS handshake failure: the local 503 of RFC 3261 §8.1.3.1);
- the transaction times out (Timer B or F, the local 408) "without ever having
  received any response, provisional or final";
- a 503 (Service Unavailable) arrives. With ``Retry-After`` the server asked
  not to be sent anything for that many seconds (RFC 3261 §21.5.4, §20.33):
  :class:`TargetBlocklist` remembers that so later requests skip it.

Pure code, no sockets and no clock (every time is a ``now`` argument): the
endpoint (:mod:`trunkline.sip.aio.endpoint`) drives it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from trunkline.sip.aio.routing import Destination
from trunkline.sip.builder import new_branch
from trunkline.sip.headers import Via
from trunkline.sip.message import Request, Response
from trunkline.sip.transaction import ClientTransaction

__all__ = [
    "MAX_RETRY_AFTER",
    "FailoverPlan",
    "TargetBlocklist",
    "retry_after",
    "retry_request",
    "should_fail_over",
]

#: Cap on how long one Retry-After may block a target (a day), so a typo in a
#: peer's header cannot black-hole a server for weeks.
MAX_RETRY_AFTER = 86400.0

_DELTA = re.compile(r"\s*(\d+)")


def retry_after(response: Response) -> float | None:
    """Seconds from a ``Retry-After`` header (RFC 3261 §20.33), ignoring comment and params."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    match = _DELTA.match(value)
    if match is None:
        return None
    return min(float(match.group(1)), MAX_RETRY_AFTER)


def should_fail_over(response: Response, *, local: bool, answered: bool) -> bool:
    """RFC 3263 §4.3: does ``response`` mean "try the next target"?

    ``local`` is True for a response the endpoint made up for a transaction
    error (408 timeout, 503 transport failure); ``answered`` is True when the
    transaction ever received a response from the target (then a timeout is not
    a failure of the target). A 503 received from the target always is.
    """
    if response.status == 503:
        return True
    return local and response.status == 408 and not answered


def _key(destination: Destination) -> tuple[str, str, int]:
    return (destination.transport.upper(), destination.host, destination.port)


@dataclass
class TargetBlocklist:
    """Targets that answered 503 with Retry-After, until when (RFC 3261 §21.5.4)."""

    until: dict[tuple[str, str, int], float] = field(default_factory=dict)

    def block(self, destination: Destination, now: float, seconds: float) -> None:
        """Skip ``destination`` for ``seconds`` from ``now``."""
        if seconds <= 0:
            return
        key = _key(destination)
        self.until[key] = max(self.until.get(key, now), now + seconds)

    def blocked(self, destination: Destination, now: float) -> bool:
        """True while ``destination`` is blocked; forgets expired entries."""
        key = _key(destination)
        deadline = self.until.get(key)
        if deadline is None:
            return False
        if now >= deadline:
            del self.until[key]
            return False
        return True

    def usable(self, destinations: Iterable[Destination], now: float) -> list[Destination]:
        """``destinations`` without the blocked ones, order kept."""
        return [d for d in destinations if not self.blocked(d, now)]


@dataclass
class FailoverPlan:
    """The targets still to try for one request, and where it went so far.

    ``origin`` is the transaction the TU was handed (it keeps using it to wait
    for the final response and to CANCEL); ``current`` is the transaction of the
    latest attempt. ``own_via`` says the endpoint added the top Via (so a retry
    gets a fresh one for its transport); otherwise only the branch changes.
    """

    remaining: list[Destination]
    own_via: bool
    current_destination: Destination
    origin: ClientTransaction | None = None
    current: ClientTransaction | None = None
    cancelled: bool = False
    tried: list[Destination] = field(default_factory=list)
    final: Response | None = None

    def next_target(self, blocklist: TargetBlocklist, now: float) -> Destination | None:
        """Pop the next target that is not blocked, or None when none is left."""
        while self.remaining:
            candidate = self.remaining.pop(0)
            if not blocklist.blocked(candidate, now):
                return candidate
        return None


def retry_request(request: Request, own_via: bool) -> Request:
    """RFC 3263 §4.3: an identical request that will get a new Via branch.

    With ``own_via`` the top Via (ours) is removed so the endpoint adds one
    for the next target's transport; otherwise the top Via keeps its sent-by
    and gets a new branch.
    """
    clone = request.copy()
    if own_via:
        clone.headers.pop_first("Via")
        return clone
    vias = clone.via
    if vias:
        top = vias[0]
        params = dict(top.params)
        params["branch"] = new_branch()
        clone.via = [Via(top.transport, top.host, top.port, params, top.protocol), *vias[1:]]
    return clone
