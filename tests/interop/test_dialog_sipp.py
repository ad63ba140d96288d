"""SIPp against the bare sans-IO transaction + dialog layers (RFC 3261 §12-§17).

No endpoint, no call manager: a thirty-line asyncio UDP driver feeds the two
layers and sends what they return, so what SIPp sees is exactly their
behaviour. SIPp's built-in ``uac`` (INVITE / 180 / 200 / ACK / BYE) calls our
UAS core; our UAC core calls SIPp's built-in ``uas``. With ``-lost 10``
SIPp drops a tenth of all messages both ways, and the calls must still
complete on retransmissions: our Timer A/E/G, the §13.3.1.4 2xx
retransmission and the re-ACK of each 2xx copy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.support.peers import free_port
from tests.support.sipp import SippResult, run_sipp, sipp_args, uac_args, wait_bound

from trunkline.sip.builder import make_request, make_response
from trunkline.sip.dialog import Dialog, DialogState
from trunkline.sip.dialog_table import DialogLayer
from trunkline.sip.errors import SipParseError
from trunkline.sip.events import (
    DialogStateChanged,
    Peer,
    RequestReceived,
    ResponseReceived,
    SendRequest,
)
from trunkline.sip.headers import Via
from trunkline.sip.message import Request, parse_message
from trunkline.sip.transaction_table import TransactionLayer

pytestmark = pytest.mark.interop

SDP = (
    b"v=0\r\no=trunkline 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


class Core(asyncio.DatagramProtocol):
    """A UA core on UDP: both layers, one socket, one timer."""

    def __init__(self, port: int, remote: Peer) -> None:
        self.loop = asyncio.get_running_loop()
        self.port = port
        self.remote = remote
        self.txns = TransactionLayer()
        self.dialogs = DialogLayer(local_via=Via("UDP", "127.0.0.1", port, {"rport": None}))
        self.transport: asyncio.DatagramTransport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.answered = 0
        self.ended = 0
        self.confirmed: list[Dialog] = []
        self.bye_ok = 0
        self.trace: list[str] = []

    @property
    def contact(self) -> str:
        return f"<sip:trunkline@127.0.0.1:{self.port}>"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip():
            return
        try:
            msg = parse_message(data)
        except SipParseError:
            return
        now = self.loop.time()
        self.trace.append(f"{now:.2f} <- {first_line(data)} {msg.cseq}")
        if isinstance(msg, Request):
            self.txns.receive_request(msg, Peer("udp", addr[0], addr[1]), now)
        else:
            self.txns.receive_response(msg, now)
        self.pump()

    def send(self, request: Request) -> None:
        self.dialogs.request_sent(request, self.loop.time())
        self.txns.send_request(request, self.remote, self.loop.time())
        self.pump()

    def respond(self, request: Request, status: int, *, body: bytes = b"") -> None:
        txn = self.txns.find_server(request)
        assert txn is not None
        response = make_response(
            request,
            status,
            to_tag="trunkline1",
            headers=[("Contact", self.contact)] if request.method == "INVITE" else [],
            body=body,
            content_type="application/sdp" if body else None,
        )
        self.txns.send_response(txn, response, self.loop.time())
        self.dialogs.response_sent(request, response, self.loop.time(), txn.peer)

    def on_request(self, request: Request) -> None:
        verdict = self.dialogs.request_received(request, self.loop.time())
        if request.method == "ACK":
            return
        if verdict.status is not None:
            self.respond(request, verdict.status)
        elif request.method == "INVITE":
            self.respond(request, 180)
            self.respond(request, 200, body=SDP)
            self.answered += 1
        else:
            self.respond(request, 200)
            if request.method == "BYE":
                self.ended += 1

    def pump(self) -> None:
        assert self.transport is not None
        for _ in range(100):
            events = self.txns.drain_events() + self.dialogs.drain_events()
            for event in events:
                if isinstance(event, RequestReceived):
                    self.on_request(event.request)
                elif isinstance(event, ResponseReceived):
                    self.dialogs.response_received(event.response, self.loop.time())
                    if event.response.cseq.method == "BYE" and event.response.status == 200:
                        self.bye_ok += 1
                elif isinstance(event, SendRequest):
                    self.send(event.request)
                elif isinstance(event, DialogStateChanged) and event.state is DialogState.CONFIRMED:
                    self.confirmed.append(event.dialog)
            transmits = self.txns.drain_transmits() + self.dialogs.drain_transmits()
            for out in transmits:
                peer = out.peer or self.remote  # peer None: route by the request (SIPp's Contact)
                data = bytes(out.message)
                self.trace.append(
                    f"{self.loop.time():.2f} -> {first_line(data)} {out.message.cseq}"
                )
                self.transport.sendto(data, (peer.host, peer.port))
            if not events and not transmits:
                break
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        deadlines = [t for t in (self.txns.get_timer(), self.dialogs.get_timer()) if t is not None]
        if deadlines:
            self.timer = self.loop.call_at(min(deadlines), self.on_timer)

    def on_timer(self) -> None:
        self.timer = None
        now = self.loop.time()
        self.txns.handle_timer(now)
        self.dialogs.handle_timer(now)
        self.pump()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None:
            self.transport.close()


async def start_core(remote: Peer) -> Core:
    loop = asyncio.get_running_loop()
    for _ in range(20):
        port = free_port()
        try:
            _, core = await loop.create_datagram_endpoint(
                lambda port=port: Core(port, remote),  # type: ignore[misc]
                local_addr=("127.0.0.1", port),
            )
        except OSError:
            continue
        assert isinstance(core, Core)
        return core
    raise RuntimeError("no free UDP port")


async def wait_for(
    count: Callable[[], int], target: int, core: Core, sipp: asyncio.Task[SippResult]
) -> None:
    """Wait up to 40 s for ``count()`` to reach ``target``; else fail with the trace."""
    for _ in range(2000):
        if count() >= target:
            return
        if sipp.done():
            break
        await asyncio.sleep(0.02)
    ended = f"SIPp ended: {sipp.result().output}" if sipp.done() else "SIPp still running"
    pytest.fail(ended + "\n" + "\n".join(core.trace[-60:]))


@pytest.mark.parametrize("lost", [0, 10])
async def test_sipp_uac_calls_our_uas_core(tmp_path: Path, lost: int) -> None:
    sipp_port = free_port()
    core = await start_core(Peer("udp", "127.0.0.1", sipp_port))
    calls = 10
    try:
        args = uac_args(
            core.port, port=sipp_port, calls=calls, timeout=60, max_retrans=10, lost=lost
        )
        result = await run_sipp(args, tmp_path, timeout=80)
        assert result.returncode == 0, result.output
        assert core.answered == calls
        # SIPp exits on the 200 to its last BYE; with loss our side may still be
        # finishing that BYE, so wait (bounded) for the core to see every call end.
        for _ in range(200):
            if core.ended >= calls and not len(core.dialogs):
                break
            await asyncio.sleep(0.05)
        assert core.ended == calls, "\n".join(core.trace[-60:])
        assert not len(core.dialogs)
    finally:
        core.close()


@pytest.mark.parametrize("lost", [0, 10])
async def test_our_uac_core_calls_sipp_uas(tmp_path: Path, lost: int) -> None:
    sipp_port = free_port()
    core = await start_core(Peer("udp", "127.0.0.1", sipp_port))
    calls = 5
    args = sipp_args(
        *("-sn", "uas"), port=sipp_port, calls=calls, timeout=60, max_retrans=10, lost=lost
    )
    sipp = asyncio.create_task(run_sipp(args, tmp_path, timeout=80))
    try:
        await wait_bound(sipp_port, "UDP", sipp)
        for i in range(calls):
            invite = make_request(
                "INVITE",
                f"sip:service@127.0.0.1:{sipp_port}",
                from_="<sip:trunkline@127.0.0.1>",
                to=f"<sip:service@127.0.0.1:{sipp_port}>",
                via=core.dialogs.local_via,
                contact=core.contact,
                body=SDP,
                content_type="application/sdp",
            )
            core.send(invite)
            await wait_for(lambda: len(core.confirmed), i + 1, core, sipp)
            dialog = core.confirmed[i]
            await asyncio.sleep(0.1)
            core.send(dialog.create_request("BYE", via=core.dialogs.local_via))
            await wait_for(lambda: core.bye_ok, i + 1, core, sipp)
        result = await sipp
        assert result.returncode == 0, result.output
        assert len(core.confirmed) == calls and core.bye_ok == calls
        assert len(core.dialogs) == 0
    finally:
        sipp.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sipp
        core.close()
