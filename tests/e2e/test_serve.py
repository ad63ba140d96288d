"""``trunkline serve`` as a newcomer meets it: zero config, demo users, status, SIGTERM.

The server runs in an empty directory with only the flags a script relies on
(``--host``, ``--sip-port``, ``--http-port``). It must create
``./trunkline-data/``, print three demo users with their passwords once and
say how to register two softphones; a demo user must then be able to
register with the printed password (digest, RFC 3261 §22); ``trunkline
status`` must show the registration; SIGTERM must stop it cleanly (exit 0)
and a second start must not print passwords again.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.peers import free_port
from tests.support.server import running_server

from trunkline.config import Config
from trunkline.proxy.workers import worker_count
from trunkline.sip.auth import DigestClient
from trunkline.sip.builder import make_request, new_branch
from trunkline.sip.message import Response, parse_message

TRUNKLINE = [sys.executable, "-m", "trunkline.cli"]


class Served:
    def __init__(self, cwd: Path, sip_port: int, http_port: int) -> None:
        self.sip_port = sip_port
        self.http_port = http_port
        self.proc = subprocess.Popen(
            [
                *TRUNKLINE,
                "serve",
                "--host",
                "127.0.0.1",
                "--sip-port",
                str(sip_port),
                "--http-port",
                str(http_port),
            ],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.banner = ""

    def wait_ready(self, timeout: float = 20.0) -> str:
        """Read the banner up to the "Stop:" line."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Status:"):
                break
        self.banner = "".join(lines)
        return self.banner

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=20)
        return self.proc.returncode, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


@pytest.fixture
def servers() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.kill()


def register(port: int, user: str, password: str, domain: str) -> Response:
    """REGISTER over UDP, answering the 401 with digest credentials."""
    digest = DigestClient(user, password)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5.0)
        local = sock.getsockname()[1]
        call_id = new_branch()
        last: Response | None = None
        for cseq in (1, 2):
            request = make_request(
                "REGISTER",
                f"sip:{domain}",
                from_=f"<sip:{user}@{domain}>",
                to=f"<sip:{user}@{domain}>",
                call_id=call_id,
                cseq=cseq,
                via=f"SIP/2.0/UDP 127.0.0.1:{local};branch={new_branch()};rport",
                contact=f"<sip:{user}@127.0.0.1:{local}>",
            )
            for name, value in digest.authorization("REGISTER", f"sip:{domain}"):
                request.headers.add(name, value)
            sock.sendto(bytes(request), ("127.0.0.1", port))
            response = parse_message(sock.recv(65536))
            assert isinstance(response, Response)
            last = response
            if response.status != 401 or not digest.challenged(response.www_authenticate):
                break
    assert last is not None
    return last


def test_zero_config_serve(tmp_path: Path, servers: list[Served]) -> None:
    served = Served(tmp_path, free_port(), free_port())
    servers.append(served)
    banner = served.wait_ready()
    assert (tmp_path / "trunkline-data" / "trunkline.db").exists(), banner
    passwords = dict(re.findall(r"^\s+(\w+)@127\.0\.0\.1\s+password (\S+)$", banner, re.M))
    assert sorted(passwords) == ["alice", "bob", "carol"], banner
    assert "softphones" in banner and f"sip:127.0.0.1:{served.sip_port}" in banner

    ok = register(served.sip_port, "bob", passwords["bob"], "127.0.0.1")
    assert ok.status == 200
    wrong = register(served.sip_port, "alice", "not-the-password", "127.0.0.1")
    assert wrong.status == 401

    # One worker per CPU: the others publish their counters every second, so the
    # sum may need a moment (bounded) to include them.
    for _ in range(20):
        status = subprocess.run(
            [*TRUNKLINE, "status", "--http-port", str(served.http_port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        if "REGISTER 4" in status:
            break
        time.sleep(0.5)
    assert "registered contacts: 1" in status
    assert "sip:bob@127.0.0.1" in status
    assert "REGISTER 4" in status  # two challenged, two with credentials

    code, out = served.stop()
    assert code == 0, out
    assert "registrations saved" in out

    again = Served(tmp_path, served.sip_port, served.http_port)
    servers.append(again)
    banner = again.wait_ready()
    assert "password" not in banner.split("To call:")[0], banner  # shown once only
    assert "password as above" not in banner  # none is above on a restart
    assert "trunkline users passwd alice --data-dir trunkline-data" in banner, banner
    status = subprocess.run(
        [*TRUNKLINE, "status", "--http-port", str(again.http_port), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert '"registered_contacts": 1' in status
    code, _ = again.stop()
    assert code == 0


def test_bad_config_names_file_line_and_field(tmp_path: Path) -> None:
    config = tmp_path / "trunkline.toml"
    config.write_text('domains = ["example.com"]\n\n[listen.udp]\nport = "many"\n')
    result = subprocess.run(
        [*TRUNKLINE, "serve", "--config", str(config), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "trunkline.toml" in result.stderr and ":4" in result.stderr, result.stderr
    assert "port" in result.stderr


def test_logging_section_writes_json_lines_with_the_call_id(tmp_path: Path) -> None:
    """``[logging] format = "json"`` and ``file``: every worker appends there, Call-ID on each."""
    log_file = tmp_path / "logs" / "trunkline.log"
    config = (
        'domains = ["127.0.0.1"]\n[[users]]\nname = "alice"\npassword = "right-pw"\n'
        f'[logging]\nformat = "json"\nfile = "{log_file}"\n'
    )
    with running_server(tmp_path, config=config) as server:
        wrong = register(server.sip_port, "alice", "wrong-pw", "127.0.0.1")
        assert wrong.status in (401, 403)
        lines: list[dict[str, object]] = []
        for _ in range(50):  # the line is written as the REGISTER is refused; 5 s at most
            lines = [json.loads(line) for line in log_file.read_text().splitlines()]
            if any("AUTH_FAILED" in str(line["message"]) for line in lines):
                break
            time.sleep(0.1)
    failed = [line for line in lines if "AUTH_FAILED" in str(line["message"])]
    assert failed, lines
    assert failed[0]["call_id"] == wrong.call_id
    assert (failed[0]["logger"], failed[0]["level"]) == ("trunkline.security", "WARNING")
    assert {line["call_id"] for line in lines if "listening on" in str(line["message"])} == {"-"}
    workers = {line["pid"] for line in lines if "listening on UDP" in str(line["message"])}
    assert len(workers) == worker_count(Config()), lines  # each worker wrote to the file
    assert "AUTH_FAILED" not in server.output  # not on stderr
