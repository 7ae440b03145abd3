"""Credit policy (access-and-decisions §3): knock-outs, fraud signals, grade, price and line.

Pure: everything the policy needs arrives as plain values (``Evidence``, a score), so a decision
can be replayed from its stored record. Order: knock-outs decline first; then fraud signals
(a strong one declines, the others send the application to manual review); then the grade from
the PD; then the line from grade, repayment capacity and channel activity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from microloan.domain.money import format_yuan
from microloan.domain.rates import DailyRate, format_percent_bp100
from microloan.domain.schedule import Method, apr_bp100, capped_schedule

PPM = 1_000_000
LINE_STEP_FEN = 10_000  # lines are whole hundreds of yuan


class Outcome(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    REVIEW = "review"


@dataclass(frozen=True, slots=True)
class GradeBand:
    """A risk grade: the PD it admits, its daily rate, its largest line, months of capacity."""

    grade: str
    max_pd_ppm: int
    rate: DailyRate
    max_line_fen: int
    capacity_months: int


def _rate(text: str) -> DailyRate:
    return DailyRate.parse(text)


# The default table: from 0.000083 a day for the best grade to 0.00066 for the worst approved.
DEFAULT_GRADES = (
    GradeBand("A", 5_000, _rate("0.000083"), 20_000_000, 12),
    GradeBand("B", 10_000, _rate("0.00012"), 10_000_000, 10),
    GradeBand("C", 20_000, _rate("0.0002"), 5_000_000, 8),
    GradeBand("D", 40_000, _rate("0.0003"), 3_000_000, 6),
    GradeBand("E", 70_000, _rate("0.00045"), 1_500_000, 4),
    GradeBand("F", 120_000, _rate("0.00066"), 800_000, 3),
)


@dataclass(frozen=True, slots=True)
class Policy:
    grades: tuple[GradeBand, ...] = DEFAULT_GRADES
    min_line_fen: int = 50_000  # 500 yuan: below it the application is declined
    max_line_fen: int = 20_000_000  # 200,000 yuan
    # pricing check, in basis points a year (1 % = 100), as DailyRate.annual_simple_bp100 gives
    lgd_ppm: int = 600_000  # loss given default 60 %
    funding_bp: int = 200  # funding cost 2 % a year
    operating_bp: int = 50  # operating cost 0.5 % a year
    # knock-outs
    serious_delinquency_days: int = 90
    # fraud signals
    shared_device_review: int = 2  # other customers seen on the device → review
    shared_device_decline: int = 4  # … → decline
    velocity_window_hours: int = 24
    velocity_review: int = 3  # applications from one device in the window → review
    far_km: float = 800.0  # from the nearest usual location → review
    travel_kmh: float = 900.0  # faster than an airliner since the last application → review
    example_term_months: int = 12

    def __post_init__(self) -> None:
        pds = [g.max_pd_ppm for g in self.grades]
        assert pds == sorted(pds) and len(set(pds)) == len(pds), "grades by rising PD"

    def grade_for(self, pd_ppm: int) -> GradeBand | None:
        for band in self.grades:
            if pd_ppm <= band.max_pd_ppm:
                return band
        return None


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the knock-outs and fraud rules read, gathered by the service from ports and the
    platform's own records."""

    identity_valid: bool
    age_in_range: bool
    report_current_overdue_days: int | None  # None: no report (no record)
    blocked: tuple[str, ...] = ()  # blocked-list kinds matched: id_number, phone, card, device
    platform_overdue: bool = False  # overdue on this platform now
    device_known: bool = True
    emulator: bool = False
    rooted: bool = False
    device_other_customers: int = 0
    device_applications_in_window: int = 0
    km_from_usual: float | None = None
    travel_kmh: float | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    code: str
    action: str  # decline | review
    detail: str


def knock_outs(e: Evidence, policy: Policy) -> list[str]:
    """Rules that decline before any score is looked at."""
    out = []
    if not e.identity_valid:
        out.append("ko.identity.invalid")
    if not e.age_in_range:
        out.append("ko.age.out_of_range")
    overdue = e.report_current_overdue_days
    if overdue is not None and overdue >= policy.serious_delinquency_days:
        out.append("ko.report.serious_delinquency")
    out += [f"ko.blocked.{kind}" for kind in e.blocked]
    if e.platform_overdue:
        out.append("ko.platform.overdue")
    return out


