"""Real parallel clients on PostgreSQL: each thread has its own Platform (engine, connection).

A barrier releases every client at once so the requests really overlap in the database.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from microloan.errors import MicroloanError
from microloan.service import eod
from microloan.service.platform import Platform

from .support import (
    EI,
    EP,
    MakePlatform,
    assert_ledger_ok,
    books,
    draw,
    fen,
    line,
    new_customer,
    payoff,
    repay,
    row_counts,
    scalar,
    set_date,
    yuan,
)

pytestmark = pytest.mark.postgres

START = date(2026, 1, 31)
CLIENTS = 10


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
def clients(platform: Platform) -> Iterator[list[Platform]]:
    """CLIENTS platforms on the test's database, each with its own engine and one connection."""
    url = platform.engine.url.render_as_string(hide_password=False)
    made = [Platform.connect(url, now=platform.now, pool_size=1) for _ in range(CLIENTS)]
    yield made
    for p in made:
        p.dispose()


def in_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call on its own thread, released together; each result or raised error."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return attempt(call)

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def attempt(call: Callable[[], Any]) -> Any:
    """The call's result, or the expected error it raised."""
    try:
        return call()
    except MicroloanError as exc:
        return exc


def codes(results: list[Any]) -> Counter[str]:
    return Counter(r.code if isinstance(r, MicroloanError) else "ok" for r in results)


def test_parallel_draws_on_one_line_never_exceed_the_limit(
    platform: Platform, clients: list[Platform]
) -> None:
    set_date(platform, START)
    cid = new_customer(platform, limit="5000")

    def two_draws(client: Platform, n: int) -> list[Any]:
        return [
            attempt(lambda k=k: draw(client, cid, "700", 3, EP, key=f"draw-{n}-{k}"))
            for k in range(2)
        ]

    per_client = in_parallel([lambda c=c, n=n: two_draws(c, n) for n, c in enumerate(clients)])
    results = [r for pair in per_client for r in pair]
    assert codes(results) == {"ok": 7, "loan.draw.exceeds_available": 13}  # floor(5000 / 700)
    summary = line(platform, cid)
    assert (summary["outstanding_principal"], summary["available"]) == ("4900.00", "100.00")
    assert summary["open_loans"] == 7
    assert scalar(platform, "SELECT sum(principal_fen) FROM loan") == fen("4900")
    assert_ledger_ok(platform)


def test_parallel_draws_of_many_customers_all_book(
    platform: Platform, clients: list[Platform]
) -> None:
    set_date(platform, START)
    customers = [new_customer(platform, limit="1000") for _ in clients]
    results = in_parallel(
        [
            lambda c=c, cid=cid: draw(c, cid, "1000", 3, EI)
            for c, cid in zip(clients, customers, strict=True)
        ]
    )
    assert codes(results) == {"ok": CLIENTS}
    assert scalar(platform, "SELECT count(*) FROM journal_entry") == CLIENTS
    assert_ledger_ok(platform)


def test_parallel_draws_with_one_key_book_once(platform: Platform, clients: list[Platform]) -> None:
    set_date(platform, START)
    cid = new_customer(platform, limit="5000")
    results = in_parallel([lambda c=c: draw(c, cid, "1000", 3, EP, key="same") for c in clients])
    assert codes(results) == {"ok": CLIENTS}
    assert all(r == results[0] for r in results)
    counts = row_counts(platform)
    assert (counts["loan"], counts["journal_entry"], counts["idempotency_key"]) == (1, 1, 1)
    assert line(platform, cid)["outstanding_principal"] == "1000.00"
    assert_ledger_ok(platform)


def test_parallel_draws_with_one_key_answer_the_same_even_when_the_line_is_full(
    platform: Platform, clients: list[Platform]
) -> None:
    set_date(platform, START)
    cid = new_customer(platform, limit="1000")
    results = in_parallel([lambda c=c: draw(c, cid, "1000", 3, EP, key="same") for c in clients])
    assert codes(results) == {"ok": CLIENTS}
    assert all(r == results[0] for r in results)
    assert row_counts(platform)["loan"] == 1


