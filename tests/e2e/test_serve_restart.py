"""Registrations survive a restart of ``trunkline serve`` (issue 6, "Must show").

A SIPp phone registers with digest auth; the server is stopped with SIGTERM
(graceful shutdown: it must exit 0 and say the registrations were saved)
and started again on the same data directory and ports. The binding is
still there (``trunkline status`` lists it, with an expiry that kept
counting down) and a call to that user reaches the phone without it
registering again. A contact removed before the restart (``Expires: 0``)
stays removed. After a crash (SIGKILL) the bindings flushed to SQLite are
back. SIGTERM while a call is ringing: new requests get 503, the call
setup still completes through the proxy, then it exits 0.

The servers serve ``domains = ["127.0.0.1"]`` (SIPp's scenarios use the
server's address as the domain) with ``--legacy-digest`` (SIPp answers MD5
challenges only).
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest
from tests.support.peers import free_port
from tests.support.server import (
    SIPP_SCENARIOS,
    STOP_TIMEOUT,
    ServerProcess,
    add_user,
    running_server,
    sip_options,
    sipp_call,
    sipp_register,
    sipp_uas,
    start_server,
    start_sipp_call,
)

CONFIG = 'domains = ["127.0.0.1"]\n'
PHONE_HOST = "127.0.0.2"
USERS = {"alice": "alice-pw-3f9a", "bob": "bob-pw-77c1"}


def _bindings(server: ServerProcess) -> dict[str, dict[str, object]]:
    return {str(b["aor"]): b for b in server.status()["bindings"]}


@pytest.fixture(scope="module")
def users_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with the users, added once with ``trunkline users add``."""
    directory = tmp_path_factory.mktemp("template") / "data"
    for name, password in USERS.items():
        add_user(directory, name, password, domain="127.0.0.1")
    return directory


@pytest.fixture
def data_dir(tmp_path: Path, users_data_dir: Path) -> Path:
    """A fresh copy of the users' data directory for one test."""
    return Path(shutil.copytree(users_data_dir, tmp_path / "data"))


def test_registration_survives_sigterm_and_restart(tmp_path: Path, data_dir: Path) -> None:
    phone_port = free_port(host=PHONE_HOST)
    first = start_server(
        tmp_path, data_dir=data_dir, config=CONFIG, extra_args=["--legacy-digest"], name="first"
    )
    try:
        registered = sipp_register(
            first, {"bob": USERS["bob"]}, tmp_path / "sipp", source=PHONE_HOST, port=phone_port
        )
        assert (registered.successful, registered.failed) == (1, 0), registered.output
        before = _bindings(first)
        assert list(before) == ["sip:bob@127.0.0.1"], before
        assert before["sip:bob@127.0.0.1"]["contact"] == f"sip:bob@{PHONE_HOST}:{phone_port}"
    finally:
        status = first.stop()
    assert status == 0, first.output[-3000:]
    assert "registrations saved" in first.output

    with running_server(
        tmp_path,
        data_dir=data_dir,
        config=CONFIG,
        sip_port=first.sip_port,
        http_port=first.http_port,
        extra_args=["--legacy-digest"],
        name="second",
    ) as second:
        after = _bindings(second)
        assert list(after) == ["sip:bob@127.0.0.1"], after
        binding = after["sip:bob@127.0.0.1"]
        assert binding["contact"] == f"sip:bob@{PHONE_HOST}:{phone_port}"
        expires_before = before["sip:bob@127.0.0.1"]["expires_in"]
        assert isinstance(expires_before, int | float) and isinstance(
            binding["expires_in"], int | float
        )
        assert 0 < binding["expires_in"] < expires_before <= 3600
        listing = second.status_text()
        assert "sip:bob@127.0.0.1" in listing and f"{PHONE_HOST}:{phone_port}" in listing

        # The phone never registers again: the call finds it through the restored binding.
        uas = sipp_uas(tmp_path / "sipp", source=PHONE_HOST, port=phone_port, calls=1)
        try:
            call = sipp_call(second, "alice", USERS["alice"], "bob", tmp_path / "sipp")
            answered = uas.result(timeout=20)
        finally:
            uas.kill()
        assert (call.successful, call.failed) == (1, 0), call.output + second.output[-2000:]
        assert (answered.successful, answered.failed) == (1, 0), answered.output


