"""Several SIP worker processes behind one port (DESIGN.md "Scaling out").

``trunkline serve`` with ``workers = N`` (0: one per CPU) prepares the data
directory once, then forks N workers. Each worker is a whole
:class:`~trunkline.proxy.server.ProxyServer` on its own event loop:

- the configured UDP and TCP port is bound by every worker with
  ``SO_REUSEPORT``: the kernel hashes each flow (source and destination
  address and port) to one worker, so a client's retransmissions reach the
  worker holding its server transaction (RFC 3261 §17.2.3);
- each worker also binds a port of its own and writes it in its Via and
  Record-Route, so responses (§18.2.2 sends them to the Via) and in-dialog
  requests (§16.12 follows the Record-Route) come back to the worker that
  holds the client transactions of the call; requests it forwards go out
  from that port;
- registrations live in the ``redis`` location backend, shared by every
  worker: a REGISTER taken by one worker is found by the others. The
  ``memory`` backend keeps bindings inside one process, so several workers
  require ``redis`` (checked by :func:`check_workers`);
- the first worker alone serves TLS and the HTTP front (status, metrics,
  WebSocket) and sends the NAT keep-alive pings; its status covers its own
  traffic and the shared registrations.

Connection-oriented flows (TCP, TLS, WS) belong to the worker that accepted
them: a call for a phone registered over TCP is delivered through that flow
only when the same worker handles it (otherwise the worker connects to the
phone's Contact anew).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from trunkline.config import Config
from trunkline.sip.aio.transport import Listener, TransportLayer

__all__ = [
    "WorkerSpec",
    "check_workers",
    "listen_shared",
    "run_workers",
    "worker_count",
]


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Which worker this process is (``index`` of ``count``)."""

    index: int = 0
    count: int = 1

    @property
    def primary(self) -> bool:
        """The worker that also runs TLS, HTTP and the keep-alive pings."""
        return self.index == 0

    @property
    def shared(self) -> bool:
        """True when the SIP port is shared with other workers."""
        return self.count > 1


def worker_count(config: Config) -> int:
    """``config.workers``, with 0 meaning one worker per CPU."""
    return config.workers or (os.cpu_count() or 1)


def check_workers(config: Config, count: int) -> str | None:
    """Why ``count`` workers cannot run with ``config`` (None when they can)."""
    if count <= 1:
        return None
    if config.location.backend != "redis":
        return (
            f"{count} workers need a shared location service: set [location] "
            'backend = "redis" (the memory backend lives in one process), or workers = 1'
        )
    for kind in ("udp", "tcp"):
        spec = getattr(config.listen, kind)
        if spec.enabled and spec.port == 0:
            return f"several workers need a fixed {kind.upper()} port"
    return None


async def listen_shared(layer: TransportLayer, kind: str, host: str, port: int) -> Listener:
    """Bind UDP or TCP ``host:port`` on ``layer`` with ``SO_REUSEPORT`` (shared by workers).

    Bind the worker's own port first: the first UDP socket is the one
    requests are sent from.
    """
    name = kind.upper()
    if name not in ("UDP", "TCP"):
        raise ValueError(f"{name} cannot be shared between workers")
    return await layer.listen(name, host, port, reuse_port=True)


def run_workers(count: int, work: Callable[[WorkerSpec], int]) -> int:
    """Fork ``count`` workers running ``work(spec)``; wait for them; return the worst status.

    SIGTERM and SIGINT are passed on to every worker (each stops gracefully).
    A worker that dies early makes the others stop too. Call it before any
    event loop or thread exists in this process.
    """
    children: dict[int, int] = {}
    for index in range(count):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                code = work(WorkerSpec(index, count))
            except BaseException as error:  # reported, then the process ends
                print(f"worker {index}: {error!r}", file=sys.stderr)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index

    def forward(signum: int, frame: object) -> None:
        del frame
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    worst = 0
    stopped = False
    try:
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if children.pop(pid, None) is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if stopped and code == -signal.SIGTERM:
                continue  # our own stop below: the failure that caused it is the status
            if code != 0 and children:
                stopped = True
                forward(signal.SIGTERM, None)  # one failed: stop the rest
            worst = max(worst, abs(code))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return worst
