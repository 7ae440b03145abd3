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
from dataclasses import asdict, dataclass
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
from microloan.decisions.scorecard import ScoreResult
from microloan.domain.line import LineEvent, LineStatus, line_transition
from microloan.domain.money import format_yuan
from microloan.domain.rates import DailyRate
from microloan.errors import NotFound, RuleViolation
from microloan.providers.ports import DeviceInfo, Location, ProviderError
from microloan.service import onboarding
from microloan.service.clock import read_clock
from microloan.service.models import active_scorecard
from microloan.service.operators import Operator, audit
from microloan.service.platform import Platform
from microloan.store.schema import (
    bank_card,
    blocked_list,
    channel_identity,
    credit_line,
    customer,
    decision,
    identity,
    loan,
    onboarding_step,
    repayment,
    review_case,
)

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


def _gather(
    conn: sa.Connection,
    p: Platform,
    customer_id: int,
    channel: str,
    device_id: str | None,
    *,
    for_rescore: bool = False,
) -> Context:
    onboarding.require_channel(conn, channel)
    person = onboarding.personal_data(p, conn, customer_id)
    if not for_rescore:
        onboarding.require_consents(conn, p, customer_id, "credit_report", "sensitive_pi")
    idents = conn.execute(
        sa.select(
            channel_identity.c.channel, channel_identity.c.open_id, channel_identity.c.device_id
        ).where(channel_identity.c.customer_id == customer_id)
    ).all()
    identities = {r.channel: r.open_id for r in idents}
    if channel not in identities:
        raise RuleViolation(
            f"customer {customer_id} has no verified {channel} identity",
            code="channel.identity.missing",
            field="channel",
        )
    if device_id is None:
        device_id = next((r.device_id for r in idents if r.channel == channel), None)
    clock = read_clock(conn, p.now)
    now = p.now()
    line = conn.execute(
        sa.select(credit_line.c.status, credit_line.c.overdue_blocked).where(
            credit_line.c.customer_id == customer_id
        )
    ).first()
    return Context(
        customer_id=customer_id,
        channel=channel,
        name=person["name"],
        id_number=person["id_number"],
        birth_date=person["birth_date"],
        today=clock.open_date,
        now=now,
        identities=identities,
        device_id=device_id,
        history=_history(conn, customer_id, clock.open_date),
        blocked=_blocked(conn, p, customer_id, person, device_id),
        platform_overdue=bool(line is not None and line.overdue_blocked),
        has_line=line is not None,
        device_other_customers=_device_customers(conn, customer_id, device_id),
        device_applications=_device_applications(conn, device_id, now),
        usual_places=_usual_places(conn, customer_id),
        last_place=_last_place(conn, customer_id),
    )


def _history(conn: sa.Connection, customer_id: int, today: date) -> F.PlatformHistory:
    loans, worst = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(loan.c.dpd), 0)).where(
            loan.c.customer_id == customer_id
        )
    ).one()
    repaid = conn.execute(
        sa.select(sa.func.count())
        .select_from(repayment)
        .where(repayment.c.customer_id == customer_id)
    ).scalar_one()
    since = conn.execute(
        sa.select(customer.c.created_at).where(customer.c.customer_id == customer_id)
    ).scalar_one()
    months = max(0, (today.year - since.year) * 12 + today.month - since.month)
    return F.PlatformHistory(
        loans=int(loans),
        max_dpd_ever=int(worst),
        on_time_repayments=int(repaid),
        months_known=months,
    )


def _blocked(
    conn: sa.Connection, p: Platform, customer_id: int, person: dict[str, Any], device: str | None
) -> tuple[str, ...]:
    vault = p.vault
    keys = [("id_number", vault.blind(person["id_number"], kind="id_number"))]
    if person["phone"]:
        keys.append(("phone", vault.blind(person["phone"], kind="phone")))
    if device:
        keys.append(("device", vault.blind(device, kind="device")))
    cards = conn.execute(
        sa.select(bank_card.c.card_hash).where(
            bank_card.c.customer_id == customer_id, bank_card.c.status == "bound"
        )
    ).scalars()
    keys += [("card", h) for h in cards]
    hits = conn.execute(
        sa.select(blocked_list.c.kind).where(
            sa.tuple_(blocked_list.c.kind, blocked_list.c.value_hash).in_(keys)
        )
    ).scalars()
    return tuple(sorted(set(hits)))


def _device_customers(conn: sa.Connection, customer_id: int, device: str | None) -> int:
    if device is None:
        return 0
    seen = sa.union(
        sa.select(decision.c.customer_id).where(decision.c.device_id == device),
        sa.select(channel_identity.c.customer_id).where(
            channel_identity.c.device_id == device, channel_identity.c.customer_id.is_not(None)
        ),
    ).subquery()
    return int(
        conn.execute(
            sa.select(sa.func.count()).select_from(seen).where(seen.c.customer_id != customer_id)
        ).scalar_one()
    )


