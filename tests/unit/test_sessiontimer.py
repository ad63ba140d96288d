"""Session timer negotiation and deadlines (RFC 4028 §7, §9, §10)."""

from __future__ import annotations

import pytest

from trunkline.sip.builder import make_request, make_response
from trunkline.sip.message import Request
from trunkline.sip.sessiontimer import (
    Negotiated,
    SessionTimer,
    SessionTimerAction,
    SessionTimerConfig,
    interval_after_422,
    min_se_of,
    uac_negotiate,
    uas_negotiate,
)


def invite(*extra: tuple[str, str]) -> Request:
    return make_request(
        "INVITE",
        "sip:bob@example.com",
        from_="<sip:alice@example.com>",
        to="<sip:bob@example.com>",
        extra_headers=extra,
    )


def test_request_headers() -> None:
    assert SessionTimerConfig(1200, 120).request_headers() == [
        ("Supported", "timer"),
        ("Session-Expires", "1200"),
        ("Min-SE", "120"),
    ]


def test_uas_rejects_too_small_with_422() -> None:
    decision = uas_negotiate(invite(("Session-Expires", "100")), SessionTimerConfig(1800, 300))
    assert decision.status == 422
    assert decision.headers == [("Min-SE", "300")]
    assert decision.negotiated is None


def test_uas_keeps_the_uac_refresher_choice() -> None:
    req = invite(("Supported", "timer"), ("Session-Expires", "600;refresher=uas"))
    decision = uas_negotiate(req, SessionTimerConfig(1800, 90))
    assert decision.status is None
    assert decision.negotiated == Negotiated(600, "uas")
    assert ("Session-Expires", "600;refresher=uas") in decision.headers
    assert ("Require", "timer") in decision.headers


def test_uas_picks_uac_when_supported_else_itself() -> None:
    supported = uas_negotiate(
        invite(("Supported", "timer"), ("Session-Expires", "900")), SessionTimerConfig()
    )
    assert supported.negotiated == Negotiated(900, "uac")
    legacy = uas_negotiate(invite(), SessionTimerConfig(1800, 90))
    assert legacy.negotiated == Negotiated(1800, "uas")
    assert legacy.headers == [("Session-Expires", "1800;refresher=uas")]  # no Require


def test_uas_may_shorten_but_not_below_min_se() -> None:
    req = invite(("Supported", "timer"), ("Session-Expires", "7200"), ("Min-SE", "1000"))
    decision = uas_negotiate(req, SessionTimerConfig(600, 90))
    assert decision.negotiated is not None and decision.negotiated.interval == 1000


def test_uac_reads_the_2xx() -> None:
    req = invite(("Supported", "timer"), ("Session-Expires", "1800"))
    ok = make_response(
        req, 200, headers=[("Session-Expires", "900;refresher=uas"), ("Require", "timer")]
    )
    assert uac_negotiate(req, ok) == Negotiated(900, "uas")
    bare = make_response(req, 200)
    assert uac_negotiate(req, bare) == Negotiated(1800, "uac")  # the UAS lacks the extension
    assert uac_negotiate(invite(), bare) is None


def test_interval_after_422() -> None:
    req = invite(("Session-Expires", "100"))
    too_small = make_response(req, 422, headers=[("Min-SE", "400")])
    assert min_se_of(too_small) == 400
    assert interval_after_422(too_small, SessionTimerConfig(1800, 90)) == 400


def test_refresher_refreshes_at_half() -> None:
    timer = SessionTimer()
    timer.start(Negotiated(1800, "uac"), we_are_uac=True, now=100.0)
    assert timer.local_refresher
    assert timer.get_timer() == 1000.0
    assert timer.handle_timer(999.0) is None
    assert timer.handle_timer(1000.0) is SessionTimerAction.REFRESH
    assert timer.get_timer() is None


@pytest.mark.parametrize(("interval", "bye_after"), [(1800, 1768.0), (90, 60.0), (120, 88.0)])
def test_other_side_expires_before_the_interval(interval: int, bye_after: float) -> None:
    timer = SessionTimer()
    timer.start(Negotiated(interval, "uac"), we_are_uac=False, now=0.0)
    assert not timer.local_refresher
    # RFC 4028 §10: BYE at interval - min(32, interval / 3).
    assert timer.get_timer() == pytest.approx(bye_after)
    assert timer.handle_timer(bye_after) is SessionTimerAction.EXPIRE
