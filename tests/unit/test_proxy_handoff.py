"""ResponseHandoff: a response that reaches the wrong worker is handed to its owner."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest

from trunkline.proxy.handoff import ResponseHandoff, branch_owner, worker_suffix
from trunkline.proxy.validation import loop_branch
from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint
from trunkline.sip.builder import (
    branch_suffix,
    make_request,
    make_response,
    new_branch,
    set_branch_suffix,
)
from trunkline.sip.message import Request, Response, parse_message
from trunkline.sip.timers import TimerConfig

FAST = TimerConfig(t1=0.05, t2=0.2, t4=0.2, timer_d=0.2, trying_delay=0.05)


@pytest.fixture
def suffix() -> Iterator[None]:
    """Branch suffixes are per process: put the default back after the test."""
    before = branch_suffix()
    try:
        yield
    finally:
        set_branch_suffix(before)


def _response(*branches: str) -> bytes:
    vias = "".join(f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={b};rport=5\r\n" for b in branches)
    return (
        f"SIP/2.0 200 OK\r\n{vias}From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n"
        "Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_the_owner_is_the_suffix_of_the_top_via_branch() -> None:
    assert worker_suffix(3) == ".w3"
    assert branch_owner(_response("z9hG4bKtl0123.abcd.w1")) == 1
    assert branch_owner(_response("z9hG4bK99.w12", "z9hG4bK5.w0")) == 12
    assert branch_owner(_response("z9hG4bKabc", "z9hG4bK5.w0")) is None  # not ours on top
    assert branch_owner(_response("z9hG4bK.w1x")) is None
    assert branch_owner(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK.w2,x\r\n") == 2
    assert branch_owner(b"SIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\n") is None
    request = b"BYE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa.w1\r\n\r\n"
    assert branch_owner(request) is None  # requests are never handed off


def test_branches_end_with_the_worker_suffix(suffix: None) -> None:
    del suffix
    request = make_request("OPTIONS", "sip:bob@127.0.0.1", from_="<sip:a@x>", to="<sip:b@x>")
    assert not new_branch().endswith(".w1")
    set_branch_suffix(worker_suffix(1))
    assert new_branch().endswith(".w1") and new_branch() != new_branch()
    branch = loop_branch(request)
    assert branch.startswith("z9hG4bKtl") and branch.endswith(".w1")
    assert branch_owner(_response(branch)) == 1


def _handoffs(count: int) -> tuple[list[ResponseHandoff], list[socket.socket]]:
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count)]
    handoffs = [
        ResponseHandoff(
            index,
            pairs[index][0].fileno(),
            tuple(-1 if i == index else w.fileno() for i, (_, w) in enumerate(pairs)),
        )
        for index in range(count)
    ]
    return handoffs, [sock for pair in pairs for sock in pair]


async def test_a_response_on_the_wrong_worker_completes_the_owners_transaction(
    suffix: None,
) -> None:
    del suffix
    workers = [SipEndpoint(timers=FAST), SipEndpoint(timers=FAST)]
    handoffs, sockets = _handoffs(2)
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))
    phone.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        listeners = [await worker.listen("UDP", "127.0.0.1", 0) for worker in workers]
        for worker, handoff in zip(workers, handoffs, strict=True):
            handoff.start(worker.transport.deliver_datagram)
            worker.transport.steer_datagram = handoff.steer
        # Worker 1 sends the request: its branch names it.
        set_branch_suffix(worker_suffix(1))
        port = phone.getsockname()[1]
        request = make_request(
            "OPTIONS", f"sip:bob@127.0.0.1:{port}", from_="<sip:a@x>", to="<sip:b@x>"
        )
        pending = asyncio.ensure_future(workers[1].send_request(request))
        data = await asyncio.wait_for(loop.sock_recv(phone, 65535), 5)
        received = parse_message(data)
        assert isinstance(received, Request)
        assert received.via[0].branch is not None and received.via[0].branch.endswith(".w1")
        # The kernel gives the phone's answer to worker 0.
        answer = make_response(received, 200, to_tag="t")
        phone.sendto(bytes(answer), ("127.0.0.1", listeners[0].port))
        response = await asyncio.wait_for(pending, 5)
        assert response.status == 200
        assert (handoffs[0].handed, handoffs[1].received, handoffs[0].dropped) == (1, 1, 0)

        # A response owned by the worker it reaches, and a request, stay where they are.
        set_branch_suffix(worker_suffix(0))
        request = make_request(
            "OPTIONS", f"sip:bob@127.0.0.1:{port}", from_="<sip:a@x>", to="<sip:b@x>"
        )
        pending = asyncio.ensure_future(workers[0].send_request(request))
        received = parse_message(await asyncio.wait_for(loop.sock_recv(phone, 65535), 5))
        assert isinstance(received, Request)
        phone.sendto(bytes(make_response(received, 200)), ("127.0.0.1", listeners[0].port))
        assert (await asyncio.wait_for(pending, 5)).status == 200
        assert (handoffs[0].handed, handoffs[1].received) == (1, 1)
        assert not handoffs[0].steer(bytes(received), ("127.0.0.1", port), listeners[0].address)
    finally:
        for handoff in handoffs:
            handoff.close()
        for worker in workers:
            await worker.close()
        for sock in (phone, *sockets):
            sock.close()


async def test_a_worker_that_does_not_read_loses_the_response_like_the_network() -> None:
    handoffs, sockets = _handoffs(2)
    try:
        data = _response("z9hG4bKx.w1")
        sent = 0
        while handoffs[0].dropped == 0 and sent < 100_000:  # worker 1 never reads
            assert handoffs[0].steer(data, ("127.0.0.1", 5), ("127.0.0.1", 6))
            sent += 1
        assert handoffs[0].dropped == 1 and handoffs[0].handed == sent - 1 > 100
        assert not handoffs[0].steer(_response("z9hG4bKx.w7"), ("h", 1), ("h", 2))  # no such worker
    finally:
        for handoff in handoffs:
            handoff.close()
        for sock in sockets:
            sock.close()


def _holder(endpoint: SipEndpoint) -> Callable[[bytes], bool | None]:
    """What the server gives ``ResponseHandoff.start``: is the CANCELled INVITE here?"""

    def holds(data: bytes) -> bool | None:
        message = parse_message(data)
        if not isinstance(message, Request) or message.method != "CANCEL":
            return None
        return endpoint.transactions.find_cancelled(message) is not None

    return holds


async def test_a_cancel_from_another_port_reaches_the_worker_holding_the_invite() -> None:
    workers = [SipEndpoint(timers=FAST), SipEndpoint(timers=FAST)]
    handoffs, sockets = _handoffs(2)
    phone = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    loop = asyncio.get_running_loop()
    invites: list[IncomingRequest] = []

    def ring(incoming: IncomingRequest) -> None:
        invites.append(incoming)
        incoming.respond(180, "Ringing", to_tag="callee")

    try:
        for sock in phone:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
        listeners = [await worker.listen("UDP", "127.0.0.1", 0) for worker in workers]
        for worker, handoff in zip(workers, handoffs, strict=True):
            handoff.start(worker.transport.deliver_datagram, _holder(worker))
            worker.transport.steer_datagram = handoff.steer
            worker.on_request = ring
        port = phone[0].getsockname()[1]
        invite = make_request(
            "INVITE",
            f"sip:bob@127.0.0.1:{listeners[1].port}",
            from_="<sip:a@x>",
            to="<sip:b@x>",
            via=f"SIP/2.0/UDP 127.0.0.1:{port};branch={new_branch()};rport",
            contact=f"<sip:a@127.0.0.1:{port}>",
        )
        phone[0].sendto(bytes(invite), ("127.0.0.1", listeners[1].port))  # worker 1 has it
        ringing = parse_message(await asyncio.wait_for(loop.sock_recv(phone[0], 65535), 5))
        assert isinstance(ringing, Response) and ringing.status == 180

        # The same CANCEL (§9.1: the INVITE's Via) from another port, on worker 0.
        cancel = make_request(
            "CANCEL",
            invite.uri,
            from_=invite.headers.get("From") or "",
            to="<sip:b@x>",
            call_id=invite.call_id,
            via=invite.headers.get("Via"),
        )
        phone[1].sendto(bytes(cancel), ("127.0.0.1", listeners[0].port))
        ok = parse_message(await asyncio.wait_for(loop.sock_recv(phone[1], 65535), 5))
        assert isinstance(ok, Response) and (ok.status, ok.cseq.method) == (200, "CANCEL")
        final = parse_message(await asyncio.wait_for(loop.sock_recv(phone[0], 65535), 5))
        assert isinstance(final, Response) and (final.status, final.cseq.method) == (487, "INVITE")
        assert (handoffs[0].cancels_offered, handoffs[1].cancels_taken) == (1, 1)
        assert len(invites) == 1  # the CANCEL went to no handler

        # A CANCEL nobody holds the INVITE of: offered, dropped everywhere, never 481.
        stray = make_request(
            "CANCEL",
            invite.uri,
            from_="<sip:a@x>",
            to="<sip:b@x>",
            via=f"SIP/2.0/UDP 127.0.0.1:{port};branch={new_branch()};rport",
        )
        phone[1].sendto(bytes(stray), ("127.0.0.1", listeners[0].port))
        for _ in range(100):  # at most 1 s
            if handoffs[0].cancels_offered == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert handoffs[0].cancels_offered == 2 and handoffs[1].cancels_taken == 1
        with pytest.raises(BlockingIOError):
            phone[1].recv(65535)
    finally:
        for handoff in handoffs:
            handoff.close()
        for worker in workers:
            await worker.close()
        for sock in (*phone, *sockets):
            sock.close()