def fraud_signals(e: Evidence, policy: Policy) -> list[Signal]:
    out = []
    if not e.device_known:
        out.append(Signal("fraud.device.unknown", "decline", "device never registered"))
    if e.emulator:
        out.append(Signal("fraud.device.emulator", "decline", "application from an emulator"))
    if e.rooted:
        out.append(Signal("fraud.device.rooted", "review", "rooted or jailbroken device"))
    shared = e.device_other_customers
    if shared >= policy.shared_device_decline:
        out.append(Signal("fraud.device.shared", "decline", f"{shared} other customers"))
    elif shared >= policy.shared_device_review:
        out.append(Signal("fraud.device.shared", "review", f"{shared} other customers"))
    if e.device_applications_in_window >= policy.velocity_review:
        out.append(
            Signal(
                "fraud.velocity.device",
                "review",
                f"{e.device_applications_in_window} applications in "
                f"{policy.velocity_window_hours} h",
            )
        )
    if e.km_from_usual is not None and e.km_from_usual > policy.far_km:
        out.append(
            Signal("fraud.location.far", "review", f"{e.km_from_usual:.0f} km from usual places")
        )
    if e.travel_kmh is not None and e.travel_kmh > policy.travel_kmh:
        out.append(
            Signal("fraud.location.travel", "review", f"implied travel {e.travel_kmh:.0f} km/h")
        )
    return out


def activity_scale_pct(months_active: int | None, active_days_90d: int | None) -> int:
    """How far channel activity scales the line, in percent (an unknown user gets half)."""
    if months_active is None or active_days_90d is None:
        return 50
    if months_active >= 24 and active_days_90d >= 60:
        return 120
    if months_active >= 12 and active_days_90d >= 30:
        return 100
    if months_active >= 6:
        return 80
    return 60


def line_fen(band: GradeBand, capacity_fen: int | None, scale_pct: int, policy: Policy) -> int:
    """Grade cap ∧ months of capacity, scaled by activity, floored to 100 yuan (0: none)."""
    ceiling = min(band.max_line_fen, policy.max_line_fen)
    if capacity_fen is None:
        base = ceiling // 4  # no income estimate: a quarter of the grade's line
    else:
        base = min(ceiling, max(capacity_fen, 0) * band.capacity_months)
    scaled = min(ceiling, base * scale_pct // 100)
    return scaled // LINE_STEP_FEN * LINE_STEP_FEN


@dataclass(frozen=True, slots=True)
class Offer:
    limit_fen: int
    rate: DailyRate
    example_apr_bp100: int

    def view(self) -> dict[str, str]:
        return {
            "limit": format_yuan(self.limit_fen),
            "daily_rate": str(self.rate),
            "annual_simple_rate": format_percent_bp100(self.rate.annual_simple_bp100()),
            "apr_example": format_percent_bp100(self.example_apr_bp100),
        }


def example_apr_bp100(limit_fen: int, rate: DailyRate, term: int, on: date) -> int:
    """The APR of the offer's example: the whole line over ``term`` months, equal principal."""
    schedule = capped_schedule(limit_fen, term, rate, Method.EQUAL_PRINCIPAL, on)
    return apr_bp100(limit_fen, schedule.totals)


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[str, ...]
    grade: str | None = None
    offer: Offer | None = None
    signals: tuple[Signal, ...] = ()
    flags: tuple[str, ...] = field(default=())


def below_cost(rate: DailyRate, pd_ppm: int, policy: Policy) -> bool:
    """True when the rate does not cover expected loss (PD × LGD) plus funding and operating."""
    expected_loss_bp = pd_ppm * policy.lgd_ppm // (PPM * 100)
    return rate.annual_simple_bp100() < expected_loss_bp + policy.funding_bp + policy.operating_bp


def decide(
    e: Evidence,
    *,
    pd_ppm: int | None,
    score_reasons: tuple[str, ...],
    capacity_fen: int | None,
    scale_pct: int,
    on: date,
    policy: Policy,
) -> Verdict:
    """The policy's verdict. ``pd_ppm`` is None only when a knock-out made scoring pointless."""
    kos = knock_outs(e, policy)
    if kos:
        return Verdict(Outcome.DECLINED, tuple(kos))
    signals = tuple(fraud_signals(e, policy))
    strong = tuple(s.code for s in signals if s.action == "decline")
    if strong:
        return Verdict(Outcome.DECLINED, strong, signals=signals)
    assert pd_ppm is not None, "a decision past the knock-outs has a score"
    band = policy.grade_for(pd_ppm)
    if band is None:
        return Verdict(Outcome.DECLINED, ("score.pd_above_cutoff", *score_reasons))
    limit = line_fen(band, capacity_fen, scale_pct, policy)
    if limit < policy.min_line_fen:
        return Verdict(Outcome.DECLINED, ("line.below_minimum", *score_reasons), grade=band.grade)
    offer = Offer(
        limit, band.rate, example_apr_bp100(limit, band.rate, policy.example_term_months, on)
    )
    flags = ("pricing.below_cost",) if below_cost(band.rate, pd_ppm, policy) else ()
    if signals:
        review_codes = tuple(s.code for s in signals)
        return Verdict(
            Outcome.REVIEW, review_codes, band.grade, offer, signals=signals, flags=flags
        )
    return Verdict(Outcome.APPROVED, score_reasons, band.grade, offer, flags=flags)
