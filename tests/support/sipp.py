"""Running SIPp (Debian ``sip-tester``) against Trunkline in interop tests.

Two ways to run it, both bounded and both killing SIPp on the way out:

* :func:`run_sipp` (asyncio): run to the end with ``-trace_stat`` and read the
  outcome from the exit code and the statistics file (:class:`SippResult`:
  successful, failed and retransmitted counts, SIPp's output and error log);
* :func:`sipp_process` (blocking): a context manager around a running SIPp in
  its own session, its output in a log file, for tests that drive the other
  side in the test's own thread (:class:`SippProcess`).

:func:`wait_bound` / :func:`wait_bound_sync` wait (bounded) until SIPp listens
on its port: a fixed sleep loses the race on a loaded machine. SIPp is always
run with ``-nostdin`` (no keyboard) and ``-trace_err`` (its error log is part
of every failure message).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.peerprocess import peer_process, port_taken, read_tail, wait_port_bound
from tests.support.peers import free_port, require_peer
from tests.support.sippstat import read_counts, trace_args

__all__ = [
    "SippProcess",
    "SippResult",
    "port_taken",
    "run_sipp",
    "sipp_args",
    "sipp_executable",
    "sipp_process",
    "uac_args",
    "wait_bound",
    "wait_bound_sync",
]

_TAIL = 3000


def sipp_executable() -> str:
    """The ``sipp`` binary; fails in CI, skips elsewhere when it is not installed."""
    return require_peer("sipp", "sip-tester")


def _tail(path: Path) -> str:
    return read_tail(path, _TAIL)


def _next_run(workdir: Path, stem: str) -> int:
    """A number for this SIPp run, so several runs in one directory keep their files."""
    return sum(1 for p in workdir.iterdir() if p.name.startswith(stem))


@dataclass(frozen=True)
class SippResult:
    """How a SIPp run ended: its exit code, ``-trace_stat`` counters and output."""

    returncode: int
    successful: int
    failed: int
    retransmissions: int
    output: str


async def run_sipp(
    args: list[str], workdir: Path, *, timeout: float = 90.0, started: asyncio.Event | None = None
) -> SippResult:
    """Run ``sipp *args`` in ``workdir`` to its end; kill it if it overstays ``timeout``.

    ``started`` is set once the process runs. With a TCP transport (``-t tn``)
    SIPp may open one socket per call: ``-max_socket 256`` bounds that.
    """
    if "tn" in args:
        args = [*args, "-max_socket", "256"]
    run = _next_run(workdir, "stat-")
    stat = workdir / f"stat-{run}.csv"
    errors = workdir / f"errors-{run}.log"
    proc = await asyncio.create_subprocess_exec(
        sipp_executable(),
        *args,
        "-nostdin",
        *trace_args(stat, errors),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,
    )
    if started is not None:
        started.set()
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
    counts = read_counts(stat)
    return SippResult(
        returncode=proc.returncode if proc.returncode is not None else -1,
        successful=counts.successful,
        failed=counts.failed,
        retransmissions=counts.retransmissions,
        output=out.decode(errors="replace")[-2000:] + _tail(errors),
    )


@dataclass(frozen=True)
class SippProcess:
    """A running SIPp started by :func:`sipp_process`."""

    proc: subprocess.Popen[bytes]
    log: Path
    errors: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        """SIPp's exit code once it ends (``subprocess.TimeoutExpired`` after ``timeout``)."""
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        """The tail of SIPp's output and of its error log, for failure messages."""
        return _tail(self.log) + _tail(self.errors)


@contextlib.contextmanager
def sipp_process(args: list[str], workdir: Path) -> Iterator[SippProcess]:
    """Start ``sipp *args`` in ``workdir`` in its own session; kill its group on the way out."""
    run = _next_run(workdir, "sipp-")
    log = workdir / f"sipp-{run}.log"
    errors = workdir / f"sipp-errors-{run}.log"
    command = [sipp_executable(), *args, "-nostdin", "-trace_err", "-error_file", str(errors)]
    with peer_process(command, log, cwd=workdir) as proc:
        yield SippProcess(proc, log, errors)


async def wait_bound(
    port: int, transport: str, sipp: asyncio.Future[SippResult], timeout: float = 15.0
) -> None:
    """Wait (bounded) until the SIPp of :func:`run_sipp` listens on ``port``.

    A fixed sleep loses the race on a loaded machine, and a TCP call then fails
    with connection refused. If SIPp exits first its output is the failure.
    """
    async with asyncio.timeout(timeout):
        while not port_taken(port, transport):
            if sipp.done():
                raise AssertionError(sipp.result().output)
            await asyncio.sleep(0.02)


def wait_bound_sync(
    port: int, sipp: SippProcess, transport: str = "UDP", timeout: float = 10.0
) -> None:
    """:func:`wait_bound` for a :class:`SippProcess`, in the test's own thread."""
    wait_port_bound(port, sipp.proc, transport=transport, timeout=timeout, output=sipp.output)


def sipp_args(
    *scenario: str,
    remote: str | None = None,
    port: int | None = None,
    mode: str = "u1",
    calls: int = 1,
    rate: int | None = None,
    limit: int | None = None,
    timeout: int | None = None,
    max_retrans: int | None = None,
    lost: int = 0,
) -> list[str]:
    """The usual command line: ``scenario`` (``-sn uac`` or ``-sf FILE``) on 127.0.0.1.

    ``remote`` is where a UAC sends, ``port`` SIPp's own (``-p``), ``mode`` its
    transport (``u1``, ``t1``, ``tn``), ``calls`` how many before it exits
    (``-m``), ``rate``/``limit`` calls per second and at once (``-r``/``-l``),
    ``timeout`` the whole run's bound (``-timeout``, an error when reached),
    ``lost`` the percentage of messages SIPp drops (``-lost``).
    """
    args = [*scenario]
    if remote is not None:
        args.append(remote)
    args += ["-i", "127.0.0.1"]
    if port is not None:
        args += ["-p", str(port)]
    args += ["-t", mode, "-m", str(calls)]
    if rate is not None:
        args += ["-r", str(rate)]
    if limit is not None:
        args += ["-l", str(limit)]
    if timeout is not None:
        args += ["-timeout", str(timeout), "-timeout_error"]
    if max_retrans is not None:
        args += ["-max_retrans", str(max_retrans)]
    if lost:
        args += ["-lost", str(lost)]
    return args


def uac_args(
    target: int,
    *,
    port: int | None = None,
    mode: str = "u1",
    calls: int = 1,
    rate: int | None = 10,
    **options: int,
) -> list[str]:
    """SIPp's built-in ``uac`` calling 127.0.0.1:``target``, from ``port`` (a free one).

    ``options`` are those of :func:`sipp_args` (``limit``, ``timeout``, ``max_retrans``, ``lost``).
    """
    return sipp_args(
        "-sn",
        "uac",
        remote=f"127.0.0.1:{target}",
        port=port if port is not None else free_port(),
        mode=mode,
        calls=calls,
        rate=rate,
        **options,
    )
