"""Security of ``trunkline serve`` against SIPVicious and floods (issue 6, "Security").

- ``svwar`` (SIPVicious' extension scanner) learns nothing with any of its
  methods (REGISTER, INVITE, OPTIONS): an unknown user and a real one get
  the same answer. The same property is also checked directly: status line,
  header names and challenge parameters are the same for a real and an
  unknown user, with no credentials and with a wrong password, and for an
  INVITE from a foreign domain (a call from outside, which needs no digest).
- SIPVicious' own User-Agent (``friendly-scanner``) is dropped by default.
- ``svcrack`` (the password cracker) against a real user gets its source
  banned after ``auth_failures_before_ban`` failures: the password that
  comes later in its dictionary is never found, the server no longer
  answers that source, and ``trunkline status`` shows the ban and the
  auth-failure counter. A control run proves svcrack does crack the
  password when it comes early, so the ban is what stopped it.
- A flood from one socket (5,000 OPTIONS and INVITEs at 1,000 a second)
  is cut off after the burst allowance (pike-style rate
  limit and ban) while a REGISTER and a call from other sources complete.
- Over ``max_message_size`` a request is not served; over
  ``max_transactions_per_source`` a source's new requests get 503.

SIPVicious 0.3.3 (Debian) ignores its ``-b`` option and always sends from
127.0.0.1, so the tests' own well-behaved clients use other loopback
addresses. To exercise the enumeration and auth-failure defences (not the
User-Agent filter in front of them), those servers run with
``drop_user_agents = []``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.peers import free_port, require_peer
from tests.support.server import (
    ServerProcess,
    running_server,
    sip_options,
    sipp_call,
    sipp_register,
    sipp_uas,
)

pytestmark = pytest.mark.interop

DOMAIN = "127.0.0.1"
REAL_USERS = {"100": "pw-100-a8f3c1", "101": "pw-101-9be2d4", "102": "pw-102-11aa7e"}
UNKNOWN_USER = "199"


def _users_toml(users: dict[str, str]) -> str:
    return "".join(f'\n[[users]]\nname = "{n}"\npassword = "{p}"\n' for n, p in users.items())


def _sipvicious(tool: str) -> str:
    """SIPVicious' ``tool`` (svwar, svcrack): ``sipvicious_<tool>`` (pip) or ``<tool>`` (Debian)."""
    found = shutil.which(f"sipvicious_{tool}") or shutil.which(tool)
    return found or require_peer(f"sipvicious_{tool}", "sipvicious")


def _run(args: list[str], timeout: float) -> str:
    """Run a SIPVicious tool to completion (killed after ``timeout``); its output."""
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, cwd="/tmp"
    )
    return result.stdout + result.stderr


