"""``trunkline serve`` as a real process, for end-to-end and interop tests.

:func:`start_server` runs ``python -m trunkline.cli serve`` with the flags a
script can rely on (``--data-dir``, ``--host``, ``--sip-port``,
``--http-port``, ``--trusted``, ``--config``) on free loopback ports in a
temporary data directory, and returns once the server answers a SIP OPTIONS
request. Its output (stdout and stderr) goes to a log file that
:attr:`ServerProcess.output` reads, so a failing test can show it.
:meth:`ServerProcess.stop` is the graceful shutdown a user would do
(SIGTERM) and returns the exit status; :func:`running_server` wraps it all
and fails the test unless the server exited cleanly (status 0).

:func:`add_user` goes through the command line (``trunkline users add``), as
an admin would. :func:`sip_options` is a one-shot OPTIONS over UDP from a
chosen source address (any of 127.0.0.0/8 works on Linux loopback), used to
see whether the server still answers a source.

Ports come from :func:`tests.support.peers.free_port` (other tests run at
the same time); a start that loses a port race is retried on new ports.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.peers import free_port, require_peer
from tests.support.sippstat import read_counts, trace_args
from trunkline.proxy.status import fetch_status

__all__ = [
    "SIPP_SCENARIOS",
    "ServerProcess",
    "ServerStartError",
    "SippProcess",
    "SippResult",
    "add_user",
    "running_server",
    "sip_options",
    "sipp_call",
    "sipp_register",
    "sipp_uas",
    "start_server",
    "start_sipp",
    "start_sipp_call",
    "trunkline_command",
]

SIPP_SCENARIOS = Path(__file__).resolve().parent.parent / "data" / "sipp" / "proxy"
"""SIPp scenarios for phones behind the proxy (digest REGISTER, uac and uas on Record-Route)."""

STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


class ServerStartError(RuntimeError):
    """``trunkline serve`` exited or stayed silent; the message carries its output."""


def trunkline_command(*args: str) -> list[str]:
    """The ``trunkline`` command line run with this interpreter (no PATH lookup)."""
    return [sys.executable, "-m", "trunkline.cli", *args]


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # the log file fills as the server writes
    env.pop("COLUMNS", None)
    return env


def sip_options(
    host: str,
    port: int,
    *,
    source: str = "127.0.0.1",
    timeout: float = 1.0,
    user_agent: str | None = None,
    from_domain: str = "probe.invalid",
) -> int | None:
    """Send one OPTIONS over UDP from ``source``; the final status, or None if unanswered.

    The From domain is not one of the server's, so a server that answers
    strangers' OPTIONS (RFC 3261 §11.2) replies 200 without a challenge.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        local_port = sock.getsockname()[1]
        call_id = secrets.token_hex(8)
        lines = [
            f"OPTIONS sip:{host}:{port} SIP/2.0",
            f"Via: SIP/2.0/UDP {source}:{local_port};branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:probe@{from_domain}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{host}:{port}>",
            f"Call-ID: {call_id}",
            "CSeq: 1 OPTIONS",
            f"Contact: <sip:probe@{source}:{local_port}>",
            "Accept: application/sdp",
        ]
        if user_agent is not None:
            lines.append(f"User-Agent: {user_agent}")
        lines += ["Content-Length: 0", "", ""]
        sock.sendto("\r\n".join(lines).encode(), (host, port))
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                data = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                return None
            first = data.split(b"\r\n", 1)[0].split()
            if len(first) >= 2 and first[0] == b"SIP/2.0" and call_id.encode() in data:
                status = int(first[1])
                if status >= 200:
                    return status
    return None


