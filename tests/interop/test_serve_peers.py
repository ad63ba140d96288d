"""Owner: helper C. ``trunkline serve`` with real softphones (issue 6).

baresip and linphonec register with digest auth (RFC 3261 §22, RFC 8760)
to a ``trunkline serve`` process and call each other through it, with audio
both ways (each recording holds the other side's tone) and RFC 4733 DTMF. A
Trunkline phone registered over UDP calls one registered over TCP through
the server (transport bridging, RFC 3261 §18), tones checked both ways.

Digest algorithms: by default the server offers SHA-256 then MD5 (two
``WWW-Authenticate`` headers, RFC 8760 §2.4); ``--legacy-digest`` offers MD5
only. baresip 1.0 gives up on the first (SHA-256) challenge ("Register:
Function not implemented") instead of taking the MD5 one, so the baresip
server here runs with ``--legacy-digest``; linphonec and the Trunkline phone
register under the default offer.

The servers serve a named domain (``trunkline.test``, ``--config``): with the
default domain ``127.0.0.1`` every UA's loopback Contact is "in our domain",
and the proxy drops the ACK and answers 404 to the BYE that follow its own
Record-Route (``test_in_dialog_requests_when_domain_is_the_address``).
Users are added with ``trunkline users add`` (before the start, and once
while the server runs) or listed in the config file.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.support import audio
from tests.support.baresip import BaresipAccount, BaresipFactory
from tests.support.linphone import LinphoneAccount, LinphoneFactory
from tests.support.peers import free_port
from tests.support.server import ServerProcess, add_user, running_server
from tests.support.trunkline_phone import PhoneProcesses

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
DOMAIN = "trunkline.test"
# Not alice/bob/carol: the server creates those demo users itself.
USERS = {name: f"{name}-{secrets.token_hex(4)}" for name in ("ann", "ben", "tom", "tina")}
ANN_HZ = 1000.0  # baresip
BEN_HZ = 600.0  # linphonec
TOM_HZ = 800.0  # Trunkline phone on UDP
TINA_HZ = 1200.0  # Trunkline phone on TCP
CALL_SECONDS = 5.0


def serve(
    workdir: Path,
    users: tuple[str, ...],
    *extra: str,
    domain: str | None = DOMAIN,
    cli_users: bool = False,
) -> Iterator[ServerProcess]:
    """``trunkline serve`` for ``domain`` (None: its default) with ``users``.

    Users come from ``trunkline users add`` run before the start when
    ``cli_users``, else from ``[[users]]`` in the config file (faster: each
    ``trunkline`` command costs seconds of start-up on a busy machine).
    """
    config = f'domains = ["{domain}"]\n' if domain else ""
    for name in users:
        if cli_users:
            add_user(workdir / "data", name, USERS[name], domain=domain or HOST)
        else:
            config += f'\n[[users]]\nname = "{name}"\npassword = "{USERS[name]}"\n'
    with running_server(workdir, config=config, extra_args=extra) as server:
        yield server


@pytest.fixture(scope="module")
def legacy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server offering MD5 only (``--legacy-digest``), for baresip 1.0."""
    yield from serve(
        tmp_path_factory.mktemp("legacy"), ("ann", "ben"), "--legacy-digest", cli_users=True
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the default digest offer (SHA-256 and MD5)."""
    yield from serve(tmp_path_factory.mktemp("default"), ("ben", "tom", "tina"))


@pytest.fixture
async def phones() -> AsyncIterator[PhoneProcesses]:
    processes = PhoneProcesses()
    try:
        yield processes
    finally:
        await processes.close()


def aor(user: str) -> str:
    return f"sip:{user}@{DOMAIN}"


def proxy(server: ServerProcess, transport: str = "udp") -> str:
    """The server as registrar and outbound proxy."""
    return f"sip:{HOST}:{server.sip_port};transport={transport}"


def baresip_account(server: ServerProcess, user: str) -> BaresipAccount:
    return BaresipAccount(
        user, domain=DOMAIN, outbound=proxy(server), auth_pass=USERS[user], regint=600
    )


def linphone_account(server: ServerProcess, user: str) -> LinphoneAccount:
    return LinphoneAccount(
        user,
        domain=DOMAIN,
        registrar_port=server.sip_port,
        password=USERS[user],
        route_via_registrar=True,
    )


def challenge(server: ServerProcess, user: str) -> list[str]:
    """The ``WWW-Authenticate`` values of the 401 to an unauthenticated REGISTER."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(3.0)
        port = sock.getsockname()[1]
        call_id = secrets.token_hex(8)
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{DOMAIN}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{user}@{DOMAIN}>",
            f"Call-ID: {call_id}",
            "CSeq: 1 REGISTER",
            f"Contact: <sip:{user}@{HOST}:{port}>",
            "Expires: 60",
            "Content-Length: 0",
            "",
            "",
        ]
        sock.sendto("\r\n".join(lines).encode(), (HOST, server.sip_port))
        for _ in range(5):
            data = sock.recv(65535).decode(errors="replace")
            head = data.split("\r\n\r\n", 1)[0].split("\r\n")
            if call_id in data and not head[0].startswith("SIP/2.0 1"):
                assert head[0].startswith("SIP/2.0 401"), head[0]
                return [
                    h.split(":", 1)[1].strip()
                    for h in head[1:]
                    if h.lower().startswith("www-authenticate:")
                ]
    raise AssertionError("no final answer to REGISTER")


