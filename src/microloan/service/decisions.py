"""The credit decision ("apply") (access-and-decisions §3).

An application reads the customer's own records in one short read, asks the providers (credit
report — only with a live authorisation —, channel activity of every channel the customer has,
device, location) outside any transaction, scores with the channel's active scorecard, applies
the policy, and then writes the decision record, and the line or the review case, in one
transaction. The record keeps everything needed to explain and replay the decision: inputs,
model version, points per characteristic, reasons, fraud signals, policy flags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, date
from typing import Any

import sqlalchemy as sa

from microloan.decisions import features as F
from microloan.decisions.policy import (
    Evidence,
    Outcome,
    Policy,
    Verdict,
    activity_scale_pct,
    decide,
)
from microloan.decisions.scorecard import Scorecard, ScoreResult
from microloan.domain.line import LineStatus
from microloan.domain.money import format_yuan
from microloan.domain.rates import DailyRate
from microloan.errors import NotFound, RuleViolation
from microloan.providers.ports import (
    ChannelActivity,
    CreditReport,
    DeviceInfo,
    Location,
    ProviderError,
)
from microloan.service import models
from microloan.service.clock import clock_columns, read_clock
from microloan.service.decision_context import (
    E6,
    POLICY,
    Context,
    age_on,
    clock_of,
    distance_km,
    read_context,
)
from microloan.service.platform import Platform
from microloan.store.prepared import Prepared
from microloan.store.schema import (
    Id,
    channel_identity,
    credit_line,
    decision,
    referral,
    review_case,
)


@dataclass(frozen=True)
class Assessment:
    """Everything one decision computed, before anything is written."""

    ctx: Context
    row: dict[str, Any]  # the characteristics as scored
    result: ScoreResult | None
    verdict: Verdict
    device: DeviceInfo | None
    place: Location | None
    report_found: bool | None


def _device_and_place(
    p: Platform, device_id: str | None
) -> tuple[DeviceInfo | None, bool, Location | None]:
    if device_id is None:
        return None, True, None
    try:
        device = p.providers.device.inspect(device_id)
    except ProviderError as exc:
        if exc.code != "provider.device.unknown":
            raise
        return None, False, None
    return device, True, p.providers.location.locate(device_id)


@dataclass(frozen=True)
class Answers:
    """What the providers said about one applicant."""

    report: CreditReport | None  # None: not queried (no live authorisation)
    activities: dict[str, ChannelActivity | None]  # every channel the customer has
    device: DeviceInfo | None
    device_known: bool
    place: Location | None


def ask_providers(p: Platform, ctx: Context, *, with_device: bool = True) -> Answers:
    """The credit report (only with a live authorisation), every channel's activity, the device
    and its location."""
    prov = p.providers
    report = prov.credit_report.fetch(ctx.id_number, ctx.name) if ctx.report_authorised else None
    activities = {ch: prov.channel_activity.activity(ch, oid) for ch, oid in ctx.identities.items()}
    device, known, place = _device_and_place(p, ctx.device_id if with_device else None)
    return Answers(report, activities, device, known, place)


def judge(
    ctx: Context,
    answers: Answers,
    card: Scorecard,
    *,
    age_min: int,
    age_max: int,
    policy: Policy = POLICY,
) -> Assessment:
    """Features → score → policy: pure, from what was read and what the providers said."""
    report, activities, place = answers.report, answers.activities, answers.place
    device = answers.device
    age = age_on(ctx.birth_date, ctx.today)
    km_from_usual = travel = None
    if place is not None:
        here = (place.lat, place.lon)
        if ctx.usual_places:
            km_from_usual = min(distance_km(here, u) for u in ctx.usual_places)
        if ctx.last_place is not None:
            then = ctx.last_place[2]
            if then.tzinfo is None:  # SQLite gives back the UTC time without its zone
                then = then.replace(tzinfo=UTC)
            hours = max((ctx.now - then).total_seconds() / 3600, 1 / 60)
            travel = distance_km(here, ctx.last_place[:2]) / hours
    evidence = Evidence(
        identity_valid=True,
        age_in_range=age_min <= age <= age_max,
        report_current_overdue_days=(
            report.current_overdue_days if report is not None and report.found else None
        ),
        blocked=ctx.blocked,
        platform_overdue=ctx.platform_overdue,
        device_known=answers.device_known,
        emulator=bool(device and device.emulator),
        rooted=bool(device and device.rooted),
        device_other_customers=ctx.device_other_customers,
        device_applications_in_window=ctx.device_applications,
        km_from_usual=km_from_usual,
        travel_kmh=travel,
    )
    row = F.characteristics(
        channel=ctx.channel, age=age, report=report, activities=activities, history=ctx.history
    )
    result = card.score(row)
    applying = activities.get(ctx.channel)
    verdict = decide(
        evidence,
        pd_ppm=round(result.pd * 1_000_000),
        score_reasons=result.reasons,
        capacity_fen=F.capacity_fen(channel=ctx.channel, report=report, activities=activities),
        scale_pct=activity_scale_pct(
            None if applying is None else applying.months_active,
            None if applying is None else applying.active_days_90d,
        ),
        on=ctx.today,
        policy=policy,
    )
    return Assessment(
        ctx, row, result, verdict, device, place, None if report is None else report.found
    )


def assess(
    p: Platform, ctx: Context, *, policy: Policy = POLICY, with_device: bool = True
) -> Assessment:
    """Ask the providers, score, and apply the policy; writes nothing."""
    answers = ask_providers(p, ctx, with_device=with_device)
    card = models.serving_scorecard(p, ctx.channel, ctx.model_version)
    s = p.settings
    return judge(ctx, answers, card, age_min=s.age_min, age_max=s.age_max, policy=policy)


def _plain(record: Any) -> dict[str, Any]:
    """``dataclasses.asdict`` of a dataclass of plain values, without its deep copies."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def _record(a: Assessment, kind: str) -> dict[str, Any]:
    v, r = a.verdict, a.result
    return {
        "inputs": a.row,
        "report_found": a.report_found,
        "device": None if a.device is None else _plain(a.device),
        "location": None if a.place is None else _plain(a.place),
        "history": _plain(a.ctx.history),
        "points": None if r is None else r.points,
        "bins": None if r is None else r.bins,
        "score_reasons": None if r is None else list(r.reasons),
        "signals": [_plain(s) for s in v.signals],
        "flags": list(v.flags),
        "kind": kind,
    }


