"""The stateful proxy's response context: forking and best response (RFC 3261 §16.6-16.10).

A :class:`ResponseContext` is created for each forwarded request with its
target set (``router.Forward``/``router.Relay``). It is sans-IO: every entry
point takes ``now`` and returns a list of actions for the server to carry out:

- :class:`SendBranch`: send this copy of the request (§16.6) in a new client
  transaction, with our Via on top carrying ``branch`` (the loop-detecting
  branch of §16.6 item 8, made by :func:`~trunkline.proxy.validation.loop_branch`);
- :class:`CancelBranch`: CANCEL that branch's INVITE (§9.1; the transaction
  layer holds it until a provisional response has arrived);
- :class:`SendUpstream`: send this response back through the server transaction.

An asyncio server drives it like this (one timer per context, STYLE habit 1)::

    ctx = ResponseContext(decision.request, decision.targets, record_route=rr,
                          failover=decision.failover)
    execute(ctx.start(now))                       # SendBranch -> start_request(...)
    # on each branch response:  execute(ctx.receive_response(i, response, now))
    # on a transaction timeout / transport error:  execute(ctx.branch_failed(i, 408, now))
    # on CANCEL from upstream:  execute(ctx.cancel(now))
    # loop.call_at(ctx.get_timer(), lambda: execute(ctx.handle_timer(loop.time())))
    # drop the context once ctx.finished

Targets are grouped by q-value (§16.6, RFC 3261 §16.6 and RFC 3841 ideas):
equal q forks in parallel, groups run one after another by decreasing q.
A group that nobody answers within ``group_timeout`` is cancelled and the
next one starts. With ``failover`` (a dispatcher set's statuses), the next
group starts only when the best response so far has one of those statuses.

Responses (§16.7):

- 1xx other than 100 are forwarded at once; any provisional resets timer C.
- Every 2xx is forwarded at once; the first one cancels the pending branches.
- A 6xx cancels the pending branches and wins.
- Otherwise, once no branch is pending and no group is left, the best final
  response is sent: 6xx, else the lowest class, preferring 401/407/415/420/484
  among 4xx; a 503 becomes 500 (§16.7 step 6); the challenges of every 401/407
  are gathered into the one sent (§16.7 step 7); 408 when nothing was heard.
- Timer C (§16.8, more than 3 minutes, configurable): a branch with a
  provisional is cancelled, one without is taken as 408; a ringing branch
  cancelled this way reports 480 (nobody answered) instead of its 487.
- A CANCEL from upstream cancels every pending branch and starts no group
  (§16.10); the branches' 487 is what goes back.
- 3xx responses are not recursed into by default (§16.5): they compete as
  final responses. With ``recurse_3xx`` their new SIP Contacts join the
  target set and are forked to at once (at most ``max_branches`` branches in
  all), and the 3xx itself is then no candidate (§16.7 step 4).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from trunkline.proxy.router import Target
from trunkline.proxy.validation import loop_branch
from trunkline.sip.builder import make_response
from trunkline.sip.errors import LocalSipError, SipParseError
from trunkline.sip.headers import NameAddr
from trunkline.sip.message import Request, Response
from trunkline.sip.uri import SipUri, parse_uri

__all__ = [
    "Action",
    "BranchState",
    "CancelBranch",
    "ResponseContext",
    "SendBranch",
    "SendUpstream",
    "branch_request",
    "group_targets",
    "record_route_value",
]

log = logging.getLogger("trunkline.proxy.forking")

TIMER_C = 185.0
"""RFC 3261 §16.6 item 11: greater than 3 minutes."""

_PREFERRED_4XX = (401, 407, 415, 420, 484)


class BranchState(enum.Enum):
    """One client branch of the response context."""

    WAITING = "waiting"  # in a later sequential group
    CALLING = "calling"  # sent, nothing heard
    PROCEEDING = "proceeding"  # a provisional arrived
    COMPLETED = "completed"  # a final response (or its equivalent) arrived

    __hash__ = object.__hash__  # C identity hash for the transition table (Enum's is Python)


_TRANSITIONS: dict[BranchState, frozenset[BranchState]] = {
    BranchState.WAITING: frozenset({BranchState.CALLING, BranchState.COMPLETED}),
    BranchState.CALLING: frozenset({BranchState.PROCEEDING, BranchState.COMPLETED}),
    BranchState.PROCEEDING: frozenset({BranchState.PROCEEDING, BranchState.COMPLETED}),
    BranchState.COMPLETED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class SendBranch:
    """Send ``request`` to ``target`` with our Via (branch ``branch``) on top."""

    index: int
    request: Request
    target: Target
    branch: str


@dataclass(frozen=True, slots=True)
class CancelBranch:
    """CANCEL the INVITE of branch ``index`` (§9.1)."""

    index: int


@dataclass(frozen=True, slots=True)
class SendUpstream:
    """Forward ``response`` (our Via already removed) through the server transaction."""

    response: Response


Action = SendBranch | CancelBranch | SendUpstream


def record_route_value(uri: str) -> str:
    """A Record-Route value for the proxy URI ``uri``, with ``lr`` (§16.6 item 4)."""
    parsed = parse_uri(uri)
    if isinstance(parsed, SipUri) and not parsed.lr:
        parsed = parsed.with_params(lr=None)
    return f"<{parsed}>"


def group_targets(targets: Iterable[Target]) -> list[list[Target]]:
    """Targets in groups of equal q, highest q first (parallel within, sequential across)."""
    groups: dict[float, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.q, []).append(target)
    return [groups[q] for q in sorted(groups, reverse=True)]


def branch_request(request: Request, target: Target, record_route: str | None) -> Request:
    """The copy of ``request`` for one target (RFC 3261 §16.6 items 1-6).

    Request-URI set to the target, Max-Forwards decremented (70 if absent),
    our Record-Route on top, the target's Route set (Path) in front, and a
    strict next hop (no ``lr``) handled per item 6. The Via is the sender's.
    """
    copy = request.copy()
    copy.uri = target.uri
    max_forwards = request.max_forwards
    copy.max_forwards = 69 if max_forwards is None else max(0, max_forwards - 1)
    if record_route is not None:
        copy.headers.prepend("Record-Route", record_route)
    if target.route:
        existing = copy.headers.get_all("Route")
        copy.headers.set_all("Route", [*target.route, *existing])
    routes = copy.route
    if routes:
        top = routes[0].uri
        if isinstance(top, SipUri) and not top.lr:
            # §16.6 item 6: the next hop is a strict router.
            copy.route = [*routes[1:], NameAddr(None, copy.uri_text)]
            copy.uri = str(top)
    return copy


def _strip_our_via(response: Response, branch: str) -> Response:
    """§16.7 step 3 on ``response`` itself, for a 1xx or 2xx forwarded at once.

    Nothing reads such a response with our Via after it went upstream (the
    branch keeps a 2xx only for its status; a NATed callee's Contact was fixed
    on it in place already), so it is not copied first.
    """
    top = response.top_via
    if top is not None and top.branch == branch:
        response.headers.pop_first("Via")
    return response


def _without_our_via(response: Response, branch: str) -> Response:
    """§16.7 step 3: remove the topmost Via (ours) before forwarding."""
    forwarded = response.copy()
    top = forwarded.top_via
    if top is not None and top.branch == branch:
        forwarded.headers.pop_first("Via")
    return forwarded


@dataclass(slots=True)
class _Branch:
    index: int
    group: int
    target: Target
    state: BranchState = BranchState.WAITING
    request: Request | None = None
    branch: str = ""
    response: Response | None = None
    timer_c: float | None = None
    cancelled: bool = False
    no_answer: bool = False

    def set_state(self, new: BranchState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise LocalSipError(f"branch {self.index}: {self.state.name} -> {new.name}")
        if log.isEnabledFor(logging.DEBUG):  # no Enum.name lookups on the hot path
            log.debug("branch %d: %s -> %s", self.index, self.state.name, new.name)
        self.state = new

    @property
    def pending(self) -> bool:
        return self.state in (BranchState.CALLING, BranchState.PROCEEDING)


@dataclass(slots=True)
class ResponseContext:
    """RFC 3261 §16.7 for one forwarded request; see the module docstring."""

    request: Request
    targets: Sequence[Target]
    record_route: str | None = None
    timer_c: float = TIMER_C
    group_timeout: float | None = 30.0
    failover: frozenset[int] | None = None
    recurse_3xx: bool = False
    max_branches: int = 16
    _branches: list[_Branch] = field(default_factory=list)
    _groups: int = 0
    _group: int = -1
    _final_sent: bool = False
    _cancelled: bool = False
    _best: Response | None = None
    _challenges: list[tuple[str, str]] = field(default_factory=list)
    _group_deadline: float | None = None

    def __post_init__(self) -> None:
        if not self.targets:
            raise LocalSipError("a response context needs at least one target")
        groups = group_targets(self.targets)
        self._groups = len(groups)
        for number, group in enumerate(groups):
            for target in group:
                self._branches.append(_Branch(len(self._branches), number, target))

    # -- properties -------------------------------------------------------------

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"

    @property
    def finished(self) -> bool:
        """A final response went upstream and no branch is pending."""
        return self._final_sent and not any(b.pending for b in self._branches)

    @property
    def final_sent(self) -> bool:
        return self._final_sent

    def branch_state(self, index: int) -> BranchState:
        return self._branches[index].state

    # -- entry points -----------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Send the first group (the highest q)."""
        return self._start_group(0, now)

    def receive_response(self, index: int, response: Response, now: float) -> list[Action]:
        """A response on branch ``index`` from its client transaction (§16.7)."""
        branch = self._branches[index]
        status = response.status
        actions: list[Action] = []
        if status < 200:
            if branch.state is BranchState.COMPLETED:
                return actions
            branch.set_state(BranchState.PROCEEDING)
            if self.is_invite and not branch.no_answer:
                branch.timer_c = now + self._branch_timeout()
            if status > 100 and not self._final_sent:
                actions.append(SendUpstream(_strip_our_via(response, branch.branch)))
            return actions
        if 200 <= status < 300:
            earlier = branch.response
            if earlier is not None and not 200 <= earlier.status < 300:
                return actions  # the branch already ended (timer C took it as 408)
            if branch.state is not BranchState.COMPLETED:
                branch.set_state(BranchState.COMPLETED)
            branch.response = response
            branch.timer_c = None
            # §16.7 step 9: every 2xx to an INVITE is forwarded, even after the first.
            actions.append(SendUpstream(_strip_our_via(response, branch.branch)))
            if not self._final_sent:
                self._final_sent = True
                actions.extend(self._cancel_pending())
            return actions
        if branch.state is BranchState.COMPLETED:
            return actions  # a late final after timer C took it as 408
        branch.set_state(BranchState.COMPLETED)
        branch.timer_c = None
        if 300 <= status < 400 and self.recurse_3xx:
            started = self._recurse(response, now)
            if started:
                branch.response = response
                return actions + started  # §16.7 step 4: the 3xx is not a candidate
        branch.response = self._effective(branch, response)
        self._consider(branch.response)
        if status >= 600:
            actions.extend(self._cancel_pending())
        return actions + self._advance(now)

    def branch_failed(self, index: int, status: int, now: float) -> list[Action]:
        """The client transaction timed out (408) or the transport failed (503), §16.7 step 1."""
        branch = self._branches[index]
        if branch.state is BranchState.COMPLETED:
            return []
        reason = "Request Timeout" if status == 408 else "Service Unavailable"
        return self.receive_response(index, self._local_response(status, reason), now)

    def cancel(self, now: float) -> list[Action]:
        """A CANCEL for the request arrived (§16.10): cancel every pending branch."""
        del now
        self._cancelled = True
        return self._cancel_pending()

    def get_timer(self) -> float | None:
        """The next timer C or group deadline, or None."""
        if self.request.method != "INVITE":
            return None  # Timer C and group deadlines are for INVITE only (§16.6 item 11)
        deadlines = [b.timer_c for b in self._branches if b.pending and b.timer_c is not None]
        if self._group_deadline is not None:
            deadlines.append(self._group_deadline)
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> list[Action]:
        """Timer C (§16.8) and the sequential group timeout."""
        actions: list[Action] = []
        if self._group_deadline is not None and now >= self._group_deadline:
            self._group_deadline = None
            for branch in self._branches:
                if branch.group == self._group and branch.pending:
                    actions.extend(self._expire(branch, now))
        for branch in self._branches:
            if branch.pending and branch.timer_c is not None and now >= branch.timer_c:
                actions.extend(self._expire(branch, now))
        return actions

    # -- internals --------------------------------------------------------------

    def _branch_timeout(self) -> float:
        return self.timer_c

    def _start_group(self, number: int, now: float) -> list[Action]:
        self._group = number
        actions: list[Action] = []
        for branch in self._branches:
            if branch.group == number:
                actions.append(self._launch(branch, now))
        more = number + 1 < self._groups
        if self.is_invite and more and self.group_timeout is not None:
            self._group_deadline = now + self.group_timeout
        else:
            self._group_deadline = None
        return actions

    def _launch(self, branch: _Branch, now: float) -> SendBranch:
        branch.request = branch_request(self.request, branch.target, self.record_route)
        branch.branch = loop_branch(branch.request)  # the copy as the next hop sees it
        branch.set_state(BranchState.CALLING)
        if self.is_invite:
            branch.timer_c = now + self.timer_c
        return SendBranch(branch.index, branch.request, branch.target, branch.branch)

    def _recurse(self, response: Response, now: float) -> list[Action]:
        """Add the new SIP Contacts of a 3xx to the target set and fork to them (§16.5)."""
        if self._cancelled or self._final_sent:
            return []
        try:
            contacts = response.contact
        except SipParseError:
            return []
        tried = {b.target.uri for b in self._branches}
        actions: list[Action] = []
        for contact in contacts:
            uri = contact.uri
            if contact.star or not isinstance(uri, SipUri) or str(uri) in tried:
                continue
            if len(self._branches) >= self.max_branches:
                break
            tried.add(str(uri))
            q = 1.0 if contact.q is None else contact.q
            branch = _Branch(len(self._branches), self._group, Target(str(uri), q=q))
            self._branches.append(branch)
            actions.append(self._launch(branch, now))
        return actions

    def _expire(self, branch: _Branch, now: float) -> list[Action]:
        """Timer C or group timeout on a pending branch (§16.8)."""
        branch.timer_c = None
        if branch.state is BranchState.PROCEEDING:
            branch.no_answer = True
            return [CancelBranch(branch.index)]
        # Nothing heard: as if a 408 arrived; still cancel so a late INVITE stops ringing.
        actions: list[Action] = [CancelBranch(branch.index)]
        return actions + self.receive_response(
            branch.index, self._local_response(408, "Request Timeout"), now
        )

    def _effective(self, branch: _Branch, response: Response) -> Response:
        """A ringing branch we cancelled for lack of answer reports 480, not 487."""
        if branch.no_answer and response.status == 487 and not self._cancelled:
            return self._local_response(480, "Temporarily Unavailable")
        return response

    def _cancel_pending(self) -> list[Action]:
        actions: list[Action] = []
        for branch in self._branches:
            if branch.pending and self.is_invite and not branch.cancelled:
                branch.cancelled = True
                actions.append(CancelBranch(branch.index))
        return actions

    def _consider(self, response: Response) -> None:
        """Keep the best final response so far (§16.7 step 6) and gather challenges (step 7)."""
        status = response.status
        if status in (401, 407):
            name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
            self._challenges.extend((name, value) for value in response.headers.get_all(name))
        if self._best is None or _rank(response.status) < _rank(self._best.status):
            self._best = response

    def _advance(self, now: float) -> list[Action]:
        """After a branch completed: wait, start the next group, or send the best response."""
        if any(b.pending for b in self._branches):
            return []
        if self._final_sent:
            return []
        best = self._best
        stop = self._cancelled or (best is not None and best.status >= 600)
        if self.failover is not None and best is not None and best.status not in self.failover:
            stop = True  # dispatcher failover: only 408/503/timeouts try the next destination
        if not stop and self._group + 1 < self._groups:
            return self._start_group(self._group + 1, now)
        self._group_deadline = None
        self._final_sent = True
        return [SendUpstream(self._best_response())]

    def _best_response(self) -> Response:
        best = self._best
        if best is None:
            return self._local_response(408, "Request Timeout")
        branch = next((b for b in self._branches if b.response is best), None)
        if best.headers.get("Via") is not None and branch is not None and branch.branch:
            out = _without_our_via(best, branch.branch)
        else:
            out = best.copy()
        if out.status == 503:
            out = self._local_response(500, "Server Internal Error")  # §16.7 step 6
        elif out.status in (401, 407):
            # Step 7: every challenge of every 401/407, of both kinds, unmodified.
            out.headers.remove("WWW-Authenticate")
            out.headers.remove("Proxy-Authenticate")
            for header, value in self._challenges:
                out.headers.add(header, value)
        return out

    def _local_response(self, status: int, reason: str) -> Response:
        """A response we generate (as if from the branch, §16.7 step 1), upstream Vias."""
        return make_response(self.request, status, reason)


def _rank(status: int) -> tuple[int, int]:
    """Lower is better: 6xx first, then the lowest class; preferred 4xx codes first."""
    klass = status // 100
    if klass == 6:
        return (0, 0)
    preferred = 0 if status in _PREFERRED_4XX else 1
    return (klass, preferred if klass == 4 else 0)
