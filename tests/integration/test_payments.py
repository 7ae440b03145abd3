"""Payments through the rail on SQLite and PostgreSQL (servicing §2): asynchronous disbursement,
failures that release the line room, timeouts resolved by asking the rail (never by paying
twice), crashes between sending and recording, worker processes in parallel, auto-debit with
retries, and the daily reconciliation of the rail's statement against the books."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from microloan.providers.rail import (
    NO_RAIL_FAULTS,
    CallFault,
    RailFaults,
    TransferStatus,
    call_fault,
    transfer_outcome,
)
from microloan.providers.stored_rail import StoredRail
from microloan.service import eod, lending
from microloan.service import payment_steps as steps
from microloan.service.autodebit import debit_key, run_autodebit
from microloan.service.payments import before_close, simulated_rail, work_once
from microloan.service.platform import Platform
from microloan.store.payments import account_ref
from microloan.store.schema import journal_entry, payment, recon_issue, repayment

from .support import (
    EI,
    EP,
    assert_ledger_ok,
    draw,
    fen,
    line,
    new_customer,
    refusal,
    repay,
    row_counts,
    set_date,
    sql,
)

START = date(2026, 1, 31)
FIRST_DUE = date(2026, 2, 28)
ONE_DAY = timedelta(days=1)
CONSOLE_SCRIPT = Path(sys.executable).with_name("microloan")


def accept(p: Platform, cid: int, amount: str, key: str, term: int = 12) -> dict[str, Any]:
    """A draw accepted only: the worker pays it."""
    return lending.draw(p, cid, fen(amount), term, EI, key, pay_now=False)


def payments(p: Platform) -> dict[str, Any]:
    with p.engine.connect() as conn:
        return {r.key: r for r in conn.execute(sa.select(payment).order_by(payment.c.payment_id))}


def with_rail(p: Platform, **kw: Any) -> StoredRail:
    rail = simulated_rail(p, **kw)
    p.use_rail(rail)
    return rail


def rail_issues(p: Platform, d: date) -> dict[str, Any]:
    with p.engine.connect() as conn:
        rows = conn.execute(
            sa.select(recon_issue).where(
                recon_issue.c.business_date == d, recon_issue.c.kind == "rail"
            )
        )
        return {r.reference: r for r in rows}


def disbursement_entries(p: Platform) -> int:
    with p.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(journal_entry.c.kind == "disbursement")
            ).scalar_one()
        )


def settings(p: Platform, **update: Any) -> None:
    p.settings = p.settings.model_copy(update=update)


# ---------------------------------------------------------------------------------------------
# Disbursement


def test_a_draw_is_accepted_pending_then_the_worker_disburses_it(platform: Platform) -> None:
    p = platform
    set_date(p, START)
    cid = new_customer(p)
    answer = accept(p, cid, "10000", "d-1")
    assert answer["status"] == "pending"
    loan_id = int(answer["loan_id"])
    shown = line(p, cid)  # the room is held, nothing is outstanding yet, nothing is booked
    assert (shown["available"], shown["outstanding_principal"], shown["open_loans"]) == (
        "10000.00",
        "0.00",
        1,
    )
    assert row_counts(p)["journal_entry"] == 0
    assert payments(p)["disburse:d-1"].status == "queued"
    assert refusal(repay, p, cid, "100.00", loan_id).code == "loan.repay.not_open"
    assert refusal(repay, p, cid, "100.00").code == "loan.repay.nothing_open"

    done = work_once(p)
    assert (done.taken, done.succeeded, done.failed) == (1, 1, 0)
    shown_loan = lending.show_loan(p, loan_id)
    assert shown_loan["status"] == "open"
    assert shown_loan["disbursement"]["status"] == "succeeded"
    assert line(p, cid)["outstanding_principal"] == "10000.00"
    with p.engine.connect() as conn:
        entry = conn.execute(sa.select(journal_entry)).one()
    assert (entry.kind, entry.reference, entry.business_date) == (
        "disbursement",
        "disburse:d-1",
        START,
    )
    [transfer] = p.rail.statement(START)
    assert (transfer.key, transfer.amount_fen, transfer.status) == (
        "disburse:d-1",
        fen("10000"),
        TransferStatus.SUCCEEDED,
    )
    again = draw(p, cid, "10000", 12, EI, key="d-1")  # the same key: the loan as it stands
    assert again == {**answer, "status": "open"}
    assert work_once(p).busy is False
    set_date(p, START + 3 * ONE_DAY)
    assert [r.loans for r in eod.run_eod(p)] == [1, 1, 1]
    assert rail_issues(p, START) == {}
    assert_ledger_ok(p)


def test_a_failed_disbursement_releases_the_room_and_tells_the_borrower(
    platform: Platform,
) -> None:
    p = platform
    set_date(p, START)
    cid = new_customer(p, limit="10000")
    with_rail(p, declined_cards=frozenset({account_ref(cid)}))
    answer = draw(p, cid, "10000", 12, EP, key="d-1")
    assert (answer["status"], answer["failure_code"], answer["failure"]) == (
        "failed",
        "declined",
        "银行拒绝交易 declined by the bank",
    )
    shown = line(p, cid)
    assert (shown["available"], shown["outstanding_principal"], shown["open_loans"]) == (
        "10000.00",
        "0.00",
        0,
    )
    loan_id = int(answer["loan_id"])
    assert lending.show_loan(p, loan_id)["disbursement"]["failure"] == answer["failure"]
    assert refusal(repay, p, cid, "100.00", loan_id).code == "loan.repay.not_open"
    assert row_counts(p)["journal_entry"] == 0

    with_rail(p)  # the card works again: the whole line can be drawn
    assert draw(p, cid, "10000", 12, EP, key="d-2")["status"] == "open"
    set_date(p, START + 2 * ONE_DAY)
    assert [r.loans for r in eod.run_eod(p)] == [1, 1]  # the failed loan is not closed daily
    assert rail_issues(p, START) == {}  # a failed transfer on both sides is no issue
    assert_ledger_ok(p)


def _key_with(faults: RailFaults, fates: list[CallFault]) -> str:
    """A draw key whose disbursement meets ``fates`` on its first calls."""
    for i in range(10_000):
        key = f"t-{i}"
        if all(call_fault(faults, f"disburse:{key}", n) is f for n, f in enumerate(fates, 1)):
            return key
    raise AssertionError("no such key")


def test_a_timeout_is_resolved_by_lookup_without_paying_twice(platform: Platform) -> None:
    p = platform
    set_date(p, START)
    cid = new_customer(p, limit="30000")
    faults = RailFaults(timeout_rate=1.0, seed=7)
    rail = with_rail(p, faults=faults)
    late = _key_with(faults, [CallFault.LATE])  # moved, the answer lost
    lost_late = _key_with(faults, [CallFault.LOST, CallFault.LATE])  # not reached, then moved
    never = _key_with(faults, [CallFault.LOST] * 3)  # never reached the rail in three calls
    assert draw(p, cid, "1000", 3, EP, key=late)["status"] == "open"
    assert draw(p, cid, "2000", 3, EP, key=lost_late)["status"] == "open"
    pending = draw(p, cid, "3000", 3, EP, key=never)
    assert (pending["status"], pending["disbursement"]) == ("pending", "unknown")
    assert rail.lookup(f"disburse:{never}") is None

    rail.faults = NO_RAIL_FAULTS  # the rail answers again: the worker asks, then resends
    done = work_once(p)
    assert (done.resolved, done.succeeded) == (1, 1)
    keys = [f"disburse:{k}" for k in (late, lost_late, never)]
    assert sorted(t.key for t in rail.statement(START)) == sorted(keys)  # once each
    assert [payments(p)[k].attempts for k in keys] == [1, 2, 4]
    assert rail.calls == 1 + 2 + 4
    assert disbursement_entries(p) == 3
    assert line(p, cid)["outstanding_principal"] == "6000.00"
    set_date(p, START + ONE_DAY)
    eod.run_eod(p)
    assert rail_issues(p, START) == {}
    assert_ledger_ok(p)


class Crash(RuntimeError):
    pass


def _crash(*_args: Any, **_kw: Any) -> Any:
    raise Crash("the worker died here")


@pytest.mark.parametrize("then", ["next-pass", "close"])
@pytest.mark.parametrize("where", ["after-the-call", "before-the-call"])
def test_a_crash_between_sent_and_recorded_is_settled_later(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, where: str, then: str
) -> None:
    p = platform
    set_date(p, START)
    cid = new_customer(p)
    loan_id = int(accept(p, cid, "5000", "d-1")["loan_id"])
    with monkeypatch.context() as m:
        m.setattr(steps, "record" if where == "after-the-call" else "send", _crash)
        with pytest.raises(Crash):
            work_once(p)
    assert payments(p)["disburse:d-1"].status == "sent"
    assert (p.rail.lookup("disburse:d-1") is not None) == (where == "after-the-call")

    if then == "next-pass":
        settings(p, rail_resend_after_s=0.0)  # its payer is gone: ask, and resend if need be
        done = work_once(p)
        assert (done.resolved, done.succeeded) == (1, 1)
        expected = "open"
    else:
        set_date(p, START + ONE_DAY)  # the close asks the rail and never sends
        [closed] = eod.run_eod(p)
        expected = "open" if where == "after-the-call" else "failed"
        assert closed.loans == (1 if expected == "open" else 0)
    shown = lending.show_loan(p, loan_id)
    assert shown["status"] == expected
    if expected == "failed":
        assert shown["disbursement"]["failure_code"] == "not_reached"
        assert line(p, cid)["available"] == "20000.00"
    assert len(p.rail.statement(START)) == (1 if expected == "open" else 0)
    assert disbursement_entries(p) == (1 if expected == "open" else 0)
    assert_ledger_ok(p)


def test_a_draw_never_sent_is_given_up_by_the_close(platform: Platform) -> None:
    p = platform
    set_date(p, START)
    cid = new_customer(p)
    loan_id = int(accept(p, cid, "5000", "d-1")["loan_id"])
    set_date(p, START + ONE_DAY)
    result = before_close(p, START)
    assert (result.cancelled, result.issues) == (1, [])
    shown = lending.show_loan(p, loan_id)
    assert shown["status"] == "failed"
    assert shown["disbursement"]["failure"] == "日终前未发出 not sent before the close"
    assert line(p, cid)["available"] == "20000.00"
    assert p.rail.statement(START) == []  # the close moved no money
    assert [r.loans for r in eod.run_eod(p)] == [0]
    assert_ledger_ok(p)


# ---------------------------------------------------------------------------------------------
# Worker processes


def _command() -> list[str]:
    if CONSOLE_SCRIPT.exists():
        return [str(CONSOLE_SCRIPT)]
    return [sys.executable, "-c", "from microloan.cli.app import main; main()"]


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without its ``MICROLOAN_*`` settings, plus ``extra``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MICROLOAN_")}
    return {**clean, **extra}


def _worker(url: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*_command(), "worker", "--once", "--database", url, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(**env),
    )


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_parallel_worker_processes_never_pay_one_draw_twice(platform: Platform) -> None:
    p = platform
    set_date(p, START)
    customers = [new_customer(p, name=f"客户{n}") for n in range(6)]
    for n in range(30):
        accept(p, customers[n % 6], "500", f"d-{n}", term=3)
    url = p.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    env = {"MICROLOAN_RAIL_LATENCY_MS": "50", "MICROLOAN_WORKER_BATCH": "3"}  # they interleave
    workers = [_worker(url, **env) for _ in range(3)]
    outputs = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], [err for _, err in outputs]
    summaries = [json.loads(out) for out, _ in outputs]
    assert sum(s["taken"] for s in summaries) == 30
    assert sum(s["succeeded"] for s in summaries) == 30
    paid = payments(p)
    assert {r.status for r in paid.values()} == {"succeeded"}
    assert [r.attempts for r in paid.values()] == [1] * 30  # each sent exactly once
    assert len(p.rail.statement(START)) == 30
    assert disbursement_entries(p) == 30
    assert {line(p, c)["outstanding_principal"] for c in customers} == {"2500.00"}
    assert_ledger_ok(p)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_command_line_pays_a_draw_or_leaves_it_to_the_worker(platform: Platform) -> None:
    p = platform
    set_date(p, START)
    cid = new_customer(p)
    url = p.engine.url.render_as_string(hide_password=False)

    def run(*args: str, **env: str) -> Any:
        done = subprocess.run(
            [*_command(), *args, "--database", url, "--json"],
            capture_output=True,
            text=True,
            env=_env(**env),
            timeout=120,
            check=False,
        )
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        return json.loads(done.stdout)

    draw_args = ["draw", "--customer", str(cid), "--amount", "1000", "--term", "3"]
    queued = run(*draw_args, "--key", "c-1", "--async")
    assert queued["status"] == "pending"
    assert run("worker", "--once")["succeeded"] == 1
    assert run("loan", "show", str(queued["loan_id"]))["status"] == "open"
    failed = run(*draw_args, "--key", "c-2", MICROLOAN_RAIL_FAILURE_RATE="1.0")
    assert (failed["status"], failed["failure"]) == ("failed", "余额不足 insufficient funds")
    assert run("ledger", "check")["ok"] is True


# ---------------------------------------------------------------------------------------------
# Auto-debit


def _seed_where(keys: dict[str, bool]) -> int:
    """A seed under which each key's debit fails (False) or succeeds (True) at rate 0.5."""
    for seed in range(10_000):
        faults = RailFaults(failure_rate=0.5, seed=seed)
        if all(
            (transfer_outcome(faults, k, "x", frozenset())[0] is TransferStatus.SUCCEEDED) == ok
            for k, ok in keys.items()
        ):
            return seed
    raise AssertionError("no such seed")


