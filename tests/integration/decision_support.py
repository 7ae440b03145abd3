"""Set-up for decision tests: a small synthetic world, a hand-made scorecard over the real
characteristics, two operators to activate it, and onboarding a person from the world."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from microloan.decisions.scorecard import scaling_constants, version_of
from microloan.domain.rates import DailyRate
from microloan.providers.simulated import SimulatedWorld
from microloan.service import models, onboarding, operators
from microloan.service.platform import Platform
from microloan.service.providers import Providers, from_world
from microloan.sim import population
from microloan.sim.person import Person
from microloan.store.schema import channel_identity, decision, invitation, review_case

PASSWORD = "s3cret-passw0rd"
SEED = 7


@cache
def world() -> SimulatedWorld:
    return SimulatedWorld(population.generate(600, SEED))


def providers(w: SimulatedWorld | None = None) -> Providers:
    return from_world(w or world())


def _bin(label: str, points: int, **extra: Any) -> dict[str, Any]:
    return {"label": label, "woe": 0.0, "points": points, "count": 10, "event_rate": 0.1, **extra}


def scorecard(channel: str | None = None, *, delinquent_points: int = -60) -> dict[str, Any]:
    """Points over four real characteristics; 600 points is 50:1 good:bad (PD ≈ 2 %)."""
    offset, factor = scaling_constants(20, 600, 50)
    chars = [
        {
            "name": "report_status",
            "kind": "categorical",
            "coefficient": -1.0,
            "unseen": "lowest_points",
            "bins": [
                _bin("clean", 200, categories=["clean"]),
                _bin("none", 180, categories=["none"]),
                _bin("past", 140, categories=["past_delinquency"]),
                _bin("current", 90, categories=["current_delinquency"]),
            ],
            "missing": _bin("missing", 120),
        },
        {
            "name": "report_queries_3m",
            "kind": "numeric",
            "coefficient": -1.0,
            "splits": [2.0, 5.0],
            "bins": [_bin("[-inf, 2)", 150), _bin("[2, 5)", 130), _bin("[5, inf)", 100)],
            "missing": _bin("missing", 130),
        },
        {
            "name": "app_active_days_90d",
            "kind": "numeric",
            "coefficient": -1.0,
            "splits": [30.0, 60.0],
            "bins": [_bin("[-inf, 30)", 110), _bin("[30, 60)", 140), _bin("[60, inf)", 160)],
            "missing": _bin("missing", 100),
        },
        {
            "name": "platform_history",
            "kind": "categorical",
            "coefficient": -1.0,
            "unseen": "lowest_points",
            "bins": [
                _bin("new", 100, categories=["new"]),
                _bin("clean", 110, categories=["clean"]),
                _bin("late", 80, categories=["late"]),
                _bin("delinquent", 100 + delinquent_points, categories=["delinquent"]),
            ],
            "missing": _bin("missing", 100),
        },
    ]
    d: dict[str, Any] = {
        "format": "microloan.scorecard/1",
        "version": "",
        "channel": channel,
        "target": {"column": "bad", "bad_label": None},
        "scaling": {
            "pdo": 20.0,
            "base_score": 600.0,
            "base_odds": 50.0,
            "offset": offset,
            "factor": factor,
        },
        "intercept": -1.0,
        "characteristics": chars,
        "trained_at": None,
        "training": {"label": "hand-made test scorecard"},
    }
    d["version"] = version_of(d)
    return d


def make_operators(p: Platform) -> tuple[operators.Operator, operators.Operator]:
    for name in ("maker", "checker"):
        operators.create_operator(p, name, PASSWORD, ["risk_analyst"])
    return (
        operators.authenticate(p, "maker", PASSWORD),
        operators.authenticate(p, "checker", PASSWORD),
    )


def activate(p: Platform, tmp: Path, card: dict[str, Any]) -> str:
    """Register and activate ``card`` through maker-checker."""
    try:
        maker = operators.authenticate(p, "maker", PASSWORD)
        checker = operators.authenticate(p, "checker", PASSWORD)
    except operators.AuthError:
        maker, checker = make_operators(p)
    folder = tmp / card["version"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scorecard.json").write_text(json.dumps(card))
    version = models.register(p, maker, folder)["version"]
    proposal = models.propose_activation(p, maker, version)["proposal_id"]
    operators.decide(p, checker, proposal, approve=True)
    return str(version)


def invite(p: Platform, channel: str, open_id: str, device_id: str | None) -> None:
    now = datetime(2026, 1, 31, tzinfo=UTC)
    with p.engine.begin() as conn:
        conn.execute(
            channel_identity.insert(),
            {"channel": channel, "open_id": open_id, "created_at": now, "device_id": device_id},
        )
        conn.execute(
            invitation.insert(),
            {
                "channel": channel,
                "open_id": open_id,
                "kind": "whitelist",
                "status": "live",
                "reason": "{}",
                "business_date": now.date(),
                "expires_on": now.date(),
                "created_at": now,
            },
        )


def onboard(
    p: Platform, person: Person, *, device: str | None = None, consents: bool = True
) -> int:
    """Invite, verify, phone, card and consents, as the person would through their channel."""
    channel = person.primary_channel
    open_id = person.open_id(channel)
    assert open_id is not None
    device = device or person.device_id
    invite(p, channel, open_id, device)
    place = world().location.locate(device) if device == person.device_id else None
    cid = int(
        onboarding.verify_identity(
            p,
            channel_code=channel,
            open_id=open_id,
            name=person.name,
            id_number=person.id_number,
            device_id=device,
            location=None if place is None else (place.lat, place.lon),
        )["customer_id"]
    )
    onboarding.set_phone(p, cid, person.phone)
    onboarding.bind_card(p, cid, person.card_number, rail=world().holder_verification)
    if consents:
        for kind in ("credit_report", "sensitive_pi", "loan_agreement"):
            onboarding.grant_consent(p, cid, kind)
    return cid


def people(**where: Any) -> list[Person]:
    """People of the world matching simple conditions on their fields and report."""
    w = world()
    out = []
    for row in range(len(w)):
        person = w.person_at(row)
        if not 20 <= person.age_on(date(2026, 1, 31)) <= 55:
            continue
        report = w.report_at(row)
        device = w.device_at(row)
        facts = {
            "blocked": person.blocked,
            "ring": person.fraud_ring is not None,
            "emulator": device.emulator,
            "rooted": device.rooted,
            "serious": report.current_overdue_days >= 90,
            "shared_device": len(w.people_on_device(person.device_id)) > 1,
        }
        if all(facts.get(k, getattr(person, k, None)) == v for k, v in where.items()):
            out.append(person)
    return out


def count(p: Platform, table: sa.Table) -> int:
    with p.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def open_review_case(p: Platform, cid: int, channel: str) -> int:
    """A decision held for review and its open case, as the decision engine leaves them."""
    now = p.now()
    with p.engine.begin() as conn:
        did = conn.execute(
            decision.insert().returning(decision.c.decision_id),
            {
                "customer_id": cid,
                "channel": channel,
                "kind": "apply",
                "outcome": "review",
                "grade": "B",
                "score": 610,
                "limit_fen": 500_000,
                "rate_units": DailyRate.parse("0.0005").units,
                "reasons": json.dumps(["fraud.device.shared"]),
                "record": "{}",
                "business_date": now.date(),
                "created_at": now,
            },
        ).scalar_one()
        return int(
            conn.execute(
                review_case.insert().returning(review_case.c.case_id),
                {
                    "decision_id": did,
                    "customer_id": cid,
                    "status": "open",
                    "signals": json.dumps(["fraud.device.shared"]),
                    "opened_at": now,
                },
            ).scalar_one()
        )
