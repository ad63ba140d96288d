"""Registrar/proxy capacity: ``trunkline serve`` against Kamailio 5.6, same load, same run.

What is measured (issue 6, "Must show"):

- **Call rate**: SIPp ``uac_rr.xml`` -> proxy -> SIPp ``uas_rr.xml`` on
  127.0.0.2 (INVITE / 100 / 180 / 200 / ACK / BYE / 200, UDP). The uas
  copies Record-Route and fails any call whose ACK or BYE did not come
  through the proxy (no proxy Via above the uac's: proxy-neutral), so both
  proxies run tm + rr for all seven messages. The scenarios tolerate the
  reorderings a proxy with several workers produces (a 180 overtaken by the
  200, a BYE overtaking the ACK), so neither proxy loses calls to them.
  The uac's source is trusted (Trunkline ``trusted``; Kamailio an
  ``$si`` check, as the ``permissions`` module would do) and requests are
  relayed by Request-URI: no digest on calls, as in Kamailio's carrier setup.
- **Authenticated REGISTER rate**: SIPp ``register_auth.xml`` (REGISTER, 401,
  REGISTER with MD5 digest, 200) cycling through ``--users`` distinct users;
  usrloc in memory on both sides.

For each, the offered rate doubles from ``--start`` until a step fails, then
one bisection step refines it. A step offers ``rate * --step-seconds`` calls;
SIPp is stopped 1.25 times the step time plus 2 s after it started (the proxy
must keep up with the offered rate), and the step passes when under 0.5% of
the offered calls failed or were unfinished by then, counting the calls the
uas saw ACK or BYE of bypass the proxy. CPU per call is the proxy's
user+system CPU time (every worker / every Kamailio process) over the step
divided by the calls completed; SIPp's own (uac + uas) is printed next to it,
since SIPp shares the two cores with the proxy. Both SIPp sides run with
4 MB socket buffers (``-buff_size``), so a busy moment on the shared cores
does not drop datagrams in SIPp's own sockets.

- **Memory**: a server process (``ProxyServer`` started in process) with
  100,000 contacts registered into its location service prints its
  resident set size (goal: under 150 MB).

Workers: Trunkline runs with its default worker count (one uvloop process
per CPU, at most 4: two here; ``trunkline.proxy.workers``), Kamailio with
``children=2`` UDP workers plus its helper processes. Trunkline's workers
share one SO_REUSEPORT port and send from it (Via and Record-Route name it),
so calls spread over them by flow: with more than one worker SIPp's uac uses
``-t un`` (a socket per call) so that the kernel's per-flow hash spreads
calls over the workers. The uas answers from one socket, so all its
responses reach one worker, which hands the other workers' ones over
(``trunkline.proxy.handoff``: a few microseconds each). Kamailio's children
share one socket and need no such help, so its uac keeps SIPp's cheaper
single socket (the peer gets its best setup; SIPp's CPU is printed for
both). Past one core, workers scale as far as there are cores left: on this
2-core machine SIPp itself needs a good part of one core at the rates
measured. ``--workers N`` overrides the count (``--workers 1`` to compare).
The CPU counted is every worker's.

Measured (27 Nov 2026, quiet 2-core machine, full run): Trunkline 800 calls/s
at 1,929 us of CPU per call with its two workers (SIPp 595 us), Kamailio
4,800 calls/s at 166 us: 0.167x; authenticated REGISTER 800/s at 1,501 us
(every worker writes the shared SQLite location) against 16,000/s at 61 us:
0.050x; 100,000 contacts in 112 MB of resident memory. The same day with one
worker (``--quick``): 800 calls/s passed with the calls taking 4.5 s instead
of 3 (0.125x of Kamailio's 6,400 in that run) and 1,200 REGISTER/s (the
in-memory location is cheaper than the shared one). On 28 Nov 2026, after
that session's trims (load 0.5 at start, full run): 800 calls/s failed
(7,508 of 8,000 calls done within the step's 14.5 s), 600 calls/s passed at
1,993 us per call (SIPp 516 us), Kamailio 4,800 at 188 us: 0.125x; the
search's steps are coarse (400, 800, then 600), so the last line moves by a
third between runs at the same cost. REGISTER 800/s at 1,582 us against
16,000/s at 65 us (0.050x); 100,000 contacts in 109 MB.

Notes, where a call's CPU goes (one worker, in process, sends captured, so no
syscall and no other process is counted: ``bench/proxy_path.py --server
3000``): about 1,150-1,250 us per call on this machine (seven messages in,
seven out; noisy while other work runs; 1,280 before the 28 Nov trims below,
same run), against Kamailio's 63-83 us. Under callgrind (a 1,500-call and a
500-call ``--server`` run, difference / 1,000, both trees in the same run)
3.02 million instructions per call, 3.13 before; of them about 0.15 million
are the transactions' own clean-up timers (J, K, L, M: they fire because a
callgrind run lasts minutes, as they do in the real run) and 0.01-0.05
million the garbage collector (varies with the run's length), so the
message work itself went from 2.93 to 2.82 million. What costs what, in
instructions per call: parsing the six messages received 0.72 million (a
quarter; interning already makes a call's From/To/Via parse once), the rest
spread over the layers. The 28 Nov trims, each kept because the count
dropped (sequential runs, about +-3 thousand of noise): a forwarded 1xx/2xx
loses our Via in place instead of on a copy (-16 thousand); the request's
size for the §18.1.1 transport choice counted from its lines instead of
rendering it before our Via and Record-Route are added (one rendering, not
two: -8 to -11 thousand); a response's §18.2.2 destination remembered per
(interned, immutable) Via object (-35 thousand) and a next hop's per URI
object (-33 thousand); ``make_response`` writing Content-Length with the
copied lines (-5 thousand). Function calls per call 2,409 -> 2,350.
By message (28 Nov,
timed around the endpoint's receive): the INVITE about 365 us (100 Trying,
response context, client transaction, Record-Route, loop-hash branch), the
BYE 265 us, the stateless 2xx ACK 160 us, the 180, the 200 and the 200 to
the BYE 125-150 us each; parsing is about 40 us of each message (a fifth of
the call; 15-30 us in a tight loop: the working set of the whole path does
not stay in the caches). Some 2,400 Python function calls per call, none
above about 2.5 % of the time (a flat profile; some 30 % of the instructions
are the bytecode loop itself). Trimming inside the layers (no exceptions on
cache misses, our own Via not parsed back, no Via list copies) gave a few
per cent. Taking the layers' glue away did not: on 28 Nov a short path for
the plain responses (a provisional or 2xx on the only branch: transport ->
client transaction -> response context -> server transaction in one
function, no event queue, callbacks or action objects, checked equal to the
general path by a differential hypothesis test) changed neither the
instructions per call (3.126 million before, 3.130 after, callgrind, 1,000
calls) nor the function calls (2,415 -> 2,404), so it was not kept: the
events and queues between the layers were never the cost; the work each
layer does per message (typed header views, state machines with their
deadlines, copies, rendering) is. Compiling the same modules with mypyc was
probed on the grammar helpers (parameters, host/port, comma splitting):
1.2-2.2x per function, so not the missing factor either. In the real run
(``perf``, one worker, 350 calls/s) the worker's CPU is 73 % interpreter,
21 % kernel (``sendto`` on loopback also pays for waking the receiving
SIPp), 3 % libc and 2 % uvloop; it costs 1,750 us of user time per call
against 1,190 in process, the difference spread over the interpreter (the
caches are shared with two SIPp processes).

Run: ``.venv/bin/python bench/proxy.py`` (needs ``sipp`` and ``kamailio``;
about 8 minutes with the defaults; ``--quick`` for a short smoke run).
The last line is ``proxy: <value>x kamailio (goal 0.5x)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import functools
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

SCENARIOS = ROOT / "tests" / "data" / "sipp" / "proxy"
GOAL = 0.5
MAX_FAILED = 0.005
UAS_HOST = "127.0.0.2"
SIPP_BUFFER = ["-buff_size", str(4 * 1024 * 1024)]
"""Both SIPp sides: socket buffers large enough that a busy moment drops nothing in SIPp."""


def free_port(host: str = "127.0.0.1") -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of ``pids`` (from /proc; clock ticks to seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def process_group(pid: int) -> list[int]:
    """``pid`` and every process in its session (Kamailio's children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == pid or int(entry.name) == pid:  # pgrp
                pids.append(int(entry.name))
    return pids


# -- SIPp ----------------------------------------------------------------------------------


@dataclass
class Step:
    rate: int
    offered: int
    successful: int
    failed: int
    seconds: float
    cpu: float
    sipp_cpu: float = 0.0
    bypassed: int = 0
    """Calls whose ACK or BYE reached the uas without the proxy's Via (the uas's check)."""

    @property
    def unsuccessful(self) -> int:
        """Failed, unfinished when SIPp was stopped, or bypassed: all count against the step."""
        return max(self.offered - self.successful, self.failed) + self.bypassed

    @property
    def passed(self) -> bool:
        """Under 0.5% of the offered calls failed or unfinished within the step's time."""
        return self.unsuccessful <= MAX_FAILED * self.offered

    @property
    def cpu_per_call_us(self) -> float:
        return 1e6 * self.cpu / max(1, self.successful)

    @property
    def sipp_cpu_per_call_us(self) -> float:
        return 1e6 * self.sipp_cpu / max(1, self.successful)


def step_time_limit(offered: int, rate: int) -> float:
    """How long SIPp may take for a step: 1.25 times the offered time plus 2 s."""
    return 1.25 * offered / rate + 2.0


def run_sipp(args: list[str], workdir: Path, timeout: float) -> tuple[int, int]:
    """Run SIPp to completion (stopped at ``timeout``); returns (successful, failed)."""
    stat = workdir / f"stat-{time.monotonic_ns()}.csv"
    proc = subprocess.Popen(
        ["sipp", *args, *SIPP_BUFFER, "-nostdin", "-trace_stat", "-stf", str(stat), "-fd", "1"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # SIPp writes its last statistics on SIGINT
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: never leave SIPp behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    rows = list(csv.reader(stat.read_text().splitlines(), delimiter=";")) if stat.exists() else []
    last = dict(zip(rows[0], rows[-1], strict=False)) if len(rows) > 1 else {}
    return int(last.get("SuccessfulCall(C)", "0") or 0), int(last.get("FailedCall(C)", "0") or 0)


UAS_ERRORS: list[Path] = []
"""The running uas's ``-trace_err`` file: its failed checks are counted per step."""
UAS_PIDS: list[int] = []


def uas_bypassed() -> int:
    """How many ACK/BYE checks the uas failed so far (each a call that bypassed the proxy)."""
    if not UAS_ERRORS or not UAS_ERRORS[0].exists():
        return 0
    return UAS_ERRORS[0].read_bytes().count(b"Failed regexp match")


@contextlib.contextmanager
def sipp_uas(workdir: Path, port: int) -> Iterator[None]:
    errors = workdir / f"uas-{port}-errors.log"
    UAS_ERRORS[:] = [errors]
    proc = subprocess.Popen(
        [
            *("sipp", "-sf", str(SCENARIOS / "uas_rr.xml"), "-i", UAS_HOST),
            *("-p", str(port), "-nostdin", "-bg", *SIPP_BUFFER),
            *("-trace_err", "-error_file", str(errors)),
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.wait(timeout=10)  # -bg: the parent exits, the daemon keeps the port
    time.sleep(0.3)
    UAS_PIDS[:] = _pids_listening(port)
    try:
        yield
    finally:
        UAS_PIDS.clear()
        UAS_ERRORS.clear()
        for pid in _pids_listening(port):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _pids_listening(port: int) -> list[int]:
    """The SIPp uas daemon we started (found by its command line, killed by pid)."""
    pids = []
    needle = f"-p\x00{port}\x00".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes()
                if cmdline.startswith(b"sipp\x00") and needle in cmdline:
                    pids.append(int(entry.name))
    return pids


def call_step(proxy_port: int, rate: int, *, seconds: float, work: Path) -> Step:
    """One step of calls, with a fresh uas: an overloaded step leaves the last uas
    retransmitting 200s to a uac that is gone, which must not weigh on the next step."""
    calls = max(1, int(rate * seconds))
    uas_port = free_port(UAS_HOST)
    args = [f"{UAS_HOST}:{uas_port}", "-sf", str(SCENARIOS / "uac_rr.xml")]
    args += ["-rsa", f"127.0.0.1:{proxy_port}", "-i", "127.0.0.1", "-p", str(free_port())]
    args += ["-m", str(calls), "-r", str(rate), "-d", "0", "-l", str(max(1000, rate * 4))]
    args += ["-max_socket", "1000", *_SIPP_TRANSPORT]
    with sipp_uas(work, uas_port):
        return _measure(args, rate, calls, work, uas=True)


def register_step(
    proxy_port: int, users_csv: Path, rate: int, *, seconds: float, work: Path
) -> Step:
    calls = max(1, int(rate * seconds))
    args = [f"127.0.0.1:{proxy_port}", "-sf", str(SCENARIOS / "register_auth.xml")]
    args += ["-inf", str(users_csv), "-i", "127.0.0.1", "-p", str(free_port())]
    args += ["-m", str(calls), "-r", str(rate), "-l", str(max(1000, rate * 4))]
    args += ["-max_socket", "1000", *_SIPP_TRANSPORT]
    return _measure(args, rate, calls, work, uas=False)


_PIDS: list[int] = []
_SIPP_TRANSPORT: list[str] = []
"""``-t un`` (a socket per call) for several workers: SO_REUSEPORT spreads flows, not packets."""


def _measure(args: list[str], rate: int, calls: int, work: Path, *, uas: bool) -> Step:
    before = cpu_seconds(_PIDS)
    sipp_before = _children_cpu() + (cpu_seconds(UAS_PIDS) if uas else 0.0)
    bypassed_before = uas_bypassed() if uas else 0
    start = time.monotonic()
    successful, failed = run_sipp(args, work, timeout=step_time_limit(calls, rate))
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(_PIDS) - before
    if uas:
        time.sleep(0.2)  # the uas checks the last ACKs and BYEs
    sipp_cpu = _children_cpu() + (cpu_seconds(UAS_PIDS) if uas else 0.0) - sipp_before
    bypassed = uas_bypassed() - bypassed_before if uas else 0
    return Step(rate, calls, successful, failed, elapsed, cpu, sipp_cpu, bypassed)


def _children_cpu() -> float:
    """User + system CPU of the waited-for children (the SIPp uac runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def search(step: Callable[[int], Step], start: int, budget: float, label: str) -> Step | None:
    """Double the rate until a step fails (or the time budget ends), then bisect once."""
    best: Step | None = None
    rate, failed_at = start, None
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        result = step(rate)
        mark = "ok" if result.passed else "FAIL"
        bypassed = f", {result.bypassed} bypassed the proxy" if result.bypassed else ""
        print(
            f"  {label} {rate:>6}/s: {result.successful}/{result.offered} ok, "
            f"{result.failed} failed{bypassed}, {result.seconds:.1f} s, "
            f"{result.cpu_per_call_us:.0f} us CPU/call "
            f"(SIPp {result.sipp_cpu_per_call_us:.0f} us) [{mark}]",
            flush=True,
        )
        if result.passed:
            best = result
            if failed_at is not None:
                break
            rate *= 2
        else:
            failed_at = rate
            if best is None:  # even the first rate was too much: halve until one passes
                rate //= 2
                if rate < 5:
                    break
                continue
            rate = (best.rate + failed_at) // 2
            if rate in (best.rate, failed_at):
                break
        settle()  # let retransmissions and timers of the last step drain
    return best


def settle(limit: float = 40.0) -> None:
    """Wait until the proxy is idle again (under 5% of a core over half a second).

    An overloaded step leaves transactions retransmitting to a uas that is
    gone (Timer A/E up to 32 s, RFC 3261 §17.1); the next step must not pay
    for them. Both proxies get the same wait.
    """
    deadline = time.monotonic() + limit
    time.sleep(1.0)
    while time.monotonic() < deadline:
        before = cpu_seconds(_PIDS)
        time.sleep(0.5)
        if cpu_seconds(_PIDS) - before < 0.025:
            return


# -- the two proxies --------------------------------------------------------------------------


TRUNKLINE_CONFIG = """
domains = ["127.0.0.1"]
trusted = ["127.0.0.1/32"]

[listen.udp]
host = "127.0.0.1"
port = {port}

[listen.tcp]
host = "127.0.0.1"
port = {port}

[listen.tls]
enabled = false
port = 5061

[listen.ws]
host = "127.0.0.1"
port = {http_port}

[limits]
requests_per_second = 1000000
burst = 1000000
max_transactions_per_source = 1000000
max_dialogs_per_source = 1000000
auth_failures_before_ban = 1000000

[logging]
level = "warning"
"""


def add_users(data_dir: Path, count: int) -> None:
    from trunkline.store.datadir import DataDir
    from trunkline.store.users import UserStore

    db = DataDir(data_dir).database()
    store = UserStore(db)
    now = time.time()
    for index in range(count):
        store.add(f"u{index:05d}", "127.0.0.1", f"pw-u{index:05d}", now)
    db.close()


def trunkline_workers(workers: int | None) -> int:
    """How many SIP workers ``trunkline serve`` runs with the bench's config."""
    from trunkline.config import parse_config
    from trunkline.proxy.workers import worker_count

    text = TRUNKLINE_CONFIG.format(port=5060, http_port=8080)
    return worker_count(parse_config(text if workers is None else f"workers = {workers}\n{text}"))


@contextlib.contextmanager
def trunkline(work: Path, users: int, workers: int | None = None) -> Iterator[int]:
    """``trunkline serve`` with its default worker count, or ``workers``."""
    port, http_port = free_port(), free_port()
    config = TRUNKLINE_CONFIG.format(port=port, http_port=http_port)
    if workers is not None:
        config = f"workers = {workers}\n{config}"
    (work / "trunkline.toml").write_text(config)
    data = work / "trunkline-data"
    add_users(data, users)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "trunkline.commands.serve"),
            *("--config", str(work / "trunkline.toml"), "--data-dir", str(data)),
            *("--legacy-digest", "--quiet"),
        ],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=(work / "trunkline.log").open("wb"),
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        start_new_session=True,
    )
    try:
        _wait_tcp(http_port, proc)
        time.sleep(0.5)  # every worker bound
        _PIDS[:] = process_group(proc.pid)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


KAMAILIO_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children={children}
auto_aliases=no
listen=udp:127.0.0.1:{port}
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "sanity.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", 3600)
modparam("auth", "secret", "{secret}")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (!sanity_check("1511", "7")) {{ exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ route(RELAY); }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ route(RELAY); }} exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ route(RELAY); }} exit; }}
    t_check_trans();
    remove_hf("Route");
    if (is_method("REGISTER")) {{
        $var(pw) = "pw-" + $au;
        if (!pv_www_authenticate("$td", "$var(pw)", "0")) {{ www_challenge("$td", "0"); exit; }}
        if ($au != $tU) {{ sl_send_reply("403", "Forbidden"); exit; }}
        consume_credentials();
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if ($si != "127.0.0.1") {{ sl_send_reply("403", "Relaying Denied"); exit; }}
    if (is_method("INVITE|SUBSCRIBE|REFER")) {{ record_route(); }}
    route(RELAY);
}}