def test_parallel_repayments_of_one_loan_never_exceed_the_payoff(
    platform: Platform, clients: list[Platform]
) -> None:
    set_date(platform, START)
    cid = new_customer(platform)
    loan_id = int(draw(platform, cid, "10000", 12, EI)["loan_id"])
    set_date(platform, date(2026, 2, 10))
    owed = fen(payoff(platform, loan_id))
    assert owed == fen("10050.00")
    quarter = yuan(owed // 4)
    results = in_parallel(
        [
            lambda c=c, n=n: repay(c, cid, quarter, loan_id, key=f"pay-{n}")
            for n, c in enumerate(clients)
        ]
    )
    outcome = codes(results)
    assert outcome["ok"] == 4
    assert set(outcome) <= {"ok", "loan.repay.exceeds_payoff", "loan.repay.not_open"}
    assert scalar(platform, "SELECT sum(amount_fen) FROM repayment") == owed
    assert payoff(platform, loan_id) == "0.00"
    assert line(platform, cid)["open_loans"] == 0
    assert_ledger_ok(platform)


def test_parallel_repayments_of_all_loans_never_exceed_the_payoff(
    platform: Platform, clients: list[Platform]
) -> None:
    set_date(platform, START)
    cid = new_customer(platform)
    one = int(draw(platform, cid, "1000", 3, EP)["loan_id"])
    two = int(draw(platform, cid, "3000", 6, EI)["loan_id"])
    set_date(platform, date(2026, 3, 1))  # one's first installment is overdue
    owed = fen(payoff(platform, one)) + fen(payoff(platform, two))
    part, rest = divmod(owed, 4)
    amounts = [yuan(part + (rest if n == 0 else 0)) for n in range(4)] * 3
    calls: list[Callable[[], Any]] = [
        lambda c=c, a=a, n=n: repay(c, cid, a, None if n % 3 else two, key=f"pay-{n}")
        for n, (c, a) in enumerate(zip(clients, amounts, strict=False))
    ]
    results = in_parallel(calls)
    assert set(codes(results)) <= {
        "ok",
        "loan.repay.exceeds_payoff",
        "loan.repay.not_open",
        "loan.repay.nothing_open",
    }
    paid = scalar(platform, "SELECT sum(amount_fen) FROM repayment")
    assert paid <= owed
    assert paid == sum(fen(r["amount"]) for r in results if isinstance(r, dict))
    assert_ledger_ok(platform)


def test_parallel_repayments_with_one_key_book_once_and_answer_the_same(
    platform: Platform, clients: list[Platform]
) -> None:
    set_date(platform, START)
    cid = new_customer(platform)
    loan_id = int(draw(platform, cid, "10000", 12, EI)["loan_id"])
    set_date(platform, date(2026, 2, 10))
    owed = payoff(platform, loan_id)
    results = in_parallel([lambda c=c: repay(c, cid, owed, loan_id, key="same") for c in clients])
    assert row_counts(platform)["repayment"] == 1
    assert codes(results) == {"ok": CLIENTS}
    assert all(r == results[0] for r in results)


def test_parallel_partial_repayments_with_one_key_book_once(
    platform: Platform, clients: list[Platform]
) -> None:
    set_date(platform, START)
    cid = new_customer(platform)
    loan_id = int(draw(platform, cid, "10000", 12, EI)["loan_id"])
    set_date(platform, date(2026, 2, 10))
    results = in_parallel(
        [lambda c=c: repay(c, cid, "100.00", loan_id, key="same") for c in clients]
    )
    assert codes(results) == {"ok": CLIENTS}
    assert all(r == results[0] for r in results)
    assert row_counts(platform)["repayment"] == 1
    assert_ledger_ok(platform)


def _loans_for_eod(p: Platform) -> None:
    set_date(p, START)
    cid = new_customer(p, limit="50000")
    for n in range(6):
        draw(p, cid, "1000", 3, EP, key=f"d-{n}")
    set_date(p, date(2026, 2, 20))


def test_eod_waits_for_a_repayment_in_flight_instead_of_crashing(
    make_platform: MakePlatform,
) -> None:
    clean, busy = make_platform(), make_platform()
    _loans_for_eod(clean)
    eod.run_eod(clean)
    _loans_for_eod(busy)
    holder = busy.engine.connect()
    tx = holder.begin()
    holder.execute(sa.text("SELECT loan_id FROM loan WHERE loan_id = 3 FOR UPDATE"))
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(eod.run_eod, busy)
        # a repayment holds the loan's lock for a moment (the end of day may wait for it)
        wait([running], timeout=2.0)
        tx.commit()
        holder.close()
        running.result(timeout=60)
    assert books(busy) == books(clean)
    assert_ledger_ok(busy)


def test_parallel_eod_runners_share_the_work_and_book_once(
    make_platform: MakePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eod, "CHUNK", 2)
    clean, shared = make_platform(), make_platform()
    _loans_for_eod(clean)
    eod.run_eod(clean)
    _loans_for_eod(shared)
    url = shared.engine.url.render_as_string(hide_password=False)
    runners = [Platform.connect(url, now=shared.now, pool_size=1) for _ in range(2)]
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            barrier = threading.Barrier(2)

            def run(p: Platform) -> Any:
                barrier.wait()
                return eod.run_eod(p)

            for future in [pool.submit(run, p) for p in runners]:
                future.result(timeout=60)
    finally:
        for p in runners:
            p.dispose()
    assert books(shared) == books(clean)
    assert_ledger_ok(shared)


def _book_of_thirty(p: Platform) -> list[tuple[int, int]]:
    set_date(p, START)
    loans = []
    for n in range(30):
        cid = new_customer(p, name=f"客户{n}")
        loans.append(
            (cid, int(draw(p, cid, "2000", 6, EP if n % 2 else EI, key=f"d-{n}")["loan_id"]))
        )
    set_date(p, date(2026, 3, 3))  # a month of dates to close, a due date among them
    return loans


def test_repayments_during_the_end_of_day_are_neither_lost_nor_counted_twice(
    make_platform: MakePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients keep repaying on the open date while the end of day closes the dates before it
    in small chunks; then the same repayments after a clean run give the same books."""
    monkeypatch.setattr(eod, "CHUNK", 3)
    busy, clean = make_platform(), make_platform()
    loans = _book_of_thirty(busy)
    _book_of_thirty(clean)
    url = busy.engine.url.render_as_string(hide_password=False)
    payers = [Platform.connect(url, now=busy.now, pool_size=1) for _ in range(3)]
    running = threading.Event()
    made: list[tuple[int, int, str]] = []  # (customer, loan, key) of every repayment booked
    lock = threading.Lock()

    def pay(n: int, p: Platform) -> None:
        k = 0
        while running.is_set() and k < 15:
            cid, loan_id = loans[(n * 7 + k) % len(loans)]
            key = f"during-{n}-{k}"
            repay(p, cid, "1.00", loan_id, key=key)
            repay(p, cid, "1.00", loan_id, key=key)  # a retry of the same request books once
            with lock:
                made.append((cid, loan_id, key))
            k += 1
            time.sleep(0.05)

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            running.set()
            payments = [pool.submit(pay, n, p) for n, p in enumerate(payers)]
            closed = pool.submit(eod.run_eod, busy).result(timeout=300)
            running.clear()
            for f in payments:
                f.result(timeout=60)
    finally:
        for p in payers:
            p.dispose()
    assert len(closed) == 31 and all(day.reconciled for day in closed)
    assert len(made) >= 6, "the clients repaid while the end of day ran"
    assert row_counts(busy)["repayment"] == len(made)
    dates = scalar(busy, "SELECT count(DISTINCT business_date) FROM repayment")
    assert dates == 1  # all on the open date, none slipped into a date being closed

    eod.run_eod(clean)
    for cid, loan_id, key in made:
        repay(clean, cid, "1.00", loan_id, key=key)
    for p in (busy, clean):
        set_date(p, date(2026, 3, 4))
        [day] = eod.run_eod(p)
        assert day.reconciled
    for _cid, loan_id in loans:
        assert payoff(busy, loan_id) == payoff(clean, loan_id)
    assert_ledger_ok(busy)
