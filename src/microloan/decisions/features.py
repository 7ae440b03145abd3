"""The characteristics the scorecard reads (access-and-decisions §3), computed from what the
ports return. One function, ``characteristics``, serves both the live decision and the training
table (``microloan population history``), so a model is trained on exactly what it will see.

Channel-aware: the applying channel's activity is ``app_*``, the other channels' is ``other_*``
(the best of them), so a scorecard can weigh the applying channel more. Missing data is ``None``
(the scorecard gives it its own bin), never a made-up number.

==========================  ======  ==========================================================
characteristic              type    meaning (None when …)
==========================  ======  ==========================================================
age                         int     age in whole years on the decision date
report_status               str     ``none`` (no record: first-time borrower), ``clean``,
                                    ``past_delinquency`` (overdue in the last 24 months, none
                                    now), ``current_delinquency`` (… report not fetched)
report_queries_3m           int     hard inquiries in the last 3 months (… no report fetched)
report_open_accounts        int     open credit accounts (… no report fetched)
report_months_history       int     months since the oldest account (… no account or report)
report_overdue_months_24m   int     months with an overdue in the last 24 (… no report)
debt_to_income              float   monthly obligations over the monthly income estimate,
                                    4 decimals; 0.0 with no record (… income or report
                                    unknown)
app_months_active           int     applying channel: months since the account was opened
app_active_days_90d         int     applying channel: active days in the last 90
app_payment_count_90d       int     applying channel: payments in the last 90 days
app_payment_volume_90d_fen  int     applying channel: payment volume in the last 90 days
app_contacts                int     applying channel: contacts
app_balance_band            str     applying channel: wallet balance band (none, low, medium,
                                    high) (every ``app_*`` … the channel returned nothing)
other_active_days_90d       int     other channels: the most active days in the last 90
other_payment_count_90d     int     other channels: the most payments in the last 90 days
                                    (every ``other_*`` … no other channel has activity)
platform_history            str     ``new`` (no loan with us yet), ``clean`` (never late),
                                    ``late`` (worst 1–29 days), ``delinquent`` (30+ days)
==========================  ======  ==========================================================

The income estimate is the applying channel's, else the mean of the other channels' estimates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from microloan.providers.ports import ChannelActivity, CreditReport

Value = float | int | str | None

# name → "numeric" | "categorical", in the order ``characteristics`` returns them
CHARACTERISTICS: dict[str, str] = {
    "age": "numeric",
    "report_status": "categorical",
    "report_queries_3m": "numeric",
    "report_open_accounts": "numeric",
    "report_months_history": "numeric",
    "report_overdue_months_24m": "numeric",
    "debt_to_income": "numeric",
    "app_months_active": "numeric",
    "app_active_days_90d": "numeric",
    "app_payment_count_90d": "numeric",
    "app_payment_volume_90d_fen": "numeric",
    "app_contacts": "numeric",
    "app_balance_band": "categorical",
    "other_active_days_90d": "numeric",
    "other_payment_count_90d": "numeric",
    "platform_history": "categorical",
}
FLOAT_CHARACTERISTICS = frozenset({"debt_to_income"})
REPORT_STATUSES = ("none", "clean", "past_delinquency", "current_delinquency")
PLATFORM_STATUSES = ("new", "clean", "late", "delinquent")
AFFORDABILITY_SHARE = Decimal("0.4")  # of monthly income that may go to repaying debt


@dataclass(frozen=True, slots=True)
class PlatformHistory:
    """The platform's own history of the customer; the default is a new customer."""

    loans: int = 0  # draws ever taken
    max_dpd_ever: int = 0  # worst days past due on any of them
    on_time_repayments: int = 0  # installments paid by their due date
    months_known: int = 0  # months since the customer's first line

    def __post_init__(self) -> None:
        assert min(self.loans, self.max_dpd_ever, self.on_time_repayments, self.months_known) >= 0
        assert self.loans > 0 or (self.max_dpd_ever == 0 and self.on_time_repayments == 0)

    @property
    def status(self) -> str:
        if self.loans == 0:
            return "new"
        if self.max_dpd_ever == 0:
            return "clean"
        return "late" if self.max_dpd_ever < 30 else "delinquent"


