"""End of day on SQLite and PostgreSQL: once per date, catch-up, accrual, crashes, blocks, checks.

The end of day must give the same books however it is run: day by day or catching up over
skipped dates, cleanly or rerun after a crash half way through a date.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest

from microloan.domain.rates import DailyRate
from microloan.errors import ClockRefused
from microloan.providers.stored_rail import StoredRail
from microloan.service import eod, lending
from microloan.service.autodebit import run_autodebit
from microloan.service.clock import follow_system, read_clock
from microloan.service.ledger_check import check_ledger
from microloan.service.payments import simulated_rail
from microloan.service.platform import Platform
from microloan.service.quote import quote
from microloan.store.payments import account_ref

from .support import (
    EI,
    EP,
    MakePlatform,
    account_balances,
    accruals_by_loan_date,
    assert_ledger_ok,
    books,
    draw,
    fen,
    last_closed,
    line,
    new_customer,
    payoff,
    refusal,
    repay,
    row_counts,
    scalar,
    set_date,
    sql,
    yuan,
)

START = date(2026, 1, 31)
ONE_DAY = timedelta(days=1)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def declines_for(p: Platform, *customers: int) -> StoredRail:
    """The platform's simulated rail, declining every transfer of the given customers."""
    return simulated_rail(p, declined_cards=frozenset(account_ref(c) for c in customers))


# ---------------------------------------------------------------------------------------------
# Once per date


def test_eod_closes_every_date_before_the_open_date_once(platform: Platform) -> None:
    set_date(platform, START)
    cid = new_customer(platform)
    loan_id = int(draw(platform, cid, "10000", 12, EI)["loan_id"])
    set_date(platform, date(2026, 2, 10))
    repayments_before = row_counts(platform)["repayment"]

    closed = eod.run_eod(platform)
    assert [r.business_date for r in closed] == _days(START, date(2026, 2, 9))
    assert [r.loans for r in closed] == [1] * 10
    assert sum(r.interest_fen for r in closed) == fen("45.00")  # 9 days of 5.00 after the draw
    assert last_closed(platform) == date(2026, 2, 9)
    assert scalar(platform, "SELECT count(*) FROM eod_run WHERE status = 'done'") == 10
    assert row_counts(platform)["repayment"] == repayments_before  # the end of day moves no money

    after_first = books(platform)
    assert eod.run_eod(platform) == []  # a rerun finds every date closed and books nothing
    assert books(platform) == after_first
    assert payoff(platform, loan_id) == "10050.00"  # the open date counts whether closed or not
    assert_ledger_ok(platform)


def test_eod_until_stops_at_the_given_date_and_the_next_run_goes_on(platform: Platform) -> None:
    set_date(platform, START)
    cid = new_customer(platform)
    draw(platform, cid, "10000", 12, EI)
    set_date(platform, date(2026, 2, 10))
    first = eod.run_eod(platform, until=date(2026, 2, 3))
    assert [r.business_date for r in first] == _days(START, date(2026, 2, 3))
    rest = eod.run_eod(platform)
    assert [r.business_date for r in rest] == _days(date(2026, 2, 4), date(2026, 2, 9))
    assert_ledger_ok(platform)


def test_the_clock_never_moves_back_to_a_closed_date_or_before_business(platform: Platform) -> None:
    set_date(platform, date(2026, 2, 1))
    cid = new_customer(platform)
    draw(platform, cid, "1000", 3, EP)
    assert refusal(set_date, platform, START).code == "clock.before_business"
    set_date(platform, date(2026, 2, 10))
    eod.run_eod(platform)
    assert refusal(set_date, platform, date(2026, 2, 9)).code == "clock.before_closed"
    set_date(platform, date(2026, 2, 10))  # the open date itself is not closed yet
    assert eod.run_eod(platform) == []


def _repaid_on_02_15(p: Platform) -> int:
    cid = new_customer(p)
    loan_id = int(draw(p, cid, "10000", 12, EP)["loan_id"])
    set_date(p, date(2026, 2, 15))
    repay(p, cid, "3000.00", loan_id)
    return loan_id


def _drawn_on_02_15_after_an_eod(p: Platform) -> int:
    cid = new_customer(p)
    draw(p, cid, "1000", 3, EP)
    set_date(p, date(2026, 2, 5))
    eod.run_eod(p)  # closes 01-31 … 02-04
    set_date(p, date(2026, 2, 15))
    return int(draw(p, cid, "10000", 12, EP)["loan_id"])