# ----------------------------------------------------------------- enumeration


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Scanner User-Agents allowed and limits raised: only same-shape rejection stands."""
    config = (
        f'domains = ["{DOMAIN}"]\n'
        + _users_toml(REAL_USERS)
        + "\n[limits]\ndrop_user_agents = []\nrequests_per_second = 10000\nburst = 10000\n"
        + "auth_failures_before_ban = 100000\nmax_message_size = 2000\n"
    )
    with running_server(tmp_path_factory.mktemp("enum"), config=config) as server:
        yield server


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_svwar_finds_no_extensions(open_server: ServerProcess, method: str) -> None:
    svwar = _sipvicious("svwar")
    before = open_server.status()["requests"].get(method, 0)
    # The real users come first after svwar's probe of a random (unknown) user, so a
    # different answer for them would be reported as "extension '100' exists".
    output = _run(
        [
            svwar,
            "-e100-110",
            "-m",
            method,
            "--force",
            "--maximumtime",
            "2",
            "-p",
            str(open_server.sip_port),
            "-P",
            str(free_port()),
            DOMAIN,
        ],
        timeout=40,
    )
    assert "found nothing" in output, output
    assert not re.search(r"exists|reqauth|noauth|weird", output), output
    seen = open_server.status()["requests"].get(method, 0) - before
    assert seen >= 2, seen  # svwar's probe and at least one real user were answered


class LeakyRegistrar(threading.Thread):
    """A registrar that answers 404 to unknown users and 401 to real ones (what not to do).

    Run against it, svwar must report the real users: the check above is not
    vacuous (svwar would see a difference if there were one).
    """

    def __init__(self, users: set[str]) -> None:
        super().__init__(daemon=True)
        self.users = users
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            head = data.decode(errors="replace").split("\r\n\r\n", 1)[0].split("\r\n")
            copied = [
                line
                for line in head[1:]
                if line.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq")
            ]
            user = re.search(r"^To:[^<]*<sip:([^@>]+)@", "\n".join(copied), re.M | re.I)
            if user is not None and user[1] in self.users:
                status = [
                    "SIP/2.0 401 Unauthorized",
                    'WWW-Authenticate: Digest realm="x", nonce="y"',
                ]
            else:
                status = ["SIP/2.0 404 Not Found"]
            reply = "\r\n".join([status[0], *copied, *status[1:], "Content-Length: 0", "", ""])
            self.sock.sendto(reply.encode(), peer)
        self.sock.close()


def test_svwar_does_find_users_on_a_leaky_registrar() -> None:
    leaky = LeakyRegistrar(set(REAL_USERS))
    leaky.start()
    try:
        svwar = [_sipvicious("svwar"), "-e100-103", "-p", str(leaky.port)]
        output = _run([*svwar, "-P", str(free_port()), "--maximumtime", "2", DOMAIN], timeout=30)
    finally:
        leaky.stopping.set()
        leaky.join(5)
    found = set(re.findall(r"^\|\s*(\d+)\s*\|\s*reqauth", output, re.M))  # svwar's result table
    assert found == set(REAL_USERS), output


@dataclass(frozen=True)
class Shape:
    """What a scanner can compare between two responses (no random values)."""

    status_line: str
    header_names: tuple[str, ...]
    challenges: tuple[tuple[tuple[str, str], ...], ...]


def _shape(response: bytes) -> Shape:
    head = response.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    names: list[str] = []
    challenges = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        names.append(name.strip().lower())
        if name.strip().lower() in ("www-authenticate", "proxy-authenticate"):
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', value))
            challenges.append(
                tuple(sorted((k, "" if k in ("nonce", "opaque") else v) for k, v in params.items()))
            )
    return Shape(lines[0], tuple(names), tuple(challenges))


class RawClient:
    """A UDP socket sending hand-written requests (a scanner does no more)."""

    def __init__(self, server: ServerProcess, source: str) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.host, self.port = self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def request(
        self,
        method: str,
        user: str,
        call_id: str,
        cseq: int,
        authorization: str = "",
        *,
        from_uri: str | None = None,
    ) -> bytes:
        """Send one request for ``user`` (From is the user too, unless ``from_uri``)."""
        uri = f"sip:{DOMAIN}" if method == "REGISTER" else f"sip:{user}@{DOMAIN}"
        sender = from_uri or f"sip:{user}@{DOMAIN}"
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(8)};rport",
            "Max-Forwards: 70",
            f"From: <{sender}>;tag={call_id[:8]}",
            f'To: "{user}" <sip:{user}@{DOMAIN}>',
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{user}@{self.host}:{self.port}>",
            "Accept: application/sdp",
        ]
        if authorization:
            lines.append(authorization)
        lines += ["Content-Length: 0", "", ""]
        self.sock.sendto("\r\n".join(lines).encode(), (self.server.host, self.server.sip_port))
        deadline = time.monotonic() + 3.0
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            data = self.sock.recv(65535)
            final = not data.startswith(b"SIP/2.0 1")
            if final and call_id.encode() in data and f" {cseq} {method}".encode() in data:
                return data
        raise AssertionError(f"no answer to {method} for {user}")

    def send_invite(self, user: str, call_id: str, from_uri: str) -> None:
        """An INVITE for ``user`` without waiting for the answer."""
        lines = [
            f"INVITE sip:{user}@{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{call_id};rport",
            "Max-Forwards: 70",
            f"From: <{from_uri}>;tag={call_id[:8]}",
            f"To: <sip:{user}@{DOMAIN}>",
            f"Call-ID: {call_id}",
            "CSeq: 1 INVITE",
            f"Contact: <sip:caller@{self.host}:{self.port}>",
            "Content-Length: 0",
            "",
            "",
        ]
        self.sock.sendto("\r\n".join(lines).encode(), (self.server.host, self.server.sip_port))

    def finals(self, call_ids: list[str], seconds: float) -> dict[str, int]:
        """The final status received for each Call-ID within ``seconds``."""
        found: dict[str, int] = {}
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and len(found) < len(call_ids):
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                break
            status = int(data.split(b" ", 2)[1]) if data.startswith(b"SIP/2.0 ") else 0
            match = re.search(rb"Call-ID: *(\S+)", data, re.I)
            if status >= 200 and match is not None:
                found[match[1].decode()] = status
        return found

    def requests_received(self, seconds: float) -> dict[str, bytes]:
        """The requests that reached this socket by Call-ID (retransmissions folded)."""
        seen: dict[str, bytes] = {}
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                break
            match = re.search(rb"Call-ID: *(\S+)", data, re.I)
            if not data.startswith(b"SIP/2.0") and match is not None:
                seen[match[1].decode()] = data
        return seen

    def reply(self, request: bytes, status: int, reason: str) -> None:
        """Answer ``request`` statelessly (RFC 3261 §8.2.6: Via, From, To, Call-ID, CSeq copied)."""
        head = request.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        copied = []
        for line in head[1:]:
            name = line.split(":", 1)[0].strip().lower()
            if name in ("via", "v", "from", "f", "call-id", "i", "cseq"):
                copied.append(line)
            elif name in ("to", "t"):
                copied.append(line if ";tag=" in line else f"{line};tag=busy")
        response = "\r\n".join([f"SIP/2.0 {status} {reason}", *copied, "Content-Length: 0", "", ""])
        self.sock.sendto(response.encode(), (self.server.host, self.server.sip_port))

    def authenticated(self, method: str, user: str, password: str) -> bytes:
        """The answer to a request retried with an MD5 digest (RFC 2617 §3.2.2) of ``password``."""
        call_id = secrets.token_hex(10)
        challenge = self.request(method, user, call_id, 1).decode()
        header = "WWW-Authenticate" if method == "REGISTER" else "Proxy-Authenticate"
        md5 = next(
            line
            for line in challenge.split("\r\n")
            if line.startswith(header) and "MD5" in line.upper()
        )
        realm = re.search(r'realm="([^"]*)"', md5)
        nonce = re.search(r'nonce="([^"]*)"', md5)
        assert realm is not None and nonce is not None, md5
        uri = f"sip:{DOMAIN}" if method == "REGISTER" else f"sip:{user}@{DOMAIN}"
        cnonce = secrets.token_hex(8)

        def h(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = h(f"{user}:{realm[1]}:{password}")
        response = h(f"{ha1}:{nonce[1]}:00000001:{cnonce}:auth:{h(f'{method}:{uri}')}")
        credentials = (
            f'Digest username="{user}", realm="{realm[1]}", nonce="{nonce[1]}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="{cnonce}"'
        )
        name = "Authorization" if method == "REGISTER" else "Proxy-Authorization"
        return self.request(method, user, call_id, 2, f"{name}: {credentials}")

    def wrong_password(self, method: str, user: str) -> bytes:
        return self.authenticated(method, user, "not-the-password")


@pytest.mark.parametrize("method", ["REGISTER", "INVITE", "OPTIONS"])
def test_real_and_unknown_users_are_rejected_in_the_same_shape(
    open_server: ServerProcess, method: str
) -> None:
    client = RawClient(open_server, "127.0.0.2")
    try:
        known = client.request(method, "100", secrets.token_hex(10), 1)
        unknown = client.request(method, UNKNOWN_USER, secrets.token_hex(10), 1)
        assert _shape(known) == _shape(unknown)
        assert _shape(known).status_line.split()[1] in ("401", "407"), known
        known_wrong = client.wrong_password(method, "100")
        unknown_wrong = client.wrong_password(method, UNKNOWN_USER)
        assert _shape(known_wrong) == _shape(unknown_wrong)
        assert _shape(known_wrong).status_line.split()[1] in ("401", "403", "407"), known_wrong
    finally:
        client.close()


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_requests_from_strangers_do_not_reveal_which_users_exist(
    open_server: ServerProcess, method: str
) -> None:
    """A request from another domain (no digest asked: it may be a call from outside).

    A real user who is not registered and a user who does not exist must look
    the same, or any scanner enumerates users by sending INVITEs with a
    foreign From (svwar cannot: its From is always in the target domain).
    """
    client = RawClient(open_server, "127.0.0.2")
    try:
        shapes = {}
        for user in ("100", UNKNOWN_USER):
            call_id = secrets.token_hex(10)
            answer = client.request(
                method, user, call_id, 1, from_uri="sip:caller@stranger.example"
            )
            shapes[user] = _shape(answer)
        assert shapes["100"] == shapes[UNKNOWN_USER], shapes
    finally:
        client.close()


FLOOD_USERS = {"alice": "alice-pw-51d2", "bob": "bob-pw-c07e"}


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default limits (50 requests/s, burst 100, scanner User-Agents dropped)."""
    config = f'domains = ["{DOMAIN}"]\n' + _users_toml(FLOOD_USERS)
    workdir = tmp_path_factory.mktemp("default")
    with running_server(workdir, config=config, extra_args=["--legacy-digest"]) as server:
        yield server


