"""The response context (RFC 3261 §16.6-16.10) driven with a fake clock."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.proxy.forking import (
    TIMER_C,
    BranchState,
    CancelBranch,
    ResponseContext,
    SendBranch,
    SendUpstream,
    branch_request,
    group_targets,
    record_route_value,
)
from trunkline.proxy.router import Target
from trunkline.proxy.validation import (
    LOOP_BRANCH_PREFIX,
    Reply,
    ValidationPolicy,
    loop_hash,
    validate_request,
)
from trunkline.sip.builder import make_request, make_response
from trunkline.sip.errors import LocalSipError
from trunkline.sip.message import Request, Response

RR = record_route_value("sip:192.0.2.10:5060")
A = Target("sip:bob@10.0.0.1")
B = Target("sip:bob@10.0.0.2")
C = Target("sip:bob@10.0.0.3", q=0.5)


def _invite(method: str = "INVITE", max_forwards: int = 70) -> Request:
    return make_request(
        method,
        "sip:bob@example.com",
        from_="<sip:alice@example.com>;tag=a",
        to="<sip:bob@example.com>",
        via="SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKupstream",
        call_id="fork-1",
        max_forwards=max_forwards,
    )


def _ctx(targets: Sequence[Target], method: str = "INVITE", **kw: float | None) -> ResponseContext:
    return ResponseContext(_invite(method), targets, record_route=RR, **kw)  # type: ignore[arg-type]


def _sent(actions: Sequence[object]) -> list[SendBranch]:
    return [a for a in actions if isinstance(a, SendBranch)]


def _upstream(actions: Sequence[object]) -> list[Response]:
    return [a.response for a in actions if isinstance(a, SendUpstream)]


def _reply(send: SendBranch, status: int, **headers: str) -> Response:
    """The response a UAS would send for ``send`` (our Via on top)."""
    request = send.request.copy()
    request.headers.prepend("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch={send.branch}")
    return make_response(request, status, headers=list(headers.items()))


def test_record_route_value_adds_lr() -> None:
    assert RR == "<sip:192.0.2.10:5060;lr>"


def test_group_targets_by_q() -> None:
    assert group_targets([C, A, B]) == [[A, B], [C]]


def test_branch_request_copy() -> None:
    request = _invite()
    target = Target("sip:bob@10.0.0.1:5070", route=("<sip:edge.example.net;lr>",))
    copy = branch_request(request, target, RR)
    assert copy.uri_text == "sip:bob@10.0.0.1:5070"
    assert copy.max_forwards == 69 and request.max_forwards == 70
    assert copy.headers.get_all("Record-Route") == [RR]
    assert copy.headers.get_all("Route") == ["<sip:edge.example.net;lr>"]
    assert request.headers.get("Record-Route") is None  # the original is untouched


def test_branch_request_strict_next_hop() -> None:
    target = Target("sip:bob@10.0.0.1", route=("<sip:strict.example.net>",))
    copy = branch_request(_invite(), target, None)
    assert copy.uri_text == "sip:strict.example.net"
    assert copy.headers.get_all("Route") == ["<sip:bob@10.0.0.1>"]


def test_parallel_fork_and_first_2xx_cancels_others() -> None:
    ctx = _ctx([A, B])
    sends = _sent(ctx.start(0.0))
    assert [s.target for s in sends] == [A, B]
    assert all(s.branch.startswith(LOOP_BRANCH_PREFIX + loop_hash(s.request)) for s in sends)
    assert len({s.branch for s in sends}) == 2
    assert ctx.receive_response(0, _reply(sends[0], 100), 1.0) == []  # 100 not forwarded
    ringing = _upstream(ctx.receive_response(1, _reply(sends[1], 180), 1.0))
    assert [r.status for r in ringing] == [180]
    assert ringing[0].via[0].branch == "z9hG4bKupstream"  # our Via removed
    actions = ctx.receive_response(1, _reply(sends[1], 200), 2.0)
    assert [r.status for r in _upstream(actions)] == [200]
    assert CancelBranch(0) in actions
    assert ctx.final_sent and not ctx.finished
    # The cancelled branch's 487 is absorbed; a second 2xx would still be forwarded.
    assert ctx.receive_response(0, _reply(sends[0], 487), 3.0) == []
    assert ctx.finished


def test_every_2xx_forwarded() -> None:
    ctx = _ctx([A, B])
    sends = _sent(ctx.start(0.0))
    first = _upstream(ctx.receive_response(0, _reply(sends[0], 200), 1.0))
    second = _upstream(ctx.receive_response(1, _reply(sends[1], 200), 1.1))
    assert [r.status for r in first + second] == [200, 200]


def test_best_response_lowest_class_and_503_mapped() -> None:
    ctx = _ctx([A, B])
    sends = _sent(ctx.start(0.0))
    assert ctx.receive_response(0, _reply(sends[0], 503), 1.0) == []
    final = _upstream(ctx.receive_response(1, _reply(sends[1], 486), 1.0))
    assert [r.status for r in final] == [486]
    ctx2 = _ctx([A, B])
    sends = _sent(ctx2.start(0.0))
    ctx2.receive_response(0, _reply(sends[0], 503), 1.0)
    final = _upstream(ctx2.receive_response(1, _reply(sends[1], 503), 1.0))
    assert [r.status for r in final] == [500]
    assert final[0].via[0].branch == "z9hG4bKupstream"


def test_6xx_wins_and_cancels() -> None:
    ctx = _ctx([A, B, C])
    sends = _sent(ctx.start(0.0))
    ctx.receive_response(1, _reply(sends[1], 180), 0.5)
    actions = ctx.receive_response(0, _reply(sends[0], 603), 1.0)
    assert CancelBranch(1) in actions and _upstream(actions) == []
    final = _upstream(ctx.receive_response(1, _reply(sends[1], 487), 1.5))
    assert [r.status for r in final] == [603]  # and the q=0.5 group never started
    assert ctx.branch_state(2) is BranchState.WAITING


def test_sequential_groups_by_q() -> None:
    ctx = _ctx([A, C])
    sends = _sent(ctx.start(0.0))
    assert [s.target for s in sends] == [A]
    later = _sent(ctx.receive_response(0, _reply(sends[0], 486), 1.0))
    assert [s.target for s in later] == [C]
    final = _upstream(ctx.receive_response(1, _reply(later[0], 200), 2.0))
    assert [r.status for r in final] == [200]


def test_group_timeout_moves_to_next_group() -> None:
    ctx = _ctx([A, C], group_timeout=20.0)
    sends = _sent(ctx.start(0.0))
    ctx.receive_response(0, _reply(sends[0], 180), 1.0)
    assert ctx.get_timer() == 20.0
    assert ctx.handle_timer(20.0) == [CancelBranch(0)]
    later = _sent(ctx.receive_response(0, _reply(sends[0], 487), 20.5))
    assert [s.target for s in later] == [C]


def test_auth_challenges_aggregated() -> None:
    ctx = _ctx([A, B])
    sends = _sent(ctx.start(0.0))
    ctx.receive_response(0, _reply(sends[0], 407, **{"Proxy-Authenticate": 'Digest realm="a"'}), 1)
    final = _upstream(
        ctx.receive_response(
            1, _reply(sends[1], 401, **{"WWW-Authenticate": 'Digest realm="b"'}), 1
        )
    )
    # §16.7 step 7: the chosen challenge response carries the challenges of both.
    assert final[0].status == 407
    assert final[0].headers.get_all("WWW-Authenticate") == ['Digest realm="b"']
    assert final[0].headers.get_all("Proxy-Authenticate") == ['Digest realm="a"']
    ctx2 = _ctx([A, B])
    sends = _sent(ctx2.start(0.0))
    ctx2.receive_response(0, _reply(sends[0], 407, **{"Proxy-Authenticate": 'Digest realm="a"'}), 1)
    final = _upstream(
        ctx2.receive_response(
            1, _reply(sends[1], 407, **{"Proxy-Authenticate": 'Digest realm="b"'}), 1
        )
    )
    assert final[0].headers.get_all("Proxy-Authenticate") == [
        'Digest realm="a"',
        'Digest realm="b"',
    ]


def test_preferred_4xx_over_other_4xx() -> None:
    ctx = _ctx([A, B])
    sends = _sent(ctx.start(0.0))
    ctx.receive_response(0, _reply(sends[0], 404), 1.0)
    final = _upstream(ctx.receive_response(1, _reply(sends[1], 484), 1.0))
    assert final[0].status == 484


def test_upstream_cancel_cancels_pending_and_487_goes_back() -> None:
    ctx = _ctx([A, B, C])
    sends = _sent(ctx.start(0.0))
    ctx.receive_response(0, _reply(sends[0], 180), 1.0)
    assert ctx.cancel(2.0) == [CancelBranch(0), CancelBranch(1)]
    assert ctx.receive_response(0, _reply(sends[0], 487), 2.1) == []
    final = _upstream(ctx.receive_response(1, _reply(sends[1], 487), 2.2))
    assert [r.status for r in final] == [487] and ctx.finished


def test_timer_c_without_answer_is_408_with_ringing_480() -> None:
    ctx = _ctx([A, B], group_timeout=None)
    sends = _sent(ctx.start(0.0))
    ctx.receive_response(0, _reply(sends[0], 180), 100.0)  # resets A's timer C
    assert ctx.get_timer() == TIMER_C
    actions = ctx.handle_timer(TIMER_C)  # B never answered: a 408 for it, and a CANCEL
    assert CancelBranch(1) in actions and _upstream(actions) == []
    assert ctx.handle_timer(100.0 + TIMER_C) == [CancelBranch(0)]
    final = _upstream(ctx.receive_response(0, _reply(sends[0], 487), 300.0))
    assert [r.status for r in final] == [408]
    ctx2 = _ctx([A], group_timeout=None, timer_c=60.0)
    sends = _sent(ctx2.start(0.0))
    ctx2.receive_response(0, _reply(sends[0], 180), 1.0)
    assert ctx2.handle_timer(61.0) == [CancelBranch(0)]
    final = _upstream(ctx2.receive_response(0, _reply(sends[0], 487), 61.5))
    assert [(r.status, r.reason) for r in final] == [(480, "Temporarily Unavailable")]


def test_transaction_timeout_and_transport_error() -> None:
    ctx = _ctx([A, B], method="MESSAGE")
    sends = _sent(ctx.start(0.0))
    assert ctx.get_timer() is None  # no timer C for non-INVITE
    assert ctx.branch_failed(0, 503, 1.0) == []
    final = _upstream(ctx.branch_failed(1, 408, 32.0))
    assert [r.status for r in final] == [408]
    assert ctx.branch_failed(1, 408, 33.0) == []
    del sends


def test_non_invite_2xx_does_not_cancel() -> None:
    ctx = _ctx([A, B], method="MESSAGE")
    sends = _sent(ctx.start(0.0))
    actions = ctx.receive_response(0, _reply(sends[0], 200), 1.0)
    assert [type(a) for a in actions] == [SendUpstream]


def test_3xx_not_recursed() -> None:
    ctx = _ctx([A])
    sends = _sent(ctx.start(0.0))
    final = _upstream(
        ctx.receive_response(0, _reply(sends[0], 302, Contact="<sip:bob@elsewhere.org>"), 1.0)
    )
    assert final[0].status == 302 and len(ctx._branches) == 1


def test_needs_targets() -> None:
    with pytest.raises(LocalSipError):
        ResponseContext(_invite(), [])


def test_branch_that_loops_back_is_detected() -> None:
    """The copy we forwarded, received again with our Via in it, is a loop (§16.3 item 4)."""
    ctx = _ctx([A])
    (send,) = _sent(ctx.start(0.0))
    returned = send.request.copy()
    returned.headers.prepend("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch={send.branch}")
    returned.headers.prepend("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnexthop")
    policy = ValidationPolicy(own_addresses=frozenset({"192.0.2.10:5060"}))
    assert validate_request(returned, policy) == Reply(482, "Loop Detected")
    returned.uri = "sip:bob@10.0.0.99"  # retargeted downstream: a spiral
    assert validate_request(returned, policy) is None


def test_failover_only_on_listed_statuses() -> None:
    first, second = Target("sip:ms@10.0.0.1", q=1.0), Target("sip:ms@10.0.0.2", q=0.5)
    ctx = _ctx([first, second], failover=frozenset({408, 503}))  # type: ignore[arg-type]
    sends = _sent(ctx.start(0.0))
    later = _sent(ctx.receive_response(0, _reply(sends[0], 503), 1.0))
    assert [s.target for s in later] == [second]  # 503: fail over
    final = _upstream(ctx.receive_response(1, _reply(later[0], 486), 2.0))
    assert [r.status for r in final] == [486]
    ctx2 = _ctx([first, second], failover=frozenset({408, 503}))  # type: ignore[arg-type]
    sends = _sent(ctx2.start(0.0))
    final = _upstream(ctx2.receive_response(0, _reply(sends[0], 486), 1.0))
    assert [r.status for r in final] == [486]  # busy is an answer: no failover
    ctx3 = _ctx([first, second], failover=frozenset({408, 503}))  # type: ignore[arg-type]
    _sent(ctx3.start(0.0))
    later = _sent(ctx3.branch_failed(0, 408, 32.0))  # transaction timeout
    assert [s.target for s in later] == [second]


_EVENT = st.tuples(
    st.integers(min_value=0, max_value=2),
    st.sampled_from([100, 180, 183, 200, 302, 404, 408, 486, 487, 503, 603, 0, -1, -2]),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_EVENT, max_size=25), st.booleans())
def test_response_context_invariants(events: list[tuple[int, int]], sequential: bool) -> None:
    """Whatever the branches answer: one final non-2xx upstream at most, never after a
    final, 1xx only before it, and once every branch is done, a final was sent."""
    targets = [A, B, C] if sequential else [A, B, Target("sip:bob@10.0.0.3")]
    ctx = _ctx(targets)
    sends = {s.index: s for s in _sent(ctx.start(0.0))}
    now = 0.0
    finals: list[int] = []
    for index, code in events:
        now += 1.0
        if index not in sends:
            continue
        if code == 0:
            actions = ctx.branch_failed(index, 408, now)
        elif code == -1:
            actions = ctx.cancel(now)
        elif code == -2:
            actions = ctx.handle_timer(now + TIMER_C)
        else:
            actions = ctx.receive_response(index, _reply(sends[index], code), now)
        sends.update({s.index: s for s in _sent(actions)})
        for response in _upstream(actions):
            if response.status < 200:
                assert not finals, "provisional after a final"
            elif response.status >= 300:
                assert not finals, "a second final response"
                finals.append(response.status)
            else:
                assert all(200 <= f < 300 for f in finals), "2xx after a failure"
                finals.append(response.status)
            assert response.via[0].branch == "z9hG4bKupstream"
    # Finish every branch still open: a final must then have gone upstream.
    for index in list(sends):
        if ctx.branch_state(index) is not BranchState.COMPLETED:
            actions = ctx.receive_response(index, _reply(sends[index], 487), now + 1)
            finals.extend(r.status for r in _upstream(actions) if r.status >= 200)
            for send in _sent(actions):
                sends[send.index] = send
    for index in list(sends):
        if ctx.branch_state(index) is not BranchState.COMPLETED:
            actions = ctx.receive_response(index, _reply(sends[index], 480), now + 2)
            finals.extend(r.status for r in _upstream(actions) if r.status >= 200)
    assert finals and ctx.final_sent
    assert len([f for f in finals if f >= 300]) <= 1


def test_3xx_recursion_when_enabled() -> None:
    ctx = _ctx([A, B], recurse_3xx=True, max_branches=3)
    sends = _sent(ctx.start(0.0))
    redirect = _reply(
        sends[0],
        302,
        Contact="<sip:bob@10.0.0.2>, <sip:bob@mobile.example.net>;q=0.7, <sip:bob@x.example>",
    )
    actions = ctx.receive_response(0, redirect, 1.0)
    new = _sent(actions)  # B is already a target; the branch limit stops at three
    assert [s.target.uri for s in new] == ["sip:bob@mobile.example.net"]
    assert new[0].target.q == 0.7 and new[0].request.uri_text == "sip:bob@mobile.example.net"
    assert _upstream(ctx.receive_response(1, _reply(sends[1], 486), 2.0)) == []
    final = _upstream(ctx.receive_response(2, _reply(new[0], 404), 3.0))
    assert [r.status for r in final] == [486]  # the 302 is no candidate once recursed
