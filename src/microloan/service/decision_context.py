"""What the platform itself knows of an applicant, read in one short read before the providers
are asked (access-and-decisions §3): identity, consents, channel identities, history, blocked-list
hits, device sharing and velocity, usual places, the serving scorecard and the business clock."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from microloan.decisions import features as F
from microloan.decisions.policy import (
    Policy,
)
from microloan.errors import RuleViolation
from microloan.service import onboarding
from microloan.service.clock import ClockView, clock_columns, clock_view, read_clock
from microloan.service.platform import Platform
from microloan.store.prepared import Prepared
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
    repayment,
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
    report_authorised: bool = True  # a live credit-report consent: without one, no query


def age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
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
_READ_APPLICANT = Prepared(_APPLICANT)
_READ_SIGNALS_AND_PLACES = Prepared(_SIGNALS_AND_PLACES)


def read_context(
    p: Platform,
    customer_id: int,
    channel: str,
    device_id: str | None = None,
    *,
    for_rescore: bool = False,
) -> Context:
    """What the platform knows of the applicant, in one short read (two statements)."""
    with p.reading() as conn:
        ctx = _gather(conn, p, customer_id, channel, device_id, for_rescore=for_rescore)
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
    rows = _READ_APPLICANT.rows(conn, {"cid": customer_id, "channel": channel})
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
    today = clock_of(conn, p, me).open_date
    now = p.now()
    rows = _READ_SIGNALS_AND_PLACES.rows(
        conn,
        {
            "cid": customer_id,
            "device": device_id,
            "device_hash": p.vault.blind(device_id, kind="device") if device_id else None,
            "since": now - timedelta(hours=POLICY.velocity_window_hours),
        },
    )
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
        blocked=tuple(k for k in _BLOCKED_KINDS if getattr(signals, f"blocked_{k}")),
        platform_overdue=bool(me.line_of is not None and me.overdue_blocked),
        has_line=me.line_of is not None,
        device_other_customers=int(signals.device_customers) if device_id is not None else 0,
        device_applications=int(signals.device_applications) if device_id is not None else 0,
        usual_places=usual,
        last_place=last,
        model_version=me.own_model or me.general_model,
        report_authorised=me.consent_credit_report == p.settings.consent_versions["credit_report"],
    )


def clock_of(conn: sa.Connection, p: Platform, row: Any) -> ClockView:
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
