"""Digest authentication (RFC 3261 §22, RFC 7616) against peers we did not write.

* SIPp as a UAS checks our client's credentials with its ``verifyauth`` action
  (MD5, qop=auth) and answers 200, or 403 for a wrong password.
* SIPp as a UAC registers with ``[authentication]`` (the uc360 scenario from
  SIPp's repository) against a tiny UDP registrar built from our parser,
  builder and :class:`DigestServer` offering MD5 only (SIPp 3.6 knows no
  other algorithm and answers only the first challenge).
* Kamailio 5.6 (``auth`` + ``registrar`` modules, usrloc in memory, plain
  password in the cfg) challenges our registration client with MD5 and with
  SHA-256, with ``nonce_count`` on: the refresh re-uses the nonce with nc=2
  and Kamailio accepts it, while a replayed nc=1 is refused.

The client side is the sans-IO :class:`RegistrationClient` driven over a
plain UDP socket with a fake clock for its timers, so the refresh comes at
once instead of after 90% of the expiry.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.support.peerprocess import peer_process, read_tail, wait_port_bound
from tests.support.peers import free_port, require_peer
from tests.support.sipp import sipp_args, sipp_process, wait_bound_sync

from trunkline.sip import Request, Response, parse_message
from trunkline.sip.auth import LEGACY_ALGORITHMS, AuthStatus, DigestServer, ha1
from trunkline.sip.builder import make_response, new_branch
from trunkline.sip.errors import SipParseError
from trunkline.ua.registration import (
    Account,
    Registered,
    RegistrationClient,
    RegistrationEvent,
    RegistrationFailed,
    Unregistered,
)

pytestmark = pytest.mark.interop

DATA = Path(__file__).resolve().parent.parent / "data" / "sipp"
REALM = "trunkline.test"
PASSWORD = "secret"
STEP_TIMEOUT = 8.0  # seconds of wall time for one registration step


# -- a UDP driver for the sans-IO registration client ---------------------------------


@dataclass
class Driver:
    """Sends the client's REGISTERs over UDP and feeds the responses back.

    The transport's job, done small: add a Via, retransmit every 0.5 s while
    no response came (RFC 3261 §17.1.2.2 Timer E, bounded), parse what comes
    back. ``now`` is the client's (fake) clock.
    """

    client: RegistrationClient
    sock: socket.socket
    peer: tuple[str, int]
    now: float = 0.0
    sent: list[Request] = field(default_factory=list)
    received: list[Response] = field(default_factory=list)

    @property
    def local_port(self) -> int:
        return int(self.sock.getsockname()[1])

    def send_raw(self, request: Request) -> None:
        request.headers.prepend(
            "Via", f"SIP/2.0/UDP 127.0.0.1:{self.local_port};rport;branch={new_branch()}"
        )
        self.sent.append(request)
        self.sock.sendto(bytes(request), self.peer)

    def step(self) -> RegistrationEvent:
        """Run until the client reports an event; fail after STEP_TIMEOUT seconds."""
        deadline = time.monotonic() + STEP_TIMEOUT
        last: bytes | None = None
        while time.monotonic() < deadline:
            for request in self.client.requests_to_send():
                self.send_raw(request)
                last = bytes(request)
            event = self.client.next_event()
            if event is not None:
                return event
            self.sock.settimeout(0.5)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                if last is not None:
                    self.sock.sendto(last, self.peer)
                continue
            except ConnectionRefusedError:
                continue  # the peer is still starting: ICMP unreachable, Timer E resends
            message = parse_message(data)
            assert isinstance(message, Response), data
            self.received.append(message)
            self.client.handle_response(message, self.now)
        raise AssertionError(f"no registration event within {STEP_TIMEOUT} s")

    def advance_to_timer(self) -> None:
        deadline = self.client.get_timer()
        assert deadline is not None
        self.now = deadline
        self.client.handle_timer(self.now)


@contextlib.contextmanager
def udp_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock
    finally:
        sock.close()


# -- SIPp as UAS: verifyauth checks our credentials ---------------------------------------

SIPP_UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="registrar verifying digest credentials">
  <recv request="REGISTER"/>
  <send>
    <![CDATA[
      SIP/2.0 401 Unauthorized
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      WWW-Authenticate: Digest realm="{realm}", nonce="[pid]n[call_number]x5d0a", qop="auth", \
algorithm=MD5
      Content-Length: 0

    ]]>
  </send>
  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="authvalid" username="alice" password="{password}"/>
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="good"/>
  <send next="done">
    <![CDATA[
      SIP/2.0 403 Forbidden
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <label id="good"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Contact:]
      Content-Length: 0

    ]]>
  </send>
  <label id="done"/>
</scenario>
"""


