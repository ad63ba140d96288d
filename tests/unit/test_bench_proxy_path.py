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
