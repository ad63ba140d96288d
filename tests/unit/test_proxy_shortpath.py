"""The proxy's short path for plain responses against its general path (differential).

``Forwarder.relay_response`` takes a provisional or 2xx on the only branch of a
live response context in one pass; ``Forwarder.short_path = False`` sends every
response through the endpoint's events instead. For random calls (header order,
compact header names, extra Vias below the caller's, a 100 from the callee or
not, retransmissions of every message, a 180 overtaken by the 200, a CANCEL
during ringing, a rejected call) the same datagrams go to a ProxyServer in
process twice, once per path, and after every datagram the bytes the proxy sent
and its transaction, response-context and waiter state must be the same.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.peers import free_port

from trunkline.config import Config
from trunkline.proxy.server import ProxyServer
from trunkline.sip.aio import transport as transport_module
from trunkline.sip.message import Request, Response, parse_message

UAC = ("127.0.0.1", 5061)
UAS = ("127.0.0.2", 5062)
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
COMPACT = {
    "Via": "v",
    "From": "f",
    "To": "t",
    "Call-ID": "i",
    "Contact": "m",
    "Content-Length": "l",
}

Sent = list[tuple[bytes, tuple[str, int]]]


@dataclass(frozen=True)
class Call:
    """One random call: what the phones send, in which order, and how it is written."""

    flow: str  # "answer", "overtaken", "cancel", "reject"
    extra_vias: int
    compact: bool
    trying: bool
    retransmit: frozenset[str]
    seed: int


calls = st.builds(
    Call,
    flow=st.sampled_from(["answer", "overtaken", "cancel", "reject"]),
    extra_vias=st.integers(0, 2),
    compact=st.booleans(),
    trying=st.booleans(),
    retransmit=st.frozensets(
        st.sampled_from(["INVITE", "180", "200", "BYE", "200 BYE", "non-2xx", "ACK"])
    ),
    seed=st.integers(0, 2**16),
)


def _config(port: int) -> Config:
    listen = {"host": "127.0.0.1", "port": port}
    return Config.model_validate(
        {
            "data_dir": tempfile.mkdtemp(prefix="shortpath-"),
            "domains": ["127.0.0.1"],
            "trusted": ["127.0.0.1/32", "127.0.0.2/32"],
            "workers": 1,
            "listen": {
                "udp": listen,
                "tcp": listen,
                "tls": {**listen, "enabled": False},
                "ws": {**listen, "enabled": False},
            },
        }
    )


@contextmanager
def _captured() -> Iterator[Sent]:
    sent: Sent = []

    def capture(self: object, data: bytes, peer: tuple[str, int]) -> None:
        sent.append((data, peer))

    real = transport_module.UdpSocket.sendto
    transport_module.UdpSocket.sendto = capture  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        transport_module.UdpSocket.sendto = real  # type: ignore[method-assign]


class Phones:
    """Writes what the uac and the uas send for one :class:`Call`."""

    def __init__(self, call: Call, port: int) -> None:
        self.call = call
        self.port = port
        self.rng = random.Random(call.seed)
        self.call_id = f"{call.seed}-shortpath@127.0.0.1"
        self.uac_vias = [
            f"SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-uac-{call.seed}-{{b}};rport",
            *(
                f"SIP/2.0/UDP 10.0.0.{i}:5060;branch=z9hG4bK-up{i}-{call.seed};received=10.0.0.{i}"
                for i in range(1, call.extra_vias + 1)
            ),
        ]

    def _render(self, start: str, fields: list[tuple[str, str]], body: bytes = b"") -> bytes:
        """Vias keep their order; every other field goes in a random place after them."""
        vias = [f for f in fields if f[0] == "Via"]
        rest = [f for f in fields if f[0] != "Via"]
        self.rng.shuffle(rest)
        lines = [start]
        for name, value in [*vias, *rest, ("Content-Length", str(len(body)))]:
            lines.append(f"{COMPACT.get(name, name) if self.call.compact else name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def _dialog(self, to_tag: bool) -> list[tuple[str, str]]:
        to = f"<sip:service@127.0.0.2:5062>{';tag=uas-' + str(self.call.seed) if to_tag else ''}"
        return [
            ("From", f"<sip:uac@127.0.0.1:5061>;tag=uac-{self.call.seed}"),
            ("To", to),
            ("Call-ID", self.call_id),
        ]

    def request(self, method: str, cseq: int, branch: int, in_dialog: bool) -> bytes:
        vias = [("Via", v.format(b=branch)) for v in self.uac_vias]
        uri = "sip:service@127.0.0.2:5062"
        fields = [*vias, ("Max-Forwards", "70"), *self._dialog(in_dialog)]
        fields.append(("CSeq", f"{cseq} {method}"))
        if in_dialog:
            fields.append(("Route", f"<sip:127.0.0.1:{self.port};lr>"))
        if method == "INVITE":
            fields.append(("Contact", "<sip:uac@127.0.0.1:5061>"))
            fields.append(("Content-Type", "application/sdp"))
            return self._render(f"INVITE {uri} SIP/2.0", fields, SDP)
        return self._render(f"{method} {uri} SIP/2.0", fields)

    def response(self, request: Request, status: str, *, to_tag: bool = True) -> bytes:
        """The uas's answer to a request the proxy forwarded (its Vias and Record-Route)."""
        fields = [("Via", str(via)) for via in request.via]
        fields += [("Record-Route", value) for value in request.headers.get_all("Record-Route")]
        fields += self._dialog(to_tag and not status.startswith("100"))
        fields.append(("CSeq", f"{request.cseq.number} {request.cseq.method}"))
        body = b""
        if status.startswith(("180", "200")) and request.method == "INVITE":
            fields.append(("Contact", "<sip:service@127.0.0.2:5062>"))
            if status.startswith("200"):
                fields.append(("Content-Type", "application/sdp"))
                body = SDP
        return self._render(f"SIP/2.0 {status}", fields, body)


