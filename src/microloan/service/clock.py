"""The business clock (lending rules §1): the open business date and the last closed one.

In ``system`` mode the open date is today in Asia/Shanghai; in ``manual`` mode (tests,
simulation) it is set by hand and never back to or before a closed date.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from microloan.domain.calendar import BUSINESS_TZ
from microloan.errors import ClockRefused, MicroloanError
from microloan.store.prepared import Prepared
from microloan.store.schema import business_clock, loan, repayment

SHANGHAI = ZoneInfo(BUSINESS_TZ)
# PostgreSQL advisory lock: every transaction that moves money on the open date holds it shared
# (taken in the statement that reads the clock); the end of day takes it exclusive before it
# starts a date, so it never begins while a repayment that read the previous date is in flight
DATE_LOCK = 7_240_001
Now = Callable[[], datetime]


def system_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ClockView:
    mode: str
    open_date: date
    last_closed_date: date | None  # None until the first end of day


_CLOCK_ROW = Prepared(sa.select(business_clock).where(business_clock.c.id == 1))


def read_clock(conn: sa.Connection, now: Now) -> ClockView:
    row = _CLOCK_ROW.one_or_none(conn)
    if row is None:
        raise MicroloanError(
            "the database is not initialised: run `microloan db init`", code="db.not_initialised"
        )
    return clock_view(row.mode, row.open_date, row.last_closed_date, now)


def init_clock(conn: sa.Connection, now: Now) -> None:
    if conn.execute(sa.select(business_clock.c.id)).first() is None:
        today = now().astimezone(SHANGHAI).date()
        conn.execute(
            business_clock.insert(),
            {
                "id": 1,
                "mode": "system",
                "open_date": today,
                "last_closed_date": None,
            },
        )


def set_clock(conn: sa.Connection, open_date: date, now: Now) -> ClockView:
    current = read_clock(conn, now)
    if current.last_closed_date is not None and open_date <= current.last_closed_date:
        raise ClockRefused(
            f"{open_date} is not after the last closed business date {current.last_closed_date}",
            code="clock.before_closed",
            field="date",
        )
    _refuse_before_business(conn, open_date)
    conn.execute(
        business_clock.update()
        .where(business_clock.c.id == 1)
        .values(mode="manual", open_date=open_date)
    )
    return ClockView("manual", open_date, current.last_closed_date)


def first_date_to_close(conn: sa.Connection, clock: ClockView) -> date:
    """The first date the end of day must close: the day after the last closed one, or, before
    any end of day, the first business date (the earliest draw), else the day before today."""
    if clock.last_closed_date is not None:
        return clock.last_closed_date + timedelta(days=1)
    earliest = conn.execute(sa.select(sa.func.min(loan.c.drawn_on))).scalar()
    return earliest if earliest is not None else clock.open_date - timedelta(days=1)


def follow_system(conn: sa.Connection, now: Now) -> None:
    """Follow today in Asia/Shanghai again, unless business is already booked on a later date."""
    _refuse_before_business(conn, clock_view("system", date.min, None, now).open_date)
    conn.execute(business_clock.update().where(business_clock.c.id == 1).values(mode="system"))


def _refuse_before_business(conn: sa.Connection, open_date: date) -> None:
    """The clock never goes back before a date on which a draw or a repayment was booked."""
    latest_draw = conn.execute(sa.select(sa.func.max(loan.c.drawn_on))).scalar()
    latest_repay = conn.execute(sa.select(sa.func.max(repayment.c.business_date))).scalar()
    latest = max((d for d in (latest_draw, latest_repay) if d is not None), default=None)
    if latest is not None and open_date < latest:
        raise ClockRefused(
            f"{open_date} is before business already done on {latest}",
            code="clock.before_business",
            field="date",
        )


def clock_view(mode: str, open_date: date, last_closed: date | None, now: Now) -> ClockView:
    """The clock from its stored columns (read alone, or inside a use case's first query)."""
    if mode == "system":
        today = now().astimezone(SHANGHAI).date()
        if last_closed is not None:
            today = max(today, last_closed + timedelta(days=1))
        return ClockView("system", today, last_closed)
    return ClockView(mode, open_date, last_closed)


def clock_columns(*, guard: bool = False) -> list[sa.Label[Any]]:
    """The clock's columns as scalar subqueries, to ride along with another query; ``guard``
    (PostgreSQL) also takes :data:`DATE_LOCK` shared for the rest of the transaction."""
    one = business_clock.c.id == 1
    lock = [sa.func.pg_advisory_xact_lock_shared(sa.literal(DATE_LOCK)).label("date_guard")]
    return (lock if guard else []) + [
        sa.select(business_clock.c.mode).where(one).scalar_subquery().label("clock_mode"),
        sa.select(business_clock.c.open_date).where(one).scalar_subquery().label("clock_open"),
        sa.select(business_clock.c.last_closed_date)
        .where(one)
        .scalar_subquery()
        .label("clock_closed"),
    ]
