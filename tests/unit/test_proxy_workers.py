"""Worker processes: the count, the supervisor (start order, restarts), the status board."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.peers import free_port

from trunkline.config import Config
from trunkline.proxy import workers
from trunkline.proxy.antiflood import FloodPolicy, Verdict
from trunkline.proxy.location import ContactSpec, RegisterRequest, RegistrarPolicy
from trunkline.proxy.location_sqlite import MemoryLocation
from trunkline.proxy.workers import (
    MAX_AUTO_WORKERS,
    BanRelay,
    FlowAwareLocation,
    SharedAntiFlood,
    StatusBoard,
    WorkerSpec,
    check_workers,
    listen_shared,
    run_workers,
    worker_count,
)
from trunkline.sip.aio.transport import TransportLayer


def _ports(port: int) -> Config:
    """Ports the config file refuses (0), as code building a Config may still set."""
    config = Config()
    udp = config.listen.udp.model_copy(update={"port": port})
    listen = config.listen.model_copy(update={"udp": udp})
    return config.model_copy(update={"listen": listen})


def test_worker_count_and_checks() -> None:
    auto = max(1, min(os.cpu_count() or 1, MAX_AUTO_WORKERS))
    assert worker_count(Config()) == auto  # the default: one per CPU, capped
    assert worker_count(Config.model_validate({"workers": 0})) == auto  # one per CPU, capped
    assert worker_count(Config.model_validate({"workers": 1})) == 1
    assert worker_count(Config.model_validate({"workers": 3})) == 3
    assert worker_count(_ports(0)) == 1  # ephemeral ports cannot be shared: one worker
    assert check_workers(Config(), 1) is None
    assert check_workers(Config.model_validate({"workers": 2}), 2) is None  # no Redis needed
    problem = check_workers(_ports(0), 2)
    assert problem is not None and "fixed UDP port" in problem
    assert WorkerSpec().primary and not WorkerSpec().shared
    assert WorkerSpec(1, 2).shared and not WorkerSpec(1, 2).primary


def _wait_for(path: Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.01)
    return False


def test_workers_bind_together_once_all_are_prepared(tmp_path: Path) -> None:
    banner: list[list[str]] = []

    def work(spec: WorkerSpec) -> int:
        time.sleep(0.1 * spec.index)  # prepared at different times
        (tmp_path / f"prepared-{spec.index}").touch()
        spec.announce_prepared()
        asyncio.run(spec.wait_go())
        # Told to go only once every worker is prepared.
        if len(list(tmp_path.glob("prepared-*"))) != 3:
            return 9
        (tmp_path / f"listening-{spec.index}").touch()
        spec.announce_ready()
        signal.pause()  # until run_workers passes SIGTERM on
        return 0

    def ready() -> None:
        banner.append(sorted(p.name for p in tmp_path.glob("listening-*")))
        os.kill(os.getpid(), signal.SIGTERM)  # as an admin would: every worker drains

    assert run_workers(3, work, on_ready=ready) == 0
    assert banner == [["listening-0", "listening-1", "listening-2"]]


def test_a_worker_that_fails_to_start_stops_the_server(tmp_path: Path) -> None:
    def work(spec: WorkerSpec) -> int:
        if spec.index == 1:
            return 3  # e.g. the port is taken
        spec.announce_ready()
        signal.pause()
        return 0

    assert run_workers(2, work, on_ready=lambda: pytest.fail("not ready")) == 3


def test_a_worker_that_dies_is_restarted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "MIN_UPTIME", 0.2)
    log = tmp_path / "log"

    def work(spec: WorkerSpec) -> int:
        with log.open("a") as handle:
            handle.write(f"start {spec.index}\n")
        spec.announce_ready()
        if spec.index == 1 and not (tmp_path / "died").exists():
            time.sleep(0.3)
            (tmp_path / "died").touch()
            os.kill(os.getpid(), signal.SIGKILL)  # a crash
        if spec.index == 1:  # the restarted one: stop the server once it runs
            os.kill(os.getppid(), signal.SIGTERM)
        signal.pause()
        return 0

    assert run_workers(2, work) == 0
    assert sorted(log.read_text().split("\n")[:-1]) == ["start 0", "start 1", "start 1"]


def test_a_crash_loop_is_not_restarted_forever(tmp_path: Path) -> None:
    def work(spec: WorkerSpec) -> int:
        spec.announce_ready()
        if spec.index == 1:
            return 4  # dies at once: under MIN_UPTIME, so no restart
        signal.pause()
        return 0

    assert run_workers(2, work) == 4


def test_status_board_publishes_and_reads_back(tmp_path: Path) -> None:
    board = StatusBoard(tmp_path / "run")
    board.clear()  # no directory yet: nothing to do
    board.publish(0, {"requests": {"INVITE": 1}}, 100.0)
    board.publish(1, {"requests": {"INVITE": 2}}, 100.0)
    board.publish(2, {"requests": {"INVITE": 3}}, 90.0)
    entries = board.read(101.0, exclude=0)
    assert [(e["index"], e["snapshot"]["requests"]["INVITE"]) for e in entries] == [(1, 2), (2, 3)]
    assert [e["stale"] for e in entries] == [False, True]
    assert entries[0]["age"] == pytest.approx(1.0)
    (tmp_path / "run" / "worker-3.json").write_text("not json")
    assert len(board.read(101.0, exclude=-1)) == 3  # the broken file is skipped
    board.clear()
    assert board.read(101.0, exclude=-1) == []


async def test_two_layers_share_one_port() -> None:
    received: list[bytes] = []
    layers = [TransportLayer(lambda inbound: received.append(inbound.data)) for _ in range(2)]
    port = free_port()
    try:
        for kind in ("udp", "tcp"):
            shared = [await listen_shared(layer, kind, "127.0.0.1", port) for layer in layers]
            assert [listener.port for listener in shared] == [port, port]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"OPTIONS sip:x SIP/2.0\r\n\r\n", ("127.0.0.1", port))
            for _ in range(100):  # at most 1 s
                if received:
                    break
                await asyncio.sleep(0.01)
        assert received == [b"OPTIONS sip:x SIP/2.0\r\n\r\n"]
    finally:
        for layer in layers:
            await layer.close()


async def test_flows_held_by_another_worker_are_not_used() -> None:
    inner = MemoryLocation()
    held = {("tcp", "192.0.2.5:40001")}
    location = FlowAwareLocation(inner, lambda transport, received: (transport, received) in held)
    policy = RegistrarPolicy()

    def register(aor: str, transport: str, received: str) -> RegisterRequest:
        return RegisterRequest(
            aor=aor,
            call_id=aor,
            cseq=1,
            contacts=(ContactSpec(f"{aor};transport={transport}"),),
            received=received,
            transport=transport,
            flow=f"{transport.upper()}:{received}",
        )

    for aor, transport, received in (
        ("sip:mine@192.0.2.5:5060", "tcp", "192.0.2.5:40001"),  # our connection
        ("sip:theirs@192.0.2.6:5060", "tcp", "192.0.2.6:40002"),  # another worker's
        ("sip:udp@192.0.2.7:5060", "udp", "198.51.100.7:7000"),  # UDP: no connection
    ):
        outcome = await location.apply_register(register(aor, transport, received), 0.0, policy)
        assert outcome.ok
    (mine,) = await location.lookup("sip:mine@192.0.2.5:5060", 1.0)
    (theirs,) = await location.lookup("sip:theirs@192.0.2.6:5060", 1.0)
    (udp,) = await location.lookup("sip:udp@192.0.2.7:5060", 1.0)
    assert (mine.received, mine.flow) == ("192.0.2.5:40001", "TCP:192.0.2.5:40001")
    assert (theirs.received, theirs.flow) == (None, None)  # resolve the Contact instead
    assert theirs.contact_uri == "sip:theirs@192.0.2.6:5060;transport=tcp"
    assert udp.received == "198.51.100.7:7000"
    # The store itself keeps the flow (the worker that holds it uses it).
    assert (await inner.lookup("sip:theirs@192.0.2.6:5060", 1.0))[0].flow is not None
    assert (await location.counts(1.0)).bindings == 3
    assert len(await location.all_bindings(1.0)) == 3
    assert await location.purge_expired(10_000.0) == 3
    await location.flush()
    await location.close()


def test_a_ban_made_by_one_worker_applies_in_the_others(tmp_path: Path) -> None:
    """Three real workers: worker 1 bans a flooding source; 0 and 2 drop it too."""
    policy = FloodPolicy(requests_per_second=1.0, burst=2, flood_ban_seconds=60.0)

    def work(spec: WorkerSpec) -> int:
        async def run() -> int:
            relay = BanRelay(spec)
            antiflood = SharedAntiFlood(policy, None, relay)
            relay.start(lambda host, until: antiflood.ban_from_peer(host, until, time.time()))
            spec.announce_ready()
            try:
                if spec.index == 1:
                    await asyncio.sleep(0.2)  # the others read their inbox by now
                    verdicts = [antiflood.check("192.0.2.66", None, time.time()) for _ in range(3)]
                    assert verdicts[-1] is Verdict.FLOOD
                for _ in range(200):  # at most 2 s
                    if antiflood.is_banned("192.0.2.66", time.time()):
                        break
                    await asyncio.sleep(0.01)
                else:
                    return 5
                # Each worker drops the source; only the worker that banned counts the ban.
                assert antiflood.check("192.0.2.66", None, time.time()) is Verdict.BANNED
                assert antiflood.counters.bans == (1 if spec.index == 1 else 0)
                (tmp_path / f"banned-{spec.index}").touch()
                await asyncio.sleep(10)  # until the test's SIGTERM
                return 0
            finally:
                relay.close()

        try:
            return asyncio.run(run())
        except KeyboardInterrupt:
            return 0

    def ready() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(list(tmp_path.glob("banned-*"))) < 3:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    assert run_workers(3, work, on_ready=ready) == 0
    assert sorted(p.name for p in tmp_path.glob("banned-*")) == [f"banned-{i}" for i in range(3)]


def test_workers_end_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the supervisor (no chance to pass SIGTERM on) still ends every worker."""
    script = f"""
import os, signal
from pathlib import Path
from trunkline.proxy.workers import run_workers

def work(spec):
    spec.announce_ready()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    Path({str(tmp_path)!r}, f"worker-{{os.getpid()}}").touch()
    signal.pause()
    return 0

run_workers(2, work)
"""
    supervisor = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 20
        while len(list(tmp_path.glob("worker-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
        assert len(pids) == 2
    finally:
        supervisor.kill()
        supervisor.wait(10)
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        time.sleep(0.05)
    assert alive == [], "workers outlived their supervisor"


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return False