def _forwarded(sent: Sent, method: str) -> Request:
    """The last ``method`` the proxy sent to the uas."""
    for data, peer in reversed(sent):
        if peer == UAS and data.startswith(method.encode() + b" "):
            message = parse_message(data)
            assert isinstance(message, Request)
            return message
    raise AssertionError(f"the proxy sent no {method} to the uas")


_BRANCH = re.compile(rb"branch=(z9hG4bK(?!-u)[^;,\r\n]*)")


class Normalizer:
    """The proxy's own branches (random) become B0, B1 ... in order of appearance."""

    def __init__(self, port: int) -> None:
        self.port = str(port).encode()
        self.names: dict[bytes, bytes] = {}

    def __call__(self, data: bytes) -> bytes:
        def name(match: re.Match[bytes]) -> bytes:
            branch = match.group(1)
            known = self.names.setdefault(branch, b"B%d" % len(self.names))
            return b"branch=" + known

        return _BRANCH.sub(name, data).replace(self.port, b"PORT")

    def branch(self, value: str) -> str:
        return self(b"branch=" + value.encode()).decode()


def _state(server: ProxyServer, norm: Normalizer) -> dict[str, Any]:
    """Transactions, response contexts, waiters and counters, comparable across runs."""
    endpoint = server.endpoint
    forwarder = server.forwarder
    assert endpoint is not None and forwarder is not None
    layer = endpoint.transactions
    stats = server.stats

    def txn(t: Any) -> tuple[Any, ...]:
        last = t.last_response
        return (
            type(t).__name__,
            norm.branch(t.branch),
            t.method,
            t.state.value,
            tuple(sorted(t.deadlines._at)),
            None if last is None else norm(bytes(last)),
        )

    contexts = []
    for live in forwarder.contexts.values():
        context = live.context
        contexts.append(
            (
                context.request.method,
                tuple(context.branch_state(i).value for i in range(len(live.txns))),
                context.final_sent,
                context.finished,
                live.upstream_final,
                live.established,
                live.done,
                live.incoming.answered,
                live.timer_at is not None,
            )
        )
    return {
        "clients": sorted(txn(t) for t in layer._clients.values()),
        "servers": sorted(txn(t) for t in layer._servers.values()),
        "pending": sorted(
            (txn(t), p.done) for t in layer._clients.values() if (p := endpoint._pending.get(id(t)))
        ),
        "contexts": sorted(contexts),
        "stats": (
            endpoint.stats.received,
            endpoint.stats.responses,
            endpoint.stats.stray_responses,
        ),
        "server_stats": (
            dict(stats.requests),
            dict(stats.responses),
            (stats.replies, stats.forwarded, stats.stateless, stats.dropped, stats.cancels),
            {method: entry.count for method, entry in stats.latency.items()},
            [(key, uris) for key, (_, *uris) in stats.dialogs.items()],
        ),
    }