@dataclass
class ServerProcess:
    """One running ``trunkline serve``; see the module docstring."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    host: str
    sip_port: int
    http_port: int
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def options(self, *, source: str = "127.0.0.1", timeout: float = 1.0) -> int | None:
        """The status of one OPTIONS from ``source`` (None: no answer)."""
        return sip_options(self.host, self.sip_port, source=source, timeout=timeout)

    def status(self) -> dict[str, Any]:
        """``GET /status`` (what ``trunkline status --json`` prints)."""
        return fetch_status(self.host, self.http_port)

    def status_text(self, *extra: str) -> str:
        """The output of ``trunkline status`` against this server (the admin's view)."""
        result = subprocess.run(
            trunkline_command(
                "status", "--host", self.host, "--http-port", str(self.http_port), *extra
            ),
            capture_output=True,
            text=True,
            timeout=30,
            env=_environment(),
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"trunkline status failed: {result.stderr}{result.stdout}")
        return result.stdout

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (graceful shutdown); SIGKILL after ``timeout``. The exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                return -int(signal.SIGKILL)
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL (a crash), for teardown paths."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def _write_config(path: Path, extra: str, tls: bool) -> None:
    text = extra.strip() + "\n"
    if "[listen.tls]" not in text and not tls:
        text += "\n[listen.tls]\nenabled = false\nport = 5061\n"
    path.write_text(text)


def start_server(
    workdir: Path,
    *,
    data_dir: Path | None = None,
    config: str = "",
    trusted: Sequence[str] = (),
    host: str = "127.0.0.1",
    sip_port: int | None = None,
    http_port: int | None = None,
    tls: bool = False,
    extra_args: Sequence[str] = (),
    name: str = "server",
    timeout: float = STARTUP_TIMEOUT,
) -> ServerProcess:
    """Start ``trunkline serve`` and wait until it answers OPTIONS; see the module docstring.

    ``config`` is TOML for ``--config`` (any table; TLS is disabled unless
    ``tls`` or the text has its own ``[listen.tls]``). Given ports are used
    as they are (a restart on the same ports); missing ones are picked free,
    and a lost race for them is retried on fresh ports.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data = data_dir if data_dir is not None else workdir / "data"
    config_path = workdir / f"{name}.toml"
    _write_config(config_path, config, tls)
    fixed = sip_port is not None and http_port is not None
    errors: list[str] = []
    for attempt in range(1 if fixed else 5):
        sip = sip_port if sip_port is not None else free_port(host=host)
        http = http_port if http_port is not None else free_port(socket.SOCK_STREAM, host=host)
        if tls and not _port_free(host, sip + 1):
            continue
        log_path = workdir / f"{name}-{attempt}-{secrets.token_hex(3)}.log"
        args = trunkline_command(
            "serve",
            "--config",
            str(config_path),
            "--data-dir",
            str(data),
            "--host",
            host,
            "--sip-port",
            str(sip),
            "--http-port",
            str(http),
            *(arg for net in trusted for arg in ("--trusted", net)),
            *extra_args,
        )
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                args,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_environment(),
                cwd=workdir,
            )
        server = ServerProcess(process, data, host, sip, http, log_path, args)
        if _wait_ready(server, timeout):
            return server
        server.kill()
        errors.append(f"attempt {attempt} (exit {process.returncode}):\n{server.output[-3000:]}")
        if "cannot start" not in server.output:
            break  # not a port race: retrying would only repeat it
    raise ServerStartError("trunkline serve did not start:\n" + "\n".join(errors))


def _port_free(host: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _wait_ready(server: ServerProcess, timeout: float) -> bool:
    """True once the server answers OPTIONS over UDP; False if it exits or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.running:
            return False
        if server.options(timeout=0.25) is not None:
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def running_server(workdir: Path, **kwargs: Any) -> Iterator[ServerProcess]:
    """:func:`start_server`, then SIGTERM on exit, failing unless the server exits with 0."""
    server = start_server(workdir, **kwargs)
    try:
        yield server
    except BaseException:
        server.stop()  # the test's own failure is the one to report
        raise
    status = server.stop()
    if status != 0:
        raise AssertionError(
            f"trunkline serve exited with {status} after SIGTERM:\n{server.output[-3000:]}"
        )


def add_user(data_dir: Path, name: str, password: str, *, domain: str | None = None) -> str:
    """``trunkline users add NAME --password P --data-dir DIR`` (its output)."""
    args = ["users", "add", name, "--password", password, "--data-dir", str(data_dir)]
    if domain is not None:
        args += ["--domain", domain]
    result = subprocess.run(
        trunkline_command(*args),
        capture_output=True,
        text=True,
        timeout=60,
        env=_environment(),
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"trunkline users add {name} failed: {result.stderr}{result.stdout}")
    return result.stdout


# ---------------------------------------------------------------------- SIPp phones
#
# SIPp (Debian sip-tester) plays the phones, with the scenarios in
# tests/data/sipp/proxy/: register_auth.xml (REGISTER, 401, REGISTER with
# digest), uas_rr.xml (answers and fails unless ACK and BYE came through
# the proxy) and uac_auth_rr.xml (INVITE, 407, INVITE with digest, ACK and
# BYE along the Record-Route set). They use the server's address as the
# domain, so servers driven by them serve ``domains = ["127.0.0.1"]`` and
# need ``--legacy-digest`` (SIPp answers MD5 challenges only).


@dataclass(frozen=True)
class SippResult:
    """What one SIPp run did (from its ``-trace_stat`` file and output)."""

    returncode: int
    successful: int
    failed: int
    output: str


@dataclass
class SippProcess:
    """A SIPp process running in the background; :meth:`result` waits for it."""

    process: subprocess.Popen[bytes]
    stat: Path
    log: Path
    errors: Path

    def result(self, timeout: float = 60.0) -> SippResult:
        """Wait (killing SIPp after ``timeout``) and read its statistics."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        counts = read_counts(self.stat)
        return SippResult(
            returncode=int(self.process.returncode),
            successful=counts.successful,
            failed=counts.failed,
            output=_read(self.log)[-1500:] + _read(self.errors)[-2500:],
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def start_sipp(args: Sequence[str], workdir: Path) -> SippProcess:
    """Start ``sipp`` with statistics and error traces in ``workdir``."""
    sipp = require_peer("sipp", "sip-tester")
    workdir.mkdir(parents=True, exist_ok=True)
    run = secrets.token_hex(4)
    stat, log, errors = (workdir / f"sipp-{run}.{kind}" for kind in ("csv", "log", "err"))
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sipp, *args, "-nostdin", *trace_args(stat, errors)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
    return SippProcess(process, stat, log, errors)


def sipp_register(
    server: ServerProcess,
    users: dict[str, str],
    workdir: Path,
    *,
    source: str = "127.0.0.1",
    port: int | None = None,
    expires: int = 3600,
    timeout: float = 30.0,
) -> SippResult:
    """Register each of ``users`` (name -> password) with digest from ``source:port``.

    The Contact is ``sip:NAME@source:port``: a SIPp uas started on the same
    address (:func:`sipp_uas`) receives the calls to those users.
    ``expires=0`` removes that contact again (RFC 3261 §10.2.2).
    """
    run = secrets.token_hex(3)
    workdir.mkdir(parents=True, exist_ok=True)
    scenario = SIPP_SCENARIOS / "register_auth.xml"
    if expires != 3600:
        text = scenario.read_text()
        if text.count("Expires: 3600") != 2:
            raise AssertionError(f"{scenario} changed: cannot set Expires")
        scenario = workdir / f"register-{run}.xml"
        scenario.write_text(text.replace("Expires: 3600", f"Expires: {expires}"))
    table = workdir / f"register-{run}.csv"
    table.write_text(
        "SEQUENTIAL\n"
        + "".join(
            f"{name};[authentication username={name} password={password}]\n"
            for name, password in users.items()
        )
    )
    local_port = port if port is not None else free_port(host=source)
    args = [f"{server.host}:{server.sip_port}", "-sf", str(scenario), "-inf", str(table)]
    args += ["-i", source, "-p", str(local_port), "-m", str(len(users))]
    return start_sipp(args, workdir).result(timeout)


def sipp_uas(
    workdir: Path, *, source: str, port: int, calls: int, scenario: Path | None = None
) -> SippProcess:
    """A SIPp phone answering ``calls`` calls on ``source:port`` (checks the Record-Route path).

    ``scenario`` replaces ``uas_rr.xml``. Returns once SIPp holds its UDP port
    (a loaded machine can take seconds to start it, and a call placed earlier
    would meet a closed port).
    """
    scenario = scenario or SIPP_SCENARIOS / "uas_rr.xml"
    args = ["-sf", str(scenario), "-i", source, "-p", str(port)]
    uas = start_sipp([*args, "-m", str(calls)], workdir)
    deadline = time.monotonic() + 15.0
    while _udp_port_free(source, port):
        if time.monotonic() > deadline or uas.process.poll() is not None:
            uas.kill()
            raise AssertionError(f"SIPp uas did not start on {source}:{port}:\n{uas.result(1)}")
        time.sleep(0.05)
    return uas


def _udp_port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def sipp_call(
    server: ServerProcess,
    caller: str,
    password: str,
    callee: str,
    workdir: Path,
    *,
    source: str = "127.0.0.1",
    calls: int = 1,
    rate: int = 10,
    timeout: float = 60.0,
) -> SippResult:
    """``calls`` authenticated calls from ``caller`` to ``callee`` through ``server``."""
    uac = start_sipp_call(
        server, caller, password, callee, workdir, source=source, calls=calls, rate=rate
    )
    return uac.result(timeout)


def start_sipp_call(
    server: ServerProcess,
    caller: str,
    password: str,
    callee: str,
    workdir: Path,
    *,
    source: str = "127.0.0.1",
    calls: int = 1,
    rate: int = 10,
    extra_args: Sequence[str] = (),
) -> SippProcess:
    """:func:`sipp_call` in the background."""
    table = workdir / f"caller-{secrets.token_hex(3)}.csv"
    workdir.mkdir(parents=True, exist_ok=True)
    table.write_text(f"SEQUENTIAL\n{caller};\n")
    args = [f"{server.host}:{server.sip_port}", "-sf", str(SIPP_SCENARIOS / "uac_auth_rr.xml")]
    args += ["-inf", str(table), "-s", callee, "-au", caller, "-ap", password]
    args += ["-i", source, "-p", str(free_port(host=source)), "-m", str(calls)]
    args += ["-r", str(rate), "-d", "200", *extra_args]
    return start_sipp(args, workdir)
