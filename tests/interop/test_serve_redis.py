"""Two ``trunkline serve`` processes sharing a real ``redis-server`` (issue 6, "Must show").

Both servers use the Redis location backend (``[location] backend =
"redis"`` in ``--config``) with the same key prefix, the same domain and
the same users (each has its own data directory: users live in SQLite).
A SIPp phone registers with server 1; server 2 sees the binding at once and
routes a call from another SIPp phone to it, with its own Record-Route, so
the ACK and BYE also go through server 2 (the callee's scenario checks).
An unregister on server 2 then removes the binding for server 1 too.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.peers import free_port, require_peer
from tests.support.server import (
    ServerProcess,
    running_server,
    sipp_call,
    sipp_register,
    sipp_uas,
)

pytestmark = pytest.mark.interop

DOMAIN = "127.0.0.1"
USERS = {"alice": "alice-pw-0b7e", "bob": "bob-pw-e4d1"}
PHONE_HOST = "127.0.0.2"


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
        deadline = time.monotonic() + 10
        while not _pong(port):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _config(redis_url: str, prefix: str) -> str:
    users = "".join(f'\n[[users]]\nname = "{n}"\npassword = "{p}"\n' for n, p in USERS.items())
    return (
        f'domains = ["{DOMAIN}"]\n{users}\n'
        f'[location]\nbackend = "redis"\nredis_url = "{redis_url}"\nredis_prefix = "{prefix}"\n'
    )


def _aors(server: ServerProcess) -> dict[str, str]:
    return {str(b["aor"]): str(b["contact"]) for b in server.status()["bindings"]}


def test_second_server_routes_a_call_to_a_phone_registered_on_the_first(
    tmp_path: Path, redis_url: str
) -> None:
    config = _config(redis_url, f"trunkline-test-{secrets.token_hex(4)}:")
    sipp_dir = tmp_path / "sipp"
    phone_port = free_port(host=PHONE_HOST)
    contact = f"sip:bob@{PHONE_HOST}:{phone_port}"
    legacy = ["--legacy-digest"]  # SIPp answers MD5 challenges only
    with (
        running_server(tmp_path / "one", config=config, extra_args=legacy, name="one") as one,
        running_server(tmp_path / "two", config=config, extra_args=legacy, name="two") as two,
    ):
        assert one.sip_port != two.sip_port
        registered = sipp_register(
            one, {"bob": USERS["bob"]}, sipp_dir, source=PHONE_HOST, port=phone_port
        )
        assert (registered.successful, registered.failed) == (1, 0), registered.output
        assert _aors(one) == {f"sip:bob@{DOMAIN}": contact}
        assert _aors(two) == {f"sip:bob@{DOMAIN}": contact}  # shared at once, no flush delay

        uas = sipp_uas(sipp_dir, source=PHONE_HOST, port=phone_port, calls=2)
        try:
            call = sipp_call(two, "alice", USERS["alice"], "bob", sipp_dir, calls=2, rate=5)
            answered = uas.result(timeout=30)
        finally:
            uas.kill()
        assert (call.successful, call.failed) == (2, 0), call.output + two.output[-2000:]
        assert (answered.successful, answered.failed) == (2, 0), answered.output

        routed_by_two = two.status()
        assert routed_by_two["requests"].get("INVITE", 0) >= 4  # 2 challenged + 2 with digest
        assert routed_by_two["requests"].get("BYE", 0) >= 2  # Record-Route kept two in the path
        assert one.status()["requests"].get("INVITE", 0) == 0  # one only took the REGISTER

        gone = sipp_register(
            two, {"bob": USERS["bob"]}, sipp_dir, source=PHONE_HOST, port=phone_port, expires=0
        )
        assert (gone.successful, gone.failed) == (1, 0), gone.output
        assert _aors(one) == {}
        assert _aors(two) == {}
