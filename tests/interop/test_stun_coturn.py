"""STUN Binding (RFC 5389) against a real coturn ``turnserver`` on loopback.

coturn runs STUN-only (``-S``) on a free port; with no NAT on loopback the
reflexive address it reports must be exactly the probed socket's own
address: the fresh socket of :func:`discover`, the phone's SIP socket
(Contact) and each call's RTP socket (SDP), and a call between two phones
that both use it carries audio both ways.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.peers import free_port, require_peer

from trunkline.sip.sdp import SessionDescription
from trunkline.ua.call import CallConfig, CallState
from trunkline.ua.nat import discover
from trunkline.ua.phone import IncomingCall, Phone, PhoneConfig
from trunkline.ua.stun import BindingTransaction, StunMessage

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    binary = require_peer("turnserver", "coturn")
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("coturn")
    process = subprocess.Popen(
        [
            binary,
            "-n",  # no configuration file
            "--stun-only",
            "--listening-ip", "127.0.0.1",
            "--listening-port", str(port),
            "--no-tls", "--no-dtls", "--no-cli",
            "--no-rfc5780", "--no-stun-backward-compatibility",
            "--fingerprint",
            "--pidfile", str(workdir / "turnserver.pid"),
            "--log-file", str(workdir / "turnserver.log"),
            "--simple-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
    )  # fmt: skip
    try:
        _wait_for_binding(("127.0.0.1", port), deadline=time.monotonic() + 10)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_for_binding(server: tuple[str, int], deadline: float) -> None:
    """Until coturn answers a Binding request (bounded by ``deadline``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            txn = BindingTransaction(0.0)
            for datagram in txn.datagrams_to_send():
                sock.sendto(datagram, server)
            try:
                data = sock.recv(2048)
            except OSError:
                continue
            if txn.handle_datagram(data, 0.0):
                return
    raise AssertionError("coturn did not answer STUN in time")


async def test_coturn_reports_the_socket_address(coturn: tuple[str, int]) -> None:
    local, mapped = await asyncio.wait_for(discover(coturn, local=("127.0.0.1", 0)), 10)
    assert mapped == local


async def test_coturn_response_is_rfc5389(coturn: tuple[str, int]) -> None:
    """The response carries XOR-MAPPED-ADDRESS and a valid FINGERPRINT (parse checks it)."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        local = sock.getsockname()[:2]
        txn = BindingTransaction(loop.time())
        (datagram,) = txn.datagrams_to_send()
        await loop.sock_sendto(sock, datagram, coturn)
        data = await asyncio.wait_for(loop.sock_recv(sock, 2048), 5)
    response = StunMessage.parse(data)
    assert response.get(0x8028) is not None  # FINGERPRINT (coturn runs with --fingerprint)
    assert txn.handle_datagram(data, loop.time())
    assert txn.mapped == local


async def test_two_stun_phones_call_with_audio(coturn: tuple[str, int]) -> None:
    server = f"{coturn[0]}:{coturn[1]}"
    config = CallConfig(no_answer_timeout=None)
    alice = await Phone.start(PhoneConfig(user="alice", stun_server=server, call=config))
    bob = await Phone.start(
        PhoneConfig(user="bob", stun_server=server, call=config, auto_answer=True)
    )
    try:
        for phone in (alice, bob):
            assert phone.stun_error is None
            assert phone.public_address == phone.local_address
            assert phone.call_config.stun_server == coturn
        host, port = bob.local_address
        call = alice.call(f"sip:bob@{host}:{port}")
        call.play(tone=440.0)
        assert call.dial_task is not None
        assert await asyncio.wait_for(call.dial_task, 15) is None
        incoming = None
        while not bob.events.empty():
            event = bob.events.get_nowait()
            if isinstance(event, IncomingCall):
                incoming = event.call
        assert incoming is not None and incoming.incoming_request is not None
        offer = SessionDescription.parse(incoming.incoming_request.request.body)
        media = call.media
        assert media is not None
        assert f"m=audio {media.local_address[1]} " in bytes(offer).decode()
        incoming.play(tone=660.0)
        await asyncio.sleep(1.0)
        assert incoming.media is not None
        assert media.stats().packets_received > 10
        assert incoming.media.stats().packets_received > 10
        await call.hangup()
        assert call.state is CallState.ENDED
    finally:
        await alice.close(unregister=False)
        await bob.close(unregister=False)