def test_unregistered_contact_stays_gone_after_restart(tmp_path: Path, data_dir: Path) -> None:
    """``Expires: 0`` before the restart is persisted too (no resurrected bindings)."""
    phone_port = free_port(host=PHONE_HOST)
    sipp_dir = tmp_path / "sipp"
    with running_server(
        tmp_path, data_dir=data_dir, config=CONFIG, extra_args=["--legacy-digest"], name="first"
    ) as first:
        both = sipp_register(first, USERS, sipp_dir, source=PHONE_HOST, port=phone_port)
        assert (both.successful, both.failed) == (2, 0), both.output
        assert set(_bindings(first)) == {"sip:alice@127.0.0.1", "sip:bob@127.0.0.1"}
        ports = (first.sip_port, first.http_port)
        gone = sipp_register(
            first,
            {"alice": USERS["alice"]},
            sipp_dir,
            source=PHONE_HOST,
            port=phone_port,
            expires=0,
        )
        assert (gone.successful, gone.failed) == (1, 0), gone.output
        assert set(_bindings(first)) == {"sip:bob@127.0.0.1"}
    with running_server(
        tmp_path,
        data_dir=data_dir,
        config=CONFIG,
        sip_port=ports[0],
        http_port=ports[1],
        extra_args=["--legacy-digest"],
        name="second",
    ) as second:
        assert set(_bindings(second)) == {"sip:bob@127.0.0.1"}
        assert second.status()["registered_contacts"] == 1


def test_registration_survives_a_crash_after_the_flush_interval(
    tmp_path: Path, data_dir: Path
) -> None:
    """SIGKILL (no graceful shutdown): bindings older than ``flush_interval`` are on disk."""
    phone_port = free_port(host=PHONE_HOST)
    config = CONFIG + "\n[location]\nflush_interval = 0.5\n"
    first = start_server(
        tmp_path, data_dir=data_dir, config=config, extra_args=["--legacy-digest"], name="first"
    )
    try:
        registered = sipp_register(
            first, {"bob": USERS["bob"]}, tmp_path / "sipp", source=PHONE_HOST, port=phone_port
        )
        assert (registered.successful, registered.failed) == (1, 0), registered.output
        time.sleep(2.0)  # several flush intervals (the housekeeping loop wakes every second)
    finally:
        first.kill()
    assert first.process.returncode == -9
    with running_server(
        tmp_path, data_dir=data_dir, config=config, extra_args=["--legacy-digest"], name="second"
    ) as second:
        assert _bindings(second)["sip:bob@127.0.0.1"]["contact"] == (
            f"sip:bob@{PHONE_HOST}:{phone_port}"
        )


def test_sigterm_finishes_the_call_setup_in_progress(tmp_path: Path, data_dir: Path) -> None:
    """Graceful shutdown: new requests get 503, the ringing INVITE still gets its 200, exit 0.

    The callee (SIPp) rings for 2.5 s before answering; SIGTERM arrives while
    it rings. The proxy must keep the transaction until the 200 has been
    relayed to the caller (SIPp's message trace shows it) and only then exit.
    """
    phone_port = free_port(host=PHONE_HOST)
    sipp_dir = tmp_path / "sipp"
    slow = sipp_dir / "uas_slow.xml"
    sipp_dir.mkdir(parents=True)
    text = (SIPP_SCENARIOS / "uas_rr.xml").read_text()
    answer = '  <send retrans="500">'
    assert text.count(answer) == 1
    slow.write_text(text.replace(answer, '  <pause milliseconds="2500"/>\n' + answer))
    server = start_server(
        tmp_path, data_dir=data_dir, config=CONFIG, extra_args=["--legacy-digest"], name="one"
    )
    uas = uac = None
    try:
        registered = sipp_register(
            server, {"bob": USERS["bob"]}, sipp_dir, source=PHONE_HOST, port=phone_port
        )
        assert (registered.successful, registered.failed) == (1, 0), registered.output
        uas = sipp_uas(sipp_dir, source=PHONE_HOST, port=phone_port, calls=1, scenario=slow)
        uac = start_sipp_call(
            server, "alice", USERS["alice"], "bob", sipp_dir, extra_args=["-trace_msg"]
        )
        deadline = time.monotonic() + 10
        while server.status()["contexts"] == 0:  # the INVITE is out to bob, ringing
            assert time.monotonic() < deadline, server.output[-2000:]
            time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        refused = None
        for _ in range(40):  # up to about 2 s: the 503 of a server that is stopping
            refused = sip_options(server.host, server.sip_port, source="127.0.0.5", timeout=0.05)
            if refused == 503:
                break
        status = server.process.wait(STOP_TIMEOUT)
    finally:
        server.kill()
        for sipp in (uas, uac):
            if sipp is not None:
                sipp.kill()
    assert refused == 503, server.output[-2000:]
    assert status == 0, server.output[-3000:]
    trace = "".join(path.read_text() for path in sipp_dir.glob("uac_auth_rr_*_messages.log"))
    received = [m for m in trace.split("-----") if "message received" in m or "SIP/2.0" in m]
    assert any("SIP/2.0 200 OK" in m and "CSeq: 2 INVITE" in m for m in received), trace[-3000:]