route[RELAY] {{
    if (!t_relay()) {{ sl_reply_error(); }}
    exit;
}}
"""


@contextlib.contextmanager
def kamailio(work: Path, children: int) -> Iterator[int]:
    port = free_port()
    cfg = work / "kamailio.cfg"
    cfg.write_text(KAMAILIO_CFG.format(port=port, children=children, secret=os.urandom(8).hex()))
    argv = ["kamailio", "-f", str(cfg), "-DD", "-E", "-m", "1024", "-M", "16", "-x", "tlsf"]
    argv += ["-Y", str(work), "-w", str(work), "-P", str(work / "kamailio.pid")]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=(work / "kamailio.log").open("wb"),
        start_new_session=True,
    )
    try:
        time.sleep(1.5)
        if proc.poll() is not None:
            raise RuntimeError((work / "kamailio.log").read_text()[-2000:])
        _PIDS[:] = process_group(proc.pid)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- memory -----------------------------------------------------------------------------------


async def _fill_location(contacts: int, work: Path) -> tuple[float, float]:
    from trunkline.config import Config
    from trunkline.proxy.location import RegisterRequest
    from trunkline.proxy.server import ProxyServer
    from trunkline.sip.builder import make_request

    port = free_port()
    config = Config.model_validate(
        {
            "data_dir": str(work / "memory-data"),
            "domains": ["127.0.0.1"],
            "listen": {
                "udp": {"host": "127.0.0.1", "port": port},
                "tcp": {"host": "127.0.0.1", "port": port},
                "tls": {"host": "127.0.0.1", "port": port, "enabled": False},
                "ws": {"host": "127.0.0.1", "port": free_port()},
            },
        }
    )
    server = ProxyServer(config)
    await server.start()
    assert server.location is not None and server.registrar is not None
    before = _rss_mb()
    now = time.time()
    policy = server.registrar.policy
    for index in range(contacts):
        user = f"u{index:06d}"
        request = make_request(
            "REGISTER",
            "sip:127.0.0.1",
            from_=f"<sip:{user}@127.0.0.1>",
            to=f"<sip:{user}@127.0.0.1>",
            call_id=f"{index}-bench",
            via=f"SIP/2.0/UDP 10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}:5060",
            contact=f"<sip:{user}@10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}:5060>",
            extra_headers=[("Expires", "3600"), ("User-Agent", "bench/1.0")],
        )
        register = RegisterRequest.from_request(
            request, f"sip:{user}@127.0.0.1", received="192.0.2.1:40000", transport="udp"
        )
        outcome = await server.location.apply_register(register, now, policy)
        assert outcome.ok
    counts = await server.location.counts(now)
    after = _rss_mb()
    await server.stop(grace=0.1)
    print(f"  location holds {counts}")
    return before, after


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory(contacts: int, work: Path) -> None:
    from trunkline.sip.aio import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        before, after = runner.run(_fill_location(contacts, work))
    print(
        f"memory: {contacts:,} registered contacts: server RSS {after:.0f} MB "
        f"({after - before:.0f} MB for the bindings; goal under 150 MB)"
    )


def handoff_cost(rounds: int = 20_000) -> None:
    """Print what the response hand-off between workers costs (``trunkline.proxy.handoff``).

    A 200 to an INVITE as SIPp's uas sends it through the proxy: the time to
    look at it when it belongs to the worker that received it, the time to
    look at a request, and, for one that belongs to another worker, the time
    from ``steer`` to that worker's delivery (send, its event loop waking
    up, receive), per response in batches of 500. Wall-clock, on whatever
    load the machine has.
    """
    from trunkline.proxy.handoff import ResponseHandoff, worker_suffix
    from trunkline.sip.aio import new_event_loop
    from trunkline.sip.builder import make_request, make_response

    sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
    sdp += b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    branch = f"z9hG4bKtl{'0' * 16}.{'1' * 16}{worker_suffix(1)}"
    invite = make_request(
        "INVITE",
        "sip:service@127.0.0.2:5062",
        from_="<sip:sipp@127.0.0.1:5061>;tag=1",
        to="<sip:service@127.0.0.2:5062>",
        via=f"SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport",
        contact="<sip:sipp@127.0.0.1:5061>",
        body=sdp,
        content_type="application/sdp",
    )
    invite.headers.add("Via", "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-1-0;rport=5061")
    invite.headers.add("Record-Route", "<sip:127.0.0.1:5060;lr>")
    ok = make_response(invite, 200, to_tag="2")
    ok.headers.set("Contact", "<sip:127.0.0.2:5062>")
    response, request = bytes(ok), bytes(invite)
    peer, local = ("127.0.0.2", 5062), ("127.0.0.1", 5060)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(2)]
    handoffs = [
        ResponseHandoff(
            i,
            pairs[i][0].fileno(),
            tuple(-1 if j == i else w.fileno() for j, (_, w) in enumerate(pairs)),
        )
        for i in range(2)
    ]

    def per_call(work: Callable[[], object]) -> float:
        start = time.perf_counter()
        for _ in range(rounds):
            work()
        return 1e6 * (time.perf_counter() - start) / rounds

    own = per_call(lambda: handoffs[1].steer(response, peer, local))
    other = per_call(lambda: handoffs[1].steer(request, peer, local))

    async def hand_over() -> float:
        delivered = 0
        done = asyncio.Event()
        batch = 500

        def deliver(data: bytes, source: object, at: object) -> None:
            nonlocal delivered
            delivered += 1
            if delivered % batch == 0:
                done.set()

        handoffs[1].start(deliver)
        start = time.perf_counter()
        for _ in range(rounds // batch):
            done.clear()
            for _ in range(batch):
                handoffs[0].steer(response, peer, local)
            await asyncio.wait_for(done.wait(), 10)
        return 1e6 * (time.perf_counter() - start) / (rounds // batch * batch)

    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            handed = runner.run(hand_over())
    finally:
        for handoff in handoffs:
            handoff.close()
        for pair in pairs:
            for sock in pair:
                sock.close()
    print(
        f"hand-off: {own:.1f} us to look at a response of this worker, {other:.1f} us at a "
        f"request; {handed:.1f} us to hand a response to another worker (send to delivery)"
    )


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--budget", type=float, default=90.0, help="seconds per search")
    parser.add_argument("--start", type=int, default=50, help="first call rate (kamailio: x4)")
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--kamailio-children", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="short steps, small searches")
    parser.add_argument("--only", choices=("trunkline", "kamailio"), help="measure one side")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="trunkline SIP workers (default: trunkline's own, 0: one per CPU, at most 4)",
    )
    args = parser.parse_args()
    if args.quick:
        args.step_seconds, args.budget, args.users, args.contacts = 3.0, 45.0, 1000, 10_000
    workers = trunkline_workers(args.workers)
    for tool in ("sipp", "kamailio"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (scripts/install-peers)")

    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    print(f"machine: {cpus} CPUs, load average {load:.2f} before the run", flush=True)
    if load > 0.5:
        print("  (other processes share the cores: compare the ratios of one run, not runs)")
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        work = Path(tmp)
        users_csv = work / "users.csv"
        users_csv.write_text(
            "SEQUENTIAL\n"
            + "".join(
                f"u{i:05d};[authentication username=u{i:05d} password=pw-u{i:05d}]\n"
                for i in range(args.users)
            )
        )
        results: dict[str, dict[str, Step | None]] = {}
        seconds = args.step_seconds
        results["trunkline"] = results["kamailio"] = {"calls": None, "register": None}
        for name in ("trunkline", "kamailio"):
            if args.only not in (None, name):
                continue
            side = work / name
            side.mkdir()
            print(f"{name}:", flush=True)
            # Trunkline's workers need a socket per call to be spread over; Kamailio's
            # children share one socket and get SIPp's cheaper single-socket mode
            _SIPP_TRANSPORT[:] = ["-t", "un"] if name == "trunkline" and workers > 1 else []
            server = (
                trunkline(side, args.users, args.workers)
                if name == "trunkline"
                else kamailio(side, args.kamailio_children)
            )
            first = args.start if name == "trunkline" else args.start * 16  # fewer steps
            with server as port:
                calls = search(
                    functools.partial(call_step, port, seconds=seconds, work=side),
                    first,
                    args.budget,
                    "calls",
                )
                registers = search(
                    functools.partial(register_step, port, users_csv, seconds=seconds, work=side),
                    first * 2,
                    args.budget,
                    "REGISTER",
                )
            results[name] = {"calls": calls, "register": registers}

        print()
        for kind, unit in (("calls", "calls/s"), ("register", "REGISTER/s")):
            ours, theirs = results["trunkline"][kind], results["kamailio"][kind]
            for name, step in (("trunkline", ours), ("kamailio", theirs)):
                what = "call" if kind == "calls" else "registration"
                text = (
                    f"{step.rate} {unit}, {step.cpu_per_call_us:.0f} us CPU per {what} "
                    f"(SIPp {step.sipp_cpu_per_call_us:.0f} us)"
                    if step
                    else "no passing step"
                )
                print(f"{kind:>8} {name:<10} {text}")
            if ours and theirs:
                print(f"{kind:>8} ratio      {ours.rate / theirs.rate:.3f}x kamailio")
        print(
            f"workers: trunkline {workers} process(es) (uvloop"
            + (", SIPp uac -t un" if workers > 1 else "")
            + f"); kamailio children={args.kamailio_children}"
        )
        memory(args.contacts, work)
        handoff_cost()
        ours, theirs = results["trunkline"]["calls"], results["kamailio"]["calls"]
        ratio = ours.rate / theirs.rate if ours and theirs else 0.0
        print(f"proxy: {ratio:.3f}x kamailio (goal {GOAL}x)")


if __name__ == "__main__":
    main()
