"""E-model (ITU-T G.107) R factor and MOS, checked against hand-computed values."""

from __future__ import annotations

import pytest

from trunkline.rtp.emodel import (
    CODEC_IMPAIRMENTS,
    delay_impairment,
    effective_equipment_impairment,
    mos_from_r,
    r_factor,
    score_call,
)


def test_perfect_g711_call() -> None:
    q = score_call("PCMU", network_loss=0.0, one_way_delay=0.0)
    assert q.r == pytest.approx(93.2)
    # 1 + 0.035*93.2 + 93.2*(93.2-60)*(100-93.2)*7e-6 = 4.4093
    assert q.mos == pytest.approx(4.4093, abs=1e-4)


def test_loss_uses_bpl() -> None:
    plc = CODEC_IMPAIRMENTS["PCMU"]
    # Ie,eff = 0 + 95 * 5 / (5 + 25.1) = 15.781
    assert effective_equipment_impairment(plc, 0.05) == pytest.approx(15.781, abs=1e-3)
    noplc = CODEC_IMPAIRMENTS["PCMU-noplc"]
    # 95 * 5 / (5 + 4.3) = 51.075: concealment matters a lot
    assert effective_equipment_impairment(noplc, 0.05) == pytest.approx(51.075, abs=1e-3)
    # Bursty loss (BurstR 2) hurts more than random loss at the same rate.
    assert effective_equipment_impairment(plc, 0.05, 2.0) > effective_equipment_impairment(
        plc, 0.05
    )


def test_delay_impairment() -> None:
    assert delay_impairment(0.150) == pytest.approx(3.6)
    # 0.024*300 + 0.11*(300-177.3) = 20.697
    assert delay_impairment(0.300) == pytest.approx(20.697, abs=1e-3)


def test_codec_ie() -> None:
    g729 = CODEC_IMPAIRMENTS["G729"]
    assert r_factor(g729, 0.0, 0.0) == pytest.approx(82.2)


def test_mos_mapping_endpoints_and_monotonic() -> None:
    assert mos_from_r(-5) == 1.0
    assert mos_from_r(0) == 1.0
    assert mos_from_r(100) == pytest.approx(4.5)
    assert mos_from_r(120) == 4.5
    values = [mos_from_r(r) for r in range(0, 101, 5)]
    assert values == sorted(values)


def test_discards_count_as_loss() -> None:
    a = score_call("PCMA", network_loss=0.02, discarded=0.03, one_way_delay=0.1)
    b = score_call("PCMA", network_loss=0.05, one_way_delay=0.1)
    assert a.r == pytest.approx(b.r)
    assert a.loss_fraction == pytest.approx(0.05)
    assert score_call("opus", network_loss=0.0, one_way_delay=0.05).mos > 4.3
    assert score_call("unknown-codec", network_loss=0.0, one_way_delay=0.0).r == pytest.approx(93.2)
