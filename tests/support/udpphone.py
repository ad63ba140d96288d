"""A blocking UDP SIP phone for tests of ``trunkline serve``, a NAT to put it behind, one call.

:class:`UdpPhone` sends and receives whole SIP messages on a loopback socket,
skips ``100 Trying`` and answers the server's keep-alive OPTIONS pings.
Behind a :class:`PortRestrictedNat` it believes it has a private address and
reaches the server only through the NAT's one public port. :func:`register`
registers it with digest auth; :func:`call_through` runs one whole call
(INVITE, 200, ACK, BYE, 200) from one phone to another through the server
and checks that every hop went through the server's shared SIP port.
"""

from __future__ import annotations

import secrets
import select
import socket
import threading

from trunkline.proxy.handoff import branch_owner
from trunkline.sip.auth import DigestClient
from trunkline.sip.builder import make_request, make_response, new_branch
from trunkline.sip.message import Request, Response, parse_message

__all__ = [
    "PRIVATE_ADDRESS",
    "Address",
    "PortRestrictedNat",
    "UdpPhone",
    "call_through",
    "invite_bob",
    "register",
]

Address = tuple[str, int]

#: What a phone behind the NAT believes its address is (RFC 1918).
PRIVATE_ADDRESS: Address = ("192.168.77.20", 5060)


class PortRestrictedNat(threading.Thread):
    """A port-restricted cone NAT in front of one phone, as a UDP relay.

    RFC 4787 §4.1 "address and port-dependent filtering": the phone sends
    ``b"host port\\n" + payload`` to :attr:`inside`; the NAT sends the payload
    to ``host:port`` from its one public socket (the mapping) and remembers
    that address and port. A datagram reaching the public socket from
    anywhere else is dropped (and noted in :attr:`dropped`); an allowed one
    goes to the phone with its source in front, the same way.
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


class UdpPhone:
    """A blocking UDP phone on loopback (``timeout`` per receive: the machine may be busy)."""

    def __init__(self, *, timeout: float = 5.0, nat: PortRestrictedNat | None = None) -> None:
        self.nat = nat
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(timeout)
        self.port = int(self.sock.getsockname()[1])
        #: The address the phone writes in Via and Contact.
        self.address: Address = PRIVATE_ADDRESS if nat else ("127.0.0.1", self.port)

    def via(self) -> str:
        host, port = self.address
        return f"SIP/2.0/UDP {host}:{port};branch={new_branch()};rport"

    def contact(self, user: str) -> str:
        host, port = self.address
        return f"<sip:{user}@{host}:{port}>"

    def send(self, message: Request | Response, to: Address) -> None:
        if self.nat is None:
            self.sock.sendto(bytes(message), to)
        else:
            self.sock.sendto(f"{to[0]} {to[1]}\n".encode() + bytes(message), self.nat.inside)

    def recv(self) -> tuple[Request | Response, Address]:
        """The next message that is neither a 100 nor a keep-alive ping (those are answered)."""
        for _ in range(20):
            data, source = self.sock.recvfrom(65535)
            if self.nat is not None:
                head, _, data = data.partition(b"\n")
                host, port = head.decode().split(" ")
                source = (host, int(port))
            message = parse_message(data)
            if isinstance(message, Request) and message.method == "OPTIONS":
                self.send(make_response(message, 200), (source[0], source[1]))
                continue
            if not (isinstance(message, Response) and message.status == 100):
                return message, (source[0], source[1])
        raise AssertionError("only pings and 100 Trying")

    def close(self) -> None:
        self.sock.close()


def register(
    phone: UdpPhone,
    proxy: Address,
    *,
    user: str,
    password: str,
    domain: str,
    call_id: str,
    expires: int = 3600,
    first_cseq: int = 1,
) -> None:
    """REGISTER ``phone`` as ``user`` (answering the digest challenge); fail unless 200."""
    digest = DigestClient(user, password)
    for cseq in (first_cseq, first_cseq + 1):
        request = make_request(
            "REGISTER",
            f"sip:{domain}",
            from_=f"<sip:{user}@{domain}>;tag=reg",
            to=f"<sip:{user}@{domain}>",
            call_id=call_id,
            cseq=cseq,
            via=phone.via(),
            contact=f"{phone.contact(user)};expires={expires}",
        )
        for name, value in digest.authorization("REGISTER", f"sip:{domain}"):
            request.headers.add(name, value)
        phone.send(request, proxy)
        response, _ = phone.recv()
        assert isinstance(response, Response)
        if response.status == 200:
            return
        assert response.status == 401 and digest.challenged(response.www_authenticate)
    raise AssertionError("REGISTER not accepted")


def invite_bob(alice: UdpPhone, domain: str, call_id: str, *, tag: str) -> Request:
    """An INVITE from ``alice`` to ``bob`` of ``domain`` (a random suffix on ``call_id``)."""
    return make_request(
        "INVITE",
        f"sip:bob@{domain}",
        from_=f"<sip:alice@{domain}>;tag={tag}",
        to=f"<sip:bob@{domain}>",
        call_id=f"{call_id}-{secrets.token_hex(4)}",
        via=alice.via(),
        contact=alice.contact("alice"),
    )


def call_through(alice: UdpPhone, bob: UdpPhone, proxy: Address, domain: str, number: int) -> int:
    """One call from Alice to Bob through the server at ``proxy``; the worker that forwarded it.

    Everything the server sends must come from ``proxy`` (the shared port)
    and name it in Via and Record-Route; Bob answers to the Via (RFC 3261
    §18.2.2) and Alice sends ACK and BYE along the Record-Route (§12.2.1.1).
    The worker is read from the branch suffix of the server's Via
    (``trunkline.proxy.handoff``).
    """
    invite = invite_bob(alice, domain, f"call-{number}", tag=f"a{number}")
    alice.send(invite, proxy)
    received, source = bob.recv()
    assert isinstance(received, Request) and received.method == "INVITE"
    assert source == proxy  # sent from the shared port
    top = received.via[0]
    assert top.port == proxy[1]  # and named in the Via
    worker = branch_owner(bytes(make_response(received, 100)))
    assert worker is not None, top.branch
    record_route = received.headers.get_all("Record-Route")
    assert record_route, "the proxy record-routes INVITEs"
    ok = make_response(received, 200, to_tag=f"b{number}")
    for value in record_route:
        ok.headers.add("Record-Route", value)
    ok.headers.set("Contact", bob.contact("bob"))
    bob.send(ok, (top.host, top.port or 5060))
    answer, _ = alice.recv()
    assert isinstance(answer, Response) and answer.status == 200
    route = answer.headers.get_all("Record-Route")[::-1]
    assert f":{proxy[1]};" in route[0] or f":{proxy[1]}>" in route[0], route  # the shared port
    target = (answer.headers.get("Contact") or "").strip("<>").split(">")[0]
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        request = make_request(
            method,
            target,
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
        assert source == proxy  # forwarded from the shared port
        if method == "BYE":
            via = got.via[0]
            bob.send(make_response(got, 200), (via.host, via.port or 5060))
            done, _ = alice.recv()
            assert isinstance(done, Response) and done.status == 200
    return worker
