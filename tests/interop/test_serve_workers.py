"""Several ``trunkline serve`` workers on one SIP port, sharing the registrations.

Bob registers through the shared port (whichever worker the kernel picks),
then sixteen callers (sixteen UDP sockets, so the SO_REUSEPORT hash spreads
them over both workers) call him. Every INVITE must reach Bob from the
shared port, with it in Via and Record-Route, and the in-dialog ACK and BYE
sent along that Record-Route must reach him too. Bob answers from one
socket, so the kernel gives all his responses to one worker, which hands the
other worker's to it (``trunkline.proxy.handoff``).

With ``workers = 0`` (one worker per CPU, registrations in the data
directory's SQLite database, no Redis) the worker that did not take
the REGISTER routes calls to Bob, sees his un-REGISTER at once, the status
adds up every worker's counters, a killed worker is started again and a
restart keeps the registration. The same with Redis as the shared store.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.peers import free_port, require_peer
from tests.support.server import ServerProcess, running_server, start_server
from tests.support.udpphone import UdpPhone, call_through, invite_bob, register

from trunkline.proxy.workers import MIN_UPTIME
from trunkline.sip.builder import make_request
from trunkline.sip.message import Response

pytestmark = pytest.mark.interop

DOMAIN = "127.0.0.1"
BOB_PASSWORD = "bob-pw-workers"
CALLS = 16


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private ``redis-server`` on a free loopback port, no persistence."""
    binary = require_peer("redis-server", "redis-server")
    port = free_port(socket.SOCK_STREAM)
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [binary, *args, "--dir", str(tmp_path), "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):  # 10 s at most
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None:
                pytest.fail("redis-server exited")
            time.sleep(0.05)
        else:
            pytest.fail("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _register(
    bob: UdpPhone, server: ServerProcess, *, expires: int = 3600, first_cseq: int = 1
) -> None:
    register(
        bob,
        (server.host, server.sip_port),
        user="bob",
        password=BOB_PASSWORD,
        domain=DOMAIN,
        call_id="bob-reg",
        expires=expires,
        first_cseq=first_cseq,
    )


def _call(alice: UdpPhone, bob: UdpPhone, server: ServerProcess, number: int) -> int:
    return call_through(alice, bob, (server.host, server.sip_port), DOMAIN, number)


def test_two_workers_share_the_port_and_the_registrations(tmp_path: Path, redis_url: str) -> None:
    config = (
        f'domains = ["{DOMAIN}"]\nworkers = 2\n'
        f'[[users]]\nname = "bob"\npassword = "{BOB_PASSWORD}"\n'
        f'[location]\nbackend = "redis"\nredis_url = "{redis_url}"\n'
        f'redis_prefix = "trunkline-workers-{secrets.token_hex(4)}:"\n'
    )
    bob = UdpPhone()
    callers = [UdpPhone() for _ in range(CALLS)]
    try:
        with running_server(tmp_path, config=config, trusted=["127.0.0.0/8"]) as server:
            _status_when(server, _all_ready)  # the second worker starts after the first
            _register(bob, server)
            workers = {_call(alice, bob, server, n) for n, alice in enumerate(callers)}
            assert workers == {0, 1}, workers  # both workers took calls
    finally:
        for phone in (bob, *callers):
            phone.close()


# -- workers = 0: one worker per CPU, registrations in SQLite ------------------------------

WORKERS = 2


def _default_config() -> str:
    """``workers = 0`` (one per CPU; 2 on a one-CPU machine) and no ``[location]``."""
    text = f'domains = ["{DOMAIN}"]\n'
    text += f"workers = {WORKERS if (os.cpu_count() or 1) < WORKERS else 0}\n"
    return text + f'[[users]]\nname = "bob"\npassword = "{BOB_PASSWORD}"\n'


def _status_when(server: ServerProcess, check: Any, timeout: float = 20.0) -> dict[str, Any]:
    """Poll ``/status`` until ``check(status)`` holds (every worker publishes each second)."""
    deadline = time.monotonic() + timeout
    while True:
        status = server.status()
        if check(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def _all_ready(status: dict[str, Any]) -> bool:
    workers = status.get("workers", [])
    return len(workers) >= WORKERS and not any(w["stale"] for w in workers)


def _calls(status: dict[str, Any]) -> dict[str, int]:
    """Requests counted, but the OPTIONS pings that told the test the server was up."""
    return {k: v for k, v in status["requests"].items() if k != "OPTIONS"}


def _invite_status(alice: UdpPhone, server: ServerProcess, number: int) -> int:
    """An INVITE for Bob that nobody should answer but the proxy: its final status."""
    invite = invite_bob(alice, DOMAIN, f"gone-{number}", tag=f"x{number}")
    alice.send(invite, (server.host, server.sip_port))
    response, _ = alice.recv()
    assert isinstance(response, Response)
    # ACK the failure (RFC 3261 §17.1.1.3: same branch), or it is retransmitted to us.
    ack = make_request(
        "ACK",
        f"sip:bob@{DOMAIN}",
        from_=invite.headers.get("From") or "",
        to=response.headers.get("To") or "",
        call_id=invite.call_id,
        via=invite.headers.get("Via"),
    )
    alice.send(ack, (server.host, server.sip_port))
    return response.status


def test_per_cpu_workers_share_registrations_status_and_survive_restarts(tmp_path: Path) -> None:
    bob = UdpPhone()
    callers = [UdpPhone() for _ in range(CALLS)]
    server = start_server(tmp_path, config=_default_config(), trusted=["127.0.0.0/8"])
    try:
        status = _status_when(server, _all_ready)
        all_ready_at = time.monotonic()
        assert len(status["workers"]) == WORKERS, status.get("workers")

        # Registered through one worker, called through both.
        _register(bob, server)
        workers = {_call(alice, bob, server, n) for n, alice in enumerate(callers)}
        assert workers == set(range(WORKERS)), workers

        # Status adds up every worker (each publishes within a second).
        expected = {"REGISTER": 2, "INVITE": CALLS, "ACK": CALLS, "BYE": CALLS}
        status = _status_when(server, lambda s: _calls(s) == expected)
        assert _calls(status) == expected, status["workers"]
        assert all(w["requests"] > 0 for w in status["workers"]), status["workers"]
        assert sum(w["requests"] for w in status["workers"]) == sum(status["requests"].values())
        assert status["registered_contacts"] == 1
        text = server.status_text()
        assert f"workers: {WORKERS}" in text and "registered contacts: 1" in text
        url = f"http://{server.host}:{server.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            metrics = reply.read().decode()
        assert f'trunkline_sip_requests_total{{method="INVITE"}} {float(CALLS)}' in metrics

        # Un-REGISTER through one worker: no worker finds Bob any more.
        _register(bob, server, expires=0, first_cseq=3)
        gone = {_invite_status(alice, server, n) for n, alice in enumerate(callers)}
        assert gone <= {404, 480} and gone, gone

        # A worker that dies is started again (it ran long enough not to look like a crash loop).
        _register(bob, server, first_cseq=5)
        # (The second worker started after the first: let it outlive MIN_UPTIME too.)
        time.sleep(max(0.0, all_ready_at + MIN_UPTIME + 1.0 - time.monotonic()))
        status = server.status()
        victim = status["workers"][1]
        os.kill(victim["pid"], signal.SIGKILL)
        status = _status_when(
            server,
            lambda s: _all_ready(s) and s["workers"][1]["pid"] != victim["pid"],
        )
        assert status["workers"][1]["pid"] != victim["pid"], status["workers"]
        assert f"(pid {victim['pid']}) killed by SIGKILL" in server.output
        workers = {_call(alice, bob, server, n) for n, alice in enumerate(callers)}
        assert workers == set(range(WORKERS)), workers

        # SIGTERM drains every worker; a restart on the same ports keeps Bob's registration.
        assert server.stop() == 0, server.output[-3000:]
        assert "registrations saved" in server.output
        server = start_server(
            tmp_path,
            data_dir=server.data_dir,
            config=_default_config(),
            trusted=["127.0.0.0/8"],
            sip_port=server.sip_port,
            http_port=server.http_port,
            name="restarted",
        )
        status = _status_when(server, _all_ready)
        assert status["registered_contacts"] == 1
        workers = {_call(alice, bob, server, n + 100) for n, alice in enumerate(callers)}
        assert workers == set(range(WORKERS)), workers
        assert server.stop() == 0, server.output[-3000:]
    finally:
        server.kill()
        for phone in (bob, *callers):
            phone.close()
