"""What ``trunkline status`` shows, and the server's small HTTP port that serves it.

:class:`ServerStats` holds the proxy's counters (requests by method,
responses by class, forwarded, dropped, latency buckets) and the calls it
saw answered and not yet hung up (the proxy keeps no dialog state, so
"active dialogs" are tracked from the 2xx of INVITEs and the BYEs it
forwards, like Kamailio's dialog module in its simplest use).

:class:`HttpFront` is the HTTP listener on ``--http-port``: ``GET /status``
(JSON for the CLI), ``GET /metrics`` (Prometheus text, :mod:`.metrics`) and
WebSocket upgrades, which are handed to the SIP transport layer as SIP over
WebSocket connections (RFC 7118), so one port serves browsers, the CLI and
Prometheus. :func:`fetch_status` / :func:`render_status` are the CLI side.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from trunkline.sip.message import Request, Response

__all__ = [
    "LATENCY_BUCKETS",
    "HttpFront",
    "ServerStats",
    "fetch_status",
    "merge_snapshots",
    "render_status",
]

log = logging.getLogger("trunkline.proxy.status")

LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
"""Upper bounds (seconds) of the request-to-final-response latency histogram."""

_MAX_DIALOGS = 100_000
_DIALOG_MAX_AGE = 12 * 3600.0


@dataclass(slots=True)
class _Latency:
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    count: int = 0
    total: float = 0.0


@dataclass(slots=True)
class ServerStats:
    """Counters of one server process (cheap to update on every message)."""

    started: float
    requests: dict[str, int] = field(default_factory=dict)
    responses: dict[str, int] = field(default_factory=dict)
    replies: int = 0
    forwarded: int = 0
    stateless: int = 0
    dropped: int = 0
    cancels: int = 0
    purged: int = 0
    keepalives: int = 0
    latency: dict[str, _Latency] = field(default_factory=dict)
    dialogs: OrderedDict[tuple[str, str], tuple[float, str, str]] = field(
        default_factory=OrderedDict
    )

    def count_request(self, method: str) -> None:
        self.requests[method] = self.requests.get(method, 0) + 1

    def count_response(self, status: int) -> None:
        key = f"{status // 100}xx"
        self.responses[key] = self.responses.get(key, 0) + 1

    def observe_latency(self, method: str, seconds: float) -> None:
        """Time from a request's arrival to the final response sent upstream."""
        entry = self.latency.get(method)
        if entry is None:
            entry = self.latency[method] = _Latency()
        entry.count += 1
        entry.total += seconds
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                entry.buckets[index] += 1
                break

    # -- calls in progress -----------------------------------------------------------

    def dialog_started(self, response: Response, now: float) -> None:
        """A 2xx to an INVITE went upstream: the call is up (re-INVITEs keep the start)."""
        key = (response.call_id, response.from_tag or "")
        if key in self.dialogs:
            return
        # The URIs as received: parsing them for a status line cost more than the rest.
        self.dialogs[key] = (now, response.from_.uri_text, response.to.uri_text)
        while len(self.dialogs) > _MAX_DIALOGS:
            self.dialogs.popitem(last=False)

    def dialog_ended(self, bye: Request) -> None:
        """A BYE was answered: forget the call whichever side hung up."""
        call_id = bye.call_id
        for tag in (bye.from_tag or "", bye.to_tag or ""):
            if self.dialogs.pop((call_id, tag), None) is not None:
                return

    def _expire_dialogs(self, now: float) -> None:
        while self.dialogs:
            key, (started, _, _) = next(iter(self.dialogs.items()))
            if now - started < _DIALOG_MAX_AGE:
                break
            del self.dialogs[key]

    def snapshot(self, now: float, **extra: Any) -> dict[str, Any]:
        """The counters as JSON-ready data, plus ``extra`` sections from the server."""
        self._expire_dialogs(now)
        return {
            "uptime": now - self.started,
            "started": self.started,
            "requests": dict(self.requests),
            "responses": dict(self.responses),
            "counters": {
                "replied_locally": self.replies,
                "forwarded_stateful": self.forwarded,
                "forwarded_stateless": self.stateless,
                "dropped": self.dropped,
                "cancels": self.cancels,
                "purged_bindings": self.purged,
                "keepalive_pings": self.keepalives,
            },
            "latency": {
                method: {
                    "buckets": list(zip(LATENCY_BUCKETS, entry.buckets, strict=True)),
                    "count": entry.count,
                    "sum": entry.total,
                }
                for method, entry in self.latency.items()
            },
            "dialogs": [  # the newest 1000, oldest first (without copying all of them)
                {"call_id": key[0], "from": caller, "to": callee, "duration": now - started}
                for key, (started, caller, callee) in reversed(
                    list(itertools.islice(reversed(self.dialogs.items()), 1000))
                )
            ],
            "active_dialogs": len(self.dialogs),
            **extra,
        }


