"""bench/proxy_path.py: both libraries do the same proxy work on distinct calls."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from trunkline.sip import Request, Response, parse_message

BENCH = Path(__file__).resolve().parents[2] / "bench" / "proxy_path.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_proxy_path", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_calls_are_distinct(bench: ModuleType) -> None:
    calls = bench.make_calls(3)
    assert len({call[0] for call in calls}) == 3
    for call in calls:
        assert len(call) == 7 and all(b"@N@" not in message for message in call)


def test_trunkline_does_the_proxy_work(bench: ModuleType) -> None:
    calls = bench.make_calls(2)
    bench.check_same_work(calls)  # raises SystemExit when the libraries disagree
    out = bench.trunkline_call(calls[1])
    invite = parse_message(out[0])
    assert isinstance(invite, Request)
    assert invite.uri_text == bench.TARGET
    assert invite.max_forwards == 69
    assert invite.headers.get_all("Record-Route") == [bench.RECORD_ROUTE]
    assert invite.via[0].branch is not None and invite.via[0].branch.startswith(bench.COOKIE)
    assert len(invite.via) == 2
    trying = parse_message(out[1])
    assert isinstance(trying, Response) and trying.status == 100
    assert out[2] == b""  # the uas's 100 is absorbed
    for index in (3, 4, 7):
        response = parse_message(out[index])
        assert isinstance(response, Response) and len(response.via) == 1
    ack, bye = parse_message(out[5]), parse_message(out[6])
    assert isinstance(ack, Request) and isinstance(bye, Request)
    assert "Route" not in ack.headers and "Route" not in bye.headers  # ours was removed
    assert ack.via[0].branch != bye.via[0].branch


def test_server_mode_runs_whole_calls_through_a_proxy_server(bench: ModuleType) -> None:
    """--server: real ProxyServer, every call answered end to end, sends restored after."""
    import asyncio

    from trunkline.sip.aio import new_event_loop
    from trunkline.sip.aio.transport import UdpSocket

    real_sendto = UdpSocket.sendto
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        per_call, idle, function_calls, done = runner.run(bench._server_run(5, False, warmup=2))
    assert done == 5 and per_call > 0 and idle >= 0 and function_calls == 0
    assert UdpSocket.sendto is real_sendto


def test_register_mode_answers_every_register_with_401_then_200(bench: ModuleType) -> None:
    """--register: the warm-up answers real 401s; each timed registration gets 401 then 200
    (the run stops with SystemExit on any other answer); sends restored after."""
    import asyncio

    from trunkline.sip.aio import new_event_loop
    from trunkline.sip.aio.transport import UdpSocket

    real_sendto = UdpSocket.sendto
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        per_reg, idle, function_calls, done = runner.run(bench._register_run(6, 4, False, warmup=3))
    assert done == 6 and per_reg > 0 and idle >= 0 and function_calls == 0
    assert UdpSocket.sendto is real_sendto


def test_register_messages_are_sipps_with_distinct_call_ids(bench: ModuleType) -> None:
    first = parse_message(
        bench._REGISTER.format(port=5060, n=1, cseq=1, user="u00001", auth="").encode()
    )
    second = parse_message(
        bench._REGISTER.format(port=5060, n=2, cseq=2, user="u00002", auth="").encode()
    )
    assert isinstance(first, Request) and isinstance(second, Request)
    assert first.method == "REGISTER" and first.call_id != second.call_id
    assert str(first.to.uri) == "sip:u00001@127.0.0.1" and first.expires == 3600


def test_server_calls_are_distinct_and_carry_the_branch_placeholder(bench: ModuleType) -> None:
    via = "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=@BRANCH@;rport=5062"
    calls = bench._server_calls(1, 2, via, "Record-Route: <sip:127.0.0.1:5070;lr>")
    assert len(calls) == 2 and calls[0][0] != calls[1][0]
    invite, ringing, ok, ack, bye, ok_bye = calls[0]
    assert isinstance(parse_message(invite), Request)
    for response in (ringing, ok, ok_bye):
        assert b"@BRANCH@" in response
        parsed = parse_message(response.replace(b"@BRANCH@", b"z9hG4bK-x"))
        assert isinstance(parsed, Response) and len(parsed.via) == 2
    for request in (ack, bye):
        parsed = parse_message(request)
        assert isinstance(parsed, Request)
        assert parsed.headers.get("Route") == "<sip:127.0.0.1:5070;lr>"
