"""``trunkline phone`` helpers: the Request-URI a bare name dials, and what
``register`` prints when the registrar refuses (RFC 3261 §10.2)."""

from __future__ import annotations

import pytest

from trunkline.commands.phone import (
    EXIT_OK,
    EXIT_REGISTRATION,
    _call_target,
    _options,
    _phone_config,
    _register_main,
)
from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint


@pytest.mark.parametrize(
    ("uri", "server", "expected"),
    [
        ("bob", "sip:127.0.0.1:5060", "sip:bob@127.0.0.1:5060"),
        ("1001", "pbx.example.com", "sip:1001@pbx.example.com"),
        ("bob", "sip:pbx.example.com;transport=tcp", "sip:bob@pbx.example.com"),
        ("bob@other.example.com", "sip:127.0.0.1:5060", "sip:bob@other.example.com"),
        ("sip:bob@192.0.2.1:5062", "sip:127.0.0.1", "sip:bob@192.0.2.1:5062"),
        ("bob@192.0.2.1", None, "sip:bob@192.0.2.1"),
    ],
)
def test_call_target(uri: str, server: str | None, expected: str) -> None:
    assert _call_target(uri, server) == expected


async def _register_with(status: int, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    server = SipEndpoint()
    listener = await server.listen("UDP", "127.0.0.1", 0)
    expiries: list[str] = []

    async def handle(incoming: IncomingRequest) -> None:
        expiries.append(incoming.request.headers.get("Expires") or "")
        contact = incoming.request.headers.get("Contact") or ""
        headers = [("Contact", contact)] if status == 200 else []
        incoming.respond(status, headers=headers)

    server.on_request = handle
    try:
        opts = _options(
            local="127.0.0.1:0",
            remote_host=None,
            transport="udp",
            user="alice",
            password=None,
            auth_user=None,
            registrar=f"sip:127.0.0.1:{listener.port}",
            aor=None,
            outbound_proxy=None,
            codecs="pcmu",
            play=None,
            tone=None,
            record=None,
            duration=0.0,
            dtmf=None,
            dtmf_method="rfc4733",
            expires=60,
            cert=None,
            key=None,
            insecure=False,
            rtp_port=0,
        )
        code = await _register_main(_phone_config(opts), opts)
    finally:
        await server.close()
    out, err = capsys.readouterr()
    return code, out, err


async def test_register_failure_prints_the_failure_not_unregistered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = await _register_with(403, capsys)
    assert code == EXIT_REGISTRATION
    assert "registration failed: 403 Forbidden" in err
    assert "unregistered" not in out


async def test_register_success_prints_registered_then_unregistered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = await _register_with(200, capsys)
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[-1] == "unregistered"
    assert any(line.startswith("registered sip:alice@127.0.0.1:") for line in lines)