def algorithms(values: list[str]) -> list[str]:
    return [m.group(1) for v in values if (m := re.search(r"algorithm=\"?([\w-]+)", v))]


# -- digest offer ----------------------------------------------------------------


def test_default_offer_is_sha256_then_md5(server: ServerProcess) -> None:
    assert algorithms(challenge(server, "tom")) == ["SHA-256", "MD5"]
    # Same shape for a user that does not exist (no user enumeration).
    assert algorithms(challenge(server, f"nobody{secrets.token_hex(3)}")) == ["SHA-256", "MD5"]


def test_legacy_digest_offers_md5_only(legacy_server: ServerProcess) -> None:
    assert algorithms(challenge(legacy_server, "ann")) == ["MD5"]


# -- baresip and linphonec through the server --------------------------------------


async def test_baresip_and_linphone_call_each_other(
    legacy_server: ServerProcess,
    baresip_factory: BaresipFactory,
    linphone_factory: LinphoneFactory,
    tmp_path: Path,
) -> None:
    bare = await baresip_factory(
        baresip_account(legacy_server, "ann"),
        audio.write_tone_wav(tmp_path / "ann-mic.wav", ANN_HZ, 40),
    )
    lin = await linphone_factory(
        linphone_account(legacy_server, "ben"),
        audio.write_tone_wav(tmp_path / "ben-mic.wav", BEN_HZ, 40),
    )
    await bare.wait_registered()
    await lin.wait_registered()
    bound = {b["aor"] for b in legacy_server.status()["bindings"]}
    assert {aor("ann"), aor("ben")} <= bound, bound

    # baresip calls linphonec.
    await bare.checked("dial", aor("ben"))
    await lin.wait_incoming()
    await lin.answer()
    await bare.wait_established()
    await asyncio.sleep(1.0)
    await bare.send_dtmf("12")
    await lin.send_dtmf("9#")
    await asyncio.sleep(1.0)
    await bare.hangup()
    await lin.wait_ended()
    assert lin.received_dtmf() == "12"
    assert bare.received_dtmf() == "9#"
    audio.assert_hears(lin.record_wav, ANN_HZ, "linphonec hearing baresip")
    audio.assert_hears(bare.recordings()[-1], BEN_HZ, "baresip hearing linphonec")

    # linphonec calls baresip back.
    await lin.set_recording(tmp_path / "ben-heard-2.wav")
    await lin.send(f"call {aor('ann')}")
    await bare.wait_incoming()
    await bare.answer()
    await lin.wait_connected()
    await asyncio.sleep(2.5)
    await lin.terminate()
    await bare.wait_closed()
    audio.assert_hears(tmp_path / "ben-heard-2.wav", ANN_HZ, "linphonec hearing baresip (2)")
    audio.assert_hears(bare.recordings()[-1], BEN_HZ, "baresip hearing linphonec (2)")