# -- several workers ---------------------------------------------------------------------

_SUMMED_SECTIONS = ("requests", "responses", "counters", "flood", "registrar", "handoff")
_SUMMED_VALUES = ("transactions", "contexts", "active_dialogs")


def _worker_line(
    index: int, pid: int, age: float, stale: bool, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "index": index,
        "pid": pid,
        "age": round(age, 3),
        "stale": stale,
        "requests": sum(data.get("requests", {}).values()),
        "transactions": data.get("transactions", 0),
        "active_dialogs": data.get("active_dialogs", 0),
    }


def merge_snapshots(
    own: dict[str, Any], others: Sequence[dict[str, Any]], *, index: int = 0, pid: int = 0
) -> dict[str, Any]:
    """The first worker's live snapshot ``own`` plus what the other workers published.

    ``others`` are :meth:`StatusBoard.read <trunkline.proxy.workers.StatusBoard.read>`
    entries (``index``, ``pid``, ``age``, ``stale``, ``snapshot``). Counters,
    latency histograms, transactions and calls are summed over the fresh
    ones; bans are united; stale entries (a stuck worker) are only listed in
    ``workers``, which says how old each worker's part is.
    """
    merged = dict(own)
    for name in _SUMMED_SECTIONS:
        merged[name] = dict(own.get(name, {}))
    latency = {
        method: {
            "buckets": [list(pair) for pair in entry["buckets"]],
            "count": entry["count"],
            "sum": entry["sum"],
        }
        for method, entry in own.get("latency", {}).items()
    }
    dialogs = list(own.get("dialogs", []))
    bans = {ban["source"]: ban["until"] for ban in own.get("bans", [])}
    workers = [_worker_line(index, pid, 0.0, False, own)]
    for entry in others:
        data = entry.get("snapshot", {})
        stale = bool(entry.get("stale"))
        workers.append(
            _worker_line(
                int(entry.get("index", -1)),
                int(entry.get("pid", 0)),
                float(entry.get("age", 0.0)),
                stale,
                data,
            )
        )
        if stale:
            continue
        for name in _SUMMED_SECTIONS:
            section = merged[name]
            for key, value in data.get(name, {}).items():
                section[key] = section.get(key, 0) + value
        for name in _SUMMED_VALUES:
            merged[name] = merged.get(name, 0) + data.get(name, 0)
        for method, entry_latency in data.get("latency", {}).items():
            mine = latency.setdefault(
                method,
                {"buckets": [[bound, 0] for bound in LATENCY_BUCKETS], "count": 0, "sum": 0.0},
            )
            for pair, (_, count) in zip(mine["buckets"], entry_latency["buckets"], strict=True):
                pair[1] += count
            mine["count"] += entry_latency["count"]
            mine["sum"] += entry_latency["sum"]
        dialogs.extend(data.get("dialogs", []))
        for ban in data.get("bans", []):
            bans[ban["source"]] = max(ban["until"], bans.get(ban["source"], 0.0))
    dialogs.sort(key=lambda dialog: -float(dialog.get("duration", 0.0)))
    merged["latency"] = latency
    merged["dialogs"] = dialogs[-1000:]
    merged["bans"] = [{"source": source, "until": until} for source, until in bans.items()]
    merged["workers"] = workers
    return merged


# -- the HTTP front ---------------------------------------------------------------------

SnapshotSource = Callable[[], Awaitable[dict[str, Any]]]
MetricsSource = Callable[[dict[str, Any]], bytes]
UpgradeHandler = Callable[[asyncio.Transport, bytes], None]

_MAX_HEAD = 16384