def test_oversized_request_is_refused(open_server: ServerProcess) -> None:
    """``[limits] max_message_size`` (2000 here): 513 (RFC 3261 §21.5.14) or silence."""

    def options(padding: int) -> int | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.2", 0))
            host, port = sock.getsockname()
            call_id = secrets.token_hex(8)
            message = (
                f"OPTIONS sip:{DOMAIN}:{open_server.sip_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{call_id};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:big@stranger.example>;tag=1\r\n"
                f"To: <sip:{DOMAIN}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
                f"X-Padding: {'p' * padding}\r\nContent-Length: 0\r\n\r\n"
            )
            sock.sendto(message.encode(), (open_server.host, open_server.sip_port))
            sock.settimeout(2.0)
            try:
                return int(sock.recv(65535).split(b" ", 2)[1])
            except TimeoutError:
                return None

    assert options(1000) == 200  # about 1,250 bytes: under the limit
    assert options(3000) in (513, None)  # about 3,250 bytes: over it


def test_transactions_per_source_are_limited(tmp_path: Path) -> None:
    """``max_transactions_per_source``: over it, new requests from that source get 503.

    bob registers from a socket that never answers, so every INVITE forwarded
    to him stays pending; a stranger sends ten, the limit is five.
    """
    config = (
        f'domains = ["{DOMAIN}"]\n'
        + _users_toml({"bob": "bob-pw-93e0"})
        + "\n[limits]\nmax_transactions_per_source = 5\n"
    )
    with running_server(tmp_path, config=config, extra_args=["--legacy-digest"]) as server:
        silent_phone = RawClient(server, "127.0.0.2")
        caller = RawClient(server, "127.0.0.5")
        try:
            registered = silent_phone.authenticated("REGISTER", "bob", "bob-pw-93e0")
            assert registered.startswith(b"SIP/2.0 200"), registered
            call_ids = [secrets.token_hex(8) for _ in range(10)]
            for call_id in call_ids:
                caller.send_invite("bob", call_id, "sip:caller@stranger.example")
            answers = caller.finals(call_ids, seconds=1.5)
            reached = silent_phone.requests_received(seconds=0.5)
            for invite in reached.values():  # end the calls: the server stops without waiting
                silent_phone.reply(invite, 486, "Busy Here")
            time.sleep(0.3)
        finally:
            silent_phone.close()
            caller.close()
        refused = [call_id for call_id in call_ids if answers.get(call_id) == 503]
        assert len(reached) == 5 and len(refused) == 5, (reached, answers)
        assert server.status()["flood"]["refused_transactions"] == 5


