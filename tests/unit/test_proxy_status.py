"""Status across workers: what the others published is added to the first worker's own."""

from __future__ import annotations

import json

from trunkline.proxy.metrics import render_metrics
from trunkline.proxy.status import LATENCY_BUCKETS, ServerStats, merge_snapshots, render_status
from trunkline.sip.builder import make_request, make_response
from trunkline.sip.message import Response


def _stats(call_id: str, started: float, invites: int) -> ServerStats:
    """A worker's counters: ``invites`` INVITEs, 2xx each, one call up since ``started``."""
    stats = ServerStats(started=0.0)
    for _ in range(invites):
        stats.count_request("INVITE")
        stats.count_response(200)
        stats.observe_latency("INVITE", 0.002)
    invite = make_request(
        "INVITE",
        "sip:bob@example.com",
        from_="<sip:alice@example.com>;tag=a",
        to="<sip:bob@example.com>",
        call_id=call_id,
    )
    ok = make_response(invite, 200, to_tag="b")
    assert isinstance(ok, Response)
    stats.dialog_started(ok, started)
    return stats


def _published(index: int, snapshot: dict[str, object], *, age: float = 0.5) -> dict[str, object]:
    # What StatusBoard.read returns: the snapshot went through JSON (tuples became lists).
    return {
        "index": index,
        "pid": 1000 + index,
        "age": age,
        "stale": age > 5,
        "snapshot": json.loads(json.dumps(snapshot)),
    }


def test_counters_latency_calls_and_bans_are_summed() -> None:
    own = _stats("call-0", 90.0, 2).snapshot(100.0, transactions=1, bans=[], flood={"bans": 1})
    other = _stats("call-1", 95.0, 3).snapshot(
        100.0,
        transactions=4,
        bans=[{"source": "192.0.2.9", "until": 700.0}],
        flood={"bans": 2},
    )
    merged = merge_snapshots(own, [_published(1, other)], index=0, pid=1000)
    assert merged["requests"] == {"INVITE": 5}
    assert merged["responses"] == {"2xx": 5}
    assert merged["transactions"] == 5
    assert merged["flood"] == {"bans": 3}
    assert merged["active_dialogs"] == 2
    assert [d["call_id"] for d in merged["dialogs"]] == ["call-0", "call-1"]  # longest first
    assert merged["bans"] == [{"source": "192.0.2.9", "until": 700.0}]
    latency = merged["latency"]["INVITE"]
    assert latency["count"] == 5
    assert dict((bound, count) for bound, count in latency["buckets"])[0.0025] == 5
    assert [w["index"] for w in merged["workers"]] == [0, 1]
    assert merged["workers"][1]["requests"] == 3
    # Own snapshot untouched (the merge copies what it changes).
    assert own["requests"] == {"INVITE": 2}
    text = render_metrics(merged).decode()
    assert 'trunkline_sip_requests_total{method="INVITE"} 5.0' in text
    assert "trunkline_active_dialogs 2.0" in text
    assert 'trunkline_request_latency_seconds_count{method="INVITE"} 5.0' in text
    assert "trunkline_workers 2.0" in text
    assert 'trunkline_worker_status_age_seconds{worker="1"} 0.5' in text
    assert "workers: 2" in render_status(merged)


def test_a_stale_worker_is_listed_but_not_counted() -> None:
    own = ServerStats(started=0.0).snapshot(100.0)
    other = _stats("call-1", 95.0, 3).snapshot(100.0)
    merged = merge_snapshots(own, [_published(1, other, age=30.0)])
    assert merged["requests"] == {}
    assert merged["active_dialogs"] == 0
    assert merged["workers"][1]["stale"] is True
    assert "STALE" in render_status(merged)


def test_a_method_only_another_worker_saw_gets_its_histogram() -> None:
    own = ServerStats(started=0.0).snapshot(100.0)
    stats = ServerStats(started=0.0)
    stats.observe_latency("REGISTER", 0.5)
    merged = merge_snapshots(own, [_published(1, stats.snapshot(100.0))])
    buckets = merged["latency"]["REGISTER"]["buckets"]
    assert [bound for bound, _ in buckets] == list(LATENCY_BUCKETS)
    assert sum(count for _, count in buckets) == 1


def test_worker_handoff_counts_are_summed_shown_and_exported() -> None:
    handoff = {"handed": 4, "received": 1, "dropped": 0, "cancels_offered": 1, "cancels_taken": 0}
    own = ServerStats(started=0.0).snapshot(100.0, handoff=handoff)
    other = ServerStats(started=0.0).snapshot(
        100.0, handoff={**handoff, "handed": 2, "received": 6, "cancels_taken": 1}
    )
    merged = merge_snapshots(own, [_published(1, other)])
    assert merged["handoff"] == {
        "handed": 6,
        "received": 7,
        "dropped": 0,
        "cancels_offered": 2,
        "cancels_taken": 1,
    }
    assert "worker hand-off: handed 6, received 7, dropped 0" in render_status(merged)
    text = render_metrics(merged).decode()
    assert 'trunkline_worker_handoff_total{event="received"} 7.0' in text
    # One worker: no hand-off, no status line.
    single = ServerStats(started=0.0).snapshot(100.0, handoff={})
    assert "hand-off" not in render_status(single)