_DECISION_COLUMNS = (
    "customer_id",
    "channel",
    "kind",
    "outcome",
    "grade",
    "score",
    "pd_ppm",
    "limit_fen",
    "rate_units",
    "model_version",
    "reasons",
    "record",
    "device_id",
    "lat_e6",
    "lon_e6",
    "business_date",
    "created_at",
)
_INSERT_DECISION = decision.insert().returning(decision.c.decision_id)
_NEW_CUSTOMER_ID = sa.bindparam("customer_id", type_=Id)
# An application's decision is written only while the customer holds no line (else no row comes
# back), and returns with it the business date and whether a share invitation waits to be
# settled for one of the customer's identities (rarely: most come from a white list).
_INSERT_APPLICATION = (
    decision.insert()
    .from_select(
        _DECISION_COLUMNS,
        sa.select(
            *(sa.bindparam(name, type_=decision.c[name].type) for name in _DECISION_COLUMNS)
        ).where(~sa.exists().where(credit_line.c.customer_id == _NEW_CUSTOMER_ID)),
    )
    .returning(
        decision.c.decision_id,
        *clock_columns(),
        # one table per subquery: SQLite's RETURNING leaves column names unqualified
        sa.exists()
        .where(
            referral.c.status == "pending",
            sa.tuple_(referral.c.channel, referral.c.invitee_open_id).in_(
                sa.select(channel_identity.c.channel, channel_identity.c.open_id).where(
                    channel_identity.c.customer_id == _NEW_CUSTOMER_ID
                )
            ),
        )
        .label("referred"),
    )
)
_INSERT_LINE = Prepared(credit_line.insert())
_INSERT_CASE = Prepared(review_case.insert())
_APPLICATION = Prepared(_INSERT_APPLICATION)


def _decision_row(a: Assessment, kind: str) -> dict[str, Any]:
    v, r = a.verdict, a.result
    offer = v.offer
    return {
        "customer_id": a.ctx.customer_id,
        "channel": a.ctx.channel,
        "kind": kind,
        "outcome": v.outcome.value,
        "grade": v.grade,
        "score": None if r is None else r.score,
        "pd_ppm": None if r is None else round(r.pd * 1_000_000),
        "limit_fen": None if offer is None else offer.limit_fen,
        "rate_units": None if offer is None else offer.rate.units,
        "model_version": None if r is None else r.version,
        "reasons": json.dumps(list(v.reasons)),
        "record": json.dumps(_record(a, kind), ensure_ascii=False, default=str),
        "device_id": a.ctx.device_id,
        "lat_e6": None if a.place is None else round(a.place.lat * E6),
        "lon_e6": None if a.place is None else round(a.place.lon * E6),
        "business_date": a.ctx.today,
        "created_at": a.ctx.now,
    }