@pytest.mark.parametrize(
    "business",
    [_repaid_on_02_15, _drawn_on_02_15_after_an_eod],
    ids=["repaid-before-any-eod", "drawn-after-an-eod"],
)
def test_the_clock_never_moves_back_before_business_already_done(
    platform: Platform, business: Callable[[Platform], int]
) -> None:
    set_date(platform, START)
    loan_id = business(platform)
    err = refusal(set_date, platform, date(2026, 2, 12))
    assert err.code == "clock.before_business"
    assert lending.payoff(platform, loan_id)["date"] == "2026-02-15"


def test_following_the_system_clock_never_goes_back_before_business_done(
    platform: Platform,
) -> None:
    set_date(platform, date(2026, 3, 5))  # the wall clock says 2026-01-31
    cid = new_customer(platform)
    loan_id = int(draw(platform, cid, "10000", 12, EP)["loan_id"])
    with pytest.raises(ClockRefused) as refused:
        platform.transaction(lambda conn: follow_system(conn, platform.now))
    assert refused.value.code == "clock.before_business"
    with platform.engine.connect() as conn:
        clock = read_clock(conn, platform.now)
    assert (clock.mode, clock.open_date) == ("manual", date(2026, 3, 5))  # nothing changed
    assert payoff(platform, loan_id) == "10000.00"


# ---------------------------------------------------------------------------------------------
# Catch-up gives the same books as day by day


def _scenario(p: Platform, *, eod_every_day: bool, last: date = date(2026, 3, 11)) -> None:
    """Two customers, three loans, partial and "all" repayments, a declined auto-debit that
    leaves one loan overdue, then its arrears paid. The end of day runs every morning, or
    only once at the end (catching up over every skipped date)."""
    set_date(p, START)
    alice = new_customer(p, limit="30000")
    bob = new_customer(p, limit="10000", rate="0.0004", name="李四")
    rail = declines_for(p, bob)
    events: dict[date, Callable[[], Any]] = {
        START: lambda: (
            draw(p, alice, "10000", 12, EI, key="d-1"),
            draw(p, bob, "5000", 3, EP, key="d-2"),
        ),
        date(2026, 2, 3): lambda: draw(p, alice, "3000", 6, EP, key="d-3"),
        date(2026, 2, 10): lambda: repay(p, alice, "2000.00", 1, key="r-1"),
        date(2026, 2, 20): lambda: repay(p, alice, "100.00", key="r-2"),
        date(2026, 3, 3): lambda: repay(p, alice, "500.00", key="r-3"),
        date(2026, 3, 5): lambda: repay(p, bob, "300.00", key="r-4"),
        date(2026, 3, 8): lambda: repay(p, bob, yuan(_arrears_fen(p, 2)), 2, key="r-5"),
    }
    for d in _days(START, last):
        set_date(p, d)
        if eod_every_day and d > START:
            eod.run_eod(p)
        if d in events:
            events[d]()
        run_autodebit(p, rail)
    set_date(p, last + ONE_DAY)
    eod.run_eod(p)


def _arrears_fen(p: Platform, loan_id: int) -> int:
    shown = lending.show_loan(p, loan_id)
    today = date.fromisoformat(shown["as_of"])
    owed = fen(shown["penalty_due"])
    for inst in shown["schedule"]:
        if date.fromisoformat(inst["due_date"]) < today:
            owed += (
                fen(inst["principal"])
                - fen(inst["principal_paid"])
                + fen(inst["interest"])
                - fen(inst["interest_paid"])
            )
    return owed


def test_catching_up_over_skipped_dates_gives_the_books_of_closing_day_by_day(
    make_platform: MakePlatform,
) -> None:
    daily, catch_up = make_platform(), make_platform()
    _scenario(daily, eod_every_day=True)
    _scenario(catch_up, eod_every_day=False)
    expected = books(daily)
    assert books(catch_up) == expected
    assert accruals_by_loan_date(catch_up) == accruals_by_loan_date(daily)
    assert account_balances(catch_up) == account_balances(daily)
    # the scenario did what it says: bob was overdue and paid penalty, alice paid ahead
    assert sum(penalty for _, penalty in accruals_by_loan_date(daily).values()) > 0
    assert lending.show_loan(daily, 2)["dpd"] == 0
    assert lending.show_loan(daily, 1)["principal_outstanding"] != "9223.20"
    assert_ledger_ok(daily)
    assert_ledger_ok(catch_up)


# ---------------------------------------------------------------------------------------------
# Accrual


