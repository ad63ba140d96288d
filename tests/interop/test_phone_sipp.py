"""SIPp drives ``trunkline phone``: its built-in ``uac`` calls ``phone listen``,
its built-in ``uas`` answers ``phone call``, and a SIPp registrar that
challenges with 401 and checks the digest (``verifyauth``) takes
``phone register`` (register, then unregister with expires=0)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.peers import free_port
from tests.support.sipp import sipp_args, sipp_process, uac_args, wait_bound_sync

pytestmark = pytest.mark.interop

PHONE = [sys.executable, "-m", "trunkline.cli", "phone"]

REGISTRAR = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- A registrar that challenges every REGISTER once and checks the digest (RFC 3261 §22). -->
<scenario name="challenging registrar">
  <recv request="REGISTER"/>
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="sipp.test", nonce="8a3f1c0e5b7d9a2c4e6f8b0d1a3c5e7f", algorithm=MD5
Content-Length: 0

]]></send>
  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="authvalid" username="alice" password="s3cret"/>
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="good"/>
  <send><![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <nop hide="true" next="end" action="none"/>
  <label id="good"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Contact:]
Content-Length: 0

]]></send>
  <recv request="REGISTER"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="end"/>
</scenario>
"""


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def phone(args: list[str], cwd: Path, timeout: float = 40.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PHONE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_sipp_uac_calls_phone_listen(procs: list[subprocess.Popen[str]], tmp_path: Path) -> None:
    port = free_port()
    listener = subprocess.Popen(
        [*PHONE, "listen", "--local", f"127.0.0.1:{port}", "--auto-answer", "--calls", "2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(listener)
    assert listener.stdout is not None
    assert listener.stdout.readline().startswith("listening on")
    args = uac_args(port, calls=2, rate=2, timeout=30)
    with sipp_process([*args, "-d", "500"], tmp_path) as uac:
        assert uac.wait(timeout=60) == 0, uac.output()
    lout, lerr = listener.communicate(timeout=20)
    assert listener.returncode == 0, (lout, lerr)
    assert lout.count("call completed") == 2


def test_phone_call_to_sipp_uas(tmp_path: Path) -> None:
    port = free_port()
    with sipp_process(sipp_args("-sn", "uas", port=port), tmp_path) as uas:
        wait_bound_sync(port, uas)
        result = phone(["call", f"sip:service@127.0.0.1:{port}", "--duration", "1"], tmp_path)
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert "connected (PCMU/8000" in result.stdout
        assert uas.wait(timeout=30) == 0, uas.output()


@pytest.mark.parametrize(("password", "code"), [("s3cret", 0), ("wrong", 9)])
def test_phone_register_to_challenging_sipp(tmp_path: Path, password: str, code: int) -> None:
    scenario = tmp_path / "registrar.xml"
    scenario.write_text(REGISTRAR)
    port = free_port()
    with sipp_process(sipp_args("-sf", str(scenario), port=port), tmp_path) as registrar:
        wait_bound_sync(port, registrar)
        result = phone(
            [
                *("register", "--registrar", f"sip:127.0.0.1:{port}", "--user", "alice"),
                *("--password", password, "--local", "127.0.0.1:0"),
            ],
            tmp_path,
        )
        assert result.returncode == code, (result.stdout, result.stderr)
        if code == 0:
            assert "registered sip:alice@127.0.0.1" in result.stdout
            assert "unregistered" in result.stdout
            assert registrar.wait(timeout=30) == 0, registrar.output()
        else:
            assert "registration failed: 403" in result.stderr