def _device_applications(conn: sa.Connection, device: str | None, now: datetime) -> int:
    if device is None:
        return 0
    since = now - timedelta(hours=POLICY.velocity_window_hours)
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(decision)
            .where(
                decision.c.device_id == device,
                decision.c.kind == "apply",
                decision.c.created_at >= since,
            )
        ).scalar_one()
    )


def _usual_places(conn: sa.Connection, customer_id: int) -> tuple[tuple[float, float], ...]:
    """Where the customer is usually seen: at onboarding and at earlier applications."""
    rows = conn.execute(
        sa.select(decision.c.lat_e6, decision.c.lon_e6)
        .where(decision.c.customer_id == customer_id, decision.c.lat_e6.is_not(None))
        .order_by(decision.c.decision_id.desc())
        .limit(20)
    ).all()
    places = [(r.lat_e6 / E6, r.lon_e6 / E6) for r in rows]
    for detail in conn.execute(
        sa.select(onboarding_step.c.detail).where(
            onboarding_step.c.customer_id == customer_id, onboarding_step.c.step == "identity"
        )
    ).scalars():
        seen = json.loads(detail)
        if seen.get("lat") is not None:
            places.append((float(seen["lat"]), float(seen["lon"])))
    return tuple(places)


def _last_place(conn: sa.Connection, customer_id: int) -> tuple[float, float, datetime] | None:
    row = conn.execute(
        sa.select(decision.c.lat_e6, decision.c.lon_e6, decision.c.created_at)
        .where(decision.c.customer_id == customer_id, decision.c.lat_e6.is_not(None))
        .order_by(decision.c.decision_id.desc())
        .limit(1)
    ).first()
    return None if row is None else (row.lat_e6 / E6, row.lon_e6 / E6, row.created_at)


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


def assess(
    p: Platform, ctx: Context, *, policy: Policy = POLICY, with_device: bool = True
) -> Assessment:
    """Ask the providers, score, and apply the policy; reads and writes nothing of ours."""
    prov = p.providers
    report = prov.credit_report.fetch(ctx.id_number, ctx.name)
    activities = {ch: prov.channel_activity.activity(ch, oid) for ch, oid in ctx.identities.items()}
    device, known, place = _device_and_place(p, ctx.device_id if with_device else None)
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
        age_in_range=p.settings.age_min <= age <= p.settings.age_max,
        report_current_overdue_days=report.current_overdue_days if report.found else None,
        blocked=ctx.blocked,
        platform_overdue=ctx.platform_overdue,
        device_known=known,
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
    with p.engine.connect() as conn:
        card = active_scorecard(conn, ctx.channel)
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


def _record(a: Assessment, kind: str) -> dict[str, Any]:
    v, r = a.verdict, a.result
    return {
        "inputs": a.row,
        "report_found": a.report_found,
        "device": None if a.device is None else asdict(a.device),
        "location": None if a.place is None else asdict(a.place),
        "history": asdict(a.ctx.history),
        "points": None if r is None else r.points,
        "bins": None if r is None else r.bins,
        "score_reasons": None if r is None else list(r.reasons),
        "signals": [asdict(s) for s in v.signals],
        "flags": list(v.flags),
        "kind": kind,
    }


def _insert_decision(conn: sa.Connection, a: Assessment, kind: str) -> int:
    v, r = a.verdict, a.result
    offer = v.offer
    return int(
        conn.execute(
            decision.insert().returning(decision.c.decision_id),
            {
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
            },
        ).scalar_one()
    )


def _grant(
    conn: sa.Connection, p: Platform, customer_id: int, limit_fen: int, rate_units: int
) -> None:
    conn.execute(
        credit_line.insert(),
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
    from microloan.service.invitations import settle_referral

    settle_referral(conn, p, customer_id, read_clock(conn, p.now).open_date)


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
    with p.engine.connect() as conn:
        ctx = _gather(conn, p, customer_id, channel, device_id)
    if ctx.has_line:
        raise RuleViolation(
            f"customer {customer_id} already has a line; re-scoring reviews it",
            code="line.exists",
            field="customer",
        )
    a = assess(p, ctx)

    def work(conn: sa.Connection) -> dict[str, Any]:
        held = conn.execute(
            sa.select(credit_line.c.customer_id).where(credit_line.c.customer_id == customer_id)
        ).first()
        if held is not None:
            raise RuleViolation(
                f"customer {customer_id} already has a line", code="line.exists", field="customer"
            )
        decision_id = _insert_decision(conn, a, "apply")
        v = a.verdict
        if v.outcome is Outcome.APPROVED and v.offer is not None:
            _grant(conn, p, customer_id, v.offer.limit_fen, v.offer.rate.units)
        elif v.outcome is Outcome.REVIEW:
            conn.execute(
                review_case.insert(),
                {
                    "decision_id": decision_id,
                    "customer_id": customer_id,
                    "status": "open",
                    "signals": json.dumps([asdict(s) for s in v.signals], ensure_ascii=False),
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
    with p.engine.connect() as conn:
        ctx = _gather(conn, p, customer_id, channel, None, for_rescore=True)
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