def test_a_repayment_on_day_t_counts_from_day_t_plus_one(platform: Platform) -> None:
    set_date(platform, START)
    cid = new_customer(platform)
    loan_id = int(draw(platform, cid, "10000", 12, EP)["loan_id"])
    set_date(platform, date(2026, 2, 5))
    assert payoff(platform, loan_id) == "10025.00"  # 5 days of 5.00, day 02-05 included
    paid = repay(platform, cid, "5025.00", loan_id)["loans"][0]
    assert (paid["interest"], paid["principal"]) == ("25.00", "5000.00")
    set_date(platform, date(2026, 2, 8))
    eod.run_eod(platform)
    daily = {d: i for (lid, d), (i, _) in accruals_by_loan_date(platform).items() if lid == loan_id}
    assert START not in daily  # a loan drawn on D accrues from D + 1
    assert daily == {
        date(2026, 2, 1): 500,
        date(2026, 2, 2): 500,
        date(2026, 2, 3): 500,
        date(2026, 2, 4): 500,
        date(2026, 2, 5): 500,  # the repayment day still on 10000
        date(2026, 2, 6): 250,
        date(2026, 2, 7): 250,  # from t + 1 on 5000
    }
    assert payoff(platform, loan_id) == "5007.50"  # 3 days of 2.50 after the repayment
    assert_ledger_ok(platform)


def test_a_loan_drawn_and_repaid_on_one_day_accrues_nothing(platform: Platform) -> None:
    set_date(platform, START)
    cid = new_customer(platform)
    loan_id = int(draw(platform, cid, "10000", 12, EP)["loan_id"])
    assert repay(platform, cid, "10000.00", loan_id)["loans"][0]["closed"] is True
    set_date(platform, date(2026, 2, 3))
    assert [r.loans for r in eod.run_eod(platform)] == [1, 0, 0]
    assert accruals_by_loan_date(platform) == {}
    assert_ledger_ok(platform)


def test_accruals_add_up_to_the_scheduled_interest_when_paid_on_time(platform: Platform) -> None:
    set_date(platform, START)
    cid = new_customer(platform, limit="30000")
    loans = {
        int(draw(platform, cid, "10000", 12, method)["loan_id"]): method for method in (EI, EP)
    }
    schedules = {
        lid: quote(fen("10000"), 12, DailyRate.parse("0.0005"), m, START)
        for lid, m in loans.items()
    }
    dues = schedules[1].due_dates
    assert schedules[2].due_dates == dues
    for due in dues:  # the morning's end of day, then the day's auto-debit
        set_date(platform, due)
        eod.run_eod(platform)
        assert run_autodebit(platform).debited == 2
    set_date(platform, dues[-1] + ONE_DAY)
    eod.run_eod(platform)

    records = accruals_by_loan_date(platform)
    for lid, schedule in schedules.items():
        bounds = [START, *dues]
        per_period = [
            sum(
                i
                for (loan_id, d), (i, _) in records.items()
                if loan_id == lid and bounds[k] < d <= bounds[k + 1]
            )
            for k in range(12)
        ]
        assert per_period == list(schedule.interests)
        assert all(penalty == 0 for (loan_id, _), (_, penalty) in records.items() if loan_id == lid)
        shown = lending.show_loan(platform, lid)
        assert (shown["status"], shown["closed_on"]) == ("closed", dues[-1].isoformat())
    assert sum(schedules[1].interests) == fen("1008.82")
    assert sum(schedules[2].interests) == fen("981.67")
    balances = account_balances(platform)
    assert balances["6011"] == -fen("1990.49")  # interest income: both loans' interest
    assert balances.get("1302", 0) == 0 and balances.get("1301", 0) == 0
    assert line(platform, cid)["open_loans"] == 0
    assert_ledger_ok(platform)


def test_a_loan_paid_off_between_due_dates_leaves_no_receivable_after_eod(
    platform: Platform,
) -> None:
    set_date(platform, START)
    cid = new_customer(platform)
    loan_id = int(draw(platform, cid, "10000", 12, EI)["loan_id"])
    set_date(platform, date(2026, 2, 10))
    eod.run_eod(platform)  # books 02-01 … 02-09
    paid = repay(platform, cid, "10050.00", loan_id)["loans"][0]
    assert (paid["interest"], paid["closed"]) == ("50.00", True)
    # paid before the end of day booked 02-10: received ahead of accrual for that one day
    assert account_balances(platform)["1302"] == -fen("5.00")
    set_date(platform, date(2026, 2, 13))
    assert [r.loans for r in eod.run_eod(platform)] == [1, 0, 0]  # processed on its last day
    balances = account_balances(platform)
    assert (balances["1302"], balances["6011"], balances["1301"]) == (0, -fen("50.00"), 0)
    assert max(d for (_, d) in accruals_by_loan_date(platform)) == date(2026, 2, 10)
    assert_ledger_ok(platform)


