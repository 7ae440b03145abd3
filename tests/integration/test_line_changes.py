"""Line changes by hand go through maker-checker: nothing changes until another operator
approves; freeze and unfreeze follow the line's state table; loans keep their rates."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from microloan.domain.rates import DailyRate
from microloan.domain.schedule import Method
from microloan.errors import MicroloanError, RuleViolation
from microloan.service import lending, line_changes, operators
from microloan.service.platform import Platform
from microloan.store.schema import audit_log, loan

from .decision_support import PASSWORD, make_operators


def test_a_line_change_needs_a_second_operator(platform: Platform) -> None:
    maker, checker = make_operators(platform)
    cid = lending.create_customer(platform, "张伟")
    lending.grant_line(platform, cid, 1_000_000, DailyRate.parse("0.0005"))
    lending.draw(platform, cid, 100_000, 3, Method.EQUAL_PRINCIPAL, "k1")

    pid = line_changes.propose_change(
        platform, maker, cid, limit_fen=2_000_000, rate=DailyRate.parse("0.0003"), reason="raise"
    )["proposal_id"]
    with platform.engine.connect() as conn:
        assert lending.line_summary(conn, cid)["limit"] == "10000.00"  # pending: nothing yet
    with pytest.raises(RuleViolation) as err:
        operators.decide(platform, maker, pid, approve=True)
    assert err.value.code == "proposal.same_operator"
    operators.decide(platform, checker, pid, approve=True)
    with platform.engine.connect() as conn:
        line = lending.line_summary(conn, cid)
        assert (line["limit"], line["daily_rate"]) == ("20000.00", "0.0003")
        assert DailyRate(conn.execute(sa.select(loan.c.rate_units)).scalar_one()) == (
            DailyRate.parse("0.0005")
        )

    freeze = line_changes.propose_change(platform, checker, cid, event="freeze", reason="fraud")
    operators.decide(platform, maker, freeze["proposal_id"], approve=True)
    with platform.engine.connect() as conn:
        assert lending.line_summary(conn, cid)["status"] == "frozen"
    again = line_changes.propose_change(platform, maker, cid, event="freeze", reason="twice")
    with pytest.raises(RuleViolation) as err:  # the state table refuses frozen → freeze
        operators.decide(platform, checker, again["proposal_id"], approve=True)
    assert err.value.code == "line.transition.illegal"
    assert (
        operators.list_proposals(platform, status="pending")[0]["proposal_id"]
        == (again["proposal_id"])
    )
    operators.decide(platform, checker, again["proposal_id"], approve=False, note="wrong")
    with platform.engine.connect() as conn:
        actions = conn.execute(sa.select(audit_log.c.action)).scalars().all()
    assert actions.count("line.change.propose") == 3 and "line.change.reject" in actions


def test_who_may_propose_and_bad_changes(platform: Platform) -> None:
    maker, _ = make_operators(platform)
    operators.create_operator(platform, "helpdesk", PASSWORD, ["customer_service"])
    helpdesk = operators.authenticate(platform, "helpdesk", PASSWORD)
    cid = lending.create_customer(platform, "李娜")
    lending.grant_line(platform, cid, 1_000_000, DailyRate.parse("0.0005"))
    with pytest.raises(MicroloanError) as err:
        line_changes.propose_change(platform, helpdesk, cid, limit_fen=500_000, reason="x")
    assert err.value.code == "operator.forbidden"
    cases = [
        ({}, "change"),
        ({"limit_fen": 30_000}, "limit"),
        ({"event": "close"}, "event"),
        ({"limit_fen": 500_000, "reason": " "}, "reason"),
    ]
    for kwargs, field in cases:
        with pytest.raises(MicroloanError) as err:
            line_changes.propose_change(platform, maker, cid, **({"reason": "r"} | kwargs))  # type: ignore[arg-type]
        assert err.value.field == field, kwargs
    with pytest.raises(MicroloanError) as err:
        line_changes.propose_change(platform, maker, 999, limit_fen=500_000, reason="r")
    assert err.value.code == "line.not_found"
    assert operators.list_proposals(platform) == []
