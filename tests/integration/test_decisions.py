"""The credit decision end to end on both databases: a synthetic world behind the ports, a
scorecard activated by maker-checker, onboarding, apply, manual review and re-scoring."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from microloan.domain.money import parse_yuan
from microloan.domain.rates import DailyRate
from microloan.errors import MicroloanError, RuleViolation
from microloan.service import decisions, lending, models, onboarding, operators, reviews
from microloan.service.platform import Platform
from microloan.store.schema import (
    audit_log,
    blocked_list,
    credit_line,
    decision,
    loan,
    review_case,
)

from .decision_support import (
    PASSWORD,
    activate,
    count,
    make_operators,
    onboard,
    people,
    providers,
    scorecard,
)
from .support import MakePlatform

CLEAN = {
    "blocked": False,
    "ring": False,
    "emulator": False,
    "rooted": False,
    "serious": False,
    "shared_device": False,
}


@pytest.fixture
def ready(platform: Platform, tmp_path: Path) -> Platform:
    platform.use_providers(providers())
    activate(platform, tmp_path, scorecard())
    return platform


def test_apply_approves_with_line_rate_and_a_full_decision_record(ready: Platform) -> None:
    person = people(**CLEAN)[0]
    cid = onboard(ready, person)
    out = decisions.apply(ready, cid, person.primary_channel)
    assert out["outcome"] == "approved" and out["approved"]
    limit = parse_yuan(out["limit"])
    assert 50_000 <= limit <= 20_000_000 and limit % 10_000 == 0
    rate = DailyRate.parse(out["daily_rate"])
    assert rate.check_band() and out["grade"] in "ABCDEF"
    assert out["apr_example"].endswith("%") and out["annual_simple_rate"].endswith("%")
    assert 0 < float(out["pd"]) < 1 and isinstance(out["score"], int)
    # the line draws use is the one granted
    with ready.engine.connect() as conn:
        line = lending.line_summary(conn, cid)
    assert line["limit"] == out["limit"] and line["daily_rate"] == out["daily_rate"]
    shown = decisions.show_decision(ready, out["decision_id"])
    record = shown["record"]
    assert shown["model_version"] == out["model_version"]
    assert set(record["points"]) == {
        "report_status",
        "report_queries_3m",
        "app_active_days_90d",
        "platform_history",
    }
    assert sum(record["points"].values()) == out["score"]
    assert record["inputs"]["platform_history"] == "new"
    assert record["device"]["device_id"] == person.device_id
    # applying again is refused: the line exists, re-scoring reviews it
    with pytest.raises(RuleViolation) as err:
        decisions.apply(ready, cid, person.primary_channel)
    assert err.value.code == "line.exists"


def test_decisions_are_reproducible_for_a_fixed_population_seed(
    make_platform: MakePlatform, tmp_path: Path
) -> None:
    answers = []
    for i in range(2):
        p = make_platform()
        p.use_providers(providers())
        activate(p, tmp_path / str(i), scorecard())
        got = []
        for person in people(**CLEAN)[:6]:
            out = decisions.apply(p, onboard(p, person), person.primary_channel)
            got.append({k: v for k, v in out.items() if k not in ("decision_id",)})
        answers.append(got)
    assert answers[0] == answers[1]
    assert {a["outcome"] for a in answers[0]} <= {"approved", "declined"}


def test_serious_delinquency_in_the_report_is_a_knock_out(ready: Platform) -> None:
    person = people(serious=True)[0]
    out = decisions.apply(ready, onboard(ready, person), person.primary_channel)
    assert out["outcome"] == "declined" and "ko.report.serious_delinquency" in out["reasons"]
    assert out["limit"] is None and count(ready, credit_line) == 0


def test_blocked_list_and_emulator(ready: Platform) -> None:
    person, emu = people(**CLEAN)[1], people(emulator=True, blocked=False, serious=False)[0]
    cid = onboard(ready, person)
    with ready.engine.begin() as conn:
        conn.execute(
            blocked_list.insert(),
            {
                "kind": "id_number",
                "value_hash": ready.vault.blind(person.id_number, kind="id_number"),
                "reason": "test",
                "added_at": ready.now(),
            },
        )
    out = decisions.apply(ready, cid, person.primary_channel)
    assert out["outcome"] == "declined" and out["reasons"] == ["ko.blocked.id_number"]
    out = decisions.apply(ready, onboard(ready, emu), emu.primary_channel)
    assert out["outcome"] == "declined" and "fraud.device.emulator" in out["reasons"]


def test_no_credit_report_without_a_live_authorisation(ready: Platform) -> None:
    person = people(**CLEAN)[2]
    cid = onboard(ready, person, consents=False)
    with pytest.raises(RuleViolation) as err:
        decisions.apply(ready, cid, person.primary_channel)
    assert (err.value.code, err.value.field) == ("consent.credit_report.missing", "consent")
    assert count(ready, decision) == 0


def test_shared_device_goes_to_manual_review_and_an_operator_decides(ready: Platform) -> None:
    a, b, c = people(**CLEAN)[3:6]
    shared = a.device_id
    first = decisions.apply(ready, onboard(ready, a), a.primary_channel)
    second = decisions.apply(ready, onboard(ready, b, device=shared), b.primary_channel)
    assert first["outcome"] in ("approved", "declined") and second["outcome"] != "review"
    third_id = onboard(ready, c, device=shared)
    third = decisions.apply(ready, third_id, c.primary_channel)
    assert third["outcome"] == "review" and third["reasons"] == ["fraud.device.shared"]
    queue = reviews.review_queue(ready)
    assert [q["customer_id"] for q in queue] == [third_id]
    assert queue[0]["id_number"].startswith(c.id_number[:4]) and "*" in queue[0]["id_number"]

    checker = operators.authenticate(ready, "checker", PASSWORD)
    operators.create_operator(ready, "service", PASSWORD, ["customer_service"])
    helpdesk = operators.authenticate(ready, "service", PASSWORD)
    with pytest.raises(MicroloanError) as err:
        reviews.decide_review(ready, helpdesk, queue[0]["case_id"], approve=True)
    assert err.value.code == "operator.forbidden"
    done = reviews.decide_review(ready, checker, queue[0]["case_id"], approve=True, note="ok")
    assert done["status"] == "approved" and done["decided_by"] == "checker"
    assert done["limit"] == queue[0]["proposed_limit"]
    with pytest.raises(RuleViolation):
        reviews.decide_review(ready, checker, queue[0]["case_id"], approve=False)
    with ready.engine.connect() as conn:
        case = conn.execute(sa.select(review_case)).one()
        assert case.decided_by == checker.operator_id
        actions = conn.execute(sa.select(audit_log.c.action)).scalars().all()
    assert "review.approved" in actions and "model.activate.approve" in actions


def test_activation_needs_a_second_operator(platform: Platform, tmp_path: Path) -> None:
    platform.use_providers(providers())
    person = people(**CLEAN)[0]
    cid = onboard(platform, person)
    with pytest.raises(RuleViolation) as err:
        decisions.apply(platform, cid, person.primary_channel)
    assert err.value.code == "model.none_active"
    maker, _checker = make_operators(platform)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "scorecard.json").write_text(json.dumps(scorecard()))
    version = models.register(platform, maker, folder)["version"]
    pid = models.propose_activation(platform, maker, version)["proposal_id"]
    with pytest.raises(RuleViolation) as err:
        operators.decide(platform, maker, pid, approve=True)
    assert (err.value.code, err.value.field) == ("proposal.same_operator", "operator")
    assert models.list_models(platform)[0]["status"] == "registered"
    with pytest.raises(RuleViolation) as err:
        models.propose_activation(platform, maker, version)
    assert err.value.code == "proposal.pending"


def test_a_channel_scorecard_replaces_the_general_one_for_its_channel(
    ready: Platform, tmp_path: Path
) -> None:
    person = people(**CLEAN, primary_channel="wechat")[0]
    general = decisions.apply(ready, onboard(ready, person), "wechat")["model_version"]
    own = activate(ready, tmp_path, scorecard("wechat", delinquent_points=-50))
    other = people(**CLEAN, primary_channel="wechat")[1]
    assert decisions.apply(ready, onboard(ready, other), "wechat")["model_version"] == own
    assert own != general and own.startswith("wechat-")


def test_rescoring_lowers_a_delinquent_line_and_freezes_a_blocked_one(ready: Platform) -> None:
    good, late = people(**CLEAN)[6:8]
    ids = {}
    for person in (good, late):
        cid = onboard(ready, person)
        assert decisions.apply(ready, cid, person.primary_channel)["approved"]
        ids[person.person_id] = cid
    # the late payer has a loan 10 days past due (as the end of day would age it)
    lending.draw(ready, ids[late.person_id], 10_000, 3, lending.Method.EQUAL_PRINCIPAL, "k1")
    with ready.engine.begin() as conn:
        conn.execute(loan.update().values(dpd=10))
        before = conn.execute(sa.select(loan.c.rate_units)).scalar_one()
        conn.execute(
            blocked_list.insert(),
            {
                "kind": "id_number",
                "value_hash": ready.vault.blind(good.id_number, kind="id_number"),
                "reason": "fraud confirmed",
                "added_at": ready.now(),
            },
        )
    out = reviews.rescore(ready)
    assert out["reviewed"] == 2 and out["frozen"] == 1 and out["lowered"] == 1
    with ready.engine.connect() as conn:
        lines = dict(conn.execute(sa.select(credit_line.c.customer_id, credit_line.c.status)).all())
        assert lines == {ids[good.person_id]: "frozen", ids[late.person_id]: "active"}
        assert conn.execute(sa.select(loan.c.rate_units)).scalar_one() == before  # loans keep it
        kinds = conn.execute(sa.select(decision.c.kind)).scalars().all()
    assert kinds.count("rescore") == 2
    again = reviews.rescore(ready)
    assert again["unchanged"] == 2  # a frozen line stays frozen; the lowered one is stable


def test_a_declined_customer_may_apply_again_and_travel_is_measured(ready: Platform) -> None:
    person = people(serious=True)[0]
    cid = onboard(ready, person)
    first = decisions.apply(ready, cid, person.primary_channel)
    second = decisions.apply(ready, cid, person.primary_channel)
    assert first["outcome"] == second["outcome"] == "declined"
    record = decisions.show_decision(ready, second["decision_id"])["record"]
    assert record["location"] is not None  # the earlier place and time were compared


class CountingReports:
    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def fetch(self, id_number: str, name: str) -> Any:
        self.calls += 1
        return self.inner.fetch(id_number, name)


def test_rescoring_never_queries_the_report_without_a_live_authorisation(
    ready: Platform,
) -> None:
    person = people(**CLEAN)[8]
    cid = onboard(ready, person)
    assert decisions.apply(ready, cid, person.primary_channel)["approved"]
    counting = CountingReports(providers().credit_report)
    ready.use_providers(replace(providers(), credit_report=counting))
    reviews.rescore(ready)
    assert counting.calls == 1
    onboarding.withdraw_consent(ready, cid, "credit_report")
    out = reviews.rescore(ready)
    assert counting.calls == 1 and out["reviewed"] == 1
    with ready.engine.connect() as conn:
        last = conn.execute(
            sa.select(decision.c.record).order_by(decision.c.decision_id.desc()).limit(1)
        ).scalar_one()
    assert json.loads(last)["report_found"] is None
    assert json.loads(last)["inputs"]["report_status"] is None
