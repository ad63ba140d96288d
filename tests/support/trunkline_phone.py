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


class PhoneProcess:
    """``trunkline phone ...`` as a subprocess; stdout lines kept as a transcript."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.argv = [sys.executable, "-m", "trunkline.cli", "phone", *args]
        self.workdir = workdir
        self.lines: list[str] = []
        self.stderr_path = workdir / "phone.stderr"
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            self.lines.append(raw.decode(errors="replace").rstrip())
            self._changed.set()
        self._changed.set()

    def output(self) -> str:
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return "\n".join(self.lines) + "\n--- stderr ---\n" + err[-3000:]

    async def expect(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The first transcript line matching ``pattern`` (waits up to ``timeout``)."""
        rx = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for line in self.lines:
                if m := rx.search(line):
                    return m
            left = deadline - loop.time()
            if left <= 0 or (self._reader is not None and self._reader.done()):
                raise TimeoutError(f"trunkline phone: no {pattern!r}:\n{self.output()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))

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
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.wait_for(proc.wait(), 5.0)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


class PhoneProcesses:
    """Starts ``PhoneProcess`` objects; ``close()`` stops them all (a fixture's teardown)."""

    def __init__(self) -> None:
        self.started: list[PhoneProcess] = []

    async def start(self, workdir: Path, *args: str) -> PhoneProcess:
        """``trunkline phone ARGS`` with its files in ``workdir``."""
        phone = PhoneProcess(workdir, *args)
        self.started.append(phone)
        await phone.start()
        return phone

    async def close(self) -> None:
        for phone in reversed(self.started):
            await phone.stop()
