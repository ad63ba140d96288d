"""``trunkline phone`` as a subprocess, for interop tests with real peers.

:class:`PhoneProcess` runs ``python -m trunkline.cli phone ARGS`` (the
command a user types, with this interpreter), keeps its stdout lines as a
transcript that tests match with regular expressions (``registered ...``,
``connected (PCMU/8000, ...)``, ``DTMF received: 5 (rfc4733)``, ``call
completed``) and writes stderr to a file shown on failure. :meth:`stop`
terminates it (SIGTERM, then SIGKILL); :class:`PhoneProcesses` stops every
process it started (for a fixture's teardown).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from pathlib import Path

from tests.support.peerprocess import AsyncPeer, PeerFactory


class PhoneProcess(AsyncPeer):
    """``trunkline phone ...`` as a subprocess; stdout lines kept as a transcript."""

    def __init__(self, workdir: Path, *args: str) -> None:
        super().__init__(workdir / "phone.stderr")
        self.argv = [sys.executable, "-m", "trunkline.cli", "phone", *args]
        self.workdir = workdir
        self.lines: list[str] = []
        self.stderr_path = self.log_path
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("wb") as err:
            await self.spawn(
                self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err.fileno(),
            )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            self.lines.append(raw.decode(errors="replace").rstrip())
            self.notify()
        self.notify()

    def output(self) -> str:
        return "\n".join(self.lines) + "\n--- stderr ---\n" + self.log_text(3000)

    async def expect(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The first transcript line matching ``pattern`` (waits up to ``timeout``)."""
        rx = re.compile(pattern)

        def find() -> re.Match[str] | None:
            return next((m for line in self.lines if (m := rx.search(line))), None)

        def timed_out() -> Exception:
            return TimeoutError(f"trunkline phone: no {pattern!r}:\n{self.output()}")

        def gone() -> Exception | None:
            return timed_out() if self._reader is not None and self._reader.done() else None

        return await self.wait_until(find, timeout=timeout, timed_out=timed_out, gone=gone)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5.0)
        return code

    def received_dtmf(self) -> str:
        return "".join(
            m.group(1) for line in self.lines if (m := re.match(r"DTMF received: (\S)", line))
        )

    async def stop(self) -> None:
        await self.end_process(5.0, terminate=True)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


class PhoneProcesses(PeerFactory[PhoneProcess]):
    """Starts ``PhoneProcess`` objects; ``close()`` stops them all (a fixture's teardown)."""

    async def start(self, workdir: Path, *args: str) -> PhoneProcess:
        """``trunkline phone ARGS`` with its files in ``workdir``."""
        return await self.launch(PhoneProcess(workdir, *args))