def test_scanner_user_agent_is_dropped(default_server: ServerProcess) -> None:
    server = default_server
    svwar = [_sipvicious("svwar"), "-e100-102", "-p", str(server.sip_port)]
    output = _run([*svwar, "-P", str(free_port()), "--maximumtime", "2", DOMAIN], timeout=30)
    assert re.search(r"No server response|socket error: timed out", output), output
    assert not re.search(r"exists|reqauth|noauth|weird", output), output
    host, port = server.host, server.sip_port
    assert sip_options(host, port, source="127.0.0.2", user_agent="friendly-scanner") is None
    assert sip_options(host, port, source="127.0.0.2", user_agent="Linphone/5.0") == 200
    status = server.status()
    assert status["flood"]["dropped_scanner"] >= 2, status["flood"]
    banned = [ban["source"] for ban in status["bans"]]
    assert "127.0.0.1" not in banned, banned  # a dropped scanner is not banned for it


# --------------------------------------------------------------- password cracking


def test_svcrack_gets_banned(tmp_path: Path) -> None:
    svcrack = _sipvicious("svcrack")
    password = REAL_USERS["101"]
    config = (
        f'domains = ["{DOMAIN}"]\n'
        + _users_toml(REAL_USERS)
        + "\n[limits]\ndrop_user_agents = []\nauth_failures_before_ban = 10\n"
    )
    # svcrack answers MD5 challenges only (SHA-256, the default, makes it fail outright).
    with running_server(tmp_path, config=config, extra_args=["--legacy-digest"]) as server:
        target = ["-u101", "-p", str(server.sip_port), "--maximumtime", "2"]

        control = tmp_path / "control.txt"
        control.write_text(f"guess-1\nguess-2\n{password}\n")
        cracked = _run([svcrack, *target, "-d", str(control), "-P", str(free_port()), DOMAIN], 30)
        assert password in cracked, f"svcrack cannot crack even an early password:\n{cracked}"

        dictionary = tmp_path / "dictionary.txt"
        dictionary.write_text("".join(f"guess-{n}\n" for n in range(3, 40)) + f"{password}\n")
        attack = _attack_until_banned(
            [svcrack, *target, "-d", str(dictionary), "-P", str(free_port()), DOMAIN], server
        )
        assert password not in attack, attack
        assert "found nothing" in attack, attack

        assert server.options(source="127.0.0.1") is None  # the attacker's source: dropped
        assert server.options(source="127.0.0.2") == 200  # everyone else: served
        status = server.status()
        assert [ban["source"] for ban in status["bans"]] == ["127.0.0.1"], status["bans"]
        flood = status["flood"]
        assert flood["auth_failures"] >= 10 and flood["bans"] == 1, flood
        assert flood["dropped_banned"] >= 1, flood
        text = server.status_text()
        assert "auth_failures 10" in text or re.search(r"auth_failures 1\d", text), text
        assert re.search(r"banned sources: 1\s+127\.0\.0\.1", text), text
        assert "BAN src=127.0.0.1 reason=auth-failures" in server.output


