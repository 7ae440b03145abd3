"""The scorecards in use (access-and-decisions §4): registered versions, one active per channel.

A version is registered from its exported artifact (kept whole in the database, so every
decision can be traced to the exact scorecard that made it). Activation is a maker-checker
proposal: one operator proposes, another approves, and only then does the version serve.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from microloan.decisions.scorecard import Scorecard
from microloan.errors import NotFound, RuleViolation
from microloan.service.operators import Operator, audit, on_approve, propose
from microloan.service.platform import Platform
from microloan.store.schema import model_version

_CACHE: dict[str, Scorecard] = {}  # version → parsed scorecard; versions never change


def register(p: Platform, op: Operator, model_dir: Path, *, label: str = "") -> dict[str, Any]:
    """Register an exported scorecard; registering the same version again changes nothing."""
    op.require("risk_analyst", "administrator")
    card = Scorecard.load(model_dir)
    artifact = json.dumps(card.to_dict(), ensure_ascii=False, sort_keys=True)
    training = dict(card.training)
    label = label or str(training.get("label") or f"trained on {training.get('data', '?')}")

    def work(conn: sa.Connection) -> dict[str, Any]:
        found = conn.execute(
            sa.select(model_version.c.status).where(model_version.c.version == card.version)
        ).first()
        if found is None:
            conn.execute(
                model_version.insert(),
                {
                    "version": card.version,
                    "channel": card.channel,
                    "artifact": artifact,
                    "label": label[:200],
                    "status": "registered",
                    "registered_by": op.operator_id,
                    "registered_at": p.now(),
                },
            )
            audit(conn, p, op, "model.register", f"model:{card.version}", label=label)
        return _view(_row(conn, card.version))

    return p.transaction(work)


def propose_activation(p: Platform, op: Operator, version: str) -> dict[str, Any]:
    def work(conn: sa.Connection) -> dict[str, Any]:
        row = _row(conn, version)
        if row.status == "active":
            raise RuleViolation(
                f"model {version} is already active", code="model.active", field="version"
            )
        pid = propose(conn, p, op, "model.activate", f"model:{version}", {"version": version})
        return {"proposal_id": pid, **_view(row)}

    return p.transaction(work)


@on_approve("model.activate")
def _activate(
    conn: sa.Connection, p: Platform, payload: dict[str, Any], op: Operator
) -> dict[str, Any]:
    version = payload["version"]
    row = _row(conn, version)
    same_channel = (
        model_version.c.channel.is_(None)
        if row.channel is None
        else model_version.c.channel == row.channel
    )
    conn.execute(
        model_version.update()
        .where(same_channel, model_version.c.status == "active")
        .values(status="retired")
    )
    conn.execute(
        model_version.update()
        .where(model_version.c.version == version)
        .values(status="active", activated_at=p.now())
    )
    return {"version": version, "channel": row.channel, "model_status": "active"}


def _row(conn: sa.Connection, version: str) -> Any:
    row = conn.execute(sa.select(model_version).where(model_version.c.version == version)).first()
    if row is None:
        raise NotFound(f"no model version {version}", code="model.not_found", field="version")
    return row


def _view(row: Any) -> dict[str, Any]:
    return {
        "version": row.version,
        "channel": row.channel,
        "label": row.label,
        "status": row.status,
        "activated_at": None if row.activated_at is None else row.activated_at.isoformat(),
    }


def list_models(p: Platform) -> list[dict[str, Any]]:
    with p.engine.connect() as conn:
        rows = conn.execute(sa.select(model_version).order_by(model_version.c.registered_at)).all()
    return [_view(r) for r in rows]


def serving_scorecard(p: Platform, channel: str, version: str | None) -> Scorecard:
    """The scorecard ``version`` that serves ``channel`` (None: none is active), parsed once
    per process: a version never changes, so only its first use reads the database."""
    version = _require_active(channel, version)
    card = _CACHE.get(version)
    if card is None:
        with p.engine.connect() as conn:
            card = _parsed(conn, version)
    return card


def _require_active(channel: str, version: str | None) -> str:
    if version is None:
        raise RuleViolation(
            f"no active scorecard for channel {channel}: register one and have it approved",
            code="model.none_active",
            field="channel",
        )
    return version


def _parsed(conn: sa.Connection, version: str) -> Scorecard:
    card = _CACHE.get(version)
    if card is None:
        text = conn.execute(
            sa.select(model_version.c.artifact).where(model_version.c.version == version)
        ).scalar_one()
        card = _CACHE.setdefault(version, Scorecard.from_dict(json.loads(text)))
    return card
