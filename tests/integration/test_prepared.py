"""Statements run through the driver (``store.prepared``): the same rows as SQLAlchemy gives for
the same statement, SQLAlchemy's errors, a lost connection dropped, SQLAlchemy itself on
SQLite and for what needs it; and the borrower's hot paths run no statement through
SQLAlchemy's execution on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from microloan.domain.schedule import Method
from microloan.service import lending, onboarding
from microloan.service.clock import read_clock
from microloan.service.platform import Platform, claim_key
from microloan.store import loans as repo
from microloan.store.prepared import Prepared
from microloan.store.schema import credit_line, idempotency, installment, loan, repayment

from .support import draw, fen, line, new_customer, new_key, repay, set_date

D0 = date(2025, 3, 3)


def _customer_with_loans(p: Platform) -> tuple[int, list[int]]:
    set_date(p, D0)
    cid = new_customer(p, limit="50000")
    loans = [draw(p, cid, "3000", 6, Method.EQUAL_INSTALLMENT)["loan_id"] for _ in range(2)]
    set_date(p, D0 + timedelta(days=9))
    repay(p, cid, "120.00", loans[0])
    return cid, [int(x) for x in loans]


STATEMENTS: list[tuple[str, Any, dict[str, Any]]] = [
    ("whole rows", sa.select(loan).where(loan.c.customer_id == sa.bindparam("cid")), {}),
    (
        "ordered, limited, with a constant",
        sa.select(loan.c.loan_id, loan.c.status, loan.c.drawn_on)
        .where(loan.c.customer_id == sa.bindparam("cid"), loan.c.status == "open")
        .order_by(loan.c.loan_id.desc())
        .limit(sa.bindparam("n", type_=sa.Integer)),
        {"n": 5},
    ),
    (
        "labels, a scalar subquery and exists",
        sa.select(
            credit_line.c.limit_fen.label("limit"),
            sa.select(sa.func.count())
            .where(installment.c.customer_id == credit_line.c.customer_id)
            .scalar_subquery()
            .label("installments"),
            sa.exists().where(repayment.c.customer_id == credit_line.c.customer_id).label("repaid"),
        ).where(credit_line.c.customer_id == sa.bindparam("cid")),
        {},
    ),
    ("no row", sa.select(loan.c.loan_id).where(loan.c.customer_id == -sa.bindparam("cid")), {}),
]


@pytest.mark.parametrize(
    ("label", "statement", "extra"), STATEMENTS, ids=[s[0] for s in STATEMENTS]
)
def test_the_same_rows_as_sqlalchemy_gives(
    platform: Platform, label: str, statement: Any, extra: dict[str, Any]
) -> None:
    cid, _loans = _customer_with_loans(platform)
    params = {"cid": cid, **extra}
    prepared = Prepared(statement)
    with platform.reading() as conn:
        expected = conn.execute(statement, params)
        keys, rows = list(expected.keys()), [tuple(r) for r in expected]
        got = prepared.rows(conn, params)
    assert [tuple(r) for r in got] == rows
    for row in got:
        assert [getattr(row, k) for k in keys] == list(row)
    if label != "no row":
        assert rows, "the statement should find something to compare"


def test_every_result_shape(platform: Platform) -> None:
    cid, loans = _customer_with_loans(platform)
    ids = Prepared(
        sa.select(loan.c.loan_id)
        .where(loan.c.customer_id == sa.bindparam("cid"))
        .order_by("loan_id")
    )
    with platform.reading() as conn:
        assert [r.loan_id for r in ids.rows(conn, {"cid": cid})] == loans
        assert ids.first(conn, {"cid": cid}).loan_id == loans[0]
        assert ids.scalar(conn, {"cid": cid}) == loans[0]
        assert ids.scalar(conn, {"cid": -1}) is None
        assert ids.first(conn, {"cid": -1}) is None
        assert ids.one_or_none(conn, {"cid": -1}) is None
        assert ids.scalar_one_or_none(conn, {"cid": -1}) is None
        with pytest.raises(sa.exc.MultipleResultsFound):
            ids.one_or_none(conn, {"cid": cid})
        with pytest.raises(sa.exc.NoResultFound):
            ids.one(conn, {"cid": -1})
        one = {"cid": cid, "lid": loans[1]}
        by_id = Prepared(ids.statement.where(loan.c.loan_id == sa.bindparam("lid")))
        assert by_id.scalar_one(conn, one) == loans[1]
        assert by_id.one(conn, one).loan_id == loans[1]


def test_writes_run_in_the_callers_transaction(platform: Platform) -> None:
    cid, _loans = _customer_with_loans(platform)
    bump = Prepared(
        credit_line.update()
        .where(credit_line.c.customer_id == sa.bindparam("cid"))
        .values(open_loans=credit_line.c.open_loans + sa.bindparam("by", type_=sa.Integer))
    )
    add = Prepared(
        sa.text("UPDATE credit_line SET limit_fen = limit_fen + 1 WHERE customer_id = :c")
    )
    before = line(platform, cid)

    def work(conn: sa.Connection) -> None:
        assert bump.run(conn, {"cid": cid, "by": 5}) == 1
        add.run(conn, {"c": cid})
        raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        platform.transaction(work)
    assert line(platform, cid) == before
    platform.transaction(lambda conn: bump.run(conn, {"cid": cid, "by": 5}))
    assert line(platform, cid)["open_loans"] == before["open_loans"] + 5


def test_many_rows_inserted_at_once(platform: Platform) -> None:
    cid, _loans = _customer_with_loans(platform)
    keys = Prepared(idempotency.insert())
    rows = [
        {
            "key": f"many-{n}",
            "customer_id": cid,
            "operation": "draw",
            "request_hash": "h",
            "response": "",
            "created_at": platform.now(),
        }
        for n in range(7)
    ]
    platform.transaction(lambda conn: keys.run_many(conn, rows))
    count = Prepared(
        sa.select(sa.func.count()).where(idempotency.c.key.like(sa.bindparam("pattern")))
    )
    with platform.reading() as conn:
        assert count.scalar_one(conn, {"pattern": "many-%"}) == 7


def test_a_driver_error_is_sqlalchemys_and_leaves_nothing(platform: Platform) -> None:
    cid, _loans = _customer_with_loans(platform)
    key = new_key("dup")
    platform.transaction(lambda conn: claim_key(conn, key, cid, "draw", "h", platform.now()))
    insert = Prepared(idempotency.insert())
    row = {
        "key": key,
        "customer_id": cid,
        "operation": "draw",
        "request_hash": "h",
        "response": "",
        "created_at": platform.now(),
    }
    second = {**row, "key": new_key("dup")}

    def twice(conn: sa.Connection) -> None:
        insert.run(conn, second)
        insert.run(conn, row)  # the key exists

    with pytest.raises(sa.exc.IntegrityError):
        platform.transaction(twice, retries=1)
    found = Prepared(sa.select(idempotency.c.key).where(idempotency.c.key == sa.bindparam("k")))
    with platform.reading() as conn:
        assert found.scalar(conn, {"k": second["key"]}) is None  # rolled back with it


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_a_lost_connection_is_dropped_from_the_pool(platform: Platform) -> None:
    pid = Prepared(sa.select(sa.func.pg_backend_pid().label("pid")))
    with platform.reading() as conn:
        lost = pid.scalar_one(conn)
    with platform.engine.connect() as admin:
        admin.execute(sa.select(sa.func.pg_terminate_backend(lost)))
        admin.commit()
    with pytest.raises(sa.exc.OperationalError) as caught, platform.reading() as conn:
        pid.scalar_one(conn)
    assert caught.value.connection_invalidated
    with platform.reading() as conn:
        assert pid.scalar_one(conn) != lost  # a fresh connection


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_what_needs_sqlalchemy_at_execution_runs_through_it(platform: Platform) -> None:
    _cid, loans = _customer_with_loans(platform)
    expanding = Prepared(
        sa.select(loan.c.loan_id).where(loan.c.loan_id.in_(sa.bindparam("ids", expanding=True)))
    )
    with platform.reading() as conn, _sqlalchemy_statements(platform) as through:
        assert sorted(r.loan_id for r in expanding.rows(conn, {"ids": loans})) == loans
    assert len(through) == 1


@contextmanager
def _sqlalchemy_statements(p: Platform) -> Iterator[list[str]]:
    """The statements SQLAlchemy executes meanwhile, on either of the platform's engines."""
    seen: list[str] = []

    def spy(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engines = [e for e in (p.engine, p.reader) if e is not None]
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", spy)
    try:
        yield seen
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", spy)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_the_borrowers_hot_paths_run_through_the_driver(platform: Platform) -> None:
    """A borrower's reads, draws and repayments execute no statement through SQLAlchemy on
    PostgreSQL (it costs about twice the driver's own time a statement)."""
    cid, loans = _customer_with_loans(platform)
    with _sqlalchemy_statements(platform) as through:
        with platform.reading() as conn:
            lending.line_summary(conn, cid)
            read_clock(conn, platform.now)
            onboarding.card_list(conn, cid)
            onboarding.live_consents(conn, cid, ["loan_agreement"])
        lending.list_loans(platform, cid)
        lending.show_loan(platform, loans[1], customer_id=cid)
        lending.payoff(platform, loans[1], customer_id=cid)
        lending.draw(platform, cid, fen("500"), 3, Method.EQUAL_PRINCIPAL, new_key(), pay_now=False)
        lending.repay(platform, cid, loans[1], fen("50"), new_key())
        with platform.reading() as conn:
            repo.live_one(conn, Prepared(sa.select(loan)).rows(conn)[0])
    assert through == []
