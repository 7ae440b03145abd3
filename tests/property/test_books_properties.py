"""The books hold whatever customers do: random draws, repayments and days passing (SQLite).

A hypothesis state machine draws, repays (one loan or "all", any amount up to the payoff) and
moves the clock 1–40 days with the end of day and, sometimes, the auto-debit; after every step
the ledger check passes, every entry balances, each line's available amount is its limit less
its outstanding principal, and no open loan's payoff is below its outstanding principal.
Each example starts from a copy of one migrated SQLite file.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from microloan.domain.money import parse_yuan
from microloan.domain.rates import DailyRate
from microloan.domain.schedule import Method
from microloan.errors import DrawRefused
from microloan.service import lending
from microloan.service.autodebit import run_autodebit
from microloan.service.clock import set_clock
from microloan.service.eod import run_eod
from microloan.service.ledger_check import check_ledger
from microloan.service.platform import Platform
from microloan.store.schema import credit_line, journal_line, loan

START = date(2026, 1, 31)
# (limit in fen, daily rate): the second is at the top of the product band
CUSTOMERS = ((300_000, "0.0005"), (500_000, "0.00066"))
DRAW_REFUSALS = {"loan.draw.exceeds_available", "loan.draw.overdue", "loan.draw.too_many_loans"}

SETTINGS = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_books_hold_under_random_lending(
    sqlite_template: Any, tmp_path: Path, wall_clock: Any
) -> None:
    examples = itertools.count()

    class Books(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.path = tmp_path / f"example-{next(examples)}.sqlite3"
            self.p = Platform.connect(sqlite_template.copy_to(self.path), now=wall_clock)
            self.today = START
            self.keys = itertools.count()
            self.customers: list[int] = []

        @initialize()
        def open_lines(self) -> None:
            self._set_date(START)
            for n, (limit_fen, rate) in enumerate(CUSTOMERS):
                cid = lending.create_customer(self.p, f"客户{n}")
                lending.grant_line(self.p, cid, limit_fen, DailyRate.parse(rate))
                self.customers.append(cid)

        def _set_date(self, d: date) -> None:
            self.p.transaction(lambda conn: set_clock(conn, d, self.p.now))
            self.today = d

        def _key(self, kind: str) -> str:
            return f"{kind}-{next(self.keys)}"

        def _open_loans(self, cid: int) -> list[int]:
            with self.p.engine.connect() as conn:
                return list(
                    conn.execute(
                        sa.select(loan.c.loan_id)
                        .where(loan.c.customer_id == cid, loan.c.status == "open")
                        .order_by(loan.c.loan_id)
                    ).scalars()
                )

        @rule(
            who=st.integers(0, len(CUSTOMERS) - 1),
            yuan=st.integers(100, 2500),
            term=st.sampled_from((3, 6, 12)),
            method=st.sampled_from(list(Method)),
        )
        def draw(self, who: int, yuan: int, term: int, method: Method) -> None:
            try:
                lending.draw(
                    self.p, self.customers[who], yuan * 100, term, method, self._key("draw")
                )
            except DrawRefused as exc:
                assert exc.code in DRAW_REFUSALS, exc

        @rule(who=st.integers(0, len(CUSTOMERS) - 1), data=st.data())
        def repay(self, who: int, data: st.DataObject) -> None:
            cid = self.customers[who]
            open_ids = self._open_loans(cid)
            if not open_ids:
                return
            target = data.draw(st.sampled_from([None, *open_ids]), label="loan")
            owed = sum(
                _payoff_fen(self.p, lid) for lid in (open_ids if target is None else [target])
            )
            amount = data.draw(st.one_of(st.just(owed), st.integers(1, owed)), label="fen")
            answer = lending.repay(self.p, cid, target, amount, self._key("repay"))
            assert sum(_fen(part["amount"]) for part in answer["loans"]) == amount

        @precondition(lambda self: self.today < START + timedelta(days=400))
        @rule(days=st.integers(1, 40), autodebit=st.booleans())
        def days_pass(self, days: int, autodebit: bool) -> None:
            self._set_date(self.today + timedelta(days=days))
            closed = run_eod(self.p)
            assert closed and closed[-1].business_date == self.today - timedelta(days=1)
            if autodebit:
                result = run_autodebit(self.p)
                assert result.failed == 0

        @invariant()
        def books_hold(self) -> None:
            if not self.customers:
                return
            report = check_ledger(self.p)
            assert report["ok"], report["problems"]
            with self.p.engine.connect() as conn:
                unbalanced = conn.execute(
                    sa.select(journal_line.c.entry_id)
                    .group_by(journal_line.c.entry_id)
                    .having(sa.func.sum(journal_line.c.amount_fen) != 0)
                ).all()
                lines = {r.customer_id: r for r in conn.execute(sa.select(credit_line))}
                loans = conn.execute(
                    sa.select(
                        loan.c.loan_id,
                        loan.c.customer_id,
                        loan.c.status,
                        loan.c.principal_outstanding_fen,
                    )
                ).all()
            assert unbalanced == []
            for cid in self.customers:
                mine = [r for r in loans if r.customer_id == cid and r.status == "open"]
                outstanding = sum(r.principal_outstanding_fen for r in mine)
                row = lines[cid]
                assert row.outstanding_principal_fen == outstanding
                assert row.open_loans == len(mine)
                summary = _line(self.p, cid)
                assert _fen(summary["available"]) == max(0, row.limit_fen - outstanding)
            for r in loans:
                owed = lending.payoff(self.p, r.loan_id)
                if r.status == "open":
                    assert _fen(owed["payoff"]) >= r.principal_outstanding_fen > 0
                    assert _fen(owed["principal"]) == r.principal_outstanding_fen
                else:
                    assert owed["payoff"] == "0.00" and r.principal_outstanding_fen == 0

        def teardown(self) -> None:
            self.p.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    run_state_machine_as_test(Books, settings=SETTINGS)


def _fen(yuan: str) -> int:
    return parse_yuan(yuan)


def _payoff_fen(p: Platform, loan_id: int) -> int:
    return _fen(lending.payoff(p, loan_id)["payoff"])


def _line(p: Platform, cid: int) -> dict[str, Any]:
    with p.engine.connect() as conn:
        return lending.line_summary(conn, cid)