def test_autodebit_collects_once_and_retries_a_declined_debit(platform: Platform) -> None:
    set_date(platform, START)
    alice, bob = new_customer(platform), new_customer(platform, name="李四")
    draw(platform, alice, "10000", 12, EI)
    draw(platform, bob, "10000", 12, EI)
    set_date(platform, date(2026, 2, 27))
    assert run_autodebit(platform).loans_due == 0  # nothing is due the day before
    set_date(platform, date(2026, 2, 28))
    rail = declines_for(platform, bob)
    first = run_autodebit(platform, rail)
    assert (first.loans_due, first.debited, first.failed, first.amount_fen) == (
        2,
        1,
        1,
        fen("916.80"),
    )
    assert rail.calls == 1 + 1 + 2  # alice once; bob once and twice more
    again = run_autodebit(platform, rail)  # a rerun never debits alice twice
    assert (again.loans_due, again.debited, again.failed) == (1, 0, 1)
    assert row_counts(platform)["repayment"] == 1
    set_date(platform, date(2026, 3, 1))  # bob is overdue: arrears plus a day of penalty
    late = run_autodebit(platform)
    assert (late.loans_due, late.debited, late.amount_fen) == (1, 1, fen("917.41"))
    assert line(platform, bob)["overdue_blocked"] is False
    assert_ledger_ok(platform)


# ---------------------------------------------------------------------------------------------
# A crash half way, then a rerun


