"""Calls between Trunkline and SIPp's built-in scenarios, over UDP and TCP, with loss.

SIPp (Debian ``sip-tester``) is the reference load generator for SIP. Its
``uac`` scenario is INVITE / 100 / 180 / 200 / ACK / pause / BYE / 200, its
``uas`` scenario answers 180 / 200 and then BYE with 200. With ``-lost 10``
SIPp drops 10% of the messages it sends and receives: every call must still
complete through retransmissions alone (RFC 3261 §17 timers on our side,
§13.3.1.4 2xx retransmission, SIPp's own retransmissions on its side).
Success is read from SIPp's exit code and its ``-trace_stat`` counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.peers import free_port
from tests.support.sipp import run_sipp, sipp_args, uac_args, wait_bound

from trunkline.sip.aio.calls import Call, CallFailedError, CallManager, IncomingCall
from trunkline.sip.aio.endpoint import SipEndpoint
from trunkline.sip.aio.routing import Destination

pytestmark = pytest.mark.interop

LOSSY_UAS = (
    Path(__file__).resolve().parent.parent / "data" / "sipp" / "calls" / "uas_invite_retrans.xml"
)

SDP = (
    b"v=0\r\no=trunkline 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


async def bind_udp_and_tcp(endpoint: SipEndpoint) -> int:
    """Listen on one port for both UDP and TCP (SIPp dials one port)."""
    for _ in range(20):
        port = free_port()
        try:
            await endpoint.listen("UDP", "127.0.0.1", port)
            await endpoint.listen("TCP", "127.0.0.1", port)
        except OSError:
            continue
        return port
    raise RuntimeError("no port free for UDP and TCP")


class Answering:
    """The small UAS app: 180, then 200 with SDP; counts calls ended by BYE."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.calls = CallManager(endpoint)
        self.calls.on_invite = self.on_invite
        self.calls.on_call_ended = self.ended
        self.answered = 0
        self.finished = 0

    async def on_invite(self, incoming: IncomingCall) -> None:
        incoming.ring()
        if incoming.answer(SDP) is not None:
            self.answered += 1

    def ended(self, call: Call) -> None:
        self.finished += 1


@pytest.fixture
async def endpoint() -> AsyncIterator[SipEndpoint]:
    ep = SipEndpoint()
    try:
        yield ep
    finally:
        await ep.close()


SIPP_TRANSPORTS = [("u1", "UDP"), ("t1", "TCP"), ("tn", "TCP")]


@pytest.mark.parametrize(("mode", "lost"), [("u1", 0), ("t1", 0), ("tn", 0), ("u1", 10)])
async def test_sipp_uac_calls_trunkline_uas(
    endpoint: SipEndpoint, tmp_path: Path, mode: str, lost: int
) -> None:
    port = await bind_udp_and_tcp(endpoint)
    app = Answering(endpoint)
    calls = 30 if lost else 20
    args = uac_args(port, mode=mode, calls=calls, limit=10, timeout=80, max_retrans=10, lost=lost)
    result = await run_sipp(args, tmp_path, timeout=100)
    assert result.returncode == 0, result.output
    assert (result.successful, result.failed) == (calls, 0), result.output
    assert app.answered == calls
    if lost:  # the loss really happened and was repaired by retransmissions
        assert result.retransmissions > 0, result.output
    # SIPp's uac takes any 200 as the answer to its BYE; when its ACK and BYE
    # were both dropped, our 2xx retransmission "answers" the BYE for it, and our
    # side ends that call only after 64*T1 without ACK (§13.3.1.4): allow for it.
    async with asyncio.timeout(45):
        while app.finished < calls:
            await asyncio.sleep(0.05)
    app.calls.close()


