"""Two Trunkline phones register at Kamailio with digest auth over TCP and over
TLS (our listener with a dev certificate, Kamailio's checked against its own)
and call each other through it; each hears the other's tone."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import audio
from tests.support.kamailio import Kamailio
from tests.support.peers import require_peer

from trunkline.sip.aio.tls import client_ssl_context, create_dev_certificates, server_ssl_context
from trunkline.ua.call import CallResult
from trunkline.ua.phone import IncomingCall, Phone, PhoneConfig
from trunkline.ua.registration import Registered

pytestmark = pytest.mark.interop

USERS = {name: f"{name}-{secrets.token_hex(4)}" for name in ("alice", "bob")}


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    binary = require_peer("kamailio", "kamailio")
    with Kamailio(tmp_path_factory.mktemp("kamailio"), USERS, tls=True, binary=binary) as kam:
        yield kam


async def registered(kam: Kamailio, config: PhoneConfig, registrar: str) -> Phone:
    phone = await Phone.start(config)
    aor = kam.aor(config.user)
    event = await phone.register(phone.account(aor, registrar=registrar))
    assert isinstance(event, Registered), event
    return phone


def peak(path: Path) -> float:
    samples, rate = audio.read_wav(path)
    return audio.dominant_frequency(audio.active_part(samples, rate), rate)


async def test_tcp_caller_tls_callee_through_kamailio(kamailio: Kamailio, tmp_path: Path) -> None:
    assert kamailio.cert is not None and kamailio.tls_port is not None
    certs = create_dev_certificates(tmp_path / "certs")
    alice = await registered(
        kamailio,
        PhoneConfig(user="alice", transport="tcp", password=USERS["alice"]),
        f"sip:127.0.0.1:{kamailio.port};transport=tcp",
    )
    bob = None
    try:
        bob = await registered(
            kamailio,
            PhoneConfig(
                user="bob",
                transport="tls",
                password=USERS["bob"],
                ssl_context=server_ssl_context(certs.cert, certs.key),
                client_ssl=client_ssl_context(kamailio.cert),
            ),
            f"sip:127.0.0.1:{kamailio.tls_port};transport=tls",
        )
        call = alice.call(f"sip:bob@127.0.0.1:{kamailio.port};transport=tcp")
        call.play(tone=500.0)
        call.record(tmp_path / "alice.wav")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        event = None
        while not isinstance(event, IncomingCall):
            event = await asyncio.wait_for(bob.events.get(), max(deadline - loop.time(), 0.01))
        incoming = event.call
        incoming.play(tone=900.0)
        incoming.record(tmp_path / "bob.wav")
        assert await incoming.answer()
        assert call.dial_task is not None
        assert await asyncio.wait_for(call.dial_task, 15) is None, call.reason
        await asyncio.sleep(2.0)
        await call.hangup()
        assert call.result is CallResult.COMPLETED and call.status == 200
        await asyncio.wait_for(incoming.ended.wait(), 10)
        assert abs(peak(tmp_path / "alice.wav") - 900.0) < 15
        assert abs(peak(tmp_path / "bob.wav") - 500.0) < 15
    finally:
        await alice.close()
        if bob is not None:
            await bob.close()
