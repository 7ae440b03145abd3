"""The ports the credit decision reads its inputs through (access-and-decisions §2–§3), and what
they return.

Each port is a ``typing.Protocol``: the decision service depends on these, never on an adapter.
``providers.simulated`` holds the adapters that read the synthetic population; a real provider's
adapter must meet the contract written on each port (and in ``docs/providers.md``).

Conventions, for every port:
- money is ``int`` fen, never float; dates are ``datetime.date``; counts are ``int`` ≥ 0;
- what a provider returns is checked on arrival (``__post_init__``): a value that breaks an
  invariant raises ``ProviderError`` with code ``provider.<port>.invalid`` — a bad answer is the
  provider's failure, not a number to score;
- a provider that cannot answer (timeout, outage, refusal) raises ``ProviderError`` with code
  ``provider.<port>.<reason>``, e.g. ``provider.credit_report.unavailable``;
- "nothing known" is a value (``CreditReport.found=False``, ``None`` for activity or location),
  never an error and never a made-up number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from microloan.errors import MicroloanError


class ProviderError(MicroloanError):
    """A provider could not answer, or answered something that breaks its contract.

    ``code`` is ``provider.<port>.<reason>``: ports are ``credit_report``, ``channel_activity``,
    ``device``, ``location``, ``holder_verification`` and ``ocr``; reasons include ``unavailable``
    (timeout or outage: retry later), ``invalid`` (an answer that breaks the contract),
    ``unreadable`` (OCR), ``unknown`` (an id the provider has never seen) and ``name_mismatch``.
    """

    code = "provider.error"


def provider_error(port: str, reason: str, message: str) -> ProviderError:
    return ProviderError(message, code=f"provider.{port}.{reason}")


def _require(ok: bool, port: str, message: str) -> None:
    if not ok:
        raise provider_error(port, "invalid", message)


# ---------------------------------------------------------------------------------------------
# Credit report (征信报告)


@dataclass(frozen=True, slots=True)
class CreditReport:
    """The central-bank credit report as the decision needs it; ``found=False`` is no record.

    A person with no record (a first-time borrower, 首贷户) has every count zero and
    ``months_since_oldest_account`` ``None``; that alone never declines.
    """

    found: bool
    accounts: int  # credit accounts ever opened (loans and cards)
    open_accounts: int
    total_balance_fen: int  # outstanding on open accounts
    monthly_obligations_fen: int  # scheduled monthly repayments across open accounts
    current_overdue_days: int  # days past due of the worst currently delinquent account, 0 if none
    current_overdue_fen: int  # amount currently past due
    overdue_months_24m: int  # months with any overdue in the last 24 months (0–24)
    worst_dpd_24m: int  # worst days past due in the last 24 months
    queries_3m: int  # hard inquiries (loan and card applications) in the last 3 months
    months_since_oldest_account: int | None  # None when there is no account

    def __post_init__(self) -> None:
        port = "credit_report"
        counts = (
            self.accounts,
            self.open_accounts,
            self.total_balance_fen,
            self.monthly_obligations_fen,
            self.current_overdue_days,
            self.current_overdue_fen,
            self.overdue_months_24m,
            self.worst_dpd_24m,
            self.queries_3m,
        )
        _require(all(c >= 0 for c in counts), port, "counts and amounts must not be negative")
        if not self.found:
            _require(
                not any(counts) and self.months_since_oldest_account is None,
                port,
                "a report with no record has no accounts, amounts or queries",
            )
            return
        _require(self.open_accounts <= self.accounts, port, "more open accounts than accounts")
        _require(self.overdue_months_24m <= 24, port, "overdue months in 24 months exceed 24")
        _require(
            (self.current_overdue_days > 0) == (self.current_overdue_fen > 0),
            port,
            "overdue days and overdue amount must be both zero or both positive",
        )
        _require(
            self.current_overdue_days == 0 or self.open_accounts > 0,
            port,
            "a current overdue needs an open account",
        )
        _require(
            self.current_overdue_fen <= self.total_balance_fen,
            port,
            "the overdue amount exceeds the balance",
        )
        _require(
            self.worst_dpd_24m >= min(self.current_overdue_days, 730),
            port,
            "the worst DPD in 24 months is below the current DPD",
        )
        _require(
            (self.overdue_months_24m > 0) == (self.worst_dpd_24m > 0),
            port,
            "overdue months and worst DPD must be both zero or both positive",
        )
        _require(
            (self.accounts == 0) == (self.months_since_oldest_account is None),
            port,
            "months since the oldest account is known exactly when there are accounts",
        )

    @classmethod
    def no_record(cls) -> CreditReport:
        return cls(
            found=False,
            accounts=0,
            open_accounts=0,
            total_balance_fen=0,
            monthly_obligations_fen=0,
            current_overdue_days=0,
            current_overdue_fen=0,
            overdue_months_24m=0,
            worst_dpd_24m=0,
            queries_3m=0,
            months_since_oldest_account=None,
        )


@runtime_checkable
class CreditReportPort(Protocol):
    """The central-bank credit report (中国人民银行征信中心, through the lending bank's access).

    Contract: the caller holds a live credit-report authorisation (consent) for this person
    before calling; an unknown person is ``found=False`` (not an error); a name that does not
    match the identity number raises ``provider.credit_report.name_mismatch``; a timeout or
    outage raises ``provider.credit_report.unavailable``. Expected latency: p99 under 300 ms.
    Each call is a hard inquiry and shows in the person's ``queries_3m`` from then on.
    """

    def fetch(self, id_number: str, name: str) -> CreditReport: ...


# ---------------------------------------------------------------------------------------------
# Channel activity (社交数据)


class BalanceBand(StrEnum):
    """How much the person keeps in the channel's wallet (零钱), as a band, never an amount."""

    NONE = "none"
    LOW = "low"  # under 1,000 yuan
    MEDIUM = "medium"  # 1,000–10,000 yuan
    HIGH = "high"  # over 10,000 yuan


@dataclass(frozen=True, slots=True)
class ChannelActivity:
    """One channel's view of one user: social and payment activity over the last 90 days."""

    channel: str
    months_active: int  # months since the account was opened
    active_days_90d: int  # days with any activity in the last 90 (0–90)
    payment_count_90d: int
    payment_volume_90d_fen: int
    contacts: int
    income_estimate_monthly_fen: int | None  # the channel's estimate; None when it has none
    balance_band: BalanceBand

    def __post_init__(self) -> None:
        port = "channel_activity"
        _require(
            min(self.months_active, self.payment_count_90d, self.contacts) >= 0,
            port,
            "counts must not be negative",
        )
        _require(0 <= self.active_days_90d <= 90, port, "active days in 90 must be 0–90")
        _require(
            self.payment_volume_90d_fen >= 0
            and (self.payment_count_90d > 0 or self.payment_volume_90d_fen == 0),
            port,
            "payment volume must be non-negative and zero without payments",
        )
        _require(
            self.income_estimate_monthly_fen is None or self.income_estimate_monthly_fen > 0,
            port,
            "an income estimate must be positive",
        )


@runtime_checkable
class ChannelActivityPort(Protocol):
    """The channel's (WeChat, QQ) social and payment activity of one of its users.

    Contract: ``channel`` is a configured channel name (``wechat``, ``qq``); ``open_id`` is the
    channel's opaque id of the user for this platform. An open id the channel does not know, or a
    user who has not authorised sharing, is ``None``. Outage: ``provider.channel_activity.
    unavailable``. Expected latency: p99 under 100 ms (the channel is in-house).
    """

    def activity(self, channel: str, open_id: str) -> ChannelActivity | None: ...


# ---------------------------------------------------------------------------------------------
# Device and location


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the device-fingerprint SDK reports of the device an application comes from."""

    device_id: str
    fingerprint: str  # stable hash of hardware and software traits
    os: Literal["android", "ios"]
    os_version: str
    emulator: bool
    rooted: bool  # rooted (Android) or jailbroken (iOS)


@runtime_checkable
class DevicePort(Protocol):
    """Device fingerprint and integrity flags.

    Contract: a device id the SDK never registered raises ``provider.device.unknown`` (a strong
    fraud signal for the caller); outage ``provider.device.unavailable``. p99 under 50 ms.
    """

    def inspect(self, device_id: str) -> DeviceInfo: ...


@dataclass(frozen=True, slots=True)
class Location:
    """A device's current position (LBS), WGS-84 degrees, with the city it falls in."""

    lat: float
    lon: float
    city: str  # e.g. 深圳市
    region_code: str  # the 6-digit administrative division code of the district

    def __post_init__(self) -> None:
        _require(
            -90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0,
            "location",
            "latitude or longitude out of range",
        )
        _require(
            len(self.region_code) == 6 and self.region_code.isdigit(),
            "location",
            "region code must be 6 digits",
        )


@runtime_checkable
class LocationPort(Protocol):
    """The device's current position. ``None`` when unknown (permission refused, no fix).

    Outage: ``provider.location.unavailable``. p99 under 50 ms.
    """

    def locate(self, device_id: str) -> Location | None: ...


# ---------------------------------------------------------------------------------------------
# Payment rail: card-holder verification (issue 4 extends the rail with disbursement and debit)


@dataclass(frozen=True, slots=True)
class HolderCheck:
    """The rail's answer to "does this card belong to this person?" with a stable reason code.

    Reasons: ``ok``, ``card.unknown``, ``holder.name_mismatch``, ``holder.id_mismatch``,
    ``holder.phone_mismatch``.
    """

    matched: bool
    reason: str

    def __post_init__(self) -> None:
        _require(
            self.matched == (self.reason == "ok"),
            "holder_verification",
            "matched exactly when the reason is ok",
        )


@runtime_checkable
class HolderVerificationPort(Protocol):
    """Card-holder verification (银行卡四要素验证: card, name, identity number, reserved phone).

    Contract: answers for any syntactically valid card number; a card the rail does not know is
    ``matched=False, reason="card.unknown"``; never raises for a mismatch. Outage:
    ``provider.holder_verification.unavailable``. p99 under 1 s. The payment rail port of issue 4
    (disbursement, debit) extends this Protocol: ``class PaymentRailPort(HolderVerificationPort,
    Protocol)``.
    """

    def verify_holder(
        self, card_number: str, name: str, id_number: str, phone: str
    ) -> HolderCheck: ...


# ---------------------------------------------------------------------------------------------
# OCR of the resident identity card


@dataclass(frozen=True, slots=True)
class IdCardFields:
    """The fields printed on a resident identity card (居民身份证), front and back."""

    name: str
    sex: Literal["M", "F"]
    ethnicity: str  # 民族, e.g. 汉
    birth_date: date
    address: str
    id_number: str
    issuing_authority: str  # 签发机关, e.g. 深圳市公安局南山分局
    valid_from: date
    valid_until: date | None  # None: 长期 (long-term, issued from age 46)

    def __post_init__(self) -> None:
        _require(bool(self.name) and bool(self.id_number), "ocr", "name and number are required")
        _require(
            self.valid_until is None or self.valid_until > self.valid_from,
            "ocr",
            "valid until must follow valid from",
        )


@runtime_checkable
class OcrPort(Protocol):
    """Reads an ID-card photo (PNG or JPEG bytes).

    Contract: returns every field or raises ``provider.ocr.unreadable`` (not an ID card, blurred,
    truncated); never guesses a field. The caller still checks the number (GB 11643) and that
    the birth date and sex agree with it. Outage: ``provider.ocr.unavailable``. p99 under 2 s.
    """

    def read_id_card(self, image: bytes) -> IdCardFields: ...
