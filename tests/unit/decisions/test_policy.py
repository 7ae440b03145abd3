"""The credit policy: every knock-out and fraud signal, grades, price check and line assignment."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microloan.decisions.policy import (
    DEFAULT_GRADES,
    Evidence,
    Outcome,
    Policy,
    activity_scale_pct,
    below_cost,
    decide,
    fraud_signals,
    knock_outs,
    line_fen,
)
from microloan.domain.rates import DailyRate

POLICY = Policy()
ON = date(2026, 11, 23)
CLEAN = Evidence(identity_valid=True, age_in_range=True, report_current_overdue_days=0)


def verdict(e: Evidence = CLEAN, pd_ppm: int = 3_000, capacity: int | None = 300_000, scale=100):
    return decide(
        e,
        pd_ppm=pd_ppm,
        score_reasons=("report_queries_3m",),
        capacity_fen=capacity,
        scale_pct=scale,
        on=ON,
        policy=POLICY,
    )


def test_a_clean_applicant_is_approved_with_an_offer() -> None:
    v = verdict()
    assert v.outcome is Outcome.APPROVED and v.grade == "A"
    assert v.offer is not None
    # capacity 3,000 yuan a month × 12 months for grade A, activity 100 %
    assert v.offer.limit_fen == 3_600_000
    assert str(v.offer.rate) == "0.000083"
    view = v.offer.view()
    assert view["limit"] == "36000.00" and view["annual_simple_rate"] == "2.99%"
    assert view["apr_example"].endswith("%")
    assert v.reasons == ("report_queries_3m",)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"identity_valid": False}, "ko.identity.invalid"),
        ({"age_in_range": False}, "ko.age.out_of_range"),
        ({"report_current_overdue_days": 90}, "ko.report.serious_delinquency"),
        ({"blocked": ("device",)}, "ko.blocked.device"),
        ({"blocked": ("id_number",)}, "ko.blocked.id_number"),
        ({"platform_overdue": True}, "ko.platform.overdue"),
    ],
)
def test_every_knock_out_declines_before_the_score(change: dict[str, object], code: str) -> None:
    e = replace(CLEAN, **change)  # type: ignore[arg-type]
    assert code in knock_outs(e, POLICY)
    v = verdict(e, pd_ppm=1)
    assert v.outcome is Outcome.DECLINED and code in v.reasons and v.offer is None


def test_current_delinquency_below_the_serious_threshold_is_not_a_knock_out() -> None:
    assert knock_outs(replace(CLEAN, report_current_overdue_days=89), POLICY) == []
    # no record at all (a first-time borrower) is never declined for that alone
    assert knock_outs(replace(CLEAN, report_current_overdue_days=None), POLICY) == []


@pytest.mark.parametrize(
    ("change", "code", "outcome"),
    [
        ({"device_known": False}, "fraud.device.unknown", Outcome.DECLINED),
        ({"emulator": True}, "fraud.device.emulator", Outcome.DECLINED),
        ({"rooted": True}, "fraud.device.rooted", Outcome.REVIEW),
        ({"device_other_customers": 2}, "fraud.device.shared", Outcome.REVIEW),
        ({"device_other_customers": 4}, "fraud.device.shared", Outcome.DECLINED),
        ({"device_applications_in_window": 3}, "fraud.velocity.device", Outcome.REVIEW),
        ({"km_from_usual": 1_200.0}, "fraud.location.far", Outcome.REVIEW),
        ({"travel_kmh": 2_000.0}, "fraud.location.travel", Outcome.REVIEW),
    ],
)
def test_every_fraud_signal(change: dict[str, object], code: str, outcome: Outcome) -> None:
    e = replace(CLEAN, **change)  # type: ignore[arg-type]
    assert code in [s.code for s in fraud_signals(e, POLICY)]
    v = verdict(e)
    assert v.outcome is outcome and code in v.reasons
    if outcome is Outcome.REVIEW:
        assert v.offer is not None  # the reviewer sees what approval would grant


@pytest.mark.parametrize(
    ("change"),
    [
        {"device_other_customers": 1},
        {"device_applications_in_window": 2},
        {"km_from_usual": 799.0},
        {"travel_kmh": 899.0},
    ],
)
def test_below_each_threshold_no_signal(change: dict[str, object]) -> None:
    assert fraud_signals(replace(CLEAN, **change), POLICY) == []  # type: ignore[arg-type]


def test_grades_rise_with_pd_and_the_worst_approved_rate_is_the_band_top() -> None:
    assert [g.grade for g in DEFAULT_GRADES] == list("ABCDEF")
    assert str(DEFAULT_GRADES[0].rate) == "0.000083" and str(DEFAULT_GRADES[-1].rate) == "0.00066"
    assert POLICY.grade_for(5_000).grade == "A"  # type: ignore[union-attr]
    assert POLICY.grade_for(5_001).grade == "B"  # type: ignore[union-attr]
    assert POLICY.grade_for(120_000).grade == "F"  # type: ignore[union-attr]
    assert POLICY.grade_for(120_001) is None
    v = verdict(pd_ppm=200_000)
    assert v.outcome is Outcome.DECLINED and v.reasons[0] == "score.pd_above_cutoff"


def test_line_below_500_yuan_declines() -> None:
    v = verdict(pd_ppm=100_000, capacity=10_000)  # grade F: 3 months × 100 yuan = 300 yuan
    assert v.outcome is Outcome.DECLINED and v.reasons[0] == "line.below_minimum"


def test_line_is_floored_to_100_yuan_and_capped_by_grade_and_product() -> None:
    a = DEFAULT_GRADES[0]
    assert line_fen(a, 123_456, 100, POLICY) == 1_480_000  # 14,814.72 yuan → 14,800
    assert line_fen(a, 10_000_000, 120, POLICY) == 20_000_000  # 200,000 yuan at most
    assert line_fen(a, None, 100, POLICY) == 5_000_000  # no income: a quarter of the cap


@given(
    st.sampled_from(DEFAULT_GRADES),
    st.one_of(st.none(), st.integers(0, 10**8)),
    st.sampled_from([50, 60, 80, 100, 120]),
)
def test_lines_are_whole_hundreds_inside_the_product_range(band, capacity, scale) -> None:  # type: ignore[no-untyped-def]
    limit = line_fen(band, capacity, scale, POLICY)
    assert limit % 10_000 == 0
    assert 0 <= limit <= min(band.max_line_fen, POLICY.max_line_fen)


def test_activity_scales_the_line() -> None:
    assert activity_scale_pct(None, None) == 50
    assert activity_scale_pct(36, 80) == 120
    assert activity_scale_pct(12, 30) == 100
    assert activity_scale_pct(6, 5) == 80
    assert activity_scale_pct(2, 90) == 60


def test_a_rate_below_expected_loss_and_costs_is_flagged() -> None:
    rate = DailyRate.parse("0.000083")  # 2.99 % a year
    assert not below_cost(rate, 5_000, POLICY)  # 0.3 % + 2 % + 0.5 % = 2.8 %
    assert below_cost(rate, 10_000, POLICY)  # 0.6 % + 2.5 % = 3.1 %
    cheap = Policy(grades=(replace(DEFAULT_GRADES[0], max_pd_ppm=20_000),))
    v = decide(
        CLEAN,
        pd_ppm=15_000,
        score_reasons=(),
        capacity_fen=500_000,
        scale_pct=100,
        on=ON,
        policy=cheap,
    )
    assert v.outcome is Outcome.APPROVED and v.flags == ("pricing.below_cost",)