def test_autodebit_retries_a_failed_debit_and_books_what_moved_once(platform: Platform) -> None:
    p = platform
    set_date(p, START)
    alice, bob = new_customer(p), new_customer(p, name="李四")
    a = int(draw(p, alice, "10000", 12, EI)["loan_id"])
    b = int(draw(p, bob, "10000", 12, EI)["loan_id"])
    set_date(p, FIRST_DUE)
    outcomes = {debit_key(a, FIRST_DUE, 0, 0): False, debit_key(a, FIRST_DUE, 0, 1): True}
    outcomes |= {debit_key(b, FIRST_DUE, 0, n): False for n in range(3)}
    rail = with_rail(p, faults=RailFaults(failure_rate=0.5, seed=_seed_where(outcomes)))

    first = run_autodebit(p, slot=0)
    assert (first.loans_due, first.debited, first.failed, first.unknown) == (2, 1, 1, 0)
    assert first.amount_fen == fen("916.80")
    assert rail.calls == 2 + 3  # alice failed once then paid; bob failed three times
    with p.engine.connect() as conn:
        booked = conn.execute(sa.select(repayment.c.idempotency_key, repayment.c.source)).all()
    assert booked == [(debit_key(a, FIRST_DUE, 0, 1), "autodebit")]
    reasons = {r.failure for r in payments(p).values() if r.status == "failed"}
    assert reasons == {"insufficient_funds: 余额不足 insufficient funds"}

    again = run_autodebit(p, slot=0)  # the slot again: read back, nothing sent
    assert (again.loans_due, again.debited, again.failed, rail.calls) == (1, 0, 1, 5)
    assert lending.show_loan(p, b)["status"] == "open"  # a failed debit is no error of the loan
    set_date(p, FIRST_DUE + ONE_DAY)
    eod.run_eod(p)
    assert rail_issues(p, FIRST_DUE) == {}
    assert_ledger_ok(p)