def _five_loans(p: Platform) -> None:
    set_date(p, START)
    customers = [new_customer(p, name=n) for n in ("甲", "乙", "丙")]
    for n, cid in enumerate([*customers, customers[0], customers[1]], start=1):
        draw(p, cid, f"{1000 * n}", 3, EP if n % 2 else EI, key=f"d-{n}")
    set_date(p, date(2026, 2, 5))
    repay(p, customers[2], "1500.00", 3, key="r-1")  # loan 3 sits in the second chunk
    set_date(p, date(2026, 2, 8))


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("where", ["after-first-chunk", "before-closing-the-date"])
def test_a_crash_half_way_then_a_rerun_gives_the_books_of_a_clean_run(
    make_platform: MakePlatform, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.setattr(eod, "CHUNK", 2)  # chunks of loan ids: (1, 2), (3, 4), (5)
    clean, crashed = make_platform(), make_platform()
    _five_loans(clean)
    eod.run_eod(clean)

    _five_loans(crashed)
    crash_on = date(2026, 2, 5)
    real_chunk, real_finish = eod._close_chunk, eod._finish
    chunks: list[date] = []

    def chunk_then_crash(conn: Any, d: date, *args: Any) -> Any:
        chunks.append(d)
        if where == "after-first-chunk" and chunks.count(crash_on) == 2:
            raise Crash("killed after the first chunk of the date was committed")
        return real_chunk(conn, d, *args)

    def finish_then_crash(conn: Any, d: date, *args: Any) -> bool:
        if where == "before-closing-the-date" and d == crash_on:
            raise Crash("killed before the date was closed")
        return real_finish(conn, d, *args)

    monkeypatch.setattr(eod, "_close_chunk", chunk_then_crash)
    monkeypatch.setattr(eod, "_finish", finish_then_crash)
    with pytest.raises(Crash):
        eod.run_eod(crashed)
    monkeypatch.setattr(eod, "_close_chunk", real_chunk)
    monkeypatch.setattr(eod, "_finish", real_finish)

    assert last_closed(crashed) == crash_on - ONE_DAY
    moved = scalar(crashed, "SELECT count(*) FROM loan WHERE closed_through = :d", d=crash_on)
    if where == "after-first-chunk":  # the other chunks may have gone on in parallel meanwhile
        assert 2 <= moved < 5
    else:
        assert moved == 5
    # half way through a date the books still balance and every figure is already right
    assert_ledger_ok(crashed)
    for loan_id in range(1, 6):
        assert payoff(crashed, loan_id) == payoff(clean, loan_id)

    eod.run_eod(crashed)
    assert books(crashed) == books(clean)
    assert accruals_by_loan_date(crashed) == accruals_by_loan_date(clean)
    assert account_balances(crashed) == account_balances(clean)
    assert last_closed(crashed) == date(2026, 2, 7)
    assert_ledger_ok(crashed)


# ---------------------------------------------------------------------------------------------
# Overdue blocks


def test_lines_with_an_overdue_loan_are_blocked_after_eod_and_unblocked_by_repaying(
    platform: Platform,
) -> None:
    set_date(platform, START)
    alice, bob = new_customer(platform), new_customer(platform, name="李四")
    alices = int(draw(platform, alice, "10000", 12, EI)["loan_id"])
    bobs = int(draw(platform, bob, "10000", 12, EI)["loan_id"])
    set_date(platform, date(2026, 2, 28))
    eod.run_eod(platform)
    assert line(platform, alice)["overdue_blocked"] is False  # due today is not overdue
    repay(platform, bob, "916.80", bobs)  # bob pays on the due date, alice does not
    set_date(platform, date(2026, 3, 2))
    results = eod.run_eod(platform)
    assert [(r.overdue_loans, r.blocked_lines) for r in results] == [(0, 1), (1, 1)]
    assert line(platform, alice)["overdue_blocked"] is True
    assert line(platform, bob)["overdue_blocked"] is False
    assert lending.show_loan(platform, alices)["dpd"] == 2

    repay(platform, alice, "100.00", alices)  # part of the arrears: still blocked
    assert line(platform, alice)["overdue_blocked"] is True
    assert refusal(draw, platform, alice, "100", 3).code == "loan.draw.overdue"
    repay(platform, alice, yuan(_arrears_fen(platform, alices)), alices)
    assert line(platform, alice)["overdue_blocked"] is False  # at once, not at the next eod
    draw(platform, alice, "100", 3)
    set_date(platform, date(2026, 3, 3))
    assert eod.run_eod(platform)[-1].blocked_lines == 0
    assert line(platform, alice)["overdue_blocked"] is False
    assert_ledger_ok(platform)


# ---------------------------------------------------------------------------------------------
# ledger check catches what does not add up


def _plant_principal(p: Platform) -> str:
    sql(
        p,
        "UPDATE loan SET principal_outstanding_fen = principal_outstanding_fen - 1 "
        "WHERE loan_id = 1",
    )
    return "principal"


def _plant_unbalanced_line(p: Platform) -> str:
    sql(
        p,
        "INSERT INTO journal_line (entry_id, book_id, customer_id, loan_id, account, "
        "amount_fen) VALUES (1, 1, 1, 1, '1002', 1)",
    )
    return "does not balance"


def _plant_accrual(p: Platform) -> str:
    sql(
        p,
        "UPDATE accrual SET interest_fen = interest_fen + 1 WHERE loan_id = 1 "
        "AND business_date = :d",
        d=date(2026, 2, 3),
    )
    return "interest"


def _plant_snapshot(p: Platform) -> str:
    sql(
        p,
        "UPDATE installment SET principal_paid_fen = principal_paid_fen + 1 "
        "WHERE loan_id = 1 AND period = 1",
    )
    return "snapshot"


def _plant_repayment_split(p: Platform) -> str:
    sql(
        p,
        "UPDATE repayment SET interest_fen = interest_fen + 1, "
        "principal_fen = principal_fen - 1 WHERE loan_id = 1",
    )
    return "repayment"


@pytest.mark.parametrize(
    "plant",
    [
        _plant_principal,
        _plant_unbalanced_line,
        _plant_accrual,
        _plant_snapshot,
        _plant_repayment_split,
    ],
    ids=lambda f: f.__name__.removeprefix("_plant_"),
)
def test_ledger_check_finds_a_planted_mismatch(
    platform: Platform, plant: Callable[[Platform], str]
) -> None:
    set_date(platform, START)
    cid = new_customer(platform)
    loan_id = int(draw(platform, cid, "10000", 12, EI)["loan_id"])
    set_date(platform, date(2026, 2, 5))
    repay(platform, cid, "1000.00", loan_id)
    set_date(platform, date(2026, 2, 10))
    eod.run_eod(platform)
    assert_ledger_ok(platform)

    expected = plant(platform)
    report = check_ledger(platform)
    assert report["ok"] is False
    assert report["problem_count"] >= 1
    assert any(expected in problem for problem in report["problems"]), report["problems"]


def test_the_log_compression_is_asked_on_the_runs_own_connection(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk's pool may have no connection to spare: whether the role may compress the log is
    found out inside the chunk's own transaction (a refusal left it usable, on a plain role)."""
    if not platform.is_postgres:
        pytest.skip("PostgreSQL only")
    import sqlalchemy as sa

    monkeypatch.setattr(eod, "_WAL_COMPRESSION", {})
    one = sa.create_engine(platform.engine.url, pool_size=1, max_overflow=0, pool_timeout=2)
    try:
        for _ in range(2):  # asked, then known
            with one.connect() as conn, conn.begin():
                eod._no_jit(conn)
                assert conn.exec_driver_sql("SHOW wal_compression").scalar() == "lz4"
                assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
        assert list(eod._WAL_COMPRESSION.values()) == [True]
    finally:
        one.dispose()
