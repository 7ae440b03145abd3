"""Lines, draws and repayments through the service layer, on SQLite and PostgreSQL.

The rulebook's worked example (§9) end to end, every draw rule's refusal (§2), the repayment
rules and order (§5) and idempotency.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from microloan.domain.rates import DailyRate
from microloan.errors import DrawRefused, IdempotencyConflict, NotFound, RepaymentRefused
from microloan.service import lending
from microloan.service.autodebit import run_autodebit
from microloan.service.eod import run_eod
from microloan.service.platform import Platform

from .support import (
    EI,
    EP,
    assert_ledger_ok,
    books,
    draw,
    fen,
    line,
    new_customer,
    payoff,
    refusal,
    repay,
    row_counts,
    set_date,
    sql,
    yuan,
)

DRAWN_ON = date(2026, 1, 31)
FIRST_DUE = date(2026, 2, 28)


def _worked_example(p: Platform, method: Any = EI) -> tuple[int, int]:
    """§9: 10,000.00 yuan, 12 months, daily rate 0.0005, drawn 2026-01-31."""
    set_date(p, DRAWN_ON)
    cid = new_customer(p, limit="20000", rate="0.0005")
    answer = draw(p, cid, "10000", 12, method)
    return cid, int(answer["loan_id"])


def _unchanged(p: Platform) -> Callable[[], None]:
    """Remember every table's rows now; the returned check asserts nothing moved."""
    counts, before = row_counts(p), books(p)

    def check() -> None:
        assert row_counts(p) == counts
        assert books(p) == before

    return check


# ---------------------------------------------------------------------------------------------
# §9 worked examples


def test_worked_example_draw_books_the_schedule(platform: Platform) -> None:
    cid, loan_id = _worked_example(platform)
    shown = lending.show_loan(platform, loan_id)
    assert shown["status"] == "open" and shown["drawn_on"] == "2026-01-31"
    assert (shown["daily_rate"], shown["annual_simple_rate"]) == ("0.0005", "18.00%")
    sched = shown["schedule"]
    assert len(sched) == 12
    assert (sched[0]["due_date"], sched[0]["principal"]) == ("2026-02-28", "776.80")
    assert (sched[1]["due_date"], sched[1]["principal"], sched[1]["interest"]) == (
        "2026-03-31",
        "773.84",
        "142.96",
    )
    assert (sched[11]["due_date"], sched[11]["principal"], sched[11]["interest"]) == (
        "2027-01-31",
        "909.92",
        "14.10",
    )
    # drawn today: nothing accrued yet, so the payoff is the principal (§1)
    assert (shown["payoff"], shown["dpd"], shown["interest_accrued"]) == ("10000.00", 0, "0.00")
    assert line(platform, cid)["available"] == "10000.00"
    assert line(platform, cid)["open_loans"] == 1
    assert_ledger_ok(platform)


def test_worked_example_loan_shows_its_apr(platform: Platform) -> None:
    set_date(platform, DRAWN_ON)
    cid = new_customer(platform)
    answer_ei = draw(platform, cid, "10000", 12, EI)
    answer_ep = draw(platform, cid, "10000", 12, EP)
    for answer, apr in ((answer_ei, "18.12%"), (answer_ep, "18.11%")):
        assert (answer.get("annual_simple_rate"), answer.get("apr")) == ("18.00%", apr)
        shown = lending.show_loan(platform, int(answer["loan_id"]))
        assert (shown["annual_simple_rate"], shown.get("apr")) == ("18.00%", apr)


