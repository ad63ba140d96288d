"""SIPp registers 10,000 distinct users with digest auth through ``trunkline serve``.

Issue 6, "Must show": *SIPp: authenticated REGISTER of 10,000 distinct users*.
The users are created in one transaction (``UserStore.add_many``), the server
runs as a real process, and SIPp plays ``register_auth.xml`` (REGISTER, 401,
REGISTER with an MD5 digest, RFC 3261 §22.4, 200) once per user from a CSV
file. SIPp offers up to ``RATE`` registrations a second but keeps at most
``IN_FLIGHT`` open (``-l``), so a server slower than that on a busy CI machine
slows SIPp down instead of drowning in retransmissions; the run takes tens
of seconds. Every registration must succeed, ``trunkline status`` must count
10,000 registered contacts while the server runs, and after the graceful
shutdown the location's SQLite table must hold exactly the 10,000 AoRs.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import pytest
from tests.support.peers import free_port, require_peer
from tests.support.server import running_server, start_sipp

from trunkline.store.datadir import DataDir
from trunkline.store.users import UserStore

pytestmark = pytest.mark.interop

SCENARIO = Path(__file__).parent.parent / "data" / "sipp" / "proxy" / "register_auth.xml"
USERS = 10_000
RATE = 1000
IN_FLIGHT = 40
DOMAIN = "127.0.0.1"  # register_auth.xml uses the server's address as the domain

# A load test from one source: the per-source limits (pike-style rate limit,
# failed-auth bans) would rightly stop it, so they are raised here.
CONFIG = f"""
domains = ["{DOMAIN}"]

[limits]
requests_per_second = 100000
burst = 100000
max_transactions_per_source = 100000
max_dialogs_per_source = 100000
auth_failures_before_ban = 100000

[logging]
level = "warning"
"""


def create_users(data_dir: Path, count: int) -> dict[str, str]:
    """``count`` users with distinct passwords, added in one transaction."""
    users = {f"r{index:05d}": f"pw-{index}-{index * 7919 % 10007}" for index in range(count)}
    with contextlib.closing(DataDir(data_dir).database()) as db:
        store = UserStore(db)
        added = store.add_many(((name, DOMAIN, pw) for name, pw in users.items()), 0.0)
    assert added == count
    return users


def test_sipp_registers_10000_distinct_users(tmp_path: Path) -> None:
    require_peer("sipp", "sip-tester")
    data_dir = tmp_path / "data"
    started = time.monotonic()
    users = create_users(data_dir, USERS)
    created = time.monotonic() - started
    assert created < 30, f"creating {USERS} users took {created:.1f} s"
    table = tmp_path / "users.csv"
    table.write_text(
        "SEQUENTIAL\n"
        + "".join(
            f"{name};[authentication username={name} password={pw}]\n" for name, pw in users.items()
        )
    )
    with running_server(
        tmp_path / "server",
        data_dir=data_dir,
        config=CONFIG,
        extra_args=("--legacy-digest", "--quiet"),  # SIPp answers MD5 challenges only
    ) as server:
        args = [f"{server.host}:{server.sip_port}", "-sf", str(SCENARIO), "-inf", str(table)]
        args += ["-i", "127.0.0.1", "-p", str(free_port()), "-m", str(USERS)]
        args += ["-r", str(RATE), "-l", str(IN_FLIGHT)]
        started = time.monotonic()
        result = start_sipp(args, tmp_path / "sipp").result(timeout=240)
        elapsed = time.monotonic() - started
        assert (result.successful, result.failed) == (USERS, 0), result.output
        status = server.status()
        assert status["registered_contacts"] == USERS, status
        registered = {binding["aor"] for binding in status["bindings"]}
        assert registered <= {f"sip:{name}@{DOMAIN}" for name in users}
        print(f"{USERS} authenticated registrations in {elapsed:.1f} s ({USERS / elapsed:.0f}/s)")
    # Persisted on SIGTERM: exactly one binding per user, every user there.
    with contextlib.closing(sqlite3.connect(data_dir / DataDir.DATABASE)) as db:
        rows = db.execute("SELECT aor, COUNT(*) FROM bindings GROUP BY aor").fetchall()
    assert {aor for aor, _ in rows} == {f"sip:{name}@{DOMAIN}" for name in users}
    assert all(count == 1 for _, count in rows)
