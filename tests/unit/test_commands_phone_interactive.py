"""The interactive console's screen: event lines never land on the end of the
live statistics line, and an outgoing call says "connected" once answered."""

from __future__ import annotations

import pytest

from trunkline.commands.phone_interactive import Console
from trunkline.ua.call import Call, CallConfig, CallDirection, CallState, CallStateChanged
from trunkline.ua.phone import Phone, PhoneConfig, PhoneEvent


@pytest.fixture
async def console_parts() -> tuple[Console, list[str], Phone]:
    phone = await Phone.start(PhoneConfig(user="alice"))
    said: list[str] = []

    def show(event: PhoneEvent) -> None:
        said.append(f"event {type(event).__name__}")

    return Console(phone, lambda call: None, said.append, show), said, phone


async def test_lines_clear_the_live_statistics_line_first(
    console_parts: tuple[Console, list[str], Phone], capsys: pytest.CaptureFixture[str]
) -> None:
    console, said, phone = console_parts
    try:
        console._status_shown = True  # as after a refresh on a terminal
        console.say("DTMF sent: 1")
        assert capsys.readouterr().out == "\r\x1b[K"  # erased before the line
        console.say("on hold")
        assert capsys.readouterr().out == ""  # nothing left to erase
        assert said == ["DTMF sent: 1", "on hold"]
    finally:
        await phone.close()


async def test_outgoing_call_says_connected_once_answered(
    console_parts: tuple[Console, list[str], Phone],
) -> None:
    console, said, phone = console_parts
    try:
        call = Call(phone.endpoint, CallDirection.OUTGOING, CallConfig())
        console._event(CallStateChanged(call, CallState.RINGING, CallState.CONNECTED, "200 OK"))
        assert said == ["event CallStateChanged", "connected (no audio negotiated)"]
        said.clear()
        # A resume is not a new connection.
        console._event(CallStateChanged(call, CallState.ON_HOLD, CallState.CONNECTED, "resume"))
        assert said == ["event CallStateChanged"]
    finally:
        await phone.close()
