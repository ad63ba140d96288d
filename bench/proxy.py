"""Registrar/proxy capacity: ``trunkline serve`` against Kamailio 5.6, same load, same run.

What is measured (issue 6, "Must show"):

- **Call rate**: SIPp ``uac_rr.xml`` -> proxy -> SIPp ``uas_rr.xml`` on
  127.0.0.2 (INVITE / 100 / 180 / 200 / ACK / BYE / 200, UDP). The uas
  copies Record-Route and fails any call whose ACK or BYE did not come
  through the proxy, so both proxies run tm + rr for all seven messages.
  The uac's source is trusted (Trunkline ``trusted``; Kamailio an
  ``$si`` check, as the ``permissions`` module would do) and requests are
  relayed by Request-URI: no digest on calls, as in Kamailio's carrier setup.
- **Authenticated REGISTER rate**: SIPp ``register_auth.xml`` (REGISTER, 401,
  REGISTER with MD5 digest, 200) cycling through ``--users`` distinct users;
  usrloc in memory on both sides.

For each, the offered rate doubles from ``--start`` until a step fails, then
one bisection step refines it. A step offers ``rate * --step-seconds`` calls
and passes when SIPp finishes them within 1.25 times the step time plus 2 s
(the proxy kept up with the offered rate) with under 0.5% failed. CPU per call
is the proxy's user+system CPU time (all Kamailio processes) over the step
divided by the calls completed.

- **Memory**: a server process (``ProxyServer`` started in process) with
  100,000 contacts registered into its location service prints its
  resident set size (goal: under 150 MB).

Workers: Trunkline runs one asyncio process (uvloop) by default; Kamailio
runs ``children=2`` UDP workers plus its helper processes. ``--workers N``
runs N Trunkline worker processes on one SO_REUSEPORT port, each with its
own port for Via and Record-Route, registrations in a private Redis
(``trunkline.proxy.workers``); SIPp then uses ``-t un`` (a socket per call)
so that the kernel's per-flow hash spreads calls over the workers. The CPU
counted is every worker's plus Redis's.

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

    @property
    def passed(self) -> bool:
        """All calls done, under 0.5% failed, and the offered rate was kept up."""
        done = self.successful + self.failed
        kept_up = self.seconds <= 1.25 * self.offered / self.rate + 2.0
        return done >= self.offered and self.failed <= MAX_FAILED * self.offered and kept_up

    @property
    def cpu_per_call_us(self) -> float:
        return 1e6 * self.cpu / max(1, self.successful)


def run_sipp(args: list[str], workdir: Path, timeout: float) -> tuple[int, int]:
    """Run SIPp to completion (killed at ``timeout``); returns (successful, failed)."""
    stat = workdir / f"stat-{time.monotonic_ns()}.csv"
    proc = subprocess.Popen(
        ["sipp", *args, "-nostdin", "-trace_stat", "-stf", str(stat), "-fd", "1"],
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


@contextlib.contextmanager
def sipp_uas(workdir: Path, port: int) -> Iterator[None]:
    proc = subprocess.Popen(
        [
            *("sipp", "-sf", str(SCENARIOS / "uas_rr.xml"), "-i", UAS_HOST),
            *("-p", str(port), "-nostdin", "-bg"),
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.wait(timeout=10)  # -bg: the parent exits, the daemon keeps the port
    time.sleep(0.3)
    try:
        yield
    finally:
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


def call_step(proxy_port: int, uas_port: int, rate: int, *, seconds: float, work: Path) -> Step:
    calls = max(1, int(rate * seconds))
    args = [f"{UAS_HOST}:{uas_port}", "-sf", str(SCENARIOS / "uac_rr.xml")]
    args += ["-rsa", f"127.0.0.1:{proxy_port}", "-i", "127.0.0.1", "-p", str(free_port())]
    args += ["-m", str(calls), "-r", str(rate), "-d", "0", "-l", str(max(1000, rate * 4))]
    args += ["-max_socket", "1000", *_SIPP_TRANSPORT]
    return _measure(args, rate, calls, seconds, work)


def register_step(
    proxy_port: int, users_csv: Path, rate: int, *, seconds: float, work: Path
) -> Step:
    calls = max(1, int(rate * seconds))
    args = [f"127.0.0.1:{proxy_port}", "-sf", str(SCENARIOS / "register_auth.xml")]
    args += ["-inf", str(users_csv), "-i", "127.0.0.1", "-p", str(free_port())]
    args += ["-m", str(calls), "-r", str(rate), "-l", str(max(1000, rate * 4))]
    args += ["-max_socket", "1000", *_SIPP_TRANSPORT]
    return _measure(args, rate, calls, seconds, work)


_PIDS: list[int] = []
_SIPP_TRANSPORT: list[str] = []
"""``-t un`` (a socket per call) for several workers: SO_REUSEPORT spreads flows, not packets."""


def _measure(args: list[str], rate: int, calls: int, seconds: float, work: Path) -> Step:
    before = cpu_seconds(_PIDS)
    start = time.monotonic()
    successful, failed = run_sipp(args, work, timeout=seconds + 10)
    elapsed = time.monotonic() - start
    return Step(rate, calls, successful, failed, elapsed, cpu_seconds(_PIDS) - before)


def search(step: Callable[[int], Step], start: int, budget: float, label: str) -> Step | None:
    """Double the rate until a step fails (or the time budget ends), then bisect once."""
    best: Step | None = None
    rate, failed_at = start, None
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        result = step(rate)
        mark = "ok" if result.passed else "FAIL"
        print(
            f"  {label} {rate:>6}/s: {result.successful}/{result.offered} ok, "
            f"{result.failed} failed, {result.seconds:.1f} s, "
            f"{result.cpu_per_call_us:.0f} us CPU/call [{mark}]",
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
        time.sleep(1.0)  # let retransmissions and timers of the last step drain
    return best


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


@contextlib.contextmanager
def redis_server(work: Path) -> Iterator[tuple[str, int]]:
    """A private ``redis-server`` (no persistence) for the workers' shared location."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(work)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_tcp(port, proc)
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def trunkline(work: Path, users: int, workers: int = 1) -> Iterator[int]:
    port, http_port = free_port(), free_port()
    config = TRUNKLINE_CONFIG.format(port=port, http_port=http_port)
    with contextlib.ExitStack() as stack:
        extra: list[int] = []
        if workers > 1:  # several workers share the registrations through Redis
            url, redis_pid = stack.enter_context(redis_server(work))
            extra.append(redis_pid)
            config = f'workers = {workers}\n{config}\n[location]\nbackend = "redis"\n'
            config += f'redis_url = "{url}"\n'
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
            time.sleep(0.5 if workers > 1 else 0.0)  # every worker bound
            _PIDS[:] = process_group(proc.pid) + extra
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
        "--workers", type=int, default=1, help="trunkline SIP workers (>1: Redis location)"
    )
    args = parser.parse_args()
    if args.quick:
        args.step_seconds, args.budget, args.users, args.contacts = 3.0, 20.0, 1000, 10_000
    for tool in ("sipp", "kamailio"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (scripts/install-peers)")

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
            _SIPP_TRANSPORT[:] = ["-t", "un"] if name == "trunkline" and args.workers > 1 else []
            server = (
                trunkline(side, args.users, args.workers)
                if name == "trunkline"
                else kamailio(side, args.kamailio_children)
            )
            first = args.start if name == "trunkline" else args.start * 4  # fewer steps
            with server as port:
                uas_port = free_port(UAS_HOST)
                with sipp_uas(side, uas_port):
                    calls = search(
                        functools.partial(call_step, port, uas_port, seconds=seconds, work=side),
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
                text = (
                    f"{step.rate} {unit}, {step.cpu_per_call_us:.0f} us CPU per "
                    f"{'call' if kind == 'calls' else 'registration'}"
                    if step
                    else "no passing step"
                )
                print(f"{kind:>8} {name:<10} {text}")
            if ours and theirs:
                print(f"{kind:>8} ratio      {ours.rate / theirs.rate:.3f}x kamailio")
        print(
            f"workers: trunkline {args.workers} process(es) (uvloop"
            + (", Redis location, SIPp -t un" if args.workers > 1 else "")
            + f"); kamailio children={args.kamailio_children}"
        )
        memory(args.contacts, work)
        ours, theirs = results["trunkline"]["calls"], results["kamailio"]["calls"]
        ratio = ours.rate / theirs.rate if ours and theirs else 0.0
        print(f"proxy: {ratio:.3f}x kamailio (goal {GOAL}x)")


if __name__ == "__main__":
    main()
