"""A peer program as a child process of an interop test: start, wait for output, stop.

Every peer runs in its own session (``start_new_session``), so that stopping it
reaches what it forked and never the test runner, and is stopped by its own
PID only. Two shapes:

* :class:`AsyncPeer` -- the base of the asyncio drivers (baresip, linphonec,
  ``trunkline phone``): ``async with`` starts and always stops it,
  :meth:`AsyncPeer.wait_until` waits (bounded) for something the driver's
  reader saw, :meth:`AsyncPeer.end_process` asks, then kills.
  :class:`PeerFactory` starts several for one test and stops them all.
* :func:`peer_process` -- a blocking context manager for tests that drive the
  other side in their own thread (SIPp, Kamailio): output to a log file, the
  whole process group terminated, then killed, on the way out;
  :func:`wait_port_bound` waits (bounded) until it listens.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Generic, Self, TypeVar

__all__ = [
    "AsyncPeer",
    "PeerFactory",
    "peer_process",
    "port_taken",
    "read_tail",
    "spawn_logged",
    "stop_group",
    "wait_port_bound",
]

T = TypeVar("T")


def read_tail(path: Path, tail: int = 4000) -> str:
    """The last ``tail`` characters of a log file ("" when there is none yet)."""
    try:
        return path.read_text(errors="replace")[-tail:]
    except FileNotFoundError:
        return ""


class AsyncPeer(abc.ABC):
    """One peer process driven from asyncio; subclasses say how to start and stop it."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Event()
        """Set by the driver's reader whenever it saw new output."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def log_text(self, tail: int = 4000) -> str:
        return read_tail(self.log_path, tail)

    async def spawn(
        self,
        argv: Sequence[str],
        *,
        stdin: int | None,
        stdout: int | None,
        stderr: int | None,
        env: dict[str, str] | None = None,
    ) -> asyncio.subprocess.Process:
        """Start ``argv`` in a session of its own; ``stdout``/``stderr`` may be file numbers."""
        self.proc = await asyncio.create_subprocess_exec(
            *argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env, start_new_session=True
        )
        return self.proc

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def end_process(self, grace: float, *, terminate: bool = False) -> None:
        """Wait ``grace`` seconds for the process to exit (after SIGTERM if ``terminate``).

        The driver has usually asked it to quit already; if it is still there
        it is killed (by its PID) and reaped.
        """
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if terminate:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.wait_for(proc.wait(), 5.0)

    def notify(self) -> None:
        """The reader saw new output (or the end of it): wake :meth:`wait_until`."""
        self._changed.set()

    async def wait_until(
        self,
        find: Callable[[], T | None],
        *,
        timeout: float,
        timed_out: Callable[[], Exception],
        gone: Callable[[], Exception | None] = lambda: None,
        poll: float = 0.5,
    ) -> T:
        """``find()`` once it is not None, re-checked whenever output arrives.

        Raises ``timed_out()`` after ``timeout`` seconds, or ``gone()`` when
        it returns an error (the peer exited, its control link closed).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = find()
            if found is not None:
                return found
            left = deadline - loop.time()
            if left <= 0:
                raise timed_out()
            error = gone()
            if error is not None:
                raise error
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, poll))


P = TypeVar("P", bound=AsyncPeer)


class PeerFactory(Generic[P]):
    """Starts peers of one kind for a test; :meth:`close` stops them all, newest first."""

    def __init__(self) -> None:
        self.started: list[P] = []

    async def launch(self, peer: P) -> P:
        """Start ``peer`` (it is stopped by :meth:`close` even if starting fails)."""
        self.started.append(peer)
        await peer.start()
        return peer

    async def close(self) -> None:
        for peer in reversed(self.started):
            await peer.stop()


def spawn_logged(
    args: Sequence[str], log: Path, *, cwd: Path | None = None, append: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``args`` in a session of its own, stdout and stderr to ``log``, no stdin."""
    with log.open("ab" if append else "wb") as out:
        return subprocess.Popen(
            list(args),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it if it lingers past ``grace``.

    When ``proc`` itself is gone already its children may not be: they get SIGKILL.
    """
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


@contextlib.contextmanager
def peer_process(
    args: Sequence[str], log: Path, *, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``args`` in its own session, output to ``log``; stop its whole group on the way out.

    SIGTERM first, SIGKILL if it lingers past 10 s; both go to the group the
    peer leads (its PID), which is nobody else's.
    """
    proc = spawn_logged(args, log, cwd=cwd)
    try:
        yield proc
    finally:
        stop_group(proc)


def port_taken(port: int, transport: str = "UDP") -> bool:
    """True once some process has bound ``port`` on 127.0.0.1 for ``transport``."""
    kind = socket.SOCK_STREAM if transport.upper() in ("TCP", "TLS") else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_port_bound(
    port: int,
    proc: subprocess.Popen[bytes],
    *,
    transport: str = "UDP",
    timeout: float = 10.0,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Wait until the peer ``proc`` listens on ``port``: a fixed sleep loses the race
    on a loaded machine. Fails with ``output()`` if the peer exits or never binds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"peer exited early with {proc.returncode}\n{output()}")
        if port_taken(port, transport):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {transport.lower()}/{port}\n{output()}")