@pytest.mark.parametrize("with_eod", [False, True], ids=["live", "after-eod"])
def test_worked_example_payoff_after_paying_period_one_on_its_due_date(
    platform: Platform, with_eod: bool
) -> None:
    cid, loan_id = _worked_example(platform)
    set_date(platform, FIRST_DUE)
    if with_eod:
        run_eod(platform)
    assert lending.payoff(platform, loan_id)["payoff"] == "10140.00"  # 10000 + 28 days of 5.00
    paid = repay(platform, cid, "916.80", loan_id)
    assert paid["loans"] == [
        {
            "loan_id": loan_id,
            "amount": "916.80",
            "penalty": "0.00",
            "interest": "140.00",
            "principal": "776.80",
            "prepaid_principal": "0.00",
            "payoff_after": "9223.20",
            "closed": False,
        }
    ]
    set_date(platform, date(2026, 3, 15))
    if with_eod:
        run_eod(platform)
    assert lending.payoff(platform, loan_id) == {
        "loan_id": loan_id,
        "date": "2026-03-15",
        "payoff": "9292.37",
        "principal": "9223.20",
        "interest": "69.17",
        "penalty": "0.00",
    }
    assert lending.show_loan(platform, loan_id)["dpd"] == 0
    assert_ledger_ok(platform)


@pytest.mark.parametrize("with_eod", [False, True], ids=["live", "after-eod"])
def test_worked_example_period_one_unpaid_blocks_draws_until_the_arrears_are_paid(
    platform: Platform, with_eod: bool
) -> None:
    cid, loan_id = _worked_example(platform)
    set_date(platform, date(2026, 3, 5))
    if with_eod:
        run_eod(platform)
        assert line(platform, cid)["overdue_blocked"] is True
    assert lending.payoff(platform, loan_id) == {
        "loan_id": loan_id,
        "date": "2026-03-05",
        "payoff": "10166.12",
        "principal": "10000.00",
        "interest": "163.06",
        "penalty": "3.06",  # 140.00 of period 1 + 23.06 for 5 days
    }
    shown = lending.show_loan(platform, loan_id)
    assert (shown["dpd"], shown["penalty_due"]) == (5, "3.06")
    assert shown["schedule"][0]["status"] == "overdue"

    unchanged = _unchanged(platform)
    err = refusal(draw, platform, cid, "100", 3)
    assert isinstance(err, DrawRefused) and err.code == "loan.draw.overdue"
    unchanged()

    # paying exactly what is overdue (penalty, then period 1) lifts the block at once
    paid = repay(platform, cid, "919.86", loan_id)["loans"][0]
    assert (paid["penalty"], paid["interest"], paid["principal"], paid["prepaid_principal"]) == (
        "3.06",
        "140.00",
        "776.80",
        "0.00",
    )
    assert lending.show_loan(platform, loan_id)["dpd"] == 0
    assert line(platform, cid)["overdue_blocked"] is False
    assert draw(platform, cid, "100", 3)["drawn_on"] == "2026-03-05"
    assert_ledger_ok(platform)


@pytest.mark.parametrize(
    ("method", "principals", "interests", "total_interest"),
    [
        (EP, {1: "833.33", 2: "833.33", 12: "833.37"}, {1: "140.00", 2: "142.08"}, "981.67"),
        (
            EI,
            {1: "776.80", 2: "773.84", 12: "909.92"},
            {1: "140.00", 2: "142.96", 12: "14.10"},
            "1008.82",
        ),
    ],
    ids=["equal_principal", "equal_installment"],
)
def test_worked_example_paid_on_every_due_date_costs_the_scheduled_interest(
    platform: Platform,
    method: Any,
    principals: dict[int, str],
    interests: dict[int, str],
    total_interest: str,
) -> None:
    cid, loan_id = _worked_example(platform, method)
    dues = [
        date.fromisoformat(i["due_date"]) for i in lending.show_loan(platform, loan_id)["schedule"]
    ]
    splits = []
    for due in dues:
        set_date(platform, due)
        result = run_autodebit(platform)
        assert (result.loans_due, result.debited, result.failed) == (1, 1, 0)
        splits.append(lending.show_loan(platform, loan_id)["schedule"][len(splits)])
    for period, principal in principals.items():
        assert splits[period - 1]["principal_paid"] == principal
    for period, interest in interests.items():
        assert splits[period - 1]["interest_paid"] == interest
    shown = lending.show_loan(platform, loan_id)
    assert (shown["status"], shown["closed_on"], shown["payoff"]) == (
        "closed",
        "2027-01-31",
        "0.00",
    )
    assert yuan(sum(fen(i["interest_paid"]) for i in shown["schedule"])) == total_interest
    assert line(platform, cid)["open_loans"] == 0
    assert line(platform, cid)["available"] == "20000.00"
    assert_ledger_ok(platform)


