"""``decisions.features``: the scorecard's characteristics from hand-built provider answers."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from microloan.decisions.features import (
    CHARACTERISTICS,
    PlatformHistory,
    capacity_fen,
    characteristics,
    income_estimate_fen,
)
from microloan.providers.ports import BalanceBand, ChannelActivity, CreditReport

REPORT = CreditReport(
    found=True,
    accounts=4,
    open_accounts=2,
    total_balance_fen=3_000_000,
    monthly_obligations_fen=200_000,
    current_overdue_days=0,
    current_overdue_fen=0,
    overdue_months_24m=0,
    worst_dpd_24m=0,
    queries_3m=2,
    months_since_oldest_account=60,
)
WECHAT = ChannelActivity("wechat", 100, 85, 60, 900_000, 300, 1_000_000, BalanceBand.MEDIUM)
QQ = ChannelActivity("qq", 200, 20, 4, 20_000, 80, None, BalanceBand.NONE)
NEW = PlatformHistory()


def test_applying_channel_is_app_and_the_other_is_other() -> None:
    values = characteristics(
        channel="wechat",
        age=30,
        report=REPORT,
        activities={"wechat": WECHAT, "qq": QQ},
        history=NEW,
    )
    assert list(values) == list(CHARACTERISTICS)
    assert values["app_active_days_90d"] == 85 and values["app_balance_band"] == "medium"
    assert values["other_active_days_90d"] == 20 and values["other_payment_count_90d"] == 4
    assert values["report_status"] == "clean" and values["debt_to_income"] == 0.2
    assert values["platform_history"] == "new"
    through_qq = characteristics(
        channel="qq", age=30, report=REPORT, activities={"wechat": WECHAT, "qq": QQ}, history=NEW
    )
    assert through_qq["app_active_days_90d"] == 20 and through_qq["other_active_days_90d"] == 85
    # QQ has no income estimate: WeChat's is used
    assert through_qq["debt_to_income"] == 0.2


def test_no_report_fetched_is_missing_not_zero() -> None:
    values = characteristics(
        channel="wechat", age=30, report=None, activities={"wechat": WECHAT}, history=NEW
    )
    for name in ("report_status", "report_queries_3m", "report_open_accounts", "debt_to_income"):
        assert values[name] is None


def test_no_record_is_its_own_status_with_no_debt() -> None:
    values = characteristics(
        channel="wechat",
        age=21,
        report=CreditReport.no_record(),
        activities={"wechat": WECHAT},
        history=NEW,
    )
    assert values["report_status"] == "none"
    assert values["report_months_history"] is None
    assert values["report_queries_3m"] == 0
    assert values["debt_to_income"] == 0.0


def test_missing_activity_is_none() -> None:
    values = characteristics(
        channel="qq", age=40, report=REPORT, activities={"qq": None, "wechat": None}, history=NEW
    )
    for name in CHARACTERISTICS:
        if name.startswith(("app_", "other_")):
            assert values[name] is None, name
    assert values["debt_to_income"] is None  # no income estimate anywhere


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({}, "clean"),
        ({"overdue_months_24m": 2, "worst_dpd_24m": 45}, "past_delinquency"),
        (
            {
                "current_overdue_days": 100,
                "current_overdue_fen": 600_000,
                "overdue_months_24m": 4,
                "worst_dpd_24m": 100,
            },
            "current_delinquency",
        ),
    ],
)
def test_report_status(change: dict[str, int], status: str) -> None:
    values = characteristics(
        channel="wechat", age=30, report=replace(REPORT, **change), activities={}, history=NEW
    )
    assert values["report_status"] == status


@pytest.mark.parametrize(
    ("history", "status"),
    [
        (PlatformHistory(), "new"),
        (PlatformHistory(loans=2, on_time_repayments=10, months_known=8), "clean"),
        (PlatformHistory(loans=1, max_dpd_ever=12, months_known=3), "late"),
        (PlatformHistory(loans=1, max_dpd_ever=31, months_known=3), "delinquent"),
    ],
)
def test_platform_history(history: PlatformHistory, status: str) -> None:
    values = characteristics(channel="wechat", age=30, report=None, activities={}, history=history)
    assert values["platform_history"] == status


def test_income_estimate_falls_back_to_the_mean_of_the_others() -> None:
    a = replace(QQ, income_estimate_monthly_fen=500_001)
    b = replace(WECHAT, channel="other", income_estimate_monthly_fen=700_000)
    assert income_estimate_fen("wechat", {"qq": a, "other": b, "wechat": None}) == 600_000
    assert income_estimate_fen("wechat", {}) is None


def test_capacity_is_affordable_income_less_obligations() -> None:
    activities = {"wechat": WECHAT}
    assert capacity_fen(channel="wechat", report=REPORT, activities=activities) == 200_000
    assert (
        capacity_fen(
            channel="wechat",
            report=REPORT,
            activities=activities,
            affordability_share=Decimal("0.15"),
        )
        == 0
    )
    no_record = CreditReport.no_record()
    assert capacity_fen(channel="wechat", report=no_record, activities=activities) == 400_000
    assert capacity_fen(channel="wechat", report=None, activities=activities) is None
    assert capacity_fen(channel="qq", report=REPORT, activities={"qq": QQ}) is None