class _HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 request, or the start of a WebSocket connection."""

    def __init__(self, front: HttpFront) -> None:
        self.front = front
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > _MAX_HEAD and self.transport is not None:
                self.transport.close()
            return
        head = self.buffer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split()
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        assert self.transport is not None
        if "websocket" in headers.get("upgrade", "").lower() and self.front.on_upgrade:
            transport, buffered = self.transport, self.buffer
            self.transport = None
            self.front.on_upgrade(transport, buffered)
            return
        method = parts[0] if parts else ""
        path = parts[1].split("?", 1)[0] if len(parts) > 1 else "/"
        task = asyncio.ensure_future(self.front.answer(self.transport, method, path))
        self.front.tasks.add(task)
        task.add_done_callback(self.front.tasks.discard)


class HttpFront:
    """``/status``, ``/metrics`` and WebSocket upgrades on one TCP port."""

    def __init__(
        self,
        snapshot: SnapshotSource,
        metrics: MetricsSource,
        on_upgrade: UpgradeHandler | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.metrics = metrics
        self.on_upgrade = on_upgrade
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _HttpProtocol(self), host, port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        for task in list(self.tasks):
            task.cancel()

    async def answer(self, transport: asyncio.Transport, method: str, path: str) -> None:
        try:
            if method != "GET":
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == "/status":
                data = await self.snapshot()
                status, ctype = "200 OK", "application/json"
                body = json.dumps(data).encode()
            elif path == "/metrics":
                data = await self.snapshot()
                status, ctype = "200 OK", "text/plain; version=0.0.4; charset=utf-8"
                body = self.metrics(data)
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"try /status or /metrics\n"
        except Exception:
            log.exception("HTTP %s %s failed", method, path)
            status, ctype, body = "500 Internal Server Error", "text/plain", b"error\n"
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        if not transport.is_closing():
            transport.write(head.encode() + body)
            transport.close()


# -- the CLI side ------------------------------------------------------------------------


def fetch_status(host: str, port: int, timeout: float = 5.0) -> dict[str, Any]:
    """``GET /status`` from a running server (raises OSError when none answers)."""
    url = f"http://{host}:{port}/status"
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        data = json.loads(reply.read())
    if not isinstance(data, dict):
        raise ValueError("unexpected /status answer")
    return data


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {text}" if days else text


def render_status(data: dict[str, Any]) -> str:
    """The human-readable ``trunkline status`` report."""
    lines = [
        f"Trunkline up {_duration(float(data.get('uptime', 0)))}"
        f" (since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(data.get('started', 0)))})",
        f"domains: {', '.join(data.get('domains', []))}",
        "listening: " + ", ".join(f"{k} {v}" for k, v in sorted(data.get("listeners", {}).items())),
        "",
        f"registered contacts: {data.get('registered_contacts', 0)}",
    ]
    for binding in data.get("bindings", [])[:50]:
        lines.append(
            f"  {binding['aor']:<32} {binding['contact']:<48} "
            f"expires in {binding['expires_in']}s via {binding.get('transport') or '?'}"
        )
    lines += ["", f"active dialogs: {data.get('active_dialogs', 0)}"]
    for dialog in data.get("dialogs", [])[:50]:
        lines.append(
            f"  {dialog['from']} -> {dialog['to']}  {_duration(dialog['duration'])}"
            f"  ({dialog['call_id']})"
        )
    workers = data.get("workers", [])
    if workers:
        lines += ["", f"workers: {len(workers)}"]
        for worker in workers:
            age = "live" if worker["age"] == 0 else f"{worker['age']:.1f}s old"
            lines.append(
                f"  #{worker['index']} pid {worker['pid']}: {worker['requests']} requests,"
                f" {worker['transactions']} transactions, {worker['active_dialogs']} calls"
                f" ({'STALE, not counted' if worker['stale'] else age})"
            )
    lines += ["", f"transactions: {data.get('transactions', 0)}"]
    requests = data.get("requests", {})
    lines.append("requests: " + (", ".join(f"{k} {v}" for k, v in sorted(requests.items())) or "0"))
    responses = data.get("responses", {})
    lines.append(
        "responses: " + (", ".join(f"{k} {v}" for k, v in sorted(responses.items())) or "0")
    )
    counters = {**data.get("counters", {}), **data.get("registrar", {})}
    lines.append("counters: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    flood = data.get("flood", {})
    if flood:
        lines.append("security: " + ", ".join(f"{k} {v}" for k, v in flood.items()))
    handoff = data.get("handoff", {})
    if handoff:  # several workers: responses passed to the worker of their transaction
        lines.append("worker hand-off: " + ", ".join(f"{k} {v}" for k, v in handoff.items()))
    bans = data.get("bans", [])
    lines.append(f"banned sources: {len(bans)}")
    for ban in bans[:20]:
        lines.append(f"  {ban['source']} for {max(0, int(ban['until'] - time.time()))}s")
    return "\n".join(lines)
