"""baresip (1.0.x) as a softphone peer for interop tests.

``Baresip`` writes a config directory (``baresip -f DIR``): no sound card
(``aufile`` reads the WAV we choose as microphone; ``aubridge,nil`` is a
silent speaker; ``sndfile`` dumps what baresip decoded from each call as
``dump-<time>-dec.wav`` in its own directory), G.711 codecs, one account line
and the ``ctrl_tcp`` module. Commands go over ctrl_tcp as JSON in netstrings
(``{"command": ..., "params": ..., "token": ...}``); the same connection
carries events (``{"event": true, "class": "call", "type":
"CALL_ESTABLISHED", ...}``), which the driver keeps in order so that a test can
wait for one even if it arrived before the wait began.

All methods are coroutines with timeouts; ``stop()`` (or ``async with``) always
kills the process. Usage (or the ``baresip_factory`` fixture)::

    account = BaresipAccount("alice", registrar_port=kam.port, auth_pass="pw")
    async with Baresip(tmp_path / "alice", account, tone_wav) as phone:
        await phone.wait_registered()
        await phone.dial("sip:bob@127.0.0.1:5060")  # -> CALL_ESTABLISHED event
        await phone.send_dtmf("12#"); await phone.hold(); await phone.resume()
        await phone.hangup()
    phone.recordings()[-1]  # WAV of what baresip heard

Notes (baresip 1.0.0): the answering side reports CALL_ESTABLISHED only once
the ACK arrives and, with ``answermode=auto``, no CALL_INCOMING at all;
CALL_MENC (SRTP keyed) comes before CALL_ESTABLISHED.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import STDOUT
from typing import Any, Literal

import pytest

from tests.support.peerprocess import AsyncPeer, PeerFactory
from tests.support.peers import free_port, require_peer

MediaEnc = Literal["srtp", "srtp-mand", "srtp-mandf"]


@dataclass(frozen=True)
class BaresipEvent:
    """One ctrl_tcp event (``class`` is ``cls``)."""

    cls: str
    type: str
    param: str = ""
    peeruri: str = ""
    accountaor: str = ""
    call_id: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, msg: dict[str, Any]) -> BaresipEvent:
        return cls(
            cls=str(msg.get("class", "")),
            type=str(msg.get("type", "")),
            param=str(msg.get("param", "")),
            peeruri=str(msg.get("peeruri", "")),
            accountaor=str(msg.get("accountaor", "")),
            call_id=str(msg.get("id", "")),
            raw=msg,
        )


class BaresipError(RuntimeError):
    pass


@dataclass
class BaresipAccount:
    """One baresip account line (``<aor>;param=value...``)."""

    user: str
    domain: str = "127.0.0.1"
    registrar_port: int | None = None
    auth_pass: str | None = None
    auth_user: str | None = None
    outbound: str | None = None
    transport: Literal["udp", "tcp", "tls"] = "udp"
    regint: int = 600
    answermode: Literal["manual", "auto", "early"] = "manual"
    mediaenc: MediaEnc | None = None
    codecs: tuple[str, ...] = ("PCMU/8000/1", "PCMA/8000/1")

    @property
    def aor(self) -> str:
        port = f":{self.registrar_port}" if self.registrar_port else ""
        return f"sip:{self.user}@{self.domain}{port}"

    def line(self) -> str:
        parts = [f"<{self.aor};transport={self.transport}>"]
        if self.auth_pass is not None:
            parts.append(f"auth_pass={self.auth_pass}")
        if self.auth_user is not None:
            parts.append(f"auth_user={self.auth_user}")
        if self.outbound is not None:
            parts.append(f'outbound="{self.outbound}"')
        parts.append(f"regint={self.regint if self.registrar_port or self.outbound else 0}")
        parts.append(f"answermode={self.answermode}")
        parts.append(f"audio_codecs={','.join(self.codecs)}")
        if self.mediaenc is not None:
            parts.append(f"mediaenc={self.mediaenc}")
        return ";".join(parts)


class Baresip(AsyncPeer):
    """A baresip process with a generated config, driven over ctrl_tcp."""

    def __init__(
        self,
        workdir: Path,
        account: BaresipAccount,
        source_wav: Path,
        *,
        binary: str = "baresip",
        sip_trace: bool = False,
    ) -> None:
        super().__init__(workdir / "baresip.log")
        self.dir = workdir
        self.conf = workdir / "conf"
        self.snd = workdir / "snd"
        self.conf.mkdir(parents=True, exist_ok=True)
        self.snd.mkdir(parents=True, exist_ok=True)
        self.account = account
        self.source_wav = source_wav
        self.binary = binary
        self.sip_trace = sip_trace
        self.sip_port = free_port()
        self.ctrl_port = free_port(socket.SOCK_STREAM)
        self.rtp_base = free_port() & ~1
        self.events: list[BaresipEvent] = []
        self._cursor = 0
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._token = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None

    # -- configuration -------------------------------------------------------

    def config_text(self) -> str:
        rtp_top = min(self.rtp_base + 40, 65534)
        settings = [
            ("poll_method", "epoll"),
            ("sip_listen", f"127.0.0.1:{self.sip_port}"),
            ("call_local_timeout", "120"),
            ("call_max_calls", "4"),
            ("audio_path", "/usr/share/baresip"),
            ("audio_source", f"aufile,{self.source_wav}"),
            ("audio_player", "aubridge,nil"),
            ("audio_alert", "aubridge,nil"),
            ("ausrc_srate", "8000"),
            ("ausrc_channels", "1"),
            ("auplay_srate", "8000"),
            ("auplay_channels", "1"),
            ("audio_level", "no"),
            ("rtp_ports", f"{self.rtp_base}-{rtp_top}"),
            ("rtcp_mux", "no"),
            ("jitter_buffer_delay", "5-10"),
            ("rtp_stats", "yes"),
            ("net_interface", "127.0.0.1"),
            ("dns_server", "127.0.0.1:53"),
            ("module_path", "/usr/lib/baresip/modules"),
            ("module", "g711.so"),
            ("module", "aufile.so"),
            ("module", "aubridge.so"),
            ("module", "sndfile.so"),
        ]
        if self.account.mediaenc is not None:
            settings.append(("module", "srtp.so"))
        settings += [
            ("module_tmp", "uuid.so"),
            ("module_tmp", "account.so"),
            ("module_app", "menu.so"),
            ("module_app", "ctrl_tcp.so"),
            ("ctrl_tcp_listen", f"127.0.0.1:{self.ctrl_port}"),
            ("snd_path", str(self.snd)),
        ]
        return "".join(f"{k}\t\t{v}\n" for k, v in settings)

    def write_config(self) -> None:
        (self.conf / "config").write_text(self.config_text())
        (self.conf / "accounts").write_text(self.account.line() + "\n")
        (self.conf / "contacts").write_text("")

    # -- process -------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Start baresip and connect to ctrl_tcp (retrying until ``timeout``)."""
        self.write_config()
        argv = [self.binary, "-f", str(self.conf)]
        stdbuf = shutil.which("stdbuf")
        if stdbuf is not None:  # line-buffered log, so that it is complete on failure
            argv = [stdbuf, "-oL", "-eL", *argv]
        if self.sip_trace:
            argv.append("-s")
        with self.log_path.open("ab") as log:
            proc = await self.spawn(
                argv, stdin=asyncio.subprocess.DEVNULL, stdout=log.fileno(), stderr=STDOUT
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if proc.returncode is not None:
                raise BaresipError(f"baresip exited ({proc.returncode}):\n{self.log_text()}")
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    "127.0.0.1", self.ctrl_port
                )
                break
            except OSError as exc:
                if loop.time() > deadline:
                    message = f"no ctrl_tcp on {self.ctrl_port}:\n{self.log_text()}"
                    raise BaresipError(message) from exc
                await asyncio.sleep(0.1)
        self._read_task = asyncio.create_task(self._read_loop())

    async def stop(self) -> None:
        """Ask baresip to quit; kill it if it does not exit within 3 s."""
        if self._writer is not None and self.running:
            with contextlib.suppress(Exception):
                await self.command("quit", timeout=1.0)
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task
            self._read_task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None
        await self.end_process(3.0)

    # -- ctrl_tcp --------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                head = await self._reader.readuntil(b":")
                size = int(head[:-1])
                body = await self._reader.readexactly(size + 1)  # payload and ','
                msg = json.loads(body[:-1])
                if msg.get("event"):
                    self.events.append(BaresipEvent.from_json(msg))
                    self.notify()
                elif msg.get("response"):
                    fut = self._pending.pop(str(msg.get("token")), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(BaresipError("ctrl_tcp connection closed"))
            self.notify()

    async def command(
        self, command: str, params: str | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Run one menu command; returns the response (``ok``, ``data``)."""
        if self._writer is None:
            raise BaresipError("not connected")
        self._token += 1
        token = str(self._token)
        body: dict[str, Any] = {"command": command, "token": token}
        if params is not None:
            body["params"] = params
        data = json.dumps(body).encode()
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[token] = fut
        self._writer.write(b"%d:%s," % (len(data), data))
        await self._writer.drain()
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(token, None)

    async def checked(self, command: str, params: str | None = None) -> str:
        """``command`` that must succeed; returns its text output."""
        resp = await self.command(command, params)
        if not resp.get("ok"):
            raise BaresipError(f"{command} {params or ''}: {resp.get('data')!r}")
        return str(resp.get("data", ""))

    async def wait_event(self, *types: str, timeout: float = 10.0) -> BaresipEvent:
        """The next not-yet-consumed event whose type is one of ``types``.

        Events before it are skipped (they stay in ``events``).
        """

        def find() -> BaresipEvent | None:
            for i in range(self._cursor, len(self.events)):
                if self.events[i].type in types:
                    self._cursor = i + 1
                    return self.events[i]
            return None

        def timed_out() -> Exception:
            seen = [e.type for e in self.events[self._cursor :]]
            return TimeoutError(f"no {types} from baresip; unconsumed: {seen}")

        def gone() -> Exception | None:
            if self._read_task is not None and self._read_task.done():
                return BaresipError(f"baresip went away:\n{self.log_text()}")
            return None

        return await self.wait_until(
            find, timeout=timeout, timed_out=timed_out, gone=gone, poll=timeout
        )

    def seen(self, type_: str) -> list[BaresipEvent]:
        return [e for e in self.events if e.type == type_]

    # -- phone operations ----------------------------------------------------

    async def wait_registered(self, timeout: float = 10.0) -> str:
        """Poll ``reginfo`` until the account shows OK (REGISTER_OK may predate our connection)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        data = ""
        while loop.time() < deadline:
            data = str((await self.command("reginfo")).get("data", ""))
            plain = data.replace("\x1b[32m", " ").replace("\x1b[;m", " ")
            if " OK " in plain:
                return data
            await asyncio.sleep(0.2)
        raise TimeoutError(f"baresip not registered: {data!r}\n{self.log_text()}")

    async def dial(self, uri: str, timeout: float = 15.0) -> BaresipEvent:
        """Call ``uri``; returns CALL_ESTABLISHED (raises on CALL_CLOSED)."""
        await self.checked("dial", uri)
        return await self.wait_established(timeout)

    async def wait_established(self, timeout: float = 15.0) -> BaresipEvent:
        ev = await self.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", timeout=timeout)
        if ev.type == "CALL_CLOSED":
            raise BaresipError(f"call closed: {ev.param!r}")
        return ev

    async def wait_incoming(self, timeout: float = 15.0) -> BaresipEvent:
        return await self.wait_event("CALL_INCOMING", timeout=timeout)

    async def answer(self, timeout: float = 10.0) -> BaresipEvent:
        """Accept the ringing call; returns the event showing it is up.

        baresip 1.0 sends no CALL_ESTABLISHED on the answering side, so the
        first of CALL_ESTABLISHED / CALL_RTPESTAB (RTP received) counts.
        """
        await self.checked("accept")
        ev = await self.wait_event(
            "CALL_ESTABLISHED", "CALL_RTPESTAB", "CALL_CLOSED", timeout=timeout
        )
        if ev.type == "CALL_CLOSED":
            raise BaresipError(f"call closed: {ev.param!r}")
        return ev

    async def hangup(self, timeout: float = 10.0) -> BaresipEvent:
        await self.checked("hangup")
        return await self.wait_event("CALL_CLOSED", timeout=timeout)

    async def wait_closed(self, timeout: float = 10.0) -> BaresipEvent:
        return await self.wait_event("CALL_CLOSED", timeout=timeout)

    async def hold(self) -> str:
        """Put the current call on hold (re-INVITE with a=sendonly)."""
        return await self.checked("hold")

    async def resume(self) -> str:
        return await self.checked("resume")

    async def transfer(self, uri: str) -> str:
        """Blind transfer of the current call (REFER, RFC 3515)."""
        return await self.checked("transfer", uri)

    async def send_dtmf(self, digits: str, gap: float = 0.25) -> None:
        """Send DTMF (RFC 4733 telephone-event) one digit at a time."""
        for digit in digits:
            await self.checked("sndcode", digit)
            await asyncio.sleep(gap)

    def received_dtmf(self) -> str:
        """Digits reported by CALL_DTMF_START events so far."""
        return "".join(e.param for e in self.events if e.type == "CALL_DTMF_START")

    def media_encryption(self) -> list[str]:
        """Crypto suites from CALL_MENC events (param ``"0,audio,AES_CM_128_HMAC_SHA1_80"``)."""
        return [e.param.split(",")[-1] for e in self.events if e.type == "CALL_MENC"]

    def recordings(self) -> list[Path]:
        """What baresip decoded (sndfile ``*-dec.wav``), oldest first."""
        return sorted(self.snd.glob("*-dec.wav"))

    def sent_recordings(self) -> list[Path]:
        """What baresip encoded (sndfile ``*-enc.wav``), oldest first."""
        return sorted(self.snd.glob("*-enc.wav"))

    @property
    def contact_uri(self) -> str:
        """Where to reach this baresip directly (no registrar)."""
        return f"sip:{self.account.user}@127.0.0.1:{self.sip_port}"


class BaresipFactory(PeerFactory[Baresip]):
    """Starts baresips in private directories; ``close()`` stops them all."""

    def __init__(self, root: Path, binary: str = "baresip") -> None:
        super().__init__()
        self.root = root
        self.binary = binary

    async def __call__(
        self, account: BaresipAccount, source_wav: Path, *, sip_trace: bool = False
    ) -> Baresip:
        phone = Baresip(
            self.root / f"baresip{len(self.started)}-{account.user}",
            account,
            source_wav,
            binary=self.binary,
            sip_trace=sip_trace,
        )
        return await self.launch(phone)


@pytest.fixture
async def baresip_factory(tmp_path: Path) -> AsyncIterator[BaresipFactory]:
    """``await baresip_factory(BaresipAccount("alice", registrar_port=p), wav)``."""
    factory = BaresipFactory(tmp_path, require_peer("baresip", "baresip"))
    try:
        yield factory
    finally:
        await factory.close()
