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

import secrets
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.server import ServerProcess, running_server

from trunkline.proxy.handoff import branch_owner
from trunkline.sip.auth import DigestClient
from trunkline.sip.builder import make_request, make_response, new_branch
from trunkline.sip.message import Request, Response, parse_message

pytestmark = pytest.mark.interop

DOMAIN = "127.0.0.1"
PASSWORD = "bob-behind-nat"
PRIVATE = "192.168.77.20"  # the phone's own idea of its address (RFC 1918)
CALLS = 16

Address = tuple[str, int]


class PortRestrictedNat(threading.Thread):
    """A port-restricted cone NAT in front of one phone, as a UDP relay.

    The phone sends ``b"host port\\n" + payload`` to :attr:`inside`; the NAT
    sends the payload to ``host:port`` from its one public socket (the
    mapping) and remembers that address and port. A datagram reaching the
    public socket from anywhere else is dropped (and noted in
    :attr:`dropped`); an allowed one goes to the phone with its source in
    front, the same way.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.inside_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.inside_socket.bind(("127.0.0.1", 0))
        self.public_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.public_socket.bind(("127.0.0.1", 0))
        self.inside: Address = self.inside_socket.getsockname()
        self.public: Address = self.public_socket.getsockname()
        self.allowed: set[Address] = set()
        self.dropped: list[Address] = []
        self.phone: Address | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        sockets = [self.inside_socket, self.public_socket]
        while not self._halt.is_set():
            readable, _, _ = select.select(sockets, [], [], 0.1)
            for sock in readable:
                data, source = sock.recvfrom(65535)
                if sock is self.inside_socket:
                    self.phone = (source[0], source[1])
                    head, _, payload = data.partition(b"\n")
                    host, port = head.decode().split(" ")
                    destination = (host, int(port))
                    self.allowed.add(destination)
                    self.public_socket.sendto(payload, destination)
                elif (source[0], source[1]) in self.allowed and self.phone is not None:
                    head = f"{source[0]} {source[1]}\n".encode()
                    self.inside_socket.sendto(head + data, self.phone)
                else:
                    self.dropped.append((source[0], source[1]))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self.inside_socket.close()
        self.public_socket.close()


class Phone:
    """Bob behind the NAT: blocking, 3 s receive timeout, answers the NAT pings."""

    def __init__(self, nat: PortRestrictedNat) -> None:
        self.nat = nat
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3.0)

    def via(self) -> str:
        return f"SIP/2.0/UDP {PRIVATE}:5060;branch={new_branch()};rport"

    def send(self, message: Request | Response, to: Address) -> None:
        self.sock.sendto(f"{to[0]} {to[1]}\n".encode() + bytes(message), self.nat.inside)

    def recv(self) -> tuple[Request | Response, Address]:
        for _ in range(20):
            data, _ = self.sock.recvfrom(65535)
            head, _, payload = data.partition(b"\n")
            host, port = head.decode().split(" ")
            source = (host, int(port))
            message = parse_message(payload)
            if isinstance(message, Request) and message.method == "OPTIONS":
                self.send(make_response(message, 200), source)  # a keep-alive ping
                continue
            if not (isinstance(message, Response) and message.status == 100):
                return message, source
        raise AssertionError("only pings and 100 Trying")


class Caller:
    """A phone with a public address (no NAT)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3.0)
        self.port = int(self.sock.getsockname()[1])

    def via(self) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={new_branch()};rport"

    def send(self, message: Request, to: Address) -> None:
        self.sock.sendto(bytes(message), to)

    def recv(self) -> Response:
        for _ in range(10):
            message = parse_message(self.sock.recvfrom(65535)[0])
            if isinstance(message, Response) and message.status != 100:
                return message
        raise AssertionError("only 100 Trying")


@pytest.fixture
def nat() -> Iterator[PortRestrictedNat]:
    relay = PortRestrictedNat()
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()


