"""Two ``trunkline phone`` processes call each other on loopback, with the
exact command lines of issue 4; each recording must hold the other side's
tone (FFT peak within a few Hz). Exit codes for busy and no answer."""

from __future__ import annotations

import queue
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.audio import dominant_frequency, read_wav, write_tone_wav
from tests.support.peers import free_port

PHONE = [sys.executable, "-m", "trunkline.cli", "phone"]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        if proc.stdin is not None and proc.stdin.closed:
            proc.stdin = None
        proc.communicate(timeout=10)  # reaps it and closes the pipes


def start(procs: list[subprocess.Popen[str]], args: list[str], cwd: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*PHONE, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(proc)
    return proc


def wait_listening(proc: subprocess.Popen[str], timeout: float = 15.0) -> str:
    """Read the listener's first line ("listening on ...") within ``timeout``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                line = proc.stdout.readline()
                if line.startswith("listening on"):
                    return line
                if not line and proc.poll() is not None:
                    break
    raise AssertionError(f"listener did not start: {proc.stderr.read() if proc.stderr else ''}")


def test_two_phones_call_each_other_and_record_each_others_tone(
    procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    write_tone_wav(tmp_path / "a.wav", 440.0, 6.0)
    write_tone_wav(tmp_path / "c.wav", 1000.0, 6.0)
    port = free_port()
    listener = start(
        procs,
        f"listen --local 127.0.0.1:{port} --auto-answer --play a.wav --record b.wav "
        "--duration 5".split(),
        tmp_path,
    )
    wait_listening(listener)
    caller = start(
        procs,
        f"call sip:x@127.0.0.1:{port} --play c.wav --record d.wav --duration 5".split(),
        tmp_path,
    )
    out, err = caller.communicate(timeout=30)
    assert caller.returncode == 0, (out, err)
    assert "connected (PCMU/8000" in out
    assert "call completed" in out
    lout, lerr = listener.communicate(timeout=15)
    assert listener.returncode == 0, (lout, lerr)
    assert "incoming call from" in lout
    for name, expected in (("b.wav", 1000.0), ("d.wav", 440.0)):
        samples, rate = read_wav(tmp_path / name)
        assert len(samples) / rate > 4.0, name
        assert abs(dominant_frequency(samples, rate) - expected) < 5.0, name


@pytest.mark.parametrize(
    "case",
    [
        (["--reject", "486"], [], 3, "call failed: 486 Busy Here\n"),
        (["--reject", "603"], [], 6, "call failed: 603 Decline\n"),
        ([], ["--timeout", "1"], 5, "call failed: no answer (487 Request Terminated)\n"),
    ],
)
def test_exit_codes(
    procs: list[subprocess.Popen[str]],
    tmp_path: Path,
    case: tuple[list[str], list[str], int, str],
) -> None:
    listen_args, call_args, code, message = case
    port = free_port()
    listener = start(procs, ["listen", "--local", f"127.0.0.1:{port}", *listen_args], tmp_path)
    wait_listening(listener)
    caller = start(procs, ["call", f"sip:x@127.0.0.1:{port}", *call_args], tmp_path)
    out, err = caller.communicate(timeout=30)
    assert caller.returncode == code, (out, err)
    assert message in err


class Lines:
    """A thread collecting a process's stdout lines (selectors miss lines Python buffered)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.stream = proc.stdout
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for line in self.stream:
            self.queue.put(line)
        self.queue.put("")

    def until(self, text: str, timeout: float = 20.0) -> list[str]:
        """Lines up to the first containing ``text`` (bounded in time)."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if not line:
                break
            lines.append(line)
            self.seen.append(line)
            if text in line:
                return lines
        raise AssertionError(f"no {text!r} in {lines}")


def test_interactive_listen_answers_sends_dtmf_holds_and_resumes(
    procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    port = free_port()
    listener = subprocess.Popen(
        [*PHONE, "listen", "--local", f"127.0.0.1:{port}", "--interactive", "--tone", "700"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(listener)
    assert listener.stdin is not None
    lines = Lines(listener)
    lines.until("keys: a answer")
    caller = start(
        procs, f"call sip:x@127.0.0.1:{port} --tone 300 --duration 6 --dtmf 7".split(), tmp_path
    )
    lines.until("press a to answer")

    def send(line: str, expect: str) -> list[str]:
        assert listener.stdin is not None
        listener.stdin.write(line + "\n")
        listener.stdin.flush()
        return lines.until(expect)

    send("answer", "connected")
    send("dtmf 5", "DTMF sent: 5")
    send("hold", "onhold (")
    send("resume", "resumed")
    stats = send("stats", "stats: sent")[-1]
    assert int(stats.split()[2]) > 0  # packets sent
    lines.until("call completed")
    listener.stdin.write("quit\n")
    listener.stdin.close()
    assert listener.wait(timeout=15) == 0
    lines.thread.join(timeout=5)
    while not lines.queue.empty():
        lines.seen.append(lines.queue.get_nowait())
    assert any("DTMF received: 7 (rfc4733)" in line for line in lines.seen), lines.seen
    out, err = caller.communicate(timeout=20)
    assert caller.returncode == 0, (out, err)
    assert "DTMF received: 5 (rfc4733)" in out
    assert "DTMF sent: 7 (rfc4733)" in out
    assert "onhold (" in out and "resumed (" in out
    listened = "".join(lines.seen)
    for event in ("onhold (", "resumed ("):  # once each: the event line, no echo of the key
        assert listened.count(event) == 1, lines.seen


def test_interactive_caller_prints_connected_and_ctrl_c_while_ringing_is_cancelled(
    procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    port = free_port()
    listener = start(procs, ["listen", "--local", f"127.0.0.1:{port}"], tmp_path)
    wait_listening(listener)
    # Ctrl-C while it rings: exit 8 (cancelled), not 5 (no answer).
    caller = start(procs, ["call", f"sip:x@127.0.0.1:{port}"], tmp_path)
    ringing = Lines(caller)
    ringing.until("ringing")
    caller.send_signal(signal.SIGINT)
    _, err = caller.communicate(timeout=20)
    assert caller.returncode == 8, err
    assert "call cancelled" in err
    listener.kill()
    # An interactive caller says "connected" when the callee answers.
    answering = start(procs, ["listen", "--local", f"127.0.0.1:{port}", "--auto-answer"], tmp_path)
    wait_listening(answering)
    interactive = subprocess.Popen(
        [*PHONE, "call", f"sip:x@127.0.0.1:{port}", "--interactive"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(interactive)
    assert interactive.stdin is not None
    lines = Lines(interactive)
    lines.until("connected (PCMU/8000")
    interactive.stdin.write("hangup\n")
    interactive.stdin.flush()
    lines.until("call completed")
    interactive.stdin.write("quit\n")
    interactive.stdin.close()
    assert interactive.wait(timeout=15) == 0
