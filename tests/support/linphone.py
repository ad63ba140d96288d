"""linphonec (liblinphone 5.x, Debian linphone-cli) as a softphone peer.

``Linphone`` writes a linphonerc (SIP port, RTP port range, one proxy account
with digest credentials or none), starts ``linphonec -c rc`` with a private
``HOME`` (liblinphone keeps an sqlite database under ~/.local/share/linphone)
and drives it through stdin: one command per line. Its stdout is unbuffered
status text that the driver keeps as a transcript and matches with regular
expressions, e.g.::

    Call 1 with sip:alice@127.0.0.1 connected.
    Receiving new incoming call from <sip:...>, assigned id 1
    Receiving tone 5 from sip:...
    Call 1 has been paused by sip:...
    Call 1 with sip:... ended (Call terminated).

No sound card: ``soundcard use files`` switches to the file player/recorder,
``play X.wav`` sets what is sent and ``record Y.wav`` where what is received is
written (both per the Debian 12 recipe in /work/shared/peers/linphone).
Usage (or the ``linphone_factory`` fixture)::

    account = LinphoneAccount("bob", registrar_port=kam.port, password="pw")
    async with Linphone(tmp_path / "bob", account, play_wav=tone_wav) as phone:
        await phone.wait_registered()
        caller, call_id = await phone.wait_incoming()
        await phone.answer()
        await phone.wait_ended()
    phone.record_wav  # WAV of what linphonec heard

Notes (liblinphone 5.1): it uses a GRUU (RFC 5627) as Contact once the
registrar offers one, so a proxy must resolve ``;gr=`` request URIs (the
Kamailio driver does); DTMF digits sent less than about 0.5 s apart get lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.peerprocess import AsyncPeer, PeerFactory
from tests.support.peers import free_port, require_peer

IGNORED = ("suitable soundcard", "Warning: video is disabled")


@dataclass
class LinphoneAccount:
    """The linphonerc proxy section: who we are and where we register."""

    user: str
    domain: str = "127.0.0.1"
    registrar_port: int | None = None
    password: str | None = None
    realm: str | None = None
    transport: str = "udp"
    expires: int = 600
    #: Send every request of the account through the registrar (``reg_route``):
    #: needed when ``domain`` is a name that does not resolve.
    route_via_registrar: bool = False

    @property
    def identity(self) -> str:
        return f"sip:{self.user}@{self.domain}"


class Linphone(AsyncPeer):
    """A linphonec process driven through stdin/stdout."""

    def __init__(
        self,
        workdir: Path,
        account: LinphoneAccount,
        play_wav: Path | None = None,
        record_wav: Path | None = None,
        *,
        binary: str = "linphonec",
        debug_log: bool = False,
    ) -> None:
        super().__init__(workdir / "linphonec.log")
        self.dir = workdir
        self.home = workdir / "home"
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.account = account
        self.play_wav = play_wav
        self.record_wav = record_wav if record_wav is not None else workdir / "received.wav"
        self.binary = binary
        self.debug_log = debug_log
        self.sip_port = free_port()
        self.rtp_base = free_port() & ~1
        self.rc_path = workdir / "linphonerc"
        self.transcript: list[str] = []
        self._cursor = 0
        self._read_task: asyncio.Task[None] | None = None

    # -- configuration -------------------------------------------------------

    def rc_text(self) -> str:
        acc = self.account
        rtp_top = min(self.rtp_base + 40, 65534)
        lines = [
            "[sip]",
            f"sip_port={self.sip_port}",
            "sip_tcp_port=0",
            "sip_tls_port=0",
            "register_only_when_network_is_up=0",
            "ping_with_options=0",
            "guess_hostname=0",
            f'contact="{acc.user}" <sip:{acc.user}@127.0.0.1:{self.sip_port}>',
            "use_ipv6=0",
            "inc_timeout=60",
            "",
            "[net]",
            "firewall_policy=0",
            "mtu=1300",
            "",
            "[rtp]",
            f"audio_rtp_port={self.rtp_base}-{rtp_top}",
            "audio_jitt_comp=60",
            "rtcp_mux=0",
            "",
            "[sound]",
            "echocancellation=0",
            "",
            "[video]",
            "enabled=0",
            "automatically_initiate=0",
            "automatically_accept=0",
            "capture=0",
            "display=0",
            "",
            "[misc]",
            "enable_basic_to_client_group_chat_room_migration=0",
            "version_check_url_root=",
            "file_transfer_server_url=",
            "contacts_vcard_list=",
            "",
            "[lime]",
            "enabled=0",
            "",
        ]
        if acc.registrar_port is not None:
            lines += [
                "[sip]",
                "default_proxy=0",
                "",
                "[proxy_0]",
                f"reg_proxy=<sip:127.0.0.1:{acc.registrar_port};transport={acc.transport}>",
                f'reg_identity="{acc.user}" <{acc.identity}>',
                f"reg_expires={acc.expires}",
                *(
                    [f"reg_route=<sip:127.0.0.1:{acc.registrar_port};transport={acc.transport};lr>"]
                    if acc.route_via_registrar
                    else []
                ),
                "reg_sendregister=1",
                "publish=0",
                "dial_escape_plus=0",
                "",
            ]
        if acc.password is not None:
            lines += [
                "[auth_info_0]",
                f"username={acc.user}",
                f"passwd={acc.password}",
                f"realm={acc.realm or acc.domain}",
                "",
            ]
        return "\n".join(lines)

    # -- process -------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Start linphonec, switch it to files, set the player and recorder."""
        # liblinphone rewrites its rc on exit, so each start writes it afresh.
        self.rc_path.write_text(self.rc_text())
        argv = [self.binary, "-c", str(self.rc_path)]
        if self.debug_log:
            argv += ["-d", "6", "-l", str(self.dir / "liblinphone.log")]
        await self.spawn(
            argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={"HOME": str(self.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        self._read_task = asyncio.create_task(self._read_loop())
        await self.send("soundcard use files")
        if self.play_wav is not None:
            await self.send(f"play {self.play_wav}")
        await self.send(f"record {self.record_wav}")
        # A command answered means the prompt loop is up.
        await self.send("status hook")
        await self.expect(r"^hook=", timeout=timeout)

    async def stop(self) -> None:
        """``quit``; kill linphonec if it does not exit within 5 s."""
        if self.running:
            with contextlib.suppress(Exception):
                await self.send("quit")
        await self.end_process(5.0)
        if self._read_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._read_task, 2.0)
            self._read_task = None

    async def _read_loop(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log_path.open("a", errors="replace") as log:
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace").rstrip("\r\n")
                log.write(line + "\n")
                log.flush()
                # The prompt is printed without a newline before the next output.
                while line.startswith("linphonec> "):
                    line = line[len("linphonec> ") :]
                if not line or any(s in line for s in IGNORED):
                    continue
                self.transcript.append(line)
                self.notify()
        self.notify()

    async def send(self, command: str) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise RuntimeError("linphonec not started")
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The next unconsumed transcript line matching ``pattern`` (earlier lines are skipped)."""
        rx = re.compile(pattern)

        def find() -> re.Match[str] | None:
            for i in range(self._cursor, len(self.transcript)):
                m = rx.search(self.transcript[i])
                if m:
                    self._cursor = i + 1
                    return m
            return None

        def timed_out() -> Exception:
            tail = "\n".join(self.transcript[-10:])
            return TimeoutError(f"linphonec: no line matching {pattern!r}; last lines:\n{tail}")

        def gone() -> Exception | None:
            if self.proc is None or (self.proc.returncode is not None and self._read_task is None):
                return RuntimeError("linphonec is not running")
            return None

        return await self.wait_until(find, timeout=timeout, timed_out=timed_out, gone=gone)

    def lines_matching(self, pattern: str) -> list[re.Match[str]]:
        """All transcript lines matching ``pattern`` (consumed or not)."""
        rx = re.compile(pattern)
        return [m for m in (rx.search(line) for line in self.transcript) if m]

    # -- phone operations ----------------------------------------------------

    async def wait_registered(self, timeout: float = 10.0) -> str:
        """Poll ``status register`` until it says ``registered, identity=...``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await self.send("status register")
            with contextlib.suppress(TimeoutError):
                m = await self.expect(r"^(registered,.*|registered=-?\d.*|unregistered.*)", 1.0)
                if m.group(1).startswith("registered,"):
                    return m.group(1)
            await asyncio.sleep(0.2)
        raise TimeoutError(f"linphonec not registered:\n{self.log_text()}")

    async def call(self, uri: str, timeout: float = 15.0) -> int:
        """Dial ``uri``; returns the call id once connected."""
        await self.send(f"call {uri}")
        return await self.wait_connected(timeout)

    async def wait_connected(self, timeout: float = 15.0) -> int:
        m = await self.expect(r"Call (\d+) with .* (connected|ended|error)", timeout)
        if m.group(2) != "connected":
            raise RuntimeError(f"call failed: {m.group(0)}")
        return int(m.group(1))

    async def wait_incoming(self, timeout: float = 15.0) -> tuple[str, int]:
        """(caller, call id) of the next incoming call."""
        m = await self.expect(r"Receiving new incoming call from (.*), assigned id (\d+)", timeout)
        return m.group(1), int(m.group(2))

    async def answer(self, call_id: int | None = None, timeout: float = 10.0) -> int:
        await self.send("answer" if call_id is None else f"answer {call_id}")
        return await self.wait_connected(timeout)

    async def terminate(self, timeout: float = 10.0) -> str:
        await self.send("terminate")
        return await self.wait_ended(timeout)

    async def wait_ended(self, timeout: float = 10.0, peer: str = "") -> str:
        """The reason in ``Call N with X ended (reason).`` (X containing ``peer``)."""
        m = await self.expect(rf"Call \d+ with .*{re.escape(peer)}.* ended \((.*)\)", timeout)
        return m.group(1)

    async def send_dtmf(self, digits: str, gap: float = 0.7) -> None:
        """DTMF: linphonec sends a one-character line of 0-9*#A-D as a digit.

        liblinphone drops a digit asked for while the previous one is still
        being sent (seen with 0.3 s gaps), hence the default gap.
        """
        for digit in digits:
            await self.send(digit)
            await asyncio.sleep(gap)

    def received_dtmf(self) -> str:
        return "".join(m.group(1) for m in self.lines_matching(r"Receiving tone (\S) from"))

    async def wait_paused_by_remote(self, timeout: float = 10.0) -> str:
        m = await self.expect(r"Call \d+ has been paused by (.*)\.", timeout)
        return m.group(1)

    async def call_states(self, timeout: float = 5.0) -> dict[int, str]:
        """``calls``: call id -> liblinphone state (StreamsRunning, PausedByRemote, ...)."""
        await self.send("calls")
        await self.expect(r"^Call states|^No active call", timeout)
        await asyncio.sleep(0.2)  # the table rows follow at once
        states: dict[int, str] = {}
        for line in self.transcript[self._cursor :]:
            m = re.match(r"^(\d+)\s*\|\s*(\S+)\s*\|\s*(\w+)", line)
            if m:
                states[int(m.group(1))] = m.group(3)
        return states

    async def wait_state(self, state: str, timeout: float = 10.0) -> dict[int, str]:
        """Poll ``calls`` until some call is in ``state``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        states: dict[int, str] = {}
        while loop.time() < deadline:
            states = await self.call_states()
            if state in states.values():
                return states
            await asyncio.sleep(0.3)
        raise TimeoutError(f"no call in state {state}; calls: {states}")

    async def set_recording(self, path: Path) -> None:
        """Where the audio of the next call is written."""
        self.record_wav = path
        await self.send(f"record {path}")

    async def pause(self) -> None:
        await self.send("pause")

    async def resume(self) -> None:
        await self.send("resume")

    async def transfer(self, uri: str) -> None:
        await self.send(f"transfer {uri}")

    @property
    def contact_uri(self) -> str:
        return f"sip:{self.account.user}@127.0.0.1:{self.sip_port}"


class LinphoneFactory(PeerFactory[Linphone]):
    """Starts linphonecs in private directories; ``close()`` stops them all."""

    def __init__(self, root: Path, binary: str = "linphonec") -> None:
        super().__init__()
        self.root = root
        self.binary = binary

    async def __call__(
        self, account: LinphoneAccount, play_wav: Path | None = None, *, debug_log: bool = False
    ) -> Linphone:
        workdir = self.root / f"linphone{len(self.started)}-{account.user}"
        workdir.mkdir(parents=True, exist_ok=True)
        phone = Linphone(workdir, account, play_wav, binary=self.binary, debug_log=debug_log)
        return await self.launch(phone)


@pytest.fixture
async def linphone_factory(tmp_path: Path) -> AsyncIterator[LinphoneFactory]:
    """``await linphone_factory(LinphoneAccount("bob", registrar_port=p, password=pw), wav)``."""
    factory = LinphoneFactory(tmp_path, require_peer("linphonec", "linphone-cli"))
    try:
        yield factory
    finally:
        await factory.close()