def _register(bob: Phone, proxy: Address) -> None:
    digest = DigestClient("bob", PASSWORD)
    for cseq in (1, 2):
        request = make_request(
            "REGISTER",
            f"sip:{DOMAIN}",
            from_=f"<sip:bob@{DOMAIN}>;tag=reg",
            to=f"<sip:bob@{DOMAIN}>",
            call_id="bob-behind-nat",
            cseq=cseq,
            via=bob.via(),
            contact=f"<sip:bob@{PRIVATE}:5060>;expires=3600",
        )
        for name, value in digest.authorization("REGISTER", f"sip:{DOMAIN}"):
            request.headers.add(name, value)
        bob.send(request, proxy)
        response, _ = bob.recv()
        assert isinstance(response, Response)
        if response.status == 200:
            return
        assert response.status == 401 and digest.challenged(response.www_authenticate)
    raise AssertionError("REGISTER not accepted")


def _call(alice: Caller, bob: Phone, server: ServerProcess, number: int) -> int:
    """A whole call from Alice to Bob; returns the worker that took it."""
    proxy = (server.host, server.sip_port)
    invite = make_request(
        "INVITE",
        f"sip:bob@{DOMAIN}",
        from_=f"<sip:alice@{DOMAIN}>;tag=a{number}",
        to=f"<sip:bob@{DOMAIN}>",
        call_id=f"nat-{number}-{secrets.token_hex(4)}",
        via=alice.via(),
        contact=f"<sip:alice@127.0.0.1:{alice.port}>",
    )
    alice.send(invite, proxy)
    received, source = bob.recv()
    assert isinstance(received, Request) and received.method == "INVITE"
    assert source == proxy
    worker = branch_owner(bytes(make_response(received, 100)))
    assert worker is not None
    ok = make_response(received, 200, to_tag=f"b{number}")
    for value in received.headers.get_all("Record-Route"):
        ok.headers.add("Record-Route", value)
    ok.headers.set("Contact", f"<sip:bob@{PRIVATE}:5060>")
    top = received.via[0]
    bob.send(ok, (top.host, top.port or 5060))  # §18.2.2: to the Via, i.e. the shared port
    answer = alice.recv()
    assert answer.status == 200
    route = answer.headers.get_all("Record-Route")[::-1]
    target = answer.headers.get("Contact") or ""
    uri = target.strip("<>").split(">")[0]
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        request = make_request(
            method,
            uri,
            from_=invite.headers.get("From") or "",
            to=answer.headers.get("To") or "",
            call_id=invite.call_id,
            cseq=cseq,
            via=alice.via(),
            extra_headers=[("Route", value) for value in route],
        )
        alice.send(request, proxy)
        got, source = bob.recv()
        assert isinstance(got, Request) and got.method == method
        assert source == proxy
        if method == "BYE":
            top = got.via[0]
            bob.send(make_response(got, 200), (top.host, top.port or 5060))
            assert alice.recv().status == 200
    return worker


def test_two_workers_call_a_phone_behind_a_port_restricted_nat(
    tmp_path: Path, nat: PortRestrictedNat
) -> None:
    bob = Phone(nat)
    callers = [Caller() for _ in range(CALLS)]
    config = (
        f'domains = ["{DOMAIN}"]\nworkers = 2\n[[users]]\nname = "bob"\npassword = "{PASSWORD}"\n'
    )
    try:
        with running_server(tmp_path, config=config, trusted=["127.0.0.0/8"]) as server:
            proxy = (server.host, server.sip_port)
            _register(bob, proxy)
            assert nat.allowed == {proxy}

            # The NAT filters as a port-restricted one: a port Bob never sent to is dropped
            # (the old design's per-worker ports were such ports).
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.bind(("127.0.0.1", 0))
                other.sendto(b"OPTIONS sip:bob SIP/2.0\r\n\r\n", nat.public)
                with pytest.raises(TimeoutError):
                    bob.recv()
                assert nat.dropped == [other.getsockname()]

            workers = {_call(alice, bob, server, n) for n, alice in enumerate(callers)}
            assert workers == {0, 1}, workers  # both took calls: one needed the hand-off
            assert len(nat.dropped) == 1, nat.dropped  # nothing from the server was dropped
    finally:
        for sock in (bob.sock, *(caller.sock for caller in callers)):
            sock.close()