def _debit_key_with(faults: RailFaults, loan_id: int, fates: list[CallFault]) -> int:
    """A seed under which the loan's first debit meets ``fates`` on its first calls."""
    key = debit_key(loan_id, FIRST_DUE, 0, 0)
    for seed in range(10_000):
        f = RailFaults(timeout_rate=faults.timeout_rate, seed=seed)
        if all(call_fault(f, key, n) is fate for n, fate in enumerate(fates, 1)):
            return seed
    raise AssertionError("no such seed")


def test_an_autodebit_without_an_answer_is_never_debited_twice(platform: Platform) -> None:
    p = platform
    set_date(p, START)
    cid = new_customer(p)
    loan_id = int(draw(p, cid, "10000", 12, EI)["loan_id"])
    set_date(p, FIRST_DUE)
    seed = _debit_key_with(RailFaults(timeout_rate=1.0), loan_id, [CallFault.LOST] * 3)
    rail = with_rail(p, faults=RailFaults(timeout_rate=1.0, seed=seed))
    first = run_autodebit(p, slot=0)
    assert (first.loans_due, first.debited, first.failed, first.unknown) == (1, 0, 0, 1)
    assert [r.key for r in payments(p).values() if r.key.startswith("autodebit")] == [
        debit_key(loan_id, FIRST_DUE, 0, 0)  # no second attempt while the first is open
    ]
    rail.faults = NO_RAIL_FAULTS
    second = run_autodebit(p, slot=0)  # asks the rail, which never got it: the same key again
    assert (second.debited, second.unknown, second.amount_fen) == (1, 0, fen("916.80"))
    assert len(rail.statement(FIRST_DUE)) == 1
    assert run_autodebit(p, slot=1).loans_due == 0  # paid: a later slot has nothing to do
    set_date(p, FIRST_DUE + ONE_DAY)
    eod.run_eod(p)
    assert rail_issues(p, FIRST_DUE) == {}
    assert_ledger_ok(p)


