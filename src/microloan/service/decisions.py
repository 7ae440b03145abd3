"""The credit decision ("apply"), manual review and re-scoring (access-and-decisions §3).

An application reads the customer's own records in one short read, asks the providers (credit
report — only with a live authorisation —, channel activity of every channel the customer has,
device, location) outside any transaction, scores with the channel's active scorecard, applies
the policy, and then writes the decision record, and the line or the review case, in one
transaction. The record keeps everything needed to explain and replay the decision: inputs,
model version, points per characteristic, reasons, fraud signals, policy flags.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
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
from microloan.domain.line import LineEvent, LineStatus, line_transition
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
from microloan.service import models, onboarding
from microloan.service.clock import ClockView, clock_columns, clock_view, read_clock
from microloan.service.operators import Operator, audit
from microloan.service.platform import Platform
from microloan.store.schema import (
    TS,
    Id,
    bank_card,
    blocked_list,
    channel_identity,
    consent,
    credit_line,
    customer,
    decision,
    identity,
    loan,
    model_version,
    onboarding_step,
    referral,
    repayment,
    review_case,
)
from microloan.store.schema import channel as channel_table

POLICY = Policy()
E6 = 1_000_000


@dataclass(frozen=True)
class Context:
    """What the platform itself knows of the applicant, read before the providers are asked."""

    customer_id: int
    channel: str
    name: str
    id_number: str
    birth_date: date
    today: date
    now: datetime
    identities: dict[str, str]  # channel → open id
    device_id: str | None
    history: F.PlatformHistory
    blocked: tuple[str, ...]
    platform_overdue: bool
    has_line: bool
    device_other_customers: int
    device_applications: int
    usual_places: tuple[tuple[float, float], ...]
    last_place: tuple[float, float, datetime] | None
    model_version: str | None  # the channel's serving scorecard when read; None: none active


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine, Earth radius 6,371 km)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


# -- what the platform knows: two statements, built once ----------------------------------------
#
# The applicant's own records (identity, consents, line, history, clock, the channel's serving
# scorecard) come in one row per channel identity; the device's fraud signals and the blocked
# lists in one more row, repeated on each of the customer's usual places. The checks then refuse
# in the order the onboarding rules give, with the errors of onboarding's own checks.

_CID = sa.bindparam("cid", type_=Id)
_CHANNEL = sa.bindparam("channel", type_=sa.String)
_DEVICE = sa.bindparam("device", type_=sa.String)


def _scalar(column: Any, *where: Any) -> Any:
    return sa.select(column).where(*where).scalar_subquery()


def _live_consent(kind: str) -> Any:
    return (
        sa.select(consent.c.version)
        .where(
            consent.c.customer_id == _CID,
            consent.c.kind == kind,
            consent.c.withdrawn_at.is_(None),
        )
        .order_by(consent.c.consent_id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _serving_version(channel_is: Any) -> Any:
    return (
        sa.select(model_version.c.version)
        .where(model_version.c.status == "active", channel_is)
        .order_by(model_version.c.version)
        .limit(1)
        .scalar_subquery()
    )


_ONE = sa.select(sa.literal(1).label("one")).subquery("one")  # a row even for no customer
_APPLICANT = sa.select(
    _scalar(channel_table.c.active, channel_table.c.code == _CHANNEL).label("channel_active"),
    identity.c.id_number_enc,
    identity.c.birth_date,
    customer.c.name,
    customer.c.created_at,
    _live_consent("credit_report").label("consent_credit_report"),
    _live_consent("sensitive_pi").label("consent_sensitive_pi"),
    channel_identity.c.channel,
    channel_identity.c.open_id,
    channel_identity.c.device_id,
    *clock_columns(),
    credit_line.c.customer_id.label("line_of"),
    credit_line.c.overdue_blocked,
    _scalar(sa.func.count(), loan.c.customer_id == _CID).label("loans"),
    _scalar(sa.func.coalesce(sa.func.max(loan.c.dpd), 0), loan.c.customer_id == _CID).label(
        "worst_dpd"
    ),
    # through the customer's loans, so that the repayment index serves it
    _scalar(
        sa.func.count(),
        repayment.c.customer_id == _CID,
        repayment.c.loan_id.in_(sa.select(loan.c.loan_id).where(loan.c.customer_id == _CID)),
    ).label("repayments"),
    _serving_version(model_version.c.channel == _CHANNEL).label("own_model"),
    _serving_version(model_version.c.channel.is_(None)).label("general_model"),
).select_from(
    _ONE.outerjoin(identity, identity.c.customer_id == _CID)
    .outerjoin(customer, customer.c.customer_id == identity.c.customer_id)
    .outerjoin(channel_identity, channel_identity.c.customer_id == _CID)
    .outerjoin(credit_line, credit_line.c.customer_id == _CID)
)
_SEEN_ON_DEVICE = sa.union(
    sa.select(decision.c.customer_id).where(decision.c.device_id == _DEVICE),
    sa.select(channel_identity.c.customer_id).where(
        channel_identity.c.device_id == _DEVICE, channel_identity.c.customer_id.is_not(None)
    ),
).subquery()
_CARDS = sa.select(bank_card.c.card_hash).where(
    bank_card.c.customer_id == _CID, bank_card.c.status == "bound"
)
_BLOCKED_KEYS = {  # kind → the value's lookup hash, as onboarding stored it
    "id_number": _scalar(identity.c.id_number_hash, identity.c.customer_id == _CID),
    "phone": _scalar(identity.c.phone_hash, identity.c.customer_id == _CID),
    "device": sa.bindparam("device_hash", type_=sa.String),
}
_SIGNALS = sa.select(
    _scalar(sa.func.count(), _SEEN_ON_DEVICE.c.customer_id != _CID).label("device_customers"),
    _scalar(
        sa.func.count(),
        decision.c.device_id == _DEVICE,
        decision.c.kind == "apply",
        decision.c.created_at >= sa.bindparam("since", type_=TS),
    ).label("device_applications"),
    *(
        sa.exists()
        .where(blocked_list.c.kind == kind, blocked_list.c.value_hash == key)
        .label(f"blocked_{kind}")
        for kind, key in _BLOCKED_KEYS.items()
    ),
    sa.exists()
    .where(blocked_list.c.kind == "card", blocked_list.c.value_hash.in_(_CARDS))
    .label("blocked_card"),
).subquery("signals")
_RECENT = (  # where the customer's recent applications came from, newest first
    sa.select(decision.c.decision_id, decision.c.lat_e6, decision.c.lon_e6, decision.c.created_at)
    .where(decision.c.customer_id == _CID, decision.c.lat_e6.is_not(None))
    .order_by(decision.c.decision_id.desc())
    .limit(20)
    .subquery()
)
_PLACES = sa.union_all(
    sa.select(_RECENT, sa.null().label("detail")),
    sa.select(
        sa.null(),
        sa.null(),
        sa.null(),
        sa.null(),
        onboarding_step.c.detail,
    ).where(onboarding_step.c.customer_id == _CID, onboarding_step.c.step == "identity"),
).subquery("places")
# the signals' one row, repeated on each usual place (one row with no place when there is none)
_SIGNALS_AND_PLACES = sa.select(_SIGNALS, _PLACES).select_from(
    _SIGNALS.outerjoin(_PLACES, sa.true())
)
_BLOCKED_KINDS = ("card", "device", "id_number", "phone")  # in order, as the reasons list them


def read_context(
    p: Platform,
    customer_id: int,
    channel: str,
    device_id: str | None = None,
    *,
    for_rescore: bool = False,
) -> Context:
    """What the platform knows of the applicant, in one short read (two statements)."""
    with p.engine.connect() as conn:
        if p.is_postgres:
            # Under READ COMMITTED each statement reads its own snapshot, in a transaction or
            # not; without one there is no BEGIN and COMMIT to wait for, and psycopg keeps its
            # prepared statements (it drops them at every rollback, such as the pool's reset).
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        ctx = _gather(conn, p, customer_id, channel, device_id, for_rescore=for_rescore)
        conn.commit()
    return ctx


def _gather(
    conn: sa.Connection,
    p: Platform,
    customer_id: int,
    channel: str,
    device_id: str | None,
    *,
    for_rescore: bool = False,
) -> Context:
    rows = conn.execute(_APPLICANT, {"cid": customer_id, "channel": channel}).all()
    me = rows[0]
    onboarding.check_channel(channel, me.channel_active)
    if me.id_number_enc is None:
        raise onboarding.not_verified(customer_id)
    if not for_rescore:
        onboarding.check_consent(p, "credit_report", me.consent_credit_report)
        onboarding.check_consent(p, "sensitive_pi", me.consent_sensitive_pi)
    idents = [r for r in rows if r.channel is not None]
    identities = {r.channel: r.open_id for r in idents}
    if channel not in identities:
        raise RuleViolation(
            f"customer {customer_id} has no verified {channel} identity",
            code="channel.identity.missing",
            field="channel",
        )
    if device_id is None:
        device_id = next((r.device_id for r in idents if r.channel == channel), None)
    today = _clock(conn, p, me).open_date
    now = p.now()
    rows = conn.execute(
        _SIGNALS_AND_PLACES,
        {
            "cid": customer_id,
            "device": device_id,
            "device_hash": p.vault.blind(device_id, kind="device") if device_id else None,
            "since": now - timedelta(hours=POLICY.velocity_window_hours),
        },
    ).all()
    signals = rows[0]
    usual, last = _places(rows)
    return Context(
        customer_id=customer_id,
        channel=channel,
        name=me.name,
        id_number=p.vault.decrypt(me.id_number_enc, column="identity.id_number"),
        birth_date=me.birth_date,
        today=today,
        now=now,
        identities=identities,
        device_id=device_id,
        history=_history(me, today),
        blocked=tuple(k for k in _BLOCKED_KINDS if signals._mapping[f"blocked_{k}"]),
        platform_overdue=bool(me.line_of is not None and me.overdue_blocked),
        has_line=me.line_of is not None,
        device_other_customers=int(signals.device_customers) if device_id is not None else 0,
        device_applications=int(signals.device_applications) if device_id is not None else 0,
        usual_places=usual,
        last_place=last,
        model_version=me.own_model or me.general_model,
    )


def _clock(conn: sa.Connection, p: Platform, row: Any) -> ClockView:
    """The clock from the columns that rode along with ``row``; read alone when there were none
    (it refuses then: the database is not initialised)."""
    if row.clock_mode is None:
        return read_clock(conn, p.now)
    return clock_view(row.clock_mode, row.clock_open, row.clock_closed, p.now)


def _history(me: Any, today: date) -> F.PlatformHistory:
    since = me.created_at
    months = max(0, (today.year - since.year) * 12 + today.month - since.month)
    return F.PlatformHistory(
        loans=int(me.loans),
        max_dpd_ever=int(me.worst_dpd),
        on_time_repayments=int(me.repayments),
        months_known=months,
    )


def _places(
    rows: Sequence[Any],
) -> tuple[tuple[tuple[float, float], ...], tuple[float, float, datetime] | None]:
    """Where the customer is usually seen — at onboarding and at earlier applications — and
    the place and time of the latest application."""
    recent, onboarded = [], []
    for r in rows:
        if r.decision_id is not None:
            recent.append(r)
        elif r.detail is not None:
            seen = json.loads(r.detail)
            if seen.get("lat") is not None:
                onboarded.append((float(seen["lat"]), float(seen["lon"])))
    recent.sort(key=lambda r: r.decision_id, reverse=True)
    places = [(r.lat_e6 / E6, r.lon_e6 / E6) for r in recent]
    latest = recent[0] if recent else None
    last = None if latest is None else (latest.lat_e6 / E6, latest.lon_e6 / E6, latest.created_at)
    return (*places, *onboarded), last


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

    report: CreditReport
    activities: dict[str, ChannelActivity | None]  # every channel the customer has
    device: DeviceInfo | None
    device_known: bool
    place: Location | None


def ask_providers(p: Platform, ctx: Context, *, with_device: bool = True) -> Answers:
    """The credit report, every channel's activity, the device and its location."""
    prov = p.providers
    report = prov.credit_report.fetch(ctx.id_number, ctx.name)
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
    age = _age(ctx.birth_date, ctx.today)
    km_from_usual = travel = None
    if place is not None:
        here = (place.lat, place.lon)
        if ctx.usual_places:
            km_from_usual = min(_km(here, u) for u in ctx.usual_places)
        if ctx.last_place is not None:
            hours = max((ctx.now - ctx.last_place[2]).total_seconds() / 3600, 1 / 60)
            travel = _km(here, ctx.last_place[:2]) / hours
    evidence = Evidence(
        identity_valid=True,
        age_in_range=age_min <= age <= age_max,
        report_current_overdue_days=report.current_overdue_days if report.found else None,
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
    return Assessment(ctx, row, result, verdict, device, place, report.found)


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
_INSERT_LINE = credit_line.insert()
_INSERT_CASE = review_case.insert()


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
    conn.execute(
        _INSERT_LINE,
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
        written = conn.execute(_INSERT_APPLICATION, _decision_row(a, "apply")).first()
        if written is None:
            raise RuleViolation(
                f"customer {customer_id} already has a line", code="line.exists", field="customer"
            )
        decision_id = int(written.decision_id)
        v = a.verdict
        if v.outcome is Outcome.APPROVED and v.offer is not None:
            limit, rate = v.offer.limit_fen, v.offer.rate.units
            on = _clock(conn, p, written).open_date
            _grant(conn, p, customer_id, limit, rate, on=on, referred=written.referred)
        elif v.outcome is Outcome.REVIEW:
            conn.execute(
                _INSERT_CASE,
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


# -- manual review ------------------------------------------------------------------------------


def review_queue(p: Platform, *, status: str = "open") -> list[dict[str, Any]]:
    with p.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                review_case, decision.c.limit_fen, decision.c.grade, identity.c.id_number_masked
            )
            .join(decision, decision.c.decision_id == review_case.c.decision_id)
            .join(identity, identity.c.customer_id == review_case.c.customer_id)
            .where(review_case.c.status == status)
            .order_by(review_case.c.case_id)
        ).all()
    return [
        {
            "case_id": r.case_id,
            "decision_id": r.decision_id,
            "customer_id": r.customer_id,
            "id_number": r.id_number_masked,
            "grade": r.grade,
            "proposed_limit": None if r.limit_fen is None else format_yuan(r.limit_fen),
            "signals": json.loads(r.signals),
            "status": r.status,
            "opened_at": r.opened_at.isoformat(),
        }
        for r in rows
    ]


def decide_review(
    p: Platform, op: Operator, case_id: int, *, approve: bool, note: str = ""
) -> dict[str, Any]:
    """An operator's decision on a case: approval grants the offer the policy computed."""
    op.require("risk_analyst", "administrator")

    def work(conn: sa.Connection) -> dict[str, Any]:
        case = conn.execute(
            sa.select(review_case).where(review_case.c.case_id == case_id).with_for_update()
        ).first()
        if case is None:
            raise NotFound(f"no review case {case_id}", field="case")
        if case.status != "open":
            raise RuleViolation(
                f"case {case_id} is already {case.status}", code="review.decided", field="case"
            )
        d = conn.execute(
            sa.select(decision).where(decision.c.decision_id == case.decision_id)
        ).one()
        answer: dict[str, Any] = {"case_id": case_id, "customer_id": case.customer_id}
        if approve:
            held = conn.execute(
                sa.select(credit_line.c.customer_id).where(
                    credit_line.c.customer_id == case.customer_id
                )
            ).first()
            if held is not None:
                raise RuleViolation("the customer already has a line", code="line.exists")
            _grant(conn, p, case.customer_id, d.limit_fen, d.rate_units)
            answer |= {
                "limit": format_yuan(d.limit_fen),
                "daily_rate": str(DailyRate(d.rate_units)),
            }
        status = "approved" if approve else "declined"
        conn.execute(
            review_case.update()
            .where(review_case.c.case_id == case_id)
            .values(
                status=status,
                decided_by=op.operator_id,
                decided_at=p.now(),
                note=note[:200] or None,
            )
        )
        audit(
            conn,
            p,
            op,
            f"review.{status}",
            f"customer:{case.customer_id}",
            case_id=case_id,
            note=note,
        )
        return answer | {"status": status, "decided_by": op.username}

    return p.transaction(work)


# -- re-scoring ---------------------------------------------------------------------------------


def _rescore_one(p: Platform, customer_id: int, channel: str) -> tuple[str, dict[str, Any]]:
    ctx = read_context(p, customer_id, channel, None, for_rescore=True)
    a = assess(p, ctx, with_device=False)

    def work(conn: sa.Connection) -> tuple[str, dict[str, Any]]:
        line = conn.execute(
            sa.select(credit_line).where(credit_line.c.customer_id == customer_id).with_for_update()
        ).one()
        decision_id = _insert_decision(conn, a, "rescore")
        v = a.verdict
        status = LineStatus(line.status)
        if v.outcome is Outcome.DECLINED or v.offer is None:
            if status is not LineStatus.ACTIVE:
                return "unchanged", {"decision_id": decision_id}
            new = line_transition(status, LineEvent.FREEZE, open_loans=line.open_loans)
            conn.execute(
                credit_line.update()
                .where(credit_line.c.customer_id == customer_id)
                .values(status=new.value, updated_at=p.now())
            )
            return "frozen", {"decision_id": decision_id, "reasons": list(v.reasons)}
        limit, rate = v.offer.limit_fen, v.offer.rate.units
        change = (
            "raised"
            if limit > line.limit_fen
            else "lowered"
            if limit < line.limit_fen
            else "unchanged"
        )
        if status is LineStatus.ACTIVE and (change != "unchanged" or rate != line.rate_units):
            # existing loans keep their own rate; the line's rate is for new draws
            conn.execute(
                credit_line.update()
                .where(credit_line.c.customer_id == customer_id)
                .values(limit_fen=limit, rate_units=rate, updated_at=p.now())
            )
        elif status is not LineStatus.ACTIVE:
            change = "unchanged"
        return change, {
            "decision_id": decision_id,
            "from": format_yuan(line.limit_fen),
            "to": format_yuan(limit),
        }

    return p.transaction(work)


def rescore(p: Platform, *, limit: int | None = None) -> dict[str, Any]:
    """Review every line against new behaviour: raise, lower or freeze (loans keep their rate)."""
    with p.engine.connect() as conn:
        q = (
            sa.select(credit_line.c.customer_id)
            .where(credit_line.c.status != LineStatus.CLOSED.value)
            .order_by(credit_line.c.customer_id)
        )
        ids = list(conn.execute(q if limit is None else q.limit(limit)).scalars())
        # each line is reviewed through the channel its customer last applied by
        last = (
            sa.select(decision.c.customer_id, sa.func.max(decision.c.decision_id).label("last"))
            .where(decision.c.customer_id.in_(ids))
            .group_by(decision.c.customer_id)
            .subquery()
        )
        channel_of = dict(
            conn.execute(
                sa.select(decision.c.customer_id, decision.c.channel).join(
                    last, last.c.last == decision.c.decision_id
                )
            ).all()
        )
    todo = [(cid, channel_of[cid]) for cid in ids if cid in channel_of]
    counts = {"raised": 0, "lowered": 0, "frozen": 0, "unchanged": 0}
    changes = []
    for customer_id, channel in todo:
        change, detail = _rescore_one(p, customer_id, channel)
        counts[change] += 1
        if change != "unchanged":
            changes.append({"customer_id": customer_id, "change": change, **detail})
    return {"reviewed": len(todo), **counts, "changes": changes}