@pytest.mark.parametrize(("password", "expected"), [(PASSWORD, 200), ("not-the-password", 403)])
def test_sipp_uas_verifies_our_md5_credentials(
    tmp_path: Path, password: str, expected: int
) -> None:
    scenario = tmp_path / "uas_verifyauth.xml"
    scenario.write_text(SIPP_UAS.replace("\\\n", "").format(realm=REALM, password=PASSWORD))
    port = free_port()
    args = sipp_args("-sf", str(scenario), port=port, timeout=15)
    with sipp_process(args, tmp_path) as sipp, udp_socket() as sock:
        wait_bound_sync(port, sipp)
        client = RegistrationClient(
            Account(
                aor=f"sip:alice@{REALM}",
                contact=f"sip:alice@127.0.0.1:{sock.getsockname()[1]}",
                password=password,
                registrar=f"sip:127.0.0.1:{port}",
                expires=60,
            )
        )
        driver = Driver(client, sock, ("127.0.0.1", port))
        client.start(driver.now)
        event = driver.step()
        assert sipp.wait(timeout=10) == 0, sipp.output()
    assert [r.status for r in driver.received] == [401, expected]
    credentials = driver.sent[1].authorization[0]
    assert (credentials.algorithm, credentials.qop, credentials.nc) == ("MD5", "auth", "00000001")
    if expected == 200:
        assert isinstance(event, Registered) and event.expires == 60
    else:
        assert isinstance(event, RegistrationFailed) and event.status == 403


# -- SIPp as UAC: our DigestServer checks SIPp's credentials ---------------------------

SIPP_USER, SIPP_PASSWORD = "16001", "asdfzxcvqwer"  # from uc360_register_challenge.xml


def serve_registrar(
    sock: socket.socket, server: DigestServer, proc: subprocess.Popen[bytes]
) -> list[AuthStatus | None]:
    """Answer REGISTERs until SIPp exits: 401 without credentials, then 200 or 403."""
    results: list[AuthStatus | None] = []

    def lookup(username: str, realm: str, algorithm: str) -> str | None:
        return ha1(username, realm, SIPP_PASSWORD, algorithm) if username == SIPP_USER else None

    deadline = time.monotonic() + 15.0
    sock.settimeout(0.2)
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            data, addr = sock.recvfrom(65535)
        except TimeoutError:
            continue
        try:
            request = parse_message(data)
        except SipParseError:
            continue
        if not isinstance(request, Request):
            continue
        if request.method != "REGISTER":
            continue  # SIPp ends a failed scenario with a BYE; nothing to answer
        now = time.time()
        if not request.authorization:
            results.append(None)
            challenges = [("WWW-Authenticate", str(c)) for c in server.challenge(now)]
            response = make_response(request, 401, headers=challenges)
        else:
            result = server.verify(
                request.authorization[0],
                request.method,
                request.body,
                lookup,
                now,
                request_uri=str(request.uri),
            )
            results.append(result.status)
            response = make_response(request, 200 if result.ok else 403)
        sock.sendto(bytes(response), addr)
    return results


