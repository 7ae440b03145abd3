"""What the ports return is checked on arrival: an answer that breaks the contract is refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from microloan.providers.ports import (
    BalanceBand,
    ChannelActivity,
    ChannelActivityPort,
    CreditReport,
    CreditReportPort,
    DevicePort,
    HolderCheck,
    HolderVerificationPort,
    IdCardFields,
    Location,
    LocationPort,
    OcrPort,
    ProviderError,
)
from microloan.providers.simulated import SimulatedWorld

CLEAN = CreditReport(
    found=True,
    accounts=3,
    open_accounts=2,
    total_balance_fen=1_000_000,
    monthly_obligations_fen=50_000,
    current_overdue_days=0,
    current_overdue_fen=0,
    overdue_months_24m=0,
    worst_dpd_24m=0,
    queries_3m=1,
    months_since_oldest_account=48,
)


def _refused(make: Any, port: str) -> None:
    with pytest.raises(ProviderError) as refused:
        make()
    assert refused.value.code == f"provider.{port}.invalid"


def test_no_record_is_all_zero() -> None:
    report = CreditReport.no_record()
    assert not report.found and report.accounts == 0 and report.months_since_oldest_account is None


@pytest.mark.parametrize(
    "change",
    [
        {"found": False},  # no record yet accounts
        {"open_accounts": 4},  # more open than ever opened
        {"current_overdue_days": 40},  # overdue days without an amount
        {"current_overdue_fen": 100},  # an amount without days
        {"overdue_months_24m": 25},
        {"worst_dpd_24m": 30},  # worst DPD without an overdue month
        {"queries_3m": -1},
        {"months_since_oldest_account": None},
        {"current_overdue_days": 40, "current_overdue_fen": 2_000_000, "worst_dpd_24m": 40},
    ],
)
def test_inconsistent_reports_are_refused(change: dict[str, Any]) -> None:
    _refused(lambda: replace(CLEAN, **change), "credit_report")


def test_a_current_delinquency_needs_a_worst_dpd_as_bad() -> None:
    current = {"current_overdue_days": 95, "current_overdue_fen": 150_000, "overdue_months_24m": 4}
    _refused(lambda: replace(CLEAN, **current), "credit_report")
    ok = replace(CLEAN, **current, worst_dpd_24m=95)
    assert ok.current_overdue_days == 95


def test_channel_activity_is_checked() -> None:
    activity = ChannelActivity("wechat", 60, 80, 40, 400_000, 150, 800_000, BalanceBand.LOW)
    _refused(lambda: replace(activity, active_days_90d=91), "channel_activity")
    _refused(lambda: replace(activity, payment_count_90d=0), "channel_activity")
    _refused(lambda: replace(activity, income_estimate_monthly_fen=0), "channel_activity")
    assert replace(activity, income_estimate_monthly_fen=None).income_estimate_monthly_fen is None


def test_location_holder_check_and_id_card_are_checked() -> None:
    _refused(lambda: Location(91.0, 120.0, "上海市", "310101"), "location")
    _refused(lambda: Location(31.0, 121.0, "上海市", "3101"), "location")
    _refused(lambda: HolderCheck(True, "card.unknown"), "holder_verification")
    _refused(lambda: HolderCheck(False, "ok"), "holder_verification")
    _refused(
        lambda: IdCardFields(
            "张三", "M", "汉", date(1990, 1, 1), "x", "1", "y", date(2020, 1, 1), date(2019, 1, 1)
        ),
        "ocr",
    )


def test_the_simulated_adapters_satisfy_the_ports(world: SimulatedWorld) -> None:
    assert isinstance(world.credit_report, CreditReportPort)
    assert isinstance(world.channel_activity, ChannelActivityPort)
    assert isinstance(world.device, DevicePort)
    assert isinstance(world.location, LocationPort)
    assert isinstance(world.holder_verification, HolderVerificationPort)
    assert isinstance(world.ocr, OcrPort)
