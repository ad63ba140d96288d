"""Per-source rate limits, bans, failed-auth bans and scanner filtering, on a fake clock."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trunkline.config import Limits
from trunkline.proxy.antiflood import AntiFlood, FloodPolicy, TrustedNetworks, Verdict

SRC = "203.0.113.9"


def test_rate_limit_allows_burst_then_bans() -> None:
    flood = AntiFlood(FloodPolicy(requests_per_second=10, burst=20, flood_ban_seconds=30))
    verdicts = [flood.check(SRC, None, 100.0) for _ in range(21)]
    assert verdicts[:20] == [Verdict.ACCEPT] * 20
    assert verdicts[20] is Verdict.FLOOD
    assert flood.check(SRC, None, 110.0) is Verdict.BANNED
    assert flood.check(SRC, None, 130.0) is Verdict.ACCEPT  # ban expired
    assert flood.counters.dropped_flood == 1 and flood.counters.dropped_banned == 1


def test_sustained_rate_under_limit_is_fine() -> None:
    flood = AntiFlood(FloodPolicy(requests_per_second=10, burst=5))
    now = 0.0
    for _ in range(300):  # 9 requests/s for 33 s
        assert flood.check(SRC, None, now) is Verdict.ACCEPT
        now += 1 / 9
    assert flood.counters.dropped_flood == 0


def test_flooder_does_not_affect_other_source() -> None:
    flood = AntiFlood(FloodPolicy(requests_per_second=5, burst=5))
    for _ in range(50):
        flood.check(SRC, None, 1.0)
    assert flood.check("198.51.100.1", None, 1.0) is Verdict.ACCEPT


def test_trusted_sources_exempt() -> None:
    trusted = TrustedNetworks(["127.0.0.0/8", "2001:db8::/32"])
    flood = AntiFlood(FloodPolicy(requests_per_second=1, burst=1), trusted)
    assert all(flood.check("127.0.0.1", None, 1.0) is Verdict.ACCEPT for _ in range(100))
    assert "[2001:db8::7]" in trusted and "10.0.0.1" not in trusted and "host" not in trusted
    for _ in range(50):
        assert not flood.auth_failed("127.0.0.1", 1.0)
        assert flood.transaction_started("127.0.0.1", 1.0)


def test_scanner_user_agents_dropped() -> None:
    flood = AntiFlood()
    assert flood.check(SRC, "friendly-scanner", 1.0) is Verdict.SCANNER
    assert flood.check(SRC, "SIPVicious 0.3", 1.0) is Verdict.SCANNER
    assert flood.check(SRC, "VaxSIPUserAgent/3.1", 1.0) is Verdict.SCANNER
    assert flood.check(SRC, "baresip v1.0.0", 1.0) is Verdict.ACCEPT
    assert flood.counters.dropped_scanner == 3


def test_auth_failures_ban_within_window(caplog: pytest.LogCaptureFixture) -> None:
    flood = AntiFlood(
        FloodPolicy(auth_failures_before_ban=3, auth_failure_window=60, ban_seconds=600)
    )
    with caplog.at_level(logging.WARNING, logger="trunkline.security"):
        assert not flood.auth_failed(SRC, 0.0, "alice")
        assert not flood.auth_failed(SRC, 100.0, "alice")  # the first fell out of the window
        assert not flood.auth_failed(SRC, 110.0)
        assert flood.auth_failed(SRC, 120.0)
    assert flood.check(SRC, None, 500.0) is Verdict.BANNED
    assert flood.check(SRC, None, 721.0) is Verdict.ACCEPT
    assert f"AUTH_FAILED src={SRC} user=alice" in caplog.text
    assert f"BAN src={SRC} reason=auth-failures seconds=600" in caplog.text


def test_transaction_and_dialog_limits() -> None:
    flood = AntiFlood(FloodPolicy(max_transactions_per_source=2, max_dialogs_per_source=1))
    assert flood.transaction_started(SRC, 0.0) and flood.transaction_started(SRC, 0.0)
    assert not flood.transaction_started(SRC, 0.0)
    flood.transaction_ended(SRC)
    assert flood.transaction_started(SRC, 0.0)
    assert flood.dialog_started(SRC, 0.0) and not flood.dialog_started(SRC, 0.0)
    flood.dialog_ended(SRC)
    flood.dialog_ended(SRC)  # never below zero
    assert flood.dialog_started(SRC, 0.0)
    assert flood.counters.refused_transactions == 1 and flood.counters.refused_dialogs == 1


def test_memory_bounded_by_lru() -> None:
    flood = AntiFlood(FloodPolicy(max_sources=100, max_bans=10))
    for i in range(5000):
        flood.check(f"10.0.{i // 256}.{i % 256}", None, float(i))
        if i % 10 == 0:
            flood.ban(f"10.1.{i // 256}.{i % 256}", float(i), 60, "test")
    assert flood.tracked_sources == 100
    assert len(flood.bans(5000.0)) <= 10


def test_ban_timer_and_unban() -> None:
    flood = AntiFlood()
    flood.ban(SRC, 0.0, 60, "manual")
    flood.ban("198.51.100.2", 0.0, 30, "manual")
    assert flood.get_timer() == 30.0
    flood.handle_timer(31.0)
    assert [host for host, _ in flood.bans(31.0)] == [SRC]
    assert flood.unban(SRC) and not flood.is_banned(SRC, 32.0)
    assert flood.counters.as_dict()["bans"] == 2


def test_policy_from_config() -> None:
    limits = Limits(
        requests_per_second=7, burst=9, ban_seconds=5, flood_ban_seconds=11, auth_failure_window=13
    )
    policy = FloodPolicy.from_config(limits)
    assert (policy.requests_per_second, policy.burst, policy.ban_seconds) == (7, 9, 5)
    assert (policy.flood_ban_seconds, policy.auth_failure_window) == (11, 13)
    assert "friendly-scanner" in policy.drop_user_agents


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=0.5, allow_nan=False), min_size=1, max_size=150))
def test_token_bucket_bound_holds(gaps: list[float]) -> None:
    """Accepted requests in any interval never exceed burst + rate x its length."""
    rate, burst = 20.0, 10
    flood = AntiFlood(FloodPolicy(requests_per_second=rate, burst=burst, flood_ban_seconds=1.0))
    now, accepted = 0.0, []
    for gap in gaps:
        now += gap
        if flood.check(SRC, None, now) is Verdict.ACCEPT:
            accepted.append(now)
    for i, start in enumerate(accepted):
        for j in range(i, len(accepted)):
            assert j - i + 1 <= burst + rate * (accepted[j] - start) + 1e-6
