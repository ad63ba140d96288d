"""The interactive mode of ``trunkline phone`` (``--interactive``).

On a terminal single keys drive the phone and a status line shows the call's
live statistics (packets sent/received, loss, jitter, RTT, MOS), refreshed
every second; from a pipe the same commands come as whole lines, which is
how tests and scripts drive it::

    a  answer            r  reject           h  hang up
    o  hold / resume     t  transfer (asks for the target)
    0-9 * #  send DTMF   s  print statistics  q  quit

Line commands: ``answer``, ``reject``, ``hangup``, ``hold``, ``resume``,
``transfer URI``, ``dtmf DIGITS``, ``call URI``, ``stats``, ``quit``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import termios
import tty
from collections.abc import Callable

from trunkline.ua.call import (
    Call,
    CallDirection,
    CallEnded,
    CallResult,
    CallState,
    CallStateChanged,
)
from trunkline.ua.phone import IncomingCall, Phone, PhoneEvent

__all__ = ["HELP", "KEYS", "CommandReader", "Console", "connected_text", "end_text", "stats_text"]

KEYS: dict[str, str] = {
    "a": "answer",
    "r": "reject",
    "h": "hangup",
    "o": "hold",
    "t": "transfer",
    "s": "stats",
    "q": "quit",
}
HELP = "keys: a answer, r reject, h hang up, o hold/resume, t transfer, 0-9*# DTMF, s stats, q quit"


class CommandReader:
    """Commands from stdin: single keys (cbreak mode) on a terminal, lines from a pipe."""

    def __init__(self, stream: int | None = None) -> None:
        self.fd = sys.stdin.fileno() if stream is None else stream
        self.tty = os.isatty(self.fd)
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._buffer = ""
        self._line_mode = not self.tty
        self._saved: list[object] | None = None
        self._loop = asyncio.get_running_loop()

    def __enter__(self) -> CommandReader:
        if self.tty:
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        self._loop.add_reader(self.fd, self._ready)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.remove_reader(self.fd)
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)  # type: ignore[arg-type]

    def ask_line(self, prompt: str) -> None:
        """Collect the next line (a transfer target) even on a terminal."""
        print(prompt, end="", flush=True)
        self._line_mode = True

    def _ready(self) -> None:
        try:
            data = os.read(self.fd, 1024).decode("utf-8", "replace")
        except OSError:
            data = ""
        if not data:
            self._loop.remove_reader(self.fd)
            self.queue.put_nowait("eof")
            return
        for char in data:
            if self._line_mode:
                if char in "\r\n":
                    line, self._buffer = self._buffer.strip(), ""
                    if line:
                        self.queue.put_nowait(line)
                    self._line_mode = not self.tty
                else:
                    self._buffer += char
                    if self.tty:
                        print(char, end="", flush=True)
            elif char in "0123456789*#ABCD":
                self.queue.put_nowait(f"dtmf {char}")
            elif char.lower() in KEYS:
                self.queue.put_nowait(KEYS[char.lower()])


class Console:
    """Runs the interactive loop over one phone."""

    def __init__(
        self,
        phone: Phone,
        prepare: Callable[[Call], None],
        say: Callable[[str], None],
        show: Callable[[PhoneEvent], None],
    ) -> None:
        self.phone = phone
        self.prepare = prepare
        self._say = say
        self._show = show
        self.ringing: Call | None = None
        self.current: Call | None = None
        self._pending_transfer = False
        self._status_shown = False

    async def run(self, stop: asyncio.Event, first_call: Call | None = None) -> int:
        """Until ``quit``, end of input with no call up, or ``stop``."""
        self.current = first_call
        self.say(HELP)
        with CommandReader() as reader:
            while not stop.is_set():
                get_event = asyncio.ensure_future(self.phone.events.get())
                get_command = asyncio.ensure_future(reader.queue.get())
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait(
                    {get_event, get_command, stopper},
                    timeout=1.0,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for future in (get_event, get_command, stopper):
                    if future not in done:
                        future.cancel()
                if get_event in done:
                    self._event(get_event.result())
                if get_command in done:
                    command = get_command.result()
                    if command == "quit" or (command == "eof" and self._idle()):
                        break
                    if command == "transfer" and reader.tty:
                        self._clear()
                        reader.ask_line("transfer to: ")
                        self._pending_transfer = True
                        continue
                    if self._pending_transfer:
                        self._pending_transfer = False
                        command = f"transfer {command}"
                    await self._command(command)
                if reader.tty and not done and not self._pending_transfer:
                    self._status_line()
        self._clear()
        return 0

    def _clear(self) -> None:
        """Erase the live statistics line so that the next line starts on a clean row."""
        if self._status_shown:
            print("\r\x1b[K", end="", flush=True)
            self._status_shown = False

    def say(self, text: str) -> None:
        self._clear()
        self._say(text)

    def show(self, event: PhoneEvent) -> None:
        self._clear()
        self._show(event)

    def _idle(self) -> bool:
        return not any(c.state is not CallState.ENDED for c in self.phone.calls.values())

    def _event(self, event: PhoneEvent) -> None:
        self.show(event)
        if (
            isinstance(event, CallStateChanged)
            and event.new is CallState.CONNECTED
            and event.old is not CallState.ON_HOLD
            and event.call.direction is CallDirection.OUTGOING
        ):
            self.say(connected_text(event.call))
        elif isinstance(event, IncomingCall):
            self.ringing = event.call
            self.say("press a to answer, r to reject")
        elif isinstance(event, CallEnded):
            if event.call is self.current:
                self.current = self.phone.active_call
            if event.call is self.ringing:
                self.ringing = None
            self.say(end_text(event.call, event.result))

    async def _command(self, command: str) -> None:
        verb, _, argument = command.partition(" ")
        call = self.current if self.current is not None else self.phone.active_call
        if verb == "answer" and self.ringing is not None:
            ringing, self.ringing = self.ringing, None
            self.prepare(ringing)
            if await self.phone.answer_waiting(ringing):
                self.current = ringing
                self.say(connected_text(ringing))
        elif verb == "reject" and self.ringing is not None:
            self.ringing.reject(486)
            self.ringing = None
        elif verb == "call" and argument:
            self.current = self.phone.call(argument)
            self.prepare(self.current)
            self.say(f"calling {argument}")
        elif call is None:
            self.say(f"{verb}: no call")
        elif verb == "hangup":
            await call.hangup()
        elif verb in ("hold", "resume"):
            # Success is the call's own state change ("onhold (hold)", "resumed
            # (resume)"), printed as an event: only a failure is said here.
            if call.local_hold:
                if not await call.resume():
                    self.say("resume failed")
            elif verb == "hold" and not await call.hold():
                self.say("hold failed")
        elif verb == "dtmf" and argument:
            await call.send_dtmf(argument)
            self.say(f"DTMF sent: {argument}")
        elif verb == "transfer" and argument:
            self.say(f"transferring to {argument}")
            status = await call.transfer(argument)
            self.say(f"transfer {'done' if 200 <= status < 300 else 'failed'} ({status})")
        elif verb == "stats":
            self.say(stats_text(call))
        else:
            self.say(f"unknown command {command!r}; {HELP}")

    def _status_line(self) -> None:
        call = self.current
        if call is None or not call.is_active:
            return
        text = stats_text(call)
        print(f"\r{text}\x1b[K", end="", flush=True)
        self._status_shown = True


def connected_text(call: Call) -> str:
    """``connected (PCMU/8000, remote RTP 127.0.0.1:41000)``."""
    audio = call.audio
    if audio is None:
        return "connected (no audio negotiated)"
    codec = f"{audio.codec.name}/{audio.codec.clock_rate}"
    return f"connected ({codec}, remote RTP {audio.remote_address}:{audio.remote_port})"


def end_text(call: Call, result: CallResult) -> str:
    """The last line of a call: ``call completed (hung up)``, ``call failed: 404 Not Found``."""
    reason = call.reason or ""
    if result is CallResult.COMPLETED:
        return f"call completed ({reason})" if reason else "call completed"
    if result is CallResult.CANCELLED:
        return "call cancelled" + (f" ({reason})" if reason else "")
    if call.status is not None and not reason.startswith(str(call.status)):
        reason = f"{call.status} {reason}".strip()
    if result is CallResult.NO_ANSWER and call.status == 487:
        return f"call failed: no answer ({reason})"  # our own --timeout cancelled it
    return f"call failed: {reason or result.value}"


def stats_text(call: Call) -> str:
    """The live statistics line of a call (as the seed's softphone prints it)."""
    media = call.media
    if media is not None and not media.closed and media.info is not None:
        s = media.stats()
    elif call.final_stats is not None:
        s = call.final_stats
    else:
        return "stats: no media"
    rtt = f"{s.rtt * 1000:.1f} ms" if s.rtt is not None else "n/a"
    return (
        f"stats: sent {s.packets_sent} received {s.packets_received} "
        f"lost {s.packets_lost} ({s.fraction_lost * 100:.1f}%) "
        f"jitter {s.jitter * 1000:.1f} ms RTT {rtt} MOS {s.mos:.1f}"
    )