# ---------------------------------------------------------------------------------------------
# Reconciliation


def test_the_rail_reconciliation_lists_every_planted_mismatch(platform: Platform) -> None:
    p = platform
    set_date(p, START)
    cid = new_customer(p, limit="30000")
    for n in (1, 2, 3):
        draw(p, cid, "1000", 3, EP, key=f"d-{n}")
    sql(  # on the rail only
        p,
        "INSERT INTO sim_rail_transfer (key, kind, card_ref, amount_fen, status, rail_ref, "
        "value_date, at) VALUES ('ghost', 'disburse', 'account:9', 777, 'succeeded', 'SIMX', "
        ":d, :at)",
        d=START,
        at=p.now(),
    )
    sql(p, "UPDATE sim_rail_transfer SET amount_fen = amount_fen + 1 WHERE key = 'disburse:d-2'")
    sql(p, "DELETE FROM sim_rail_transfer WHERE key = 'disburse:d-3'")  # in our books only
    set_date(p, START + ONE_DAY)
    eod.run_eod(p)
    issues = rail_issues(p, START)
    assert sorted(issues) == ["disburse:d-2", "disburse:d-3", "ghost"]
    assert (issues["ghost"].expected_fen, issues["ghost"].actual_fen) == (None, 777)
    assert (issues["disburse:d-2"].expected_fen, issues["disburse:d-2"].actual_fen) == (
        fen("1000"),
        fen("1000") + 1,
    )
    assert (issues["disburse:d-3"].expected_fen, issues["disburse:d-3"].actual_fen) == (
        fen("1000"),
        None,
    )
    assert issues["disburse:d-2"].detail.startswith("金额不符 amount differs")
    assert "not on the rail" in issues["disburse:d-3"].detail
    assert "not among our payments" in issues["ghost"].detail
    before_close(p, START)  # a rerun replaces the date's issues
    assert sorted(rail_issues(p, START)) == sorted(issues)
    with p.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(recon_issue)).scalar_one()
    assert count == 3
    assert_ledger_ok(p)  # the books themselves are sound: the rail is what differs
