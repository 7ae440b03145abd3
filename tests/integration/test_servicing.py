"""The end of day's books at the rules' boundaries (lending rules §7): five tiers by DPD,
non-accrual from 91 DPD, provisions, write-off by maker-checker and recoveries, and the
reconciliation of loans against the books catching a planted mismatch."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from microloan.domain.books import Account
from microloan.errors import RuleViolation
from microloan.service import eod, operators, write_offs
from microloan.service.eod_reports import eod_status, portfolio
from microloan.service.platform import Platform
from microloan.store.schema import accrual, journal_entry, journal_line, loan, recon_issue

from .decision_support import PASSWORD
from .support import (
    EP,
    account_balances,
    assert_ledger_ok,
    draw,
    new_customer,
    repay,
    set_date,
)

DRAWN = date(2026, 1, 31)
FIRST_DUE = date(2026, 2, 28)  # 10,000.00 over 12 months, equal principal, never paid


def _at_dpd(dpd: int) -> date:
    return FIRST_DUE + timedelta(days=dpd)


def _unpaid_loan(p: Platform, through_dpd: int) -> int:
    set_date(p, DRAWN)
    cid = new_customer(p, limit="20000")
    loan_id = int(draw(p, cid, "10000", 12, EP)["loan_id"])
    set_date(p, _at_dpd(through_dpd) + timedelta(days=1))
    eod.run_eod(p)
    return loan_id


def _tiers(p: Platform, on: date) -> dict[str, int]:
    figures = portfolio(p, on)
    return {t: v["loans"] for t, v in figures["by_tier"].items() if v["loans"]}


@pytest.fixture
def defaulted(platform: Platform) -> tuple[Platform, int]:
    """One loan left unpaid from its first due date to 361 days past due, closed day by day."""
    return platform, _unpaid_loan(platform, 361)


def test_tiers_non_accrual_and_provisions_follow_the_dpd_boundaries(
    defaulted: tuple[Platform, int],
) -> None:
    p, loan_id = defaulted
    expect = {
        0: "normal",
        1: "special_mention",
        90: "special_mention",
        91: "substandard",
        270: "substandard",
        271: "doubtful",
        360: "doubtful",
        361: "loss",
    }
    for dpd, tier in expect.items():
        assert _tiers(p, _at_dpd(dpd)) == {tier: 1}, f"DPD {dpd}"
        figures = portfolio(p, _at_dpd(dpd))
        assert figures["non_accrual_loans"] == (1 if dpd >= 91 else 0)
        assert figures["write_off_candidates"] == (1 if dpd > 180 else 0)
    assert portfolio(p, _at_dpd(180))["write_off_candidates"] == 0
    assert portfolio(p, _at_dpd(181))["write_off_candidates"] == 1

    # interest accrues on balance through the day the loan reaches 91 DPD, off balance after
    with p.engine.connect() as conn:
        days = {
            r.business_date: r
            for r in conn.execute(
                sa.select(accrual).where(
                    accrual.c.loan_id == loan_id,
                    accrual.c.business_date.in_([_at_dpd(90), _at_dpd(91), _at_dpd(92)]),
                )
            )
        }
    assert days[_at_dpd(91)].interest_fen > 0 and days[_at_dpd(91)].off_interest_fen == 0
    assert days[_at_dpd(92)].interest_fen == 0 and days[_at_dpd(92)].off_interest_fen > 0
    assert days[_at_dpd(92)].penalty_fen == 0 and days[_at_dpd(92)].off_penalty_fen > 0

    # the allowance held equals the rule on the last day: loss, 100 % of principal plus what is
    # receivable on balance (interest and penalty booked before non-accrual)
    with p.engine.connect() as conn:
        row = conn.execute(sa.select(loan).where(loan.c.loan_id == loan_id)).one()
    balances = account_balances(p)
    exposure = row.snap_principal_fen + row.interest_recv_fen + row.penalty_recv_fen
    assert row.snap_principal_fen == 1_000_000 and row.tier == "loss"
    assert -balances[Account.LOAN_LOSS_ALLOWANCE.value] == exposure
    assert balances[Account.IMPAIRMENT_LOSS.value] == exposure
    assert balances[Account.OFF_INTEREST.value] == row.interest_memo_fen > 0
    assert balances[Account.OFF_PENALTY.value] == row.penalty_memo_fen > 0
    last = portfolio(p, _at_dpd(361))
    assert (last["npl_ratio"], last["provision_coverage"], last["loan_provision_ratio"]) == (
        "100.0000%",
        _percent(exposure, 1_000_000),
        _percent(exposure, 1_000_000),
    )
    assert last["reconciliation"] == {"ok": True, "issues": []}
    assert_ledger_ok(p)


def _percent(part: int, whole: int) -> str:
    hundred_thousandths = (part * 1_000_000 * 2 + whole) // (2 * whole)
    return f"{hundred_thousandths // 10_000}.{hundred_thousandths % 10_000:04d}%"


def _finance(p: Platform) -> tuple[operators.Operator, operators.Operator]:
    for name in ("ledger_a", "ledger_b"):
        operators.create_operator(p, name, PASSWORD, ["finance"])
    return (
        operators.authenticate(p, "ledger_a", PASSWORD),
        operators.authenticate(p, "ledger_b", PASSWORD),
    )


def test_write_off_by_two_operators_then_recoveries_are_income(platform: Platform) -> None:
    p = platform
    loan_id = _unpaid_loan(p, 180)
    maker, checker = _finance(p)
    with pytest.raises(RuleViolation) as early:  # 180 days past due is not yet a candidate
        write_offs.propose_write_off(p, maker, loan_id, reason="too early")
    assert early.value.code == "write_off.not_candidate"
    assert write_offs.candidates(p)["candidates"] == []
    operators.create_operator(p, "desk", PASSWORD, ["customer_service"])
    desk = operators.authenticate(p, "desk", PASSWORD)
    set_date(p, _at_dpd(182))
    eod.run_eod(p)
    with pytest.raises(operators.AuthError):  # customer service may not write off
        write_offs.propose_write_off(p, desk, loan_id, reason="not my job")
    assert [c["loan_id"] for c in write_offs.candidates(p)["candidates"]] == [loan_id]
    before = account_balances(p)

    proposal = write_offs.propose_write_off(p, maker, loan_id, reason="催收无果 collection failed")
    with pytest.raises(RuleViolation) as same:
        operators.decide(p, maker, proposal["proposal_id"], approve=True)
    assert same.value.code == "proposal.same_operator"
    done = operators.decide(p, checker, proposal["proposal_id"], approve=True)
    assert done["status"] == "approved"

    after = account_balances(p)
    with p.engine.connect() as conn:
        row = conn.execute(sa.select(loan).where(loan.c.loan_id == loan_id)).one()
    assert row.written_off_on is not None and row.status == "open"
    assert after[Account.LOAN_PRINCIPAL.value] == 0
    assert after[Account.INTEREST_RECEIVABLE.value] == 0
    assert after[Account.PENALTY_RECEIVABLE.value] == 0
    assert after[Account.WRITTEN_OFF_PRINCIPAL.value] == 1_000_000
    moved = 1_000_000 + before[Account.INTEREST_RECEIVABLE.value]
    moved += before[Account.PENALTY_RECEIVABLE.value]
    assert (
        after[Account.LOAN_LOSS_ALLOWANCE.value]
        == before[Account.LOAN_LOSS_ALLOWANCE.value] + moved
    )
    with pytest.raises(RuleViolation) as twice:
        write_offs.propose_write_off(p, maker, loan_id, reason="again")
    assert twice.value.code == "write_off.already"

    # still collected: interest and penalty keep counting off balance; a payment is a recovery
    set_date(p, _at_dpd(185))
    [closed] = eod.run_eod(p)[-1:]
    assert closed.reconciled and closed.write_off_candidates == 0
    paid = repay(p, row.customer_id, "1000.00", loan_id)
    assert paid["loans"][0]["amount"] == "1000.00"
    books = account_balances(p)
    assert books[Account.RECOVERY_INCOME.value] == -100_000
    assert books[Account.LOAN_PRINCIPAL.value] == 0
    memo = sum(
        books.get(a.value, 0)
        for a in (Account.OFF_INTEREST, Account.OFF_PENALTY, Account.WRITTEN_OFF_PRINCIPAL)
    )
    assert memo == -books[Account.MEMO_CONTRA.value]
    set_date(p, _at_dpd(187))
    assert all(r.reconciled for r in eod.run_eod(p))
    figures = portfolio(p)
    assert figures["loan_balance"] == "0.00" and figures["written_off_loans"] == 1
    assert_ledger_ok(p)


def test_reconciliation_lists_a_planted_mismatch(platform: Platform) -> None:
    p = platform
    set_date(p, DRAWN)
    cid = new_customer(p)
    loan_id = int(draw(p, cid, "5000", 6, EP)["loan_id"])
    set_date(p, DRAWN + timedelta(days=3))
    assert all(r.reconciled for r in eod.run_eod(p))
    # someone books 1.00 yuan of principal on the loan without a loan event behind it
    with p.engine.begin() as conn:
        entry = conn.execute(
            journal_entry.insert().returning(journal_entry.c.entry_id),
            {
                "book_id": 1,
                "customer_id": cid,
                "loan_id": loan_id,
                "business_date": DRAWN + timedelta(days=3),
                "kind": "repayment",
                "reference": "planted",
                "created_at": p.now(),
            },
        ).scalar_one()
        conn.execute(
            journal_line.insert(),
            [
                {
                    "entry_id": entry,
                    "book_id": 1,
                    "customer_id": cid,
                    "loan_id": loan_id,
                    "account": a,
                    "amount_fen": v,
                }
                for a, v in ((Account.LOAN_PRINCIPAL.value, 100), (Account.SETTLEMENT.value, -100))
            ],
        )
    set_date(p, DRAWN + timedelta(days=4))
    [day] = eod.run_eod(p)
    assert day.reconciled is False and day.mismatches == 2
    with p.engine.connect() as conn:
        issues = conn.execute(sa.select(recon_issue)).all()
    kinds = {(i.kind, i.account, i.loan_id, i.expected_fen, i.actual_fen) for i in issues}
    principal = 500_000
    assert ("books", "1301", None, principal, principal + 100) in kinds
    assert ("loan", "1301", loan_id, principal, principal + 100) in kinds
    assert portfolio(p)["reconciliation"]["ok"] is False
    run = eod_status(p)["runs"][0]
    assert (run["status"], run["reconciled"], run["mismatches"]) == ("done", False, 2)
    assert json.dumps(run)  # the run record is plain JSON


def test_status_and_portfolio_before_any_close(platform: Platform) -> None:
    set_date(platform, DRAWN)
    status = eod_status(platform)
    assert status["runs"] == [] and status["last_closed_date"] is None
    with pytest.raises(Exception) as none:
        portfolio(platform)
    assert getattr(none.value, "code", None) == "portfolio.no_figures"
