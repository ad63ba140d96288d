"""Finding third-party peers and free loopback ports for interop tests.

Interop tests must run in CI: a missing peer is a failure when ``CI`` is set
and a skip on a developer's machine otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def require_peer(executable: str, package: str | None = None) -> str:
    """Return the path of ``executable``; fail in CI, skip elsewhere, if absent."""
    path = shutil.which(executable)
    if path is None:
        where = f" (Debian package {package})" if package else ""
        message = f"peer {executable!r} not installed{where}; run scripts/install-peers"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1") -> int:
    """A port that is free for both UDP and TCP on ``host`` right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found")