async def test_linphone_registers_with_default_offer(
    server: ServerProcess, linphone_factory: LinphoneFactory
) -> None:
    lin = await linphone_factory(linphone_account(server, "ben"))
    await lin.wait_registered()
    assert aor("ben") in {b["aor"] for b in server.status()["bindings"]}


# -- Trunkline phones: UDP calls TCP through the server ---------------------------


def phone_args(
    server: ServerProcess, user: str, transport: str, hz: float, heard: Path
) -> list[str]:
    """Options for a Trunkline phone registered as ``user`` over ``transport``."""
    return [
        "--transport",
        transport,
        "--local",
        f"{HOST}:{free_port(socket.SOCK_STREAM if transport == 'tcp' else socket.SOCK_DGRAM)}",
        "--user",
        user,
        "--password",
        USERS[user],
        "--aor",
        aor(user),
        "--registrar",
        f"sip:{DOMAIN}",
        "--outbound-proxy",
        proxy(server, transport),
        "--tone",
        str(hz),
        "--record",
        str(heard),
        "--duration",
        str(CALL_SECONDS),
    ]


async def test_trunkline_udp_calls_trunkline_tcp(
    server: ServerProcess, phones: PhoneProcesses, tmp_path: Path
) -> None:
    tina_heard, tom_heard = tmp_path / "tina-heard.wav", tmp_path / "tom-heard.wav"
    tina = await phones.start(
        tmp_path / "tina",
        "listen",
        "--auto-answer",
        "--dtmf",
        "47",
        *phone_args(server, "tina", "tcp", TINA_HZ, tina_heard),
    )
    await tina.expect(r"^registered sip:tina@")
    binding = [b for b in server.status()["bindings"] if b["aor"] == aor("tina")]
    assert binding and binding[0]["transport"].upper() == "TCP", binding
    tom = await phones.start(
        tmp_path / "tom",
        "call",
        aor("tina"),
        "--dtmf",
        "*0",
        *phone_args(server, "tom", "udp", TOM_HZ, tom_heard),
    )
    assert await tom.wait(CALL_SECONDS + 25) == 0, tom.output() + tina.output()
    assert await tina.wait(10) == 0, tina.output()
    assert tom.received_dtmf() == "47", tom.output()
    assert tina.received_dtmf() == "*0", tina.output()
    audio.assert_hears(tom_heard, TINA_HZ, "UDP phone hearing the TCP phone")
    audio.assert_hears(tina_heard, TOM_HZ, "TCP phone hearing the UDP phone")


# -- users added at run time; a known router bug --------------------------------


async def test_user_added_while_running_can_register(
    server: ServerProcess, phones: PhoneProcesses, tmp_path: Path
) -> None:
    password = secrets.token_hex(6)
    add_user(server.data_dir, "late", password, domain=DOMAIN)
    phone = await phones.start(
        tmp_path / "late",
        "register",
        "--user",
        "late",
        "--password",
        password,
        "--aor",
        aor("late"),
        "--registrar",
        f"sip:{DOMAIN}",
        "--outbound-proxy",
        proxy(server),
    )
    assert await phone.wait(30) == 0, phone.output()
    await phone.expect(r"^registered sip:late@")


@pytest.fixture
def ip_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose domain is its address (the zero-config default, 127.0.0.1)."""
    yield from serve(tmp_path / "ip", ("ann", "ben"), "--legacy-digest", domain=None)


async def test_in_dialog_requests_when_domain_is_the_address(
    ip_server: ServerProcess,
    baresip_factory: BaresipFactory,
    linphone_factory: LinphoneFactory,
    tmp_path: Path,
) -> None:
    port = ip_server.sip_port
    bare = await baresip_factory(
        BaresipAccount("ann", registrar_port=port, auth_pass=USERS["ann"]),
        audio.write_tone_wav(tmp_path / "ann-mic.wav", ANN_HZ, 20),
    )
    lin = await linphone_factory(LinphoneAccount("ben", registrar_port=port, password=USERS["ben"]))
    await bare.wait_registered()
    await lin.wait_registered()
    await bare.checked("dial", f"sip:ben@{HOST}:{port}")
    await lin.wait_incoming()
    await lin.answer()
    await bare.wait_established()
    await bare.hangup()
    assert await lin.wait_ended(timeout=5.0)