# ---------------------------------------------------------------------------------------------
# §2 draw rules: each refusal has its code and changes nothing


def _below_minimum(p: Platform) -> tuple[int, str, int]:
    return new_customer(p), "99", 12


def _not_whole_yuan(p: Platform) -> tuple[int, str, int]:
    return new_customer(p), "100.50", 12


def _exceeds_available(p: Platform) -> tuple[int, str, int]:
    cid = new_customer(p, limit="1000")
    draw(p, cid, "600", 3)
    return cid, "401", 3


def _limit_lowered_below_outstanding(p: Platform) -> tuple[int, str, int]:
    cid = new_customer(p, limit="1000")
    draw(p, cid, "800", 3)
    summary = lending.grant_line(p, cid, fen("500"), DailyRate.parse("0.0005"))
    assert summary["available"] == "0.00"  # §2: a lower limit just makes available 0
    return cid, "100", 3


def _twenty_open_loans(p: Platform) -> tuple[int, str, int]:
    cid = new_customer(p, limit="5000")
    for _ in range(20):
        draw(p, cid, "100", 3, EP)
    return cid, "100", 3


def _frozen(p: Platform) -> tuple[int, str, int]:
    cid = new_customer(p)
    sql(p, "UPDATE credit_line SET status = 'frozen' WHERE customer_id = :c", c=cid)
    return cid, "100", 3


def _closed(p: Platform) -> tuple[int, str, int]:
    cid = new_customer(p)
    sql(p, "UPDATE credit_line SET status = 'closed' WHERE customer_id = :c", c=cid)
    return cid, "100", 3


def _term_not_offered(p: Platform) -> tuple[int, str, int]:
    return new_customer(p), "1000", 7


def _term_36_not_in_default_product(p: Platform) -> tuple[int, str, int]:
    return new_customer(p), "1000", 36


def _overdue_elsewhere(p: Platform) -> tuple[int, str, int]:
    cid = new_customer(p)
    draw(p, cid, "1000", 3, EP)
    set_date(p, date(2026, 3, 1))  # period 1 fell due 2026-02-28 and was not paid
    return cid, "100", 3