def _insert_decision(conn: sa.Connection, a: Assessment, kind: str) -> int:
    return int(conn.execute(_INSERT_DECISION, _decision_row(a, kind)).scalar_one())


def _grant(
    conn: sa.Connection,
    p: Platform,
    customer_id: int,
    limit_fen: int,
    rate_units: int,
    *,
    on: date | None = None,
    referred: bool = True,
) -> None:
    """The line, and the referral settled on the business date ``on`` (read when None);
    ``referred=False`` says that no referral waits, so there is nothing to settle."""
    _INSERT_LINE.run(
        conn,
        {
            "customer_id": customer_id,
            "limit_fen": limit_fen,
            "rate_units": rate_units,
            "status": LineStatus.ACTIVE.value,
            "outstanding_principal_fen": 0,
            "pending_principal_fen": 0,
            "open_loans": 0,
            "overdue_blocked": False,
            "updated_at": p.now(),
        },
    )
    if not referred:
        return
    from microloan.service.invitations import settle_referral

    settle_referral(conn, p, customer_id, read_clock(conn, p.now).open_date if on is None else on)


def _answer(decision_id: int, a: Assessment) -> dict[str, Any]:
    v, r = a.verdict, a.result
    out: dict[str, Any] = {
        "decision_id": decision_id,
        "customer_id": a.ctx.customer_id,
        "channel": a.ctx.channel,
        "outcome": v.outcome.value,
        "approved": v.outcome is Outcome.APPROVED,
        "limit": None,
        "daily_rate": None,
        "annual_simple_rate": None,
        "apr_example": None,
        "grade": v.grade,
        "score": None if r is None else r.score,
        "pd": None if r is None else f"{r.pd:.4f}",
        "reasons": list(v.reasons),
        "signals": [s.code for s in v.signals],
        "flags": list(v.flags),
        "model_version": None if r is None else r.version,
    }
    if v.offer is not None and v.outcome is Outcome.APPROVED:
        out.update(v.offer.view())
    return out


def apply(
    p: Platform, customer_id: int, channel: str, *, device_id: str | None = None
) -> dict[str, Any]:
    """Decide a line and a rate for an onboarded customer applying through ``channel``."""
    ctx = read_context(p, customer_id, channel, device_id)
    if ctx.has_line:
        raise RuleViolation(
            f"customer {customer_id} already has a line; re-scoring reviews it",
            code="line.exists",
            field="customer",
        )
    a = assess(p, ctx)

    def work(conn: sa.Connection) -> dict[str, Any]:
        written = _APPLICATION.first(conn, _decision_row(a, "apply"))
        if written is None:
            raise RuleViolation(
                f"customer {customer_id} already has a line", code="line.exists", field="customer"
            )
        decision_id = int(written.decision_id)
        v = a.verdict
        if v.outcome is Outcome.APPROVED and v.offer is not None:
            limit, rate = v.offer.limit_fen, v.offer.rate.units
            on = clock_of(conn, p, written).open_date
            _grant(conn, p, customer_id, limit, rate, on=on, referred=written.referred)
        elif v.outcome is Outcome.REVIEW:
            _INSERT_CASE.run(
                conn,
                {
                    "decision_id": decision_id,
                    "customer_id": customer_id,
                    "status": "open",
                    "signals": json.dumps([_plain(s) for s in v.signals], ensure_ascii=False),
                    "opened_at": a.ctx.now,
                },
            )
        return _answer(decision_id, a)

    return p.transaction(work)


def show_decision(p: Platform, decision_id: int) -> dict[str, Any]:
    with p.engine.connect() as conn:
        row = conn.execute(sa.select(decision).where(decision.c.decision_id == decision_id)).first()
    if row is None:
        raise NotFound(f"no decision {decision_id}", field="decision")
    return {
        "decision_id": row.decision_id,
        "customer_id": row.customer_id,
        "channel": row.channel,
        "kind": row.kind,
        "outcome": row.outcome,
        "grade": row.grade,
        "score": row.score,
        "pd": None if row.pd_ppm is None else f"{row.pd_ppm / 1_000_000:.4f}",
        "limit": None if row.limit_fen is None else format_yuan(row.limit_fen),
        "daily_rate": None if row.rate_units is None else str(DailyRate(row.rate_units)),
        "model_version": row.model_version,
        "reasons": json.loads(row.reasons),
        "record": json.loads(row.record),
        "business_date": row.business_date.isoformat(),
    }