def _attack_until_banned(args: list[str], server: ServerProcess) -> str:
    """Run svcrack until its source is banned, give it a second more, then Ctrl-C it.

    (Left alone, it waits for answers that will not come for 10 s more; on
    SIGINT it still prints what it cracked.)
    """
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd="/tmp",
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            if server.status()["bans"]:
                time.sleep(0.5)  # its next attempts meet the ban
                break
            time.sleep(0.1)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)
    return output


# ------------------------------------------------------------------------- flood


class Flood(threading.Thread):
    """OPTIONS and INVITEs from one socket at ``rate`` per second until stopped.

    Bounded: at most ``max_count`` requests and ``max_seconds``.
    """

    def __init__(
        self,
        server: ServerProcess,
        source: str,
        *,
        rate: int = 1000,
        max_count: int = 20_000,
        max_seconds: float = 20.0,
    ) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.setblocking(False)
        self.target = (server.host, server.sip_port)
        self.rate, self.max_count, self.max_seconds = rate, max_count, max_seconds
        self.stopping = threading.Event()
        self.sent = 0
        self.answered: set[bytes] = set()

    def _request(self, n: int) -> bytes:
        host, port = self.sock.getsockname()
        method = "INVITE" if n % 2 else "OPTIONS"
        return (
            f"{method} sip:10{n % 3}@{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bKflood{n};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:flood@example.org>;tag=f{n}\r\n"
            f"To: <sip:10{n % 3}@{DOMAIN}>\r\n"
            f"Call-ID: flood-{n}@example.org\r\n"
            f"CSeq: 1 {method}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    def _drain(self) -> None:
        for _ in range(10_000):
            try:
                data = self.sock.recv(65535)
            except (BlockingIOError, ConnectionRefusedError):
                return
            match = re.search(rb"Call-ID: (\S+)", data)
            if match:
                self.answered.add(match[1])

    def run(self) -> None:
        batch = 50
        start = time.monotonic()
        while (
            not self.stopping.is_set()
            and self.sent < self.max_count
            and time.monotonic() - start < self.max_seconds
        ):
            for _ in range(min(batch, self.max_count - self.sent)):
                try:
                    self.sock.sendto(self._request(self.sent), self.target)
                except BlockingIOError:
                    break
                self.sent += 1
            self._drain()
            time.sleep(max(0.0, start + self.sent / self.rate - time.monotonic()))
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            self._drain()
            time.sleep(0.05)
        self.sock.close()


def test_flood_is_cut_off_while_other_sources_register_and_call(
    default_server: ServerProcess, tmp_path: Path
) -> None:
    server, users = default_server, FLOOD_USERS
    flood = Flood(server, "127.0.0.3", rate=1000, max_count=5000)
    flood.start()
    try:
        for _ in range(100):  # the flood is on, and its source already over the limit
            if flood.sent >= 500:
                break
            time.sleep(0.05)
        sent_before = flood.sent
        phone = ("127.0.0.2", free_port(host="127.0.0.2"))
        sipp_dir = tmp_path / "sipp"
        registered = sipp_register(
            server, {"bob": users["bob"]}, sipp_dir, source=phone[0], port=phone[1]
        )
        uas = sipp_uas(sipp_dir, source=phone[0], port=phone[1], calls=1)
        try:
            call = sipp_call(server, "alice", users["alice"], "bob", sipp_dir, source="127.0.0.4")
            answered = uas.result(timeout=20)
        finally:
            uas.kill()
    finally:
        flood.stopping.set()
        flood.join(15)
    assert (registered.successful, registered.failed) == (1, 0), registered.output
    assert (call.successful, call.failed) == (1, 0), call.output
    assert (answered.successful, answered.failed) == (1, 0), answered.output
    assert sent_before < 5000, "the flood ended before the legitimate traffic began"
    assert flood.sent == 5000
    # About the burst (100) plus what refills until the server has worked through it.
    assert 1 <= len(flood.answered) <= 500, len(flood.answered)
    assert server.options(source="127.0.0.3") is None
    status = server.status()
    assert "127.0.0.3" in [ban["source"] for ban in status["bans"]], status["bans"]
    counters = status["flood"]
    assert counters["dropped_flood"] >= 1 and counters["bans"] >= 1, counters
    assert counters["dropped_banned"] >= 1000, counters
    assert "127.0.0.3" in server.status_text().split("banned sources:", 1)[1]
    assert "BAN src=127.0.0.3 reason=flood" in server.output  # the line fail2ban would watch
