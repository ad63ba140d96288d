"""Several SIP worker processes behind one port (DESIGN.md "Scaling out").

``trunkline serve`` runs one worker per CPU by default (``workers = 0``, at
most :data:`MAX_AUTO_WORKERS`; one when a SIP port is 0), ``workers = N``
runs N. With several, the command prepares the data directory once, then
forks the workers; each is a whole
:class:`~trunkline.proxy.server.ProxyServer` on its own event loop:

- the configured UDP and TCP port is bound by every worker with
  ``SO_REUSEPORT``: the kernel hashes each flow (source and destination
  address and port) to one worker, so a client's retransmissions reach the
  worker holding its server transaction (RFC 3261 §17.2.3);
- UDP: a worker sends everything from that shared port and names it in its
  Via and Record-Route, so a phone behind a NAT that filters by source port
  only ever sees the address it registered with. A response (§18.2.2 sends
  it to the Via) may then reach another worker than the one holding the
  client transaction: every worker ends its branches with its index, and a
  worker that receives a response of another hands the datagram over
  (:mod:`trunkline.proxy.handoff`; so is a CANCEL from another port than its
  INVITE). In-dialog requests need no hand-off: any worker routes them by
  their Route (§16.12);
- TCP: each worker also binds a port of its own and writes it in its Via
  and Record-Route (a connection belongs to the worker that holds it;
  phones connect to the proxy, so no NAT filters these);
- registrations are shared: with the default ``memory`` backend every
  worker reads and writes the data directory's SQLite database directly
  (:class:`~trunkline.proxy.location_sqlite.SharedSqliteLocation`: WAL,
  a busy timeout, no cache, so a REGISTER taken by one worker is seen by the
  next lookup of any other); with ``redis`` they share Redis;
- the first worker alone serves TLS and the HTTP front (status, metrics,
  WebSocket) and sends the NAT keep-alive pings. The other workers publish
  their counters and calls every second (:class:`StatusBoard`, a JSON file
  each under ``<data dir>/run/``), and the first one adds them up, so
  ``trunkline status`` and ``/metrics`` cover every worker (at most about
  one second old for the others; each worker's age is shown);
- a ban (flood, failed passwords) made by one worker is passed to the others
  at once (:class:`BanRelay`, :class:`SharedAntiFlood`): the kernel spreads
  a source's flows over the workers, a ban must follow the source.

The parent process supervises (:func:`run_workers`): it starts the
workers, lets them bind the shared port together once all are prepared
(:meth:`WorkerSpec.wait_go`), and prints the banner once all listen.
SIGTERM/SIGINT are passed on to every worker, each of which drains
gracefully. A worker that dies is logged; it is started again
if it had run for :data:`MIN_UPTIME` seconds and fewer than
:data:`MAX_RESTARTS` restarts happened in the last minute; otherwise every
worker is stopped and the server exits non-zero (a crash loop is better
seen by systemd than hidden).

Connection-oriented flows (TCP, TLS, WS) belong to the worker that accepted
them: a call for a phone registered over TCP is delivered through that flow
only when the same worker handles it; the other workers see the binding
through :class:`FlowAwareLocation`, without the flow, and connect to the
phone's Contact anew (RFC 5626 §5.2 ideas: a flow that is not there is not
used).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import select
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trunkline.config import Config
from trunkline.proxy.antiflood import AntiFlood, FloodPolicy, TrustedNetworks
from trunkline.proxy.location import (
    Binding,
    LocationCounts,
    LocationService,
    RegisterOutcome,
    RegisterRequest,
    RegistrarPolicy,
)
from trunkline.sip.aio.transport import Listener, TransportLayer

__all__ = [
    "MAX_AUTO_WORKERS",
    "MAX_RESTARTS",
    "MIN_UPTIME",
    "STATUS_INTERVAL",
    "BanRelay",
    "FlowAwareLocation",
    "SharedAntiFlood",
    "StatusBoard",
    "WorkerSpec",
    "check_workers",
    "listen_shared",
    "run_workers",
    "worker_count",
]

log = logging.getLogger("trunkline.proxy.workers")

MAX_AUTO_WORKERS = 4
"""``workers = 0`` means one per CPU, but no more than this."""
MIN_UPTIME = 5.0
"""A worker that dies sooner after its start is not restarted (it would die again)."""
MAX_RESTARTS = 5
"""Restarts allowed within a minute before the server gives up and exits non-zero."""
STATUS_INTERVAL = 1.0
"""How often the workers other than the first publish their status (seconds)."""
STATUS_STALE = 5.0
_LISTENING = 128  # readiness byte: index (prepared) or _LISTENING + index (listening)
"""A published status older than this is left out of the sums (its worker is stuck)."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Which worker this process is (``index`` of ``count``).

    ``ready_fd``: the pipe on which the worker tells the parent it is
    prepared (:meth:`announce_prepared`) and then listening
    (:meth:`announce_ready`); ``go_fd``: where the parent says all are
    prepared (:meth:`wait_go`); -1: nobody waits. ``inbox`` and ``peers``:
    the datagram sockets of :class:`BanRelay` (this worker's, the others').
    ``handoff_inbox`` and ``handoff_peers``: those of the
    :class:`~trunkline.proxy.handoff.ResponseHandoff` (``handoff_peers`` by
    worker index, -1 in this worker's place).
    """

    index: int = 0
    count: int = 1
    ready_fd: int = -1
    inbox: int = -1
    peers: tuple[int, ...] = ()
    go_fd: int = -1
    handoff_inbox: int = -1
    handoff_peers: tuple[int, ...] = ()

    @property
    def primary(self) -> bool:
        """The worker that also runs TLS, HTTP and the keep-alive pings."""
        return self.index == 0

    @property
    def shared(self) -> bool:
        """True when the SIP port is shared with other workers."""
        return self.count > 1

    def _tell(self, value: int) -> None:
        if self.ready_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self.ready_fd, bytes([value]))

    def announce_prepared(self) -> None:
        """Tell :func:`run_workers` this worker is ready to bind the shared port."""
        self._tell(self.index)

    def announce_ready(self) -> None:
        """Tell :func:`run_workers` this worker is listening (once, after start)."""
        self._tell(_LISTENING + self.index)

    async def wait_go(self) -> None:
        """Wait (without blocking the loop) until every worker is prepared.

        Then all bind the shared port at about the same moment: the kernel's
        SO_REUSEPORT hash maps each flow to one of the sockets of the group,
        and a socket joining later would take flows over in the middle of
        their transactions.
        """
        if self.go_fd < 0:
            return
        loop = asyncio.get_running_loop()
        go: asyncio.Future[bytes] = loop.create_future()
        fd = self.go_fd

        def readable() -> None:
            try:
                data = os.read(fd, 1)
            except (BlockingIOError, InterruptedError):
                return
            if not go.done():
                go.set_result(data)

        loop.add_reader(fd, readable)
        try:
            await go
        finally:
            loop.remove_reader(fd)


def worker_count(config: Config) -> int:
    """``config.workers``; 0 means one per CPU (at most :data:`MAX_AUTO_WORKERS`).

    An automatic count falls back to one worker when a SIP port is 0
    (ephemeral): the workers could not all bind the same port.
    """
    if config.workers:
        return config.workers
    for kind in ("udp", "tcp"):
        spec = getattr(config.listen, kind)
        if spec.enabled and spec.port == 0:
            return 1
    return max(1, min(os.cpu_count() or 1, MAX_AUTO_WORKERS))


def check_workers(config: Config, count: int) -> str | None:
    """Why ``count`` workers cannot run with ``config`` (None when they can)."""
    if count <= 1:
        return None
    for kind in ("udp", "tcp"):
        spec = getattr(config.listen, kind)
        if spec.enabled and spec.port == 0:
            return f"several workers need a fixed {kind.upper()} port"
    return None


async def listen_shared(layer: TransportLayer, kind: str, host: str, port: int) -> Listener:
    """Bind UDP or TCP ``host:port`` on ``layer`` with ``SO_REUSEPORT`` (shared by workers).

    A worker binds no other UDP port: this socket is the one it sends from.
    """
    name = kind.upper()
    if name not in ("UDP", "TCP"):
        raise ValueError(f"{name} cannot be shared between workers")
    return await layer.listen(name, host, port, reuse_port=True)


# -- flows of other workers ----------------------------------------------------------------


class FlowAwareLocation(LocationService):
    """A worker's view of the shared location service: flows it does not hold are dropped.

    A binding made over TCP, TLS or WS names the connection it came over
    (``flow``, and ``received``: the phone's end of it). Only the worker that
    accepted the connection can send over it; for any other worker
    ``holds(transport, received)`` is False and :meth:`lookup` returns the
    binding without ``received`` and ``flow``, so the proxy resolves the
    Contact (RFC 3261 §8.1.2, RFC 3263) instead of connecting to the
    phone's ephemeral source port. UDP bindings are returned as they are.
    Everything else goes to ``inner`` unchanged.
    """

    def __init__(self, inner: LocationService, holds: Callable[[str, str], bool]) -> None:
        self.inner = inner
        self.holds = holds

    def _local(self, binding: Binding) -> Binding:
        transport = binding.transport
        if (
            binding.received is None
            or transport is None
            or transport.lower() == "udp"
            or self.holds(transport, binding.received)
        ):
            return binding
        return replace(binding, received=None, flow=None)

    async def lookup(self, aor: str, now: float) -> list[Binding]:
        return [self._local(binding) for binding in await self.inner.lookup(aor, now)]

    async def apply_register(
        self, request: RegisterRequest, now: float, policy: RegistrarPolicy
    ) -> RegisterOutcome:
        return await self.inner.apply_register(request, now, policy)

    async def purge_expired(self, now: float) -> int:
        return await self.inner.purge_expired(now)

    async def counts(self, now: float) -> LocationCounts:
        return await self.inner.counts(now)

    async def all_bindings(self, now: float) -> list[Binding]:
        return await self.inner.all_bindings(now)

    async def flush(self) -> None:
        await self.inner.flush()

    async def close(self) -> None:
        await self.inner.close()


# -- bans shared by the workers ------------------------------------------------------------


class BanRelay:
    """Passes every ban a worker makes to the other workers, at once.

    The kernel spreads flows, not sources, over the workers: a source that
    is banned on one worker could go on through the others from new ports.
    :func:`run_workers` makes one datagram socket pair per worker before
    forking (nothing on the file system, nothing another local user can
    reach); a worker reads its own ``inbox`` and writes ``host until`` to
    every peer's. A peer that is busy or restarting misses the message (its
    queue is full, or nobody reads): bans are a defence, not a ledger.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        self.inbox = socket.socket(fileno=os.dup(spec.inbox)) if spec.inbox >= 0 else None
        self.peers = [socket.socket(fileno=os.dup(fd)) for fd in spec.peers]
        for sock in (*self.peers, *((self.inbox,) if self.inbox else ())):
            sock.setblocking(False)
        self._reading = False

    def start(self, on_ban: Callable[[str, float], None]) -> None:
        """Call ``on_ban(host, until)`` for each ban another worker announces."""
        if self.inbox is None:
            return
        inbox = self.inbox

        def receive() -> None:
            for _ in range(64):  # bounded: the loop has other work
                try:
                    data = inbox.recv(256)
                except (BlockingIOError, InterruptedError):
                    return
                host, _, until = data.decode("ascii", "replace").partition(" ")
                try:
                    ipaddress.ip_address(host)
                    when = float(until)
                except ValueError:
                    continue
                on_ban(host, when)

        asyncio.get_running_loop().add_reader(inbox.fileno(), receive)
        self._reading = True

    def announce(self, host: str, until: float) -> None:
        message = f"{host} {until!r}".encode("ascii", "replace")
        for peer in self.peers:
            with contextlib.suppress(OSError):  # full or gone: see the class docstring
                peer.send(message)

    def close(self) -> None:
        if self._reading and self.inbox is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(self.inbox.fileno())
            self._reading = False
        for sock in (*self.peers, *((self.inbox,) if self.inbox else ())):
            sock.close()


class SharedAntiFlood(AntiFlood):
    """An :class:`AntiFlood` whose bans reach every worker through a :class:`BanRelay`.

    Rate limits and failed-authentication counts stay per worker (a phone's
    flow stays on one worker); a ban applies everywhere. A ban received from
    another worker is logged once more (``reason=shared``) but not counted
    again, so the summed ``bans`` counter counts each ban once.
    """

    def __init__(
        self, policy: FloodPolicy, trusted: TrustedNetworks | None, relay: BanRelay
    ) -> None:
        super().__init__(policy, trusted)
        self.relay = relay

    def ban(self, host: str, now: float, seconds: float, reason: str) -> None:
        super().ban(host, now, seconds, reason)
        self.relay.announce(host, now + seconds)

    def ban_from_peer(self, host: str, until: float, now: float) -> None:
        """Apply a ban another worker made (not announced again, not counted again)."""
        if until > now:
            AntiFlood.ban(self, host, now, until - now, "shared")
            self.counters.bans -= 1


# -- status of every worker ---------------------------------------------------------------


class StatusBoard:
    """Where workers publish their status for the first one to add up (``<dir>/worker-N.json``).

    A file per worker, replaced atomically (write, then rename), so a reader
    never sees half of one. Files are JSON with ``index``, ``pid``,
    ``published`` (wall clock) and ``snapshot``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, index: int) -> Path:
        return self.directory / f"worker-{index}.json"

    def clear(self) -> None:
        """Forget what a previous run published."""
        with contextlib.suppress(FileNotFoundError):
            for path in self.directory.glob("worker-*.json"):
                path.unlink(missing_ok=True)

    def publish(self, index: int, snapshot: dict[str, Any], now: float) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(index)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        data = {"index": index, "pid": os.getpid(), "published": now, "snapshot": snapshot}
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    def read(self, now: float, *, exclude: int = 0) -> list[dict[str, Any]]:
        """The published entries (not ``exclude``'s), each with its ``age`` and ``stale`` flag."""
        entries = []
        for path in sorted(self.directory.glob("worker-*.json")):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # replaced while we read, or foreign: skip this round
            if not isinstance(entry, dict) or entry.get("index") == exclude:
                continue
            age = now - float(entry.get("published", 0))
            entry["age"] = age
            entry["stale"] = age > STATUS_STALE
            entries.append(entry)
        return entries


# -- the supervisor -------------------------------------------------------------------------


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class _Supervisor:
    """The parent's bookkeeping for :func:`run_workers`."""

    def __init__(self, count: int, work: Callable[[WorkerSpec], int]) -> None:
        self.count = count
        self.work = work
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (index, started)
        self.restarts: deque[float] = deque()
        self.stopping = False
        self.failure = 0
        """The exit status of a worker that died while starting."""
        self.read_fd, self.write_fd = os.pipe()
        self.go = [os.pipe() for _ in range(count)]  # parent writes [1], worker reads [0]
        self.prepared: set[int] = set()
        self.listening: set[int] = set()
        # BanRelay: worker i reads pairs[i][0]; the others write to pairs[i][1].
        self.pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count)]
        # ResponseHandoff: the same shape. A socket pair, not a named socket: the
        # kernel's max_dgram_qlen (often 10) does not apply between connected peers.
        self.handoff = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count)]

    def spawn(self, index: int) -> None:
        # SIGTERM/SIGINT are held back across the fork: the child must not run the
        # parent's forwarder, and the parent must know the child before forwarding.
        stop_signals = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        parent = os.getpid()
        try:
            pid = os.fork()
            if pid == 0:  # the worker
                code = 1
                try:
                    die_with_parent(parent)
                    for signum in stop_signals:
                        signal.signal(signum, signal.SIG_DFL)  # until its loop takes them
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
                    os.close(self.read_fd)
                    inbox = self.pairs[index][0].fileno()
                    peers = tuple(w.fileno() for i, (_, w) in enumerate(self.pairs) if i != index)
                    go = self.go[index][0]
                    handoff = tuple(
                        -1 if i == index else w.fileno() for i, (_, w) in enumerate(self.handoff)
                    )
                    spec = WorkerSpec(
                        index,
                        self.count,
                        self.write_fd,
                        inbox,
                        peers,
                        go,
                        self.handoff[index][0].fileno(),
                        handoff,
                    )
                    code = self.work(spec)
                except BaseException as error:  # reported, then the process ends
                    print(f"worker {index}: {error!r}", file=sys.stderr)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            self.children[pid] = (index, time.monotonic())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        if self.stopping:  # a SIGTERM came while this one was being made
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def forward(self, signum: int, frame: object = None) -> None:
        del frame
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _read_ready(self, data: bytes) -> None:
        for value in data:
            if value >= _LISTENING:
                self.listening.add(value - _LISTENING)
                self.prepared.add(value - _LISTENING)
            else:
                self.prepared.add(value)

    def wait_ready(self, indexes: set[int], timeout: float, *, listening: bool) -> bool:
        """Read readiness bytes until ``indexes`` are prepared (or listening); False if one
        died or the time ran out first."""
        seen = self.listening if listening else self.prepared
        deadline = time.monotonic() + timeout
        while not indexes <= seen and not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                late = sorted(indexes - seen)
                log.error("workers %s did not start in %.0f s", late, timeout)
                return False
            with contextlib.suppress(InterruptedError):
                readable, _, _ = select.select([self.read_fd], [], [], min(remaining, 0.2))
                if readable:
                    self._read_ready(os.read(self.read_fd, 64))
            if indexes <= seen:
                break  # all there (one that dies now is the supervisor's business)
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid != 0 and pid in self.children:
                index, _ = self.children.pop(pid)
                code = os.waitstatus_to_exitcode(status)
                log.error("worker %d (pid %d) %s while starting", index, pid, _describe(code))
                self.failure = max(self.failure, abs(code) or 1)
                return False
        return not self.stopping

    def send_go(self, index: int) -> None:
        with contextlib.suppress(OSError):
            os.write(self.go[index][1], b"g")

    def drain_ready(self) -> None:
        """Empty the readiness pipe (restarted workers write to it too)."""
        with contextlib.suppress(InterruptedError):
            while select.select([self.read_fd], [], [], 0)[0]:
                if not os.read(self.read_fd, 64):
                    break

    def may_restart(self, started: float) -> bool:
        now = time.monotonic()
        while self.restarts and now - self.restarts[0] > 60.0:
            self.restarts.popleft()
        if now - started < MIN_UPTIME or len(self.restarts) >= MAX_RESTARTS:
            return False
        self.restarts.append(now)
        return True

    def supervise(self) -> int:
        """Wait for the workers to end; restart or give up on the ones that die."""
        worst = 0
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            self.drain_ready()
            entry = self.children.pop(pid, None)
            if entry is None:
                continue
            index, started = entry
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                    log.warning("worker %d (pid %d) %s while stopping", index, pid, _describe(code))
                    worst = max(worst, abs(code))
                continue
            log.error("worker %d (pid %d) %s", index, pid, _describe(code))
            if self.may_restart(started):
                log.warning("restarting worker %d", index)
                self.spawn(index)
                self.send_go(index)  # the others are up: no need to wait
                continue
            log.error("worker %d keeps failing: stopping the server", index)
            worst = max(worst, abs(code) or 1)
            self.forward(signal.SIGTERM)
        return worst

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        for pair in (*self.pairs, *self.handoff):
            for sock in pair:
                sock.close()
        for pipe in self.go:
            for fd in pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """In a worker: have Linux send it SIGTERM when the supervisor ``parent`` dies.

    A supervisor killed with SIGKILL (an OOM kill, ``kill -9``, a test's
    teardown) cannot pass SIGTERM on; without this its workers would keep
    the SIP port and the data directory. The worker then drains as on any
    SIGTERM. If the supervisor is already gone (it died between the fork and
    this call), the worker exits at once. Elsewhere than Linux: no-op.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def run_workers(
    count: int,
    work: Callable[[WorkerSpec], int],
    *,
    on_ready: Callable[[], None] | None = None,
    ready_timeout: float = 60.0,
) -> int:
    """Fork ``count`` workers running ``work(spec)``, supervise them, return the exit status.

    The workers start together; each prepares (data, own ports, HTTP for the
    first) and says so (:meth:`WorkerSpec.announce_prepared`); when all have,
    each is told to bind the shared port (:meth:`WorkerSpec.wait_go`), so the
    SO_REUSEPORT group is complete before any client is served. ``on_ready``
    runs when every worker said :meth:`WorkerSpec.announce_ready` (the banner).
    A ``work`` that announces ready without the two steps before is fine. See
    the module docstring for signals and restarts. Call it before any event loop or thread exists in
    this process. A worker that does not announce itself within
    ``ready_timeout`` seconds (or dies first) stops the server (status 1).
    """
    supervisor = _Supervisor(count, work)
    previous = {s: signal.signal(s, supervisor.forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        everyone = set(range(count))
        for index in everyone:
            supervisor.spawn(index)
        ready = supervisor.wait_ready(everyone, ready_timeout, listening=False)
        if ready:
            for index in everyone:
                supervisor.send_go(index)
            ready = supervisor.wait_ready(everyone, ready_timeout, listening=True)
        if ready and on_ready is not None:
            on_ready()
        failed = not ready and not supervisor.stopping
        if failed:
            supervisor.forward(signal.SIGTERM)
        worst = supervisor.supervise()
        return max(worst, supervisor.failure, 1) if failed else worst
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        supervisor.close()