@pytest.mark.parametrize(
    ("setup", "code", "in_message"),
    [
        (_below_minimum, "loan.draw.below_minimum", "100.00"),
        (_not_whole_yuan, "loan.draw.not_whole_yuan", "whole"),
        (_exceeds_available, "loan.draw.exceeds_available", "400.00"),
        (_limit_lowered_below_outstanding, "loan.draw.exceeds_available", "0.00"),
        (_twenty_open_loans, "loan.draw.too_many_loans", "20"),
        (_frozen, "loan.draw.line_not_active", "frozen"),
        (_closed, "loan.draw.line_not_active", "closed"),
        (_term_not_offered, "loan.draw.term_not_offered", "7"),
        (_term_36_not_in_default_product, "loan.draw.term_not_offered", "36"),
        (_overdue_elsewhere, "loan.draw.overdue", "overdue"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_draw_refusals_have_their_code_and_change_nothing(
    platform: Platform,
    setup: Callable[[Platform], tuple[int, str, int]],
    code: str,
    in_message: str,
) -> None:
    set_date(platform, DRAWN_ON)
    cid, amount, term = setup(platform)
    line_before = line(platform, cid)
    unchanged = _unchanged(platform)
    err = refusal(draw, platform, cid, amount, term, EP)
    assert isinstance(err, DrawRefused)
    assert err.code == code
    assert in_message in err.message
    unchanged()
    assert line(platform, cid) == line_before
    assert_ledger_ok(platform)


@pytest.mark.parametrize(
    ("limit", "rate", "field"),
    [
        ("400", "0.0005", "limit"),
        ("200100", "0.0005", "limit"),
        ("550", "0.0005", "limit"),
        ("5000", "0.000082", "rate"),
        ("5000", "0.000661", "rate"),
    ],
)
def test_a_line_outside_the_product_is_refused_and_changes_nothing(
    platform: Platform, limit: str, rate: str, field: str
) -> None:
    set_date(platform, DRAWN_ON)
    cid = new_customer(platform, limit="5000")
    before = line(platform, cid)
    unchanged = _unchanged(platform)
    err = refusal(lending.grant_line, platform, cid, fen(limit), DailyRate.parse(rate))
    assert (err.code, err.field) == ("input.invalid", field)
    unchanged()
    assert line(platform, cid) == before


def test_draw_up_to_exactly_the_available_amount_is_accepted(platform: Platform) -> None:
    set_date(platform, DRAWN_ON)
    cid = new_customer(platform, limit="1000")
    draw(platform, cid, "600", 3)
    draw(platform, cid, "400", 6)
    assert line(platform, cid)["available"] == "0.00"
    assert line(platform, cid)["outstanding_principal"] == "1000.00"
    assert_ledger_ok(platform)


def test_draw_for_unknown_customer_or_customer_without_line_is_not_found(
    platform: Platform,
) -> None:
    set_date(platform, DRAWN_ON)
    no_line = lending.create_customer(platform, "李四")
    unchanged = _unchanged(platform)
    err = refusal(draw, platform, no_line, "100", 3)
    assert isinstance(err, NotFound) and err.code == "line.not_found"
    err = refusal(draw, platform, no_line + 100, "100", 3)
    assert isinstance(err, NotFound) and err.code == "customer.not_found"
    unchanged()


# ---------------------------------------------------------------------------------------------
# §5 repayments


def test_repayment_over_the_payoff_is_refused_with_the_payoff_stated(platform: Platform) -> None:
    cid, loan_id = _worked_example(platform)
    set_date(platform, date(2026, 2, 10))
    owed = payoff(platform, loan_id)
    assert owed == "10050.00"  # 10 days of 5.00
    unchanged = _unchanged(platform)
    err = refusal(repay, platform, cid, yuan(fen(owed) + 1), loan_id)
    assert isinstance(err, RepaymentRefused)
    assert err.code == "loan.repay.exceeds_payoff"
    assert owed in err.message
    err = refusal(repay, platform, cid, yuan(fen(owed) + 1))  # "all"
    assert err.code == "loan.repay.exceeds_payoff" and owed in err.message
    unchanged()
    assert repay(platform, cid, owed, loan_id)["loans"][0]["closed"] is True
    assert_ledger_ok(platform)


def test_repayment_of_all_over_the_total_payoff_states_the_total(platform: Platform) -> None:
    set_date(platform, DRAWN_ON)
    cid = new_customer(platform)
    draw(platform, cid, "1000", 3)
    draw(platform, cid, "2000", 6)
    err = refusal(repay, platform, cid, "3000.01")
    assert err.code == "loan.repay.exceeds_payoff" and "3000.00" in err.message


def test_a_loan_repaid_the_day_it_was_drawn_costs_nothing(platform: Platform) -> None:
    cid, loan_id = _worked_example(platform)
    paid = repay(platform, cid, "10000.00", loan_id)["loans"][0]
    assert (paid["interest"], paid["principal"], paid["closed"]) == ("0.00", "10000.00", True)
    assert_ledger_ok(platform)


def test_closed_loan_refuses_repayments_and_frees_its_slot(platform: Platform) -> None:
    set_date(platform, DRAWN_ON)
    cid = new_customer(platform, limit="5000")
    loan_ids = [int(draw(platform, cid, "100", 3, EP)["loan_id"]) for _ in range(20)]
    assert refusal(draw, platform, cid, "100", 3).code == "loan.draw.too_many_loans"
    set_date(platform, date(2026, 2, 5))
    first = loan_ids[0]
    paid = repay(platform, cid, payoff(platform, first), first)["loans"][0]
    assert paid["closed"] is True and paid["payoff_after"] == "0.00"
    shown = lending.show_loan(platform, first)
    assert (shown["status"], shown["closed_on"]) == ("closed", "2026-02-05")
    assert line(platform, cid)["open_loans"] == 19

    unchanged = _unchanged(platform)
    err = refusal(repay, platform, cid, "1.00", first)
    assert isinstance(err, RepaymentRefused) and err.code == "loan.repay.not_open"
    unchanged()

    draw(platform, cid, "100", 3)  # the slot is free again
    assert line(platform, cid)["open_loans"] == 20
    assert_ledger_ok(platform)


def test_repayment_of_a_loan_that_is_not_the_customers_is_not_found(platform: Platform) -> None:
    set_date(platform, DRAWN_ON)
    alice, bob = new_customer(platform), new_customer(platform, name="李四")
    alices = int(draw(platform, alice, "1000", 3)["loan_id"])
    unchanged = _unchanged(platform)
    err = refusal(repay, platform, bob, "10.00", alices)
    assert isinstance(err, NotFound) and err.code == "loan.not_found"
    err = refusal(repay, platform, bob, "10.00")
    assert isinstance(err, RepaymentRefused) and err.code == "loan.repay.nothing_open"
    unchanged()


def test_revolving_line_principal_repaid_makes_room_again(platform: Platform) -> None:
    set_date(platform, DRAWN_ON)
    cid = new_customer(platform, limit="1000")
    loan_id = int(draw(platform, cid, "1000", 3, EP)["loan_id"])
    assert line(platform, cid)["available"] == "0.00"
    assert refusal(draw, platform, cid, "100", 3).code == "loan.draw.exceeds_available"
    set_date(platform, date(2026, 2, 10))  # 10 days of 0.50 interest
    part = repay(platform, cid, "305.00", loan_id)["loans"][0]
    assert (part["interest"], part["principal"]) == ("5.00", "300.00")
    summary = line(platform, cid)
    assert (summary["available"], summary["outstanding_principal"]) == ("300.00", "700.00")
    draw(platform, cid, "300", 3)
    assert line(platform, cid)["available"] == "0.00"
    assert_ledger_ok(platform)


def _arrears_and_current_fen(p: Platform, loan_id: int) -> tuple[int, int]:
    """From `loan show`: penalty + overdue installments (stage 2), and what the current
    installment still asks (stage 3)."""
    shown = lending.show_loan(p, loan_id)
    today = date.fromisoformat(shown["as_of"])
    arrears, current = fen(shown["penalty_due"]), None
    for inst in shown["schedule"]:
        left = (
            fen(inst["principal"])
            - fen(inst["principal_paid"])
            + fen(inst["interest"])
            - fen(inst["interest_paid"])
        )
        if date.fromisoformat(inst["due_date"]) < today:
            arrears += left
        elif current is None:
            current = left
    return arrears, current or 0


def test_repayment_of_all_follows_the_order_of_section_5(platform: Platform) -> None:
    set_date(platform, date(2026, 1, 10))
    cid = new_customer(platform, limit="50000")
    a = int(draw(platform, cid, "10000", 12, EP)["loan_id"])  # due 02-10, 03-10, …
    set_date(platform, DRAWN_ON)
    b = int(draw(platform, cid, "10000", 12, EP)["loan_id"])  # due 02-28, 03-31, …
    set_date(platform, date(2026, 2, 5))
    c = int(draw(platform, cid, "10000", 12, EP)["loan_id"])  # due 03-05, 04-05, …
    set_date(platform, date(2026, 3, 1))  # a is 19 days past due, b 1 day, c is current

    arrears_a, _ = _arrears_and_current_fen(platform, a)
    # stage 2 runs loan by loan, earliest unpaid due date first: all of a's arrears, then b's
    # penalty (1 day on 973.33 at min(1.5 × 0.0005, 1/1500) = 0.65) before b's interest
    paid = repay(platform, cid, yuan(arrears_a + 100))["loans"]
    by_loan = {part["loan_id"]: part for part in paid}
    assert set(by_loan) == {a, b}
    assert by_loan[a]["amount"] == yuan(arrears_a)
    assert (by_loan[a]["interest"], by_loan[a]["principal"]) == ("155.00", "833.33")
    assert (by_loan[b]["penalty"], by_loan[b]["interest"], by_loan[b]["principal"]) == (
        "0.65",
        "0.35",
        "0.00",
    )
    assert refusal(draw, platform, cid, "100", 3).code == "loan.draw.overdue"

    # then the rest of b's arrears; then stage 3 across loans, nearest due date first:
    # c (due 03-05) before a (03-10) before b (03-31)
    arrears_b, _ = _arrears_and_current_fen(platform, b)
    _, current_c = _arrears_and_current_fen(platform, c)
    paid = repay(platform, cid, yuan(arrears_b + current_c + 100))["loans"]
    by_loan = {part["loan_id"]: part for part in paid}
    assert {k: v["amount"] for k, v in by_loan.items()} == {
        a: "1.00",
        b: yuan(arrears_b),
        c: yuan(current_c),
    }
    assert by_loan[a]["interest"] == "1.00"  # a's current interest comes before its principal
    assert by_loan[c]["prepaid_principal"] == "0.00"
    assert line(platform, cid)["overdue_blocked"] is False  # arrears cleared: block lifted

    # stage 4 (prepayment) only once every current installment is paid, nearest due first: c
    _, current_a = _arrears_and_current_fen(platform, a)
    _, current_b = _arrears_and_current_fen(platform, b)
    paid = repay(platform, cid, yuan(current_a + current_b + 500))["loans"]
    by_loan = {part["loan_id"]: part for part in paid}
    assert {k: v["amount"] for k, v in by_loan.items()} == {
        a: yuan(current_a),
        b: yuan(current_b),
        c: "5.00",
    }
    assert by_loan[c]["prepaid_principal"] == "5.00"
    assert by_loan[a]["prepaid_principal"] == by_loan[b]["prepaid_principal"] == "0.00"
    draw(platform, cid, "100", 3)
    assert_ledger_ok(platform)


def test_repayment_of_all_breaks_ties_by_earlier_draw_then_lower_loan_id(
    platform: Platform,
) -> None:
    set_date(platform, DRAWN_ON)
    cid = new_customer(platform)
    first = int(draw(platform, cid, "1000", 3, EP)["loan_id"])
    second = int(draw(platform, cid, "1000", 3, EP)["loan_id"])
    set_date(platform, date(2026, 2, 10))  # same due dates: the lower loan id goes first
    paid = repay(platform, cid, "300.00")["loans"]
    assert [(p["loan_id"], p["amount"]) for p in paid] == [(first, "300.00")]
    _, current_first = _arrears_and_current_fen(platform, first)
    paid = repay(platform, cid, yuan(current_first + 100))["loans"]
    assert {p["loan_id"]: p["amount"] for p in paid} == {first: yuan(current_first), second: "1.00"}
    assert_ledger_ok(platform)


# ---------------------------------------------------------------------------------------------
# Idempotency (§5)


def test_draw_with_the_same_key_twice_books_once_and_answers_the_same(platform: Platform) -> None:
    set_date(platform, DRAWN_ON)
    cid = new_customer(platform)
    first = draw(platform, cid, "1000", 3, EP, key="draw-1")
    counts = row_counts(platform)
    again = draw(platform, cid, "1000", 3, EP, key="draw-1")
    assert again == first
    assert row_counts(platform) == counts
    assert line(platform, cid)["outstanding_principal"] == "1000.00"
    assert_ledger_ok(platform)


@pytest.mark.parametrize("change", ["amount", "term", "method", "customer", "operation"])
def test_draw_key_reused_for_a_different_request_is_refused(
    platform: Platform, change: str
) -> None:
    set_date(platform, DRAWN_ON)
    cid, other = new_customer(platform), new_customer(platform, name="李四")
    draw(platform, cid, "1000", 3, EP, key="draw-1")
    unchanged = _unchanged(platform)
    calls: dict[str, Callable[[], object]] = {
        "amount": lambda: draw(platform, cid, "1001", 3, EP, key="draw-1"),
        "term": lambda: draw(platform, cid, "1000", 6, EP, key="draw-1"),
        "method": lambda: draw(platform, cid, "1000", 3, EI, key="draw-1"),
        "customer": lambda: draw(platform, other, "1000", 3, EP, key="draw-1"),
        "operation": lambda: repay(platform, cid, "1000.00", key="draw-1"),
    }
    err = refusal(calls[change])
    assert isinstance(err, IdempotencyConflict) and err.code == "idempotency.conflict"
    unchanged()


def test_repayment_with_the_same_key_twice_books_once_and_answers_the_same(
    platform: Platform,
) -> None:
    cid, loan_id = _worked_example(platform)
    set_date(platform, date(2026, 2, 10))
    first = repay(platform, cid, "1000.00", loan_id, key="pay-1")
    counts = row_counts(platform)
    assert repay(platform, cid, "1000.00", loan_id, key="pay-1") == first
    assert row_counts(platform) == counts
    # the answer stays the same even after the loan has moved on
    closing = repay(platform, cid, payoff(platform, loan_id), loan_id, key="pay-2")
    assert closing["loans"][0]["closed"] is True
    set_date(platform, date(2026, 2, 11))
    assert repay(platform, cid, "1000.00", loan_id, key="pay-1") == first
    assert assert_ledger_ok(platform)["loans_checked"] == 1


def test_repayment_of_all_with_the_same_key_twice_books_once(platform: Platform) -> None:
    set_date(platform, DRAWN_ON)
    cid = new_customer(platform)
    draw(platform, cid, "1000", 3)
    draw(platform, cid, "2000", 3)
    set_date(platform, date(2026, 2, 10))
    first = repay(platform, cid, "1500.00", key="all-1")
    counts = row_counts(platform)
    assert repay(platform, cid, "1500.00", key="all-1") == first
    assert row_counts(platform) == counts
    assert_ledger_ok(platform)


@pytest.mark.parametrize("change", ["amount", "loan", "all", "customer", "operation"])
def test_repayment_key_reused_for_a_different_request_is_refused(
    platform: Platform, change: str
) -> None:
    set_date(platform, DRAWN_ON)
    cid, other = new_customer(platform), new_customer(platform, name="李四")
    one = int(draw(platform, cid, "1000", 3)["loan_id"])
    two = int(draw(platform, cid, "1000", 3)["loan_id"])
    draw(platform, other, "1000", 3)
    set_date(platform, date(2026, 2, 10))
    repay(platform, cid, "100.00", one, key="pay-1")
    unchanged = _unchanged(platform)
    calls: dict[str, Callable[[], object]] = {
        "amount": lambda: repay(platform, cid, "100.01", one, key="pay-1"),
        "loan": lambda: repay(platform, cid, "100.00", two, key="pay-1"),
        "all": lambda: repay(platform, cid, "100.00", None, key="pay-1"),
        "customer": lambda: repay(platform, other, "100.00", None, key="pay-1"),
        "operation": lambda: draw(platform, cid, "100", 3, key="pay-1"),
    }
    err = refusal(calls[change])
    assert isinstance(err, IdempotencyConflict) and err.code == "idempotency.conflict"
    unchanged()


@pytest.mark.parametrize("key", ["", "   ", "k" * 129])
def test_a_missing_or_overlong_key_is_refused(platform: Platform, key: str) -> None:
    set_date(platform, DRAWN_ON)
    cid = new_customer(platform)
    unchanged = _unchanged(platform)
    assert refusal(lending.draw, platform, cid, fen("100"), 3, EP, key).code == "input.invalid"
    assert refusal(lending.repay, platform, cid, None, fen("1"), key).code == "input.invalid"
    unchanged()


def test_line_available_is_limit_less_outstanding_after_a_mixed_day(platform: Platform) -> None:
    set_date(platform, DRAWN_ON)
    cid = new_customer(platform, limit="3000")
    ids = [int(draw(platform, cid, amount, 3)["loan_id"]) for amount in ("500", "700", "900")]
    set_date(platform, date(2026, 2, 15))
    repay(platform, cid, "450.00", ids[1])
    repay(platform, cid, payoff(platform, ids[0]), ids[0])
    summary: dict[str, Any] = line(platform, cid)
    outstanding = sum(fen(lending.show_loan(platform, i)["principal_outstanding"]) for i in ids)
    assert summary["outstanding_principal"] == yuan(outstanding)
    assert summary["available"] == yuan(fen("3000") - outstanding)
    assert summary["open_loans"] == 2
    assert_ledger_ok(platform)