@pytest.mark.parametrize(
    ("mode", "transport", "lost"), [("u1", "UDP", 0), ("t1", "TCP", 0), ("u1", "UDP", 10)]
)
async def test_trunkline_uac_calls_sipp_uas(
    endpoint: SipEndpoint, tmp_path: Path, mode: str, transport: str, lost: int
) -> None:
    await bind_udp_and_tcp(endpoint)
    manager = CallManager(endpoint)
    sipp_port = free_port()
    calls = 10
    # With -lost, SIPp's built-in uas aborts a call when it dropped its 180 and 200
    # and our INVITE retransmission arrives before its own 200 retransmission
    # ("Aborting call on unexpected message ... while expecting 'ACK'", 2 runs in 18):
    # the same scenario, answering a retransmitted INVITE with the 200 again, is used.
    scenario = ["-sf", str(LOSSY_UAS)] if lost else ["-sn", "uas"]
    args = sipp_args(
        *scenario, port=sipp_port, mode=mode, calls=calls, timeout=80, max_retrans=10, lost=lost
    )
    sipp = asyncio.ensure_future(run_sipp(args, tmp_path, timeout=100))
    destination = Destination(transport, "127.0.0.1", sipp_port)

    async def one_call(n: int) -> int:
        try:
            call = await manager.invite(
                f"sip:service@127.0.0.1:{sipp_port};transport={transport.lower()}",
                from_=f"<sip:caller{n}@127.0.0.1>",
                to="<sip:service@127.0.0.1>",
                body=SDP,
                destination=destination,
                transport=transport,
            )
        except CallFailedError as exc:
            return exc.response.status
        response = await call.bye()
        return response.status

    try:
        await wait_bound(sipp_port, transport, sipp)
        # One call after another, as a phone would: SIPp 3.6's uas mishandles
        # retransmitted INVITEs of simultaneous calls when it drops packets itself.
        async with asyncio.timeout(90):
            statuses = [await one_call(n) for n in range(calls)]
        if statuses != [200] * calls:
            sipp.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sipp
    finally:
        if not sipp.done():
            sipp.cancel()
            with contextlib.suppress(BaseException):
                await sipp
        manager.close()
    sipp_errors = "".join(p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("errors-*"))
    assert statuses == [200] * calls, sipp_errors
    result = sipp.result()
    assert result.returncode == 0, result.output
    assert (result.successful, result.failed) == (calls, 0), result.output


async def flood_udp(port: int, rounds: int) -> int:
    """Malformed datagrams: binary noise, truncated and lying SIP, oversize."""
    junk = [
        b"\x00\xff\xfe" * 100,
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP\r\nContent-Length: 99999\r\n\r\n",
        b"SIP/2.0 200\r\nCSeq: x\r\n\r\n",
        b"OPTIONS sip:a SIP/7.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\n\r\n",
        b"BYE " + b"A" * 60000 + b" SIP/2.0\r\n\r\n",
        b"\r\n\r\n",
    ]
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(rounds):
            for datagram in junk:
                s.sendto(datagram, ("127.0.0.1", port))
                sent += 1
            await asyncio.sleep(0.005)
    return sent


async def half_open_connections(port: int, count: int) -> list[asyncio.StreamWriter]:
    """TCP connections that stop mid-message, half-close, or send garbage."""
    writers: list[asyncio.StreamWriter] = []
    for n in range(count):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        kind = n % 4
        if kind == 0:
            writer.write(b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0")
        elif kind == 1:
            writer.write(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: -4\r\n\r\n")
        elif kind == 2:
            writer.write(b"REGISTER sip:a SIP/2.0\r\nContent-Length: 500\r\n\r\nshort body")
            writer.write_eof()
        writers.append(writer)  # kind 3: connected, silent
        await asyncio.sleep(0.01)
    return writers


@pytest.mark.parametrize("mode", ["u1", "t1"])
async def test_calls_survive_malformed_flood(
    endpoint: SipEndpoint, tmp_path: Path, mode: str
) -> None:
    port = await bind_udp_and_tcp(endpoint)
    app = Answering(endpoint)
    calls = 20
    args = uac_args(port, mode=mode, calls=calls, timeout=60)
    writers: list[asyncio.StreamWriter] = []
    try:
        sipp = asyncio.ensure_future(run_sipp(args, tmp_path, timeout=80))
        flooded, writers = await asyncio.gather(
            flood_udp(port, 150), half_open_connections(port, 40)
        )
        result = await sipp
    finally:
        for writer in writers:
            writer.close()
    assert result.returncode == 0, result.output
    assert (result.successful, result.failed) == (calls, 0), result.output
    assert app.answered == calls
    assert flooded == 150 * 7
    assert endpoint.stats.malformed >= 150 * 5  # every non-keep-alive datagram, minus none
    app.calls.close()
