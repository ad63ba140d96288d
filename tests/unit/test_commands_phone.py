"""``trunkline phone`` helpers: the Request-URI a bare name dials, what
``register`` prints when the registrar refuses (RFC 3261 §10.2), how
``--transport`` reaches the server URIs, client-only TLS, and the lines and
exit codes of a call's end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from trunkline.commands.phone import (
    EXIT_CANCELLED,
    EXIT_CODES,
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_REGISTRATION,
    _call_target,
    _options,
    _phone_config,
    _register_main,
    _with_transport,
    call_result,
    listen,
    register,
)
from trunkline.commands.phone_interactive import end_text
from trunkline.sip.aio.endpoint import IncomingRequest, SipEndpoint
from trunkline.ua.call import Call, CallResult


@pytest.mark.parametrize(
    ("uri", "server", "expected"),
    [
        ("bob", "sip:127.0.0.1:5060", "sip:bob@127.0.0.1"),
        ("bob", "sip:[::1]:5070", "sip:bob@[::1]"),
        ("1001", "pbx.example.com", "sip:1001@pbx.example.com"),
        ("bob", "sip:pbx.example.com;transport=tcp", "sip:bob@pbx.example.com"),
        ("bob@other.example.com", "sip:127.0.0.1:5060", "sip:bob@other.example.com"),
        ("sip:bob@192.0.2.1:5062", "sip:127.0.0.1", "sip:bob@192.0.2.1:5062"),
        ("bob@192.0.2.1", None, "sip:bob@192.0.2.1"),
    ],
)
def test_call_target(uri: str, server: str | None, expected: str) -> None:
    assert _call_target(uri, server) == expected


def _args(**changes: Any) -> dict[str, Any]:
    """The keyword arguments of ``_options`` for a plain UDP phone, with ``changes``."""
    args: dict[str, Any] = {
        "local": "127.0.0.1:0",
        "remote_host": None,
        "transport": "udp",
        "user": "alice",
        "password": None,
        "auth_user": None,
        "registrar": None,
        "aor": None,
        "outbound_proxy": None,
        "codecs": "pcmu",
        "play": None,
        "tone": None,
        "record": None,
        "duration": 0.0,
        "dtmf": None,
        "dtmf_method": "rfc4733",
        "expires": 60,
        "cert": None,
        "key": None,
        "insecure": False,
        "rtp_port": 0,
    }
    args.update(changes)
    return args


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
        opts = _options(**_args(registrar=f"sip:127.0.0.1:{listener.port}"))
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
    # An address-of-record is user@domain: the registrar's port is not part of it.
    assert any(line.startswith("registered sip:alice@127.0.0.1 (expires") for line in lines)


@pytest.mark.parametrize(
    ("uri", "transport", "expected"),
    [
        ("sip:127.0.0.1:5060", "tcp", "sip:127.0.0.1:5060;transport=tcp"),
        ("127.0.0.1:8080", "ws", "sip:127.0.0.1:8080;transport=ws"),
        ("sip:pbx.example.com;transport=udp", "tcp", "sip:pbx.example.com;transport=udp"),
        ("sip:pbx.example.com;Transport=TLS", "tcp", "sip:pbx.example.com;Transport=TLS"),
        ("sips:pbx.example.com", "tls", "sips:pbx.example.com"),
        ("sip:127.0.0.1:5060", "udp", "sip:127.0.0.1:5060"),
        (None, "tcp", None),
    ],
)
def test_transport_reaches_uris_that_name_none(
    uri: str | None, transport: str, expected: str | None
) -> None:
    assert _with_transport(uri, transport) == expected


def test_options_put_the_transport_on_registrar_and_proxy() -> None:
    opts = _options(
        **_args(transport="TCP", registrar="sip:127.0.0.1:5", outbound_proxy="127.0.0.1:6")
    )
    assert opts.transport == "tcp"
    assert opts.registrar == "sip:127.0.0.1:5;transport=tcp"
    assert opts.outbound_proxy == "sip:127.0.0.1:6;transport=tcp"


def test_tls_client_needs_no_certificate(tmp_path: Path) -> None:
    config = _phone_config(_options(**_args(transport="tls", insecure=True)))
    assert config.ssl_context is None  # client only: nothing to present
    assert config.client_ssl is not None
    assert config.client_ssl.verify_mode.name == "CERT_NONE"
    verified = _phone_config(_options(**_args(transport="tls")))
    assert verified.client_ssl is not None
    assert verified.client_ssl.check_hostname
    with pytest.raises(typer.BadParameter, match="--cert and --key"):
        _options(**_args(transport="tls", cert=tmp_path / "c.pem"))


def test_help_has_no_literal_backticks() -> None:
    for command in (listen, register):
        assert "``" not in (command.__doc__ or "")


def _ended(result: CallResult, status: int | None, reason: str) -> Call:
    call = Call.__new__(Call)  # only the end fields matter to the text
    call.result, call.status, call.reason = result, status, reason
    return call


@pytest.mark.parametrize(
    ("result", "status", "reason", "text"),
    [
        (CallResult.NOT_FOUND, 404, "404 Not Found", "call failed: 404 Not Found"),
        (CallResult.BUSY, 486, "486 Busy Here", "call failed: 486 Busy Here"),
        (CallResult.FAILED, 503, "cannot send INVITE: x", "call failed: 503 cannot send INVITE: x"),
        (
            CallResult.NO_ANSWER,
            487,
            "487 Request Terminated",
            "call failed: no answer (487 Request Terminated)",
        ),
        (CallResult.COMPLETED, 200, "hung up", "call completed (hung up)"),
        (
            CallResult.CANCELLED,
            487,
            "487 Request Terminated",
            "call cancelled (487 Request Terminated)",
        ),
    ],
)
def test_end_text_names_the_status_once(
    result: CallResult, status: int, reason: str, text: str
) -> None:
    assert end_text(_ended(result, status, reason), result) == text


def test_giving_up_while_ringing_is_cancelled_even_after_a_crossing_487() -> None:
    crossed = _ended(CallResult.NO_ANSWER, 487, "487 Request Terminated")
    assert EXIT_CODES[call_result(crossed, cancelled=True)] == EXIT_CANCELLED
    assert EXIT_CODES[call_result(crossed)] == EXIT_NO_ANSWER
    busy = _ended(CallResult.BUSY, 486, "486 Busy Here")
    assert call_result(busy, cancelled=True) is CallResult.BUSY


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_transport_option_alone_registers_over_that_transport(
    transport: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--transport tcp|ws`` with a registrar URI that names no transport."""
    server = SipEndpoint()
    listener = await server.listen(transport.upper(), "127.0.0.1", 0)
    seen: list[str] = []

    async def handle(incoming: IncomingRequest) -> None:
        seen.append(incoming.source.transport)
        contact = incoming.request.headers.get("Contact") or ""
        incoming.respond(200, headers=[("Contact", contact)])

    server.on_request = handle
    try:
        opts = _options(**_args(transport=transport, registrar=f"sip:127.0.0.1:{listener.port}"))
        code = await _register_main(_phone_config(opts), opts)
    finally:
        await server.close()
    out, _ = capsys.readouterr()
    assert code == EXIT_OK, out
    assert seen and set(seen) == {transport.upper()}
