"""Worker processes: the checks before forking, the fork itself, the shared port."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

from tests.support.peers import free_port

from trunkline.config import Config
from trunkline.proxy.workers import (
    WorkerSpec,
    check_workers,
    listen_shared,
    run_workers,
    worker_count,
)
from trunkline.sip.aio.transport import TransportLayer


def _redis(**extra: object) -> Config:
    return Config.model_validate({"location": {"backend": "redis"}, **extra})


def test_worker_count_and_checks() -> None:
    assert worker_count(Config()) == 1
    assert worker_count(Config.model_validate({"workers": 0})) == (os.cpu_count() or 1)
    assert check_workers(Config(), 1) is None
    problem = check_workers(Config.model_validate({"workers": 2}), 2)
    assert problem is not None and "redis" in problem
    assert check_workers(_redis(workers=2), 2) is None
    zero_port = _redis(listen={"udp": {"port": 1}, "tcp": {"port": 1, "enabled": False}})
    assert check_workers(zero_port, 2) is None
    assert WorkerSpec().primary and not WorkerSpec().shared
    assert WorkerSpec(1, 2).shared and not WorkerSpec(1, 2).primary


def test_run_workers_forks_each_and_returns_the_worst_status(tmp_path: Path) -> None:
    read, write = os.pipe()

    def work(spec: WorkerSpec) -> int:
        os.write(write, bytes([spec.index]))
        (tmp_path / str(spec.index)).touch()
        if spec.index != 1:
            return 0
        # A failing worker makes run_workers stop the others: fail only once all
        # three have started, so the test does not race the shutdown.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(list(tmp_path.iterdir())) < 3:
            time.sleep(0.01)
        return 3

    try:
        assert run_workers(3, work) == 3
        os.close(write)
        write = -1
        seen = b""
        for _ in range(10):
            chunk = os.read(read, 16)
            if not chunk:
                break
            seen += chunk
        assert sorted(seen) == [0, 1, 2]
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)


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