async def _run(call: Call, short_path: bool) -> list[tuple[list[bytes], dict[str, Any]]]:
    """The call through a fresh server; after each datagram: what was sent, and the state."""
    port = free_port()
    server = ProxyServer(_config(port))
    with _captured() as sent:
        await server.start()
        try:
            return await _drive(server, call, port, sent, short_path)
        finally:
            await server.stop(grace=0.1)


async def _drive(
    server: ProxyServer, call: Call, port: int, sent: Sent, short_path: bool
) -> list[tuple[list[bytes], dict[str, Any]]]:
    endpoint = server.endpoint
    assert endpoint is not None and server.forwarder is not None
    server.forwarder.short_path = short_path
    phones = Phones(call, port)
    norm = Normalizer(port)
    local = ("127.0.0.1", port)
    steps: list[tuple[list[bytes], dict[str, Any]]] = []

    async def deliver(
        data: bytes, peer: tuple[str, int], label: str, *, twice: bool = False
    ) -> None:
        for _ in range(2 if twice and label in call.retransmit else 1):
            before = len(sent)
            endpoint.transport.deliver_datagram(data, peer, local)
            for _ in range(3):
                await asyncio.sleep(0)
            steps.append(
                ([norm(d) + repr(p).encode() for d, p in sent[before:]], _state(server, norm))
            )

    await deliver(phones.request("INVITE", 1, 0, False), UAC, "INVITE", twice=True)
    invite = _forwarded(sent, "INVITE")
    if call.trying:
        await deliver(phones.response(invite, "100 Trying", to_tag=False), UAS, "100")
    if call.flow == "reject":
        await deliver(phones.response(invite, "180 Ringing"), UAS, "180", twice=True)
        await deliver(phones.response(invite, "486 Busy Here"), UAS, "non-2xx", twice=True)
        await deliver(phones.request("ACK", 1, 0, True), UAC, "ACK", twice=True)
        return steps
    if call.flow == "cancel":
        await deliver(phones.response(invite, "180 Ringing"), UAS, "180", twice=True)
        await deliver(phones.request("CANCEL", 1, 0, False), UAC, "CANCEL")
        cancel = _forwarded(sent, "CANCEL")
        await deliver(phones.response(cancel, "200 OK"), UAS, "200 CANCEL")
        await deliver(phones.response(invite, "487 Request Terminated"), UAS, "non-2xx", twice=True)
        await deliver(phones.request("ACK", 1, 0, True), UAC, "ACK", twice=True)
        return steps
    if call.flow == "overtaken":
        await deliver(phones.response(invite, "200 OK"), UAS, "200", twice=True)
        await deliver(phones.response(invite, "180 Ringing"), UAS, "180", twice=True)
    else:
        await deliver(phones.response(invite, "180 Ringing"), UAS, "180", twice=True)
        await deliver(phones.response(invite, "200 OK"), UAS, "200", twice=True)
    await deliver(phones.request("ACK", 1, 5, True), UAC, "ACK", twice=True)
    await deliver(phones.request("BYE", 2, 6, True), UAC, "BYE", twice=True)
    bye = _forwarded(sent, "BYE")
    await deliver(phones.response(bye, "200 OK"), UAS, "200 BYE", twice=True)
    return steps


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(call=calls)
def test_short_path_equals_general_path(call: Call, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    short = asyncio.run(_run(call, short_path=True))
    general = asyncio.run(_run(call, short_path=False))
    assert len(short) == len(general)
    for index, (ours, theirs) in enumerate(zip(short, general, strict=True)):
        assert ours[0] == theirs[0], f"step {index}: different datagrams sent"
        assert ours[1] == theirs[1], f"step {index}: different state"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_short_path_is_taken() -> None:
    """The plain call's 180, 200 and 200 to BYE go the short way (not only the general one)."""
    taken: list[int] = []

    async def run() -> None:
        port = free_port()
        server = ProxyServer(_config(port))
        with _captured() as sent:
            await server.start()
            try:
                forwarder = server.forwarder
                assert forwarder is not None
                relay = forwarder.relay_response

                def counting(response: Response, now: float) -> bool:
                    took = relay(response, now)
                    if took:
                        taken.append(response.status)
                    return took

                assert server.endpoint is not None
                server.endpoint.relay = counting
                call = Call("answer", 0, False, False, frozenset(), 7)
                await _drive(server, call, port, sent, short_path=True)
            finally:
                await server.stop(grace=0.1)

    asyncio.run(run())
    assert taken == [180, 200, 200]
