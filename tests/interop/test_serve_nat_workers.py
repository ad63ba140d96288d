"""Two ``trunkline serve`` workers reach a phone behind a port-restricted NAT.

A port-restricted cone NAT (RFC 4787 §4.1 "address and port-dependent
filtering") maps the phone to one public port and lets a packet in only
from an address and port the phone has sent to. The phone registers through
the shared SIP port, so that is the only server port its NAT opens: every
worker must send to it from that port. Before the workers sent from a port
of their own (the old design), the INVITE of a call taken by a worker came
from that worker's port and the NAT dropped it (the test's NAT drops
exactly that, checked at the start), so these calls could not complete.

Sixteen callers (sixteen sockets, spread by the kernel over both workers)
call the phone; its answers all come from one NAT port, so the kernel gives
them all to one worker, which must hand the other worker's responses to it
(``trunkline.proxy.handoff``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.server import running_server
from tests.support.udpphone import PortRestrictedNat, UdpPhone, call_through, register

pytestmark = pytest.mark.interop

DOMAIN = "127.0.0.1"
PASSWORD = "bob-behind-nat"
CALLS = 16


@pytest.fixture
def nat() -> Iterator[PortRestrictedNat]:
    relay = PortRestrictedNat()
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()


def test_two_workers_call_a_phone_behind_a_port_restricted_nat(
    tmp_path: Path, nat: PortRestrictedNat
) -> None:
    bob = UdpPhone(timeout=3.0, nat=nat)
    callers = [UdpPhone(timeout=3.0) for _ in range(CALLS)]
    config = (
        f'domains = ["{DOMAIN}"]\nworkers = 2\n[[users]]\nname = "bob"\npassword = "{PASSWORD}"\n'
    )
    try:
        with running_server(tmp_path, config=config, trusted=["127.0.0.0/8"]) as server:
            proxy = (server.host, server.sip_port)
            register(
                bob, proxy, user="bob", password=PASSWORD, domain=DOMAIN, call_id="bob-behind-nat"
            )
            assert nat.allowed == {proxy}

            # The NAT filters as a port-restricted one: a port Bob never sent to is dropped
            # (the old design's per-worker ports were such ports).
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.bind(("127.0.0.1", 0))
                other.sendto(b"OPTIONS sip:bob SIP/2.0\r\n\r\n", nat.public)
                with pytest.raises(TimeoutError):
                    bob.recv()
                assert nat.dropped == [other.getsockname()]

            workers = {
                call_through(alice, bob, proxy, DOMAIN, n) for n, alice in enumerate(callers)
            }
            assert workers == {0, 1}, workers  # both took calls: one needed the hand-off
            assert len(nat.dropped) == 1, nat.dropped  # nothing from the server was dropped
    finally:
        for phone in (bob, *callers):
            phone.close()
