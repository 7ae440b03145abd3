"""Demo data for the embedded default: a few customers, lines, loans and some history.

Loaded only into an empty database; it moves a manual clock through two months so that there
are accruals, a repayment, a prepayment and an overdue loan to look at.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from microloan.domain.rates import DailyRate
from microloan.domain.schedule import Method
from microloan.service import autodebit, eod, lending
from microloan.service.admin import init_db
from microloan.service.clock import set_clock
from microloan.service.demo_access import load_access_demo
from microloan.service.payments import simulated_rail
from microloan.service.platform import Platform
from microloan.store.payments import account_ref
from microloan.store.schema import customer

START = date(2026, 9, 1)  # the demo's first business date
PEOPLE = (  # name, limit (fen), daily rate
    ("张伟 Zhang Wei", 2_000_000, "0.0003"),
    ("王芳 Wang Fang", 5_000_000, "0.0002"),
    ("李娜 Li Na", 800_000, "0.0005"),
    ("刘洋 Liu Yang", 300_000, "0.00066"),
)


def load_demo(p: Platform) -> dict[str, Any]:
    """Fill an empty database with the demo book. Returns what it made, or that it skipped."""
    init_db(p)
    with p.engine.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(customer)).scalar_one():
            return {"loaded": False, "reason": "the database already holds customers"}
    p.transaction(lambda conn: set_clock(conn, START, p.now))
    ids = [lending.create_customer(p, name) for name, _, _ in PEOPLE]
    for cid, (_, limit, rate) in zip(ids, PEOPLE, strict=True):
        lending.grant_line(p, cid, limit, DailyRate.parse(rate))
    loans = [
        lending.draw(p, ids[0], 1_000_000, 12, Method.EQUAL_PRINCIPAL, "demo-draw-1"),
        lending.draw(p, ids[1], 3_000_000, 24, Method.EQUAL_INSTALLMENT, "demo-draw-2"),
        lending.draw(p, ids[2], 500_000, 6, Method.EQUAL_PRINCIPAL, "demo-draw-3"),
        lending.draw(p, ids[3], 200_000, 3, Method.EQUAL_INSTALLMENT, "demo-draw-4"),
    ]
    _move(p, date(2026, 10, 1))
    autodebit.run_autodebit(p)  # pays the first installments, due today
    lending.repay(p, ids[1], None, 500_000, "demo-prepay-2")  # a prepayment
    _move(p, date(2026, 11, 1))
    declined = frozenset({account_ref(ids[3])})  # Liu Yang's card is declined
    autodebit.run_autodebit(p, simulated_rail(p, declined_cards=declined))
    _move(p, date(2026, 11, 5))  # Liu Yang is now 4 days past due
    lending.repay(p, ids[0], None, 10_000, "demo-repay-early")
    access = load_access_demo(p)
    return {
        "loaded": True,
        "customers": ids,
        "loans": [loan["loan_id"] for loan in loans],
        "access": access,
    }


def _move(p: Platform, to: date) -> None:
    p.transaction(lambda conn: set_clock(conn, to, p.now))
    eod.run_eod(p)
