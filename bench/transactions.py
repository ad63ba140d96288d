"""Call rate of a Trunkline UAS against SIPp's own ``uas``, same load, same run.

SIPp's built-in ``uac`` scenario (INVITE / 100 / 180 / 200 / ACK / BYE / 200
over UDP) is pointed first at a Trunkline endpoint (``SipEndpoint`` +
``CallManager`` answering 180 then 200 with SDP, on uvloop, pinned to one
core) and then at ``sipp -sn uas`` pinned to the same core. For each side
the offered rate steps up by ``--factor`` (each step sends ``rate * step_seconds`` calls);
a step passes when SIPp exits cleanly with under 0.5% failed calls. The
capacity of a side is its highest passing rate (one bisection step refines
it); each side is bounded to about 25 s of steps. The issue gives no goal; 0.1x is
used. The last line printed is::

    transactions: <value>x sipp-uas (goal 0.1x)

Run: ``.venv/bin/python bench/transactions.py`` (needs ``sipp``, Debian
``sip-tester``). Not part of the pytest suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # for tests.support (SIPp command lines, free ports)

GOAL = 0.1
MAX_FAILED = 0.005
SDP = (
    b"v=0\r\no=trunkline 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def pin_process(pid: int, cpu: int) -> None:
    """Pin process ``pid`` (0: this one) to one CPU when the machine has it."""
    if cpu < (os.cpu_count() or 1):
        # The process may already have exited, or affinity may not be allowed.
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


# -- the Trunkline UAS (runs in a child process) --------------------------------------


def serve(port: int, cpu: int) -> None:
    """Answer every INVITE with 180 and 200 + SDP until killed."""
    pin_process(0, cpu)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    from trunkline.sip.aio.calls import CallManager, IncomingCall
    from trunkline.sip.aio.endpoint import SipEndpoint

    async def main() -> None:
        endpoint = SipEndpoint(user_agent=None)
        await endpoint.listen("UDP", "127.0.0.1", port)
        manager = CallManager(endpoint)

        async def answer(incoming: IncomingCall) -> None:
            incoming.ring()
            incoming.answer(SDP)

        manager.on_invite = answer
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# -- SIPp driving -----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    rate: int
    calls: int
    successful: int
    failed: int
    seconds: float
    ok: bool


def run_uac(sipp: str, port: int, *, rate: int, seconds: float, workdir: Path, cpu: int) -> Step:
    from tests.support.sipp import uac_args
    from tests.support.sippstat import read_counts, trace_args

    calls = max(int(rate * seconds), 10)
    stat = workdir / f"uac-{port}-{rate}-{time.monotonic_ns()}.csv"
    load = uac_args(
        port, calls=calls, rate=rate, limit=max(rate * 4, 100), timeout=int(seconds + 8)
    )
    args = [
        sipp,
        *load,
        "-recv_timeout",
        "4000",
        "-nostdin",
        *trace_args(stat),
        "-max_socket",
        "1024",
    ]
    start = time.monotonic()
    proc = subprocess.Popen(
        args,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pin_process(proc.pid, cpu)
    try:
        rc = proc.wait(timeout=seconds + 15)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    elapsed = time.monotonic() - start
    counts = read_counts(stat)
    ok = (
        rc == 0
        and counts.successful + counts.failed >= calls
        and counts.failed <= MAX_FAILED * calls
        and elapsed <= seconds * 1.5 + 3
    )
    return Step(rate, calls, counts.successful, counts.failed, elapsed, ok)


class Server:
    """One answering side (Trunkline or SIPp's uas), restartable with a clean slate."""

    def __init__(self, command: list[str], *, cpu: int, workdir: Path, ready_line: bool) -> None:
        self.command = command
        self.cpu = cpu
        self.workdir = workdir
        self.ready_line = ready_line
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        from tests.support.peers import free_port

        self.stop()
        self.port = free_port()
        argv = [arg.replace("{port}", str(self.port)) for arg in self.command]
        self.proc = subprocess.Popen(
            argv,
            cwd=self.workdir,
            stdout=subprocess.PIPE if self.ready_line else subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pin_process(self.proc.pid, self.cpu)
        if self.ready_line:
            wait_ready(self.proc)
        else:
            time.sleep(0.5)
        return self.port

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


def capacity(name: str, sipp: str, server: Server, args: argparse.Namespace, workdir: Path) -> int:
    """Highest passing rate, stepping up geometrically, then one bisection.

    The server is restarted before the bisection so the failed step's
    leftovers (unacknowledged 2xx being retransmitted) do not weigh on it.
    """
    budget_end = time.monotonic() + args.budget
    best, worst = 0, 0
    rate = args.start_rate
    port = server.start()

    def step_at(offered: int) -> Step:
        step = run_uac(
            sipp, port, rate=offered, seconds=args.step_seconds, workdir=workdir, cpu=args.load_cpu
        )
        print(
            f"  {name:>9} {offered:>6} calls/s offered: {step.successful}/{step.calls} ok, "
            f"{step.failed} failed, {step.seconds:.1f} s -> {'pass' if step.ok else 'FAIL'}",
            flush=True,
        )
        return step

    while time.monotonic() < budget_end:
        if not step_at(rate).ok:
            worst = rate
            break
        best = rate
        rate = int(rate * args.factor)
        time.sleep(0.5)
    if worst and best:
        port = server.start()
        middle = (best + worst) // 2
        if step_at(middle).ok:
            best = middle
    server.stop()
    return best


def wait_ready(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == b"ready":
            return
        if not line and proc.poll() is not None:
            break
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--start-rate", type=int, default=100)
    parser.add_argument("--step-seconds", type=float, default=2.0)
    parser.add_argument("--budget", type=float, default=25.0, help="seconds per side")
    parser.add_argument("--factor", type=float, default=1.5, help="rate step multiplier")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.server_cpu)
        return

    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("sipp (Debian sip-tester) is needed")
    with tempfile.TemporaryDirectory(prefix="bench-transactions-") as tmp:
        workdir = Path(tmp)
        ours = Server(
            [sys.executable, __file__, "--serve", "{port}", "--server-cpu", str(args.server_cpu)],
            cpu=args.server_cpu,
            workdir=workdir,
            ready_line=True,
        )
        theirs = Server(
            [
                sipp,
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                "{port}",
                "-nostdin",
                "-max_socket",
                "1024",
            ],
            cpu=args.server_cpu,
            workdir=workdir,
            ready_line=False,
        )
        results: dict[str, int] = {}
        try:
            results["trunkline"] = capacity("trunkline", sipp, ours, args, workdir)
            results["sipp-uas"] = capacity("sipp-uas", sipp, theirs, args, workdir)
        finally:
            ours.stop()
            theirs.stop()

    for name, value in results.items():
        print(f"{name:>10}: {value:>6} calls/s at <{MAX_FAILED:.1%} failed (one core)")
    ratio = results["trunkline"] / results["sipp-uas"] if results["sipp-uas"] else 0.0
    print(f"transactions: {ratio:.2f}x sipp-uas (goal {GOAL}x)")


if __name__ == "__main__":
    main()
