"""Dispatcher sets: selection algorithms, health checks and failover, on a fake clock."""

from __future__ import annotations

from collections import Counter

import pytest

from trunkline.proxy.dispatcher import (
    SELECTORS,
    Destination,
    DestinationSet,
    DestinationState,
    Dispatcher,
    DispatchRule,
    HealthPolicy,
    is_failover_status,
    make_probe,
    retarget,
)
from trunkline.sip.errors import LocalSipError
from trunkline.sip.uri import parse_uri

URIS = ["sip:ms1@10.0.0.1", "sip:ms2@10.0.0.2", "sip:ms3@10.0.0.3"]


def test_registry_names() -> None:
    assert {"round-robin", "weighted", "hash"} <= set(SELECTORS)


def test_round_robin_rotates_and_orders_failover() -> None:
    dset = Dispatcher.from_uris("media", URIS)["media"]
    picks = [dset.select() for _ in range(6)]
    assert [d.uri for d in picks if d] == URIS * 2
    assert [d.uri for d in dset.candidates()] == URIS  # counter wrapped to 0 again


def test_weighted_is_smooth_and_proportional() -> None:
    dset = Dispatcher.from_uris("carriers", URIS[:2], "weighted", weights=[3, 1])["carriers"]
    picks = [d.uri for _ in range(8) if (d := dset.select()) is not None]
    assert picks[:4] == [URIS[0], URIS[0], URIS[1], URIS[0]]
    assert Counter(picks) == {URIS[0]: 6, URIS[1]: 2}
    order = [d.uri for d in dset.candidates()]
    assert sorted(order) == sorted(URIS[:2])  # the choice, then the other for failover


def test_hash_sticks_to_call_and_spreads() -> None:
    dset = Dispatcher.from_uris("media", URIS, "hash")["media"]
    first = dset.select("call-42@host")
    assert all(dset.select("call-42@host") is first for _ in range(5))
    spread = Counter(d.uri for i in range(300) if (d := dset.select(f"c{i}")) is not None)
    assert set(spread) == set(URIS) and min(spread.values()) > 50


def test_hash_skips_down_destination_only_for_its_calls() -> None:
    dset = Dispatcher.from_uris("media", URIS, "hash", HealthPolicy(down_after=1))["media"]
    before = {f"c{i}": dset.select(f"c{i}") for i in range(60)}
    down = URIS[0]
    dset.report(down, ok=False, now=0.0)
    for key, chosen in before.items():
        now_chosen = dset.select(key)
        assert now_chosen is not None and now_chosen.uri != down
        if chosen is not None and chosen.uri != down:
            assert now_chosen is chosen


def test_health_down_after_failures_up_after_successes() -> None:
    policy = HealthPolicy(interval=30, down_interval=5, down_after=2, up_after=2)
    dset = DestinationSet("media", [Destination(u) for u in URIS[:2]], health=policy)
    assert {d.uri for d in dset.due_probes(0.0)} == set(URIS[:2])
    assert dset.due_probes(0.0) == []  # probes outstanding
    dset.probe_result(URIS[0], 200, 1.0)
    dset.probe_result(URIS[1], None, 1.0)
    assert dset.get_timer() == 1.0 + 30  # both next at now+interval (ms2 still up)
    dset.probe_result(URIS[1], 503, 31.0)  # second failure in a row: down
    assert dset.destinations[1].state is DestinationState.DOWN
    assert [d.uri for d in dset.candidates()] == [URIS[0]]
    assert dset.destinations[1].next_probe == 36.0  # probed more often while down
    dset.probe_result(URIS[1], 200, 36.0)
    assert not dset.destinations[1].up
    dset.probe_result(URIS[1], 404, 41.0)  # any answer but 408/5xx means alive
    assert dset.destinations[1].up


def test_success_resets_failure_count() -> None:
    dset = Dispatcher.from_uris("m", URIS[:1], health=HealthPolicy(down_after=2))["m"]
    dset.report(URIS[0], ok=False, now=0)
    dset.report(URIS[0], ok=True, now=1)
    dset.report(URIS[0], ok=False, now=2)
    assert dset.destinations[0].up


def test_all_down_gives_no_candidates() -> None:
    dset = Dispatcher.from_uris("m", URIS[:2], health=HealthPolicy(down_after=1))["m"]
    for uri in URIS[:2]:
        dset.report(uri, ok=False, now=0)
    assert dset.select() is None and dset.candidates() == []


def test_failover_statuses() -> None:
    assert is_failover_status(408) and is_failover_status(503) and is_failover_status(None)
    assert not is_failover_status(486) and not is_failover_status(500)


def test_dispatcher_timer_and_probes() -> None:
    dispatcher = Dispatcher(
        [
            DestinationSet("a", [Destination(URIS[0])]),
            DestinationSet("b", [Destination(URIS[1])], health=HealthPolicy(probing=False)),
        ]
    )
    assert dispatcher.get_timer() == 0.0
    assert [(name, d.uri) for name, d in dispatcher.due_probes(0.0)] == [("a", URIS[0])]
    assert dispatcher.get_timer() is None
    probe = make_probe(URIS[0], "sip:proxy@192.0.2.10")
    assert probe.method == "OPTIONS" and probe.uri_text == URIS[0]


def test_errors() -> None:
    with pytest.raises(LocalSipError):
        DestinationSet("x", [Destination(URIS[0])], algorithm="random")
    with pytest.raises(LocalSipError):
        DestinationSet("x", [])
    dispatcher = Dispatcher.from_uris("a", URIS)
    with pytest.raises(LocalSipError):
        dispatcher.add(DestinationSet("a", [Destination(URIS[0])]))
    with pytest.raises(LocalSipError):
        dispatcher["nope"]
    with pytest.raises(LocalSipError):
        dispatcher["a"].report("sip:other@1.1.1.1", ok=True, now=0)


def test_dispatch_rule_matching() -> None:
    by_prefix = DispatchRule("media", domain="example.com", user_prefix="*9")
    assert by_prefix.matches(parse_uri("sip:*9100@Example.com"))
    assert not by_prefix.matches(parse_uri("sip:9100@example.com"))
    assert not by_prefix.matches(parse_uri("sip:*9100@other.org"))
    assert DispatchRule("pstn", domain="pstn.example.com").matches(
        parse_uri("sip:+1555@pstn.example.com")
    )
    assert not DispatchRule("none").matches(parse_uri("sip:a@b"))
    assert not by_prefix.matches(parse_uri("tel:+1555"))


def test_retarget_keeps_user_and_takes_transport() -> None:
    uri = parse_uri("sip:+15551234@pstn.example.com;user=phone;transport=udp")
    out = retarget(uri, "sip:gw1.carrier.net:5080;transport=tcp")
    assert out == "sip:+15551234@gw1.carrier.net:5080;user=phone;transport=tcp"
    assert retarget(parse_uri("sip:a@b"), "sips:ms.example.com") == "sips:a@ms.example.com"
    with pytest.raises(LocalSipError):
        retarget(uri, "not a uri")