@pytest.mark.parametrize(("password", "ok"), [(SIPP_PASSWORD, True), ("wrong-one", False)])
def test_sipp_uac_registers_against_our_digest_server(
    tmp_path: Path, password: str, ok: bool
) -> None:
    scenario = tmp_path / "register.xml"
    text = (DATA / "auth" / "uc360_register_challenge.xml").read_text(encoding="latin-1")
    scenario.write_text(text.replace(f"password={SIPP_PASSWORD}", f"password={password}"))
    server = DigestServer(REALM, os.urandom(32), algorithms=LEGACY_ALGORITHMS)
    with udp_socket() as sock:
        port = int(sock.getsockname()[1])
        remote = f"127.0.0.1:{port}"
        args = sipp_args("-sf", str(scenario), remote=remote, port=free_port(), timeout=10)
        with sipp_process(args, tmp_path) as sipp:
            results = serve_registrar(sock, server, sipp.proc)
            code = sipp.wait(timeout=10)
    log = sipp.output()
    if ok:
        assert results == [None, AuthStatus.OK], log
        assert code == 0, log
    else:
        assert results == [None, AuthStatus.BAD], log
        assert code != 0  # SIPp's scenario expects 200 and got our 403


# -- Kamailio as registrar ---------------------------------------------------------------

KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("auth", "algorithm", "{algorithm}")
modparam("auth", "nonce_count", 1)
modparam("auth", "nonce_expire", {nonce_expire})
modparam("auth", "qop", "auth")
modparam("auth", "secret", "{secret}")
modparam("usrloc", "db_mode", 0)
request_route {{
    if (!is_method("REGISTER")) {{ sl_send_reply("404", "Not here"); exit; }}
    if (!pv_www_authenticate("{realm}", "{password}", "0")) {{
        xlog("L_NOTICE", "auth failed rc=$rc user=$au\\n");
        auth_challenge("{realm}", "1");
        exit;
    }}
    consume_credentials();
    if (!save("location")) {{ sl_reply_error(); }}
    exit;
}}
"""


@dataclass(frozen=True)
class Kamailio:
    port: int
    algorithm: str
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def start_kamailio(run: Path, algorithm: str, nonce_expire: int = 300) -> Iterator[Kamailio]:
    """Kamailio in the foreground (``-DD -E``) with its runtime files in ``run``."""
    binary = require_peer("kamailio", "kamailio")
    port = free_port()
    cfg = run / "kamailio.cfg"
    cfg.write_text(
        KAMAILIO_CFG.format(
            port=port,
            algorithm=algorithm,
            nonce_expire=nonce_expire,
            secret=os.urandom(16).hex(),
            realm=REALM,
            password=PASSWORD,
        )
    )
    log = run / "kamailio.log"
    args = [binary, "-f", str(cfg), "-DD", "-E", "-n", "1", "-m", "32", "-M", "4"]
    args += ["-Y", str(run), "-w", str(run), "-P", str(run / "kamailio.pid")]
    with peer_process(args, log) as proc:
        wait_port_bound(port, proc, output=lambda: read_tail(log, 3000))
        yield Kamailio(port, algorithm, log)


@pytest.fixture(scope="module", params=["MD5", "SHA-256"])
def kamailio(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kamailio]:
    algorithm = str(request.param)
    with start_kamailio(tmp_path_factory.mktemp(f"kamailio-{algorithm}"), algorithm) as peer:
        yield peer


def kamailio_client(sock: socket.socket, kamailio: Kamailio, password: str) -> Driver:
    client = RegistrationClient(
        Account(
            aor=f"sip:alice@{REALM}",
            contact=f"sip:alice@127.0.0.1:{sock.getsockname()[1]}",
            password=password,
            registrar=f"sip:127.0.0.1:{kamailio.port}",
            expires=120,
        )
    )
    return Driver(client, sock, ("127.0.0.1", kamailio.port))


def test_kamailio_challenges_refresh_reuses_nonce_and_unregister(kamailio: Kamailio) -> None:
    with udp_socket() as sock:
        driver = kamailio_client(sock, kamailio, PASSWORD)
        driver.client.start(driver.now)
        first = driver.step()
        assert isinstance(first, Registered), kamailio.tail()
        assert [r.status for r in driver.received] == [401, 200]
        challenge = driver.received[0].www_authenticate[0]
        assert challenge.algorithm == kamailio.algorithm
        authorized = driver.sent[1]
        credentials = authorized.authorization[0]
        assert (credentials.algorithm, credentials.nc) == (kamailio.algorithm, "00000001")
        assert first.expires == 120
        contact = f"sip:alice@127.0.0.1:{driver.local_port}"
        assert any(contact in binding for binding in first.bindings)

        # The refresh re-uses the nonce with nc=2, pre-emptively: one request, 200.
        driver.advance_to_timer()
        sent_before = len(driver.sent)
        refreshed = driver.step()
        assert isinstance(refreshed, Registered) and refreshed.refreshed, kamailio.tail()
        assert len(driver.sent) == sent_before + 1
        again = driver.sent[-1].authorization[0]
        assert (again.nonce, again.nc) == (credentials.nonce, "00000002")

        # Kamailio checks nonce-counts: replaying nc=1 is refused with a new challenge.
        replay = authorized.copy()
        replay.headers.pop_first("Via")
        replay.headers.set("CSeq", f"{driver.sent[-1].cseq.number + 1} REGISTER")
        driver.send_raw(replay)
        sock.settimeout(STEP_TIMEOUT)
        answer = parse_message(sock.recv(65535))
        assert isinstance(answer, Response) and answer.status == 401
        # ... for its nonce state (rc -4), not as a wrong password (rc -2): see the cfg's xlog.
        refusals = [line for line in kamailio.tail().splitlines() if "auth failed" in line]
        assert refusals and "user=alice" in refusals[-1] and "rc=-2" not in refusals[-1]

        driver.client.stop(driver.now)
        gone = driver.step()
        assert gone == Unregistered(200), kamailio.tail()
        assert driver.sent[-1].contact[0].expires == 0
        assert driver.sent[-1].authorization  # the removal is authenticated too
        final = driver.received[-1]
        assert not [c for c in final.contact if contact in str(c.uri)]


def test_kamailio_rejects_wrong_password(kamailio: Kamailio) -> None:
    with udp_socket() as sock:
        driver = kamailio_client(sock, kamailio, "not-" + PASSWORD)
        driver.client.start(driver.now)
        event = driver.step()
        assert isinstance(event, RegistrationFailed), kamailio.tail()
        assert event.status == 401 and event.retry_at is not None
        # One retry with credentials, then the client gives up (RFC 3261 §22.2).
        assert [r.status for r in driver.received] == [401, 401]
        assert len(driver.sent) == 2
        assert driver.sent[1].authorization[0].algorithm == kamailio.algorithm


def test_kamailio_expired_nonce_is_replaced(tmp_path: Path) -> None:
    """Kamailio 5.6 refuses an expired nonce without ``stale=true``; we still recover.

    RFC 7616 §3.3 says a server SHOULD flag an expired nonce as stale; Kamailio
    re-challenges plainly. The client answers the new nonce because the old
    one had already worked (see :meth:`DigestClient.challenged`).
    """
    with start_kamailio(tmp_path, "MD5", nonce_expire=2) as kamailio, udp_socket() as sock:
        driver = kamailio_client(sock, kamailio, PASSWORD)
        driver.client.start(driver.now)
        assert isinstance(driver.step(), Registered), kamailio.tail()
        time.sleep(3.0)  # let the nonce expire at Kamailio
        driver.advance_to_timer()
        refreshed = driver.step()
        assert isinstance(refreshed, Registered) and refreshed.refreshed, kamailio.tail()
        assert [r.status for r in driver.received] == [401, 200, 401, 200]
        old, new = (request.authorization[0] for request in driver.sent[2:])
        assert old.nonce == driver.sent[1].authorization[0].nonce and old.nc == "00000002"
        assert new.nonce != old.nonce and new.nc == "00000001"
        assert not driver.received[2].www_authenticate[0].stale
