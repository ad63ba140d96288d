"""CallManager: INVITE/ACK/BYE between two endpoints, 2xx retransmission, 481."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from trunkline.sip.aio.calls import Call, CallFailedError, CallManager, IncomingCall
from trunkline.sip.aio.endpoint import SipEndpoint
from trunkline.sip.builder import make_request
from trunkline.sip.message import Response, parse_message
from trunkline.sip.timers import TimerConfig

FAST = TimerConfig(t1=0.02, t2=0.08, t4=0.1, timer_d=0.2, trying_delay=0.05)
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SipEndpoint, SipEndpoint]]:
    a, b = SipEndpoint(timers=FAST), SipEndpoint(timers=FAST)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
async def test_call_answer_and_hang_up(
    pair: tuple[SipEndpoint, SipEndpoint], transport: str
) -> None:
    a, b = pair
    await a.listen(transport)
    listener = await b.listen(transport)
    caller, callee = CallManager(a), CallManager(b)
    answered: list[Call] = []

    async def pick_up(incoming: IncomingCall) -> None:
        incoming.ring()
        call = incoming.answer(SDP)
        assert call is not None
        answered.append(call)

    callee.on_invite = pick_up
    ringing: list[Response] = []
    uri = f"sip:bob@127.0.0.1:{listener.port};transport={transport.lower()}"
    call = await asyncio.wait_for(
        caller.invite(
            uri,
            from_="<sip:alice@127.0.0.1>",
            to="<sip:bob@127.0.0.1>",
            body=SDP,
            transport=transport,
            on_provisional=ringing.append,
        ),
        5,
    )
    assert [r.status for r in ringing] == [180]
    (theirs,) = answered
    await asyncio.wait_for(theirs.ack_received.wait(), 5)  # our ACK stopped their 2xx
    assert call.dialog.remote_tag == theirs.dialog.local_tag
    response = await asyncio.wait_for(call.bye(), 5)
    assert response.status == 200
    await asyncio.wait_for(theirs.ended.wait(), 5)
    assert caller.calls == [] and callee.calls == []


async def test_rejected_call_raises(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    a, b = pair
    await a.listen("UDP")
    listener = await b.listen("UDP")
    caller, callee = CallManager(a), CallManager(b)

    async def busy(incoming: IncomingCall) -> None:
        incoming.reject(486)

    callee.on_invite = busy
    with pytest.raises(CallFailedError) as failure:
        await asyncio.wait_for(
            caller.invite(
                f"sip:bob@127.0.0.1:{listener.port}",
                from_="<sip:a@127.0.0.1>",
                to="<sip:bob@127.0.0.1>",
            ),
            5,
        )
    assert failure.value.response.status == 486


async def test_2xx_retransmitted_until_ack_then_bye(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    """RFC 3261 §13.3.1.4: 2xx resent T1, 2T1 ... T2 until ACK; no ACK in 64*T1 -> BYE."""
    _, b = pair
    listener = await b.listen("UDP")
    callee = CallManager(b)

    async def pick_up(incoming: IncomingCall) -> None:
        incoming.answer(SDP)

    callee.on_invite = pick_up
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        raw.setblocking(False)
        port = raw.getsockname()[1]
        invite = make_request(
            "INVITE",
            f"sip:bob@127.0.0.1:{listener.port}",
            from_="<sip:a@127.0.0.1>",
            to="<sip:bob@127.0.0.1>",
            via=f"SIP/2.0/UDP 127.0.0.1:{port}",
            contact=f"<sip:a@127.0.0.1:{port}>",
            body=SDP,
            content_type="application/sdp",
        )
        raw.sendto(bytes(invite), ("127.0.0.1", listener.port))
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        async with asyncio.timeout(5):
            while not any(m.startswith(b"BYE ") for m in got):
                got.append(await loop.sock_recv(raw, 65536))
        oks = [m for m in got if m.startswith(b"SIP/2.0 200")]
        assert len(oks) >= 6  # the first 200 and its retransmissions over 64*T1 = 1.28 s
        bye = parse_message(got[-1])
        assert bye.call_id == invite.call_id and bye.cseq.method == "BYE"


async def test_unknown_dialog_gets_481(pair: tuple[SipEndpoint, SipEndpoint]) -> None:
    a, b = pair
    await a.listen("UDP")
    listener = await b.listen("UDP")
    CallManager(b)
    bye = make_request(
        "BYE",
        f"sip:bob@127.0.0.1:{listener.port}",
        from_="<sip:a@127.0.0.1>;tag=x1",
        to="<sip:bob@127.0.0.1>;tag=nosuchdialog",
    )
    response = await asyncio.wait_for(a.send_request(bye), 5)
    assert response.status == 481


async def test_ring_and_answer_copy_record_route_and_carry_contact(
    pair: tuple[SipEndpoint, SipEndpoint],
) -> None:
    """RFC 3261 §12.1.1: the 180 and the 200 copy every Record-Route in order, with a Contact."""
    _, b = pair
    listener = await b.listen("UDP")
    callee = CallManager(b)

    async def pick_up(incoming: IncomingCall) -> None:
        incoming.ring()
        incoming.answer(SDP)

    callee.on_invite = pick_up
    record_route = ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr;ftag=x>"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        raw.setblocking(False)
        port = raw.getsockname()[1]
        invite = make_request(
            "INVITE",
            f"sip:bob@127.0.0.1:{listener.port}",
            from_="<sip:a@127.0.0.1>",
            to="<sip:bob@127.0.0.1>",
            via=f"SIP/2.0/UDP 127.0.0.1:{port}",
            contact=f"<sip:a@127.0.0.1:{port}>",
            body=SDP,
            content_type="application/sdp",
            extra_headers=[("Record-Route", value) for value in record_route],
        )
        raw.sendto(bytes(invite), ("127.0.0.1", listener.port))
        loop = asyncio.get_running_loop()
        responses: dict[int, Response] = {}
        async with asyncio.timeout(5):
            while 200 not in responses:
                message = parse_message(await loop.sock_recv(raw, 65536))
                assert isinstance(message, Response)
                responses.setdefault(message.status, message)
    for status in (180, 200):
        response = responses[status]
        assert response.headers.get_all("Record-Route") == record_route
        contact = response.headers.get("Contact")
        assert contact is not None and f":{listener.port}" in contact
    assert responses[180].to_tag == responses[200].to_tag