def characteristics(
    *,
    channel: str,
    age: int,
    report: CreditReport | None,
    activities: Mapping[str, ChannelActivity | None],
    history: PlatformHistory,
) -> dict[str, Value]:
    """The scorecard's inputs for one application through ``channel`` (see the module table).

    ``report`` is ``None`` when it was not fetched; ``activities`` maps every channel the
    customer has to what that channel returned (``None``: nothing), the applying one included.
    """
    assert age >= 0
    applying = activities.get(channel)
    others = [a for c, a in sorted(activities.items()) if c != channel and a is not None]
    values: dict[str, Value] = {"age": age}
    values |= _report_characteristics(report)
    values["debt_to_income"] = _debt_to_income(report, income_estimate_fen(channel, activities))
    values |= {
        "app_months_active": applying.months_active if applying else None,
        "app_active_days_90d": applying.active_days_90d if applying else None,
        "app_payment_count_90d": applying.payment_count_90d if applying else None,
        "app_payment_volume_90d_fen": applying.payment_volume_90d_fen if applying else None,
        "app_contacts": applying.contacts if applying else None,
        "app_balance_band": str(applying.balance_band) if applying else None,
        "other_active_days_90d": max((a.active_days_90d for a in others), default=None),
        "other_payment_count_90d": max((a.payment_count_90d for a in others), default=None),
        "platform_history": history.status,
    }
    assert list(values) == list(CHARACTERISTICS)
    return values


def _report_characteristics(report: CreditReport | None) -> dict[str, Value]:
    if report is None:
        return {
            "report_status": None,
            "report_queries_3m": None,
            "report_open_accounts": None,
            "report_months_history": None,
            "report_overdue_months_24m": None,
        }
    return {
        "report_status": report_status(report),
        "report_queries_3m": report.queries_3m,
        "report_open_accounts": report.open_accounts,
        "report_months_history": report.months_since_oldest_account,
        "report_overdue_months_24m": report.overdue_months_24m,
    }


def report_status(report: CreditReport) -> str:
    """``none`` / ``clean`` / ``past_delinquency`` / ``current_delinquency``."""
    if not report.found:
        return "none"
    if report.current_overdue_days > 0:
        return "current_delinquency"
    return "past_delinquency" if report.worst_dpd_24m > 0 else "clean"


def income_estimate_fen(
    channel: str, activities: Mapping[str, ChannelActivity | None]
) -> int | None:
    """The applying channel's monthly income estimate, else the others' mean (floored)."""
    applying = activities.get(channel)
    if applying is not None and applying.income_estimate_monthly_fen is not None:
        return applying.income_estimate_monthly_fen
    known = [
        a.income_estimate_monthly_fen
        for c, a in sorted(activities.items())
        if c != channel and a is not None and a.income_estimate_monthly_fen is not None
    ]
    return sum(known) // len(known) if known else None


def _debt_to_income(report: CreditReport | None, income_fen: int | None) -> float | None:
    if report is None or income_fen is None:
        return None
    assert income_fen > 0
    return round(report.monthly_obligations_fen / income_fen, 4)


def capacity_fen(
    *,
    channel: str,
    report: CreditReport | None,
    activities: Mapping[str, ChannelActivity | None],
    affordability_share: Decimal = AFFORDABILITY_SHARE,
) -> int | None:
    """Monthly repayment capacity left after the report's debts, in fen, never negative.

    ``floor(income estimate × affordability_share) − monthly obligations``; ``None`` when the
    income estimate or the report is unknown (the line cannot be sized without both).
    """
    assert Decimal(0) < affordability_share <= Decimal(1)
    income = income_estimate_fen(channel, activities)
    if income is None or report is None:
        return None
    affordable = int((Decimal(income) * affordability_share).to_integral_value(ROUND_FLOOR))
    return max(0, affordable - report.monthly_obligations_fen)
