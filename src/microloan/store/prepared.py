"""Statements of the hot paths, built once with SQLAlchemy Core and run through the driver.

SQLAlchemy builds and compiles the SQL; on PostgreSQL a ``Prepared`` statement then runs
through psycopg's own cursor, prepared on the server, without SQLAlchemy's execution context,
result metadata and row objects on every call, which cost about twice the driver's own time
for a one-row read (docs/api.md, "Serving and performance"). Its rows are named tuples with
the keys SQLAlchemy's rows would have. On SQLite, and for any statement whose types would
need SQLAlchemy to convert a value on its way in or out, it runs through SQLAlchemy as usual:
the same statement gives the same rows either way (``tests/integration/test_prepared.py``).

Driver errors are raised as SQLAlchemy's own (``IntegrityError``, ``OperationalError`` …,
``connection_invalidated`` set when the connection was lost and dropped from the pool), so
``Platform.transaction``'s retries and every caller's handling stay as they are.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

_CURSOR = "microloan.prepared.cursor"  # the driver cursor kept in a pooled connection's info


@dataclass(frozen=True, slots=True)
class _Plan:
    """The statement compiled for PostgreSQL: its SQL, the values it binds itself, the
    conversions of the values bound, and the class of its rows."""

    sql: str
    constants: Mapping[str, Any]
    processors: Mapping[str, Callable[[Any], Any]]
    row: Any  # a namedtuple class, or None for a statement that returns no rows


class Prepared:
    """One statement of a hot path (a select, or an insert, update or delete): ``rows``,
    ``one``, ``one_or_none``, ``first``, ``scalar``, ``scalar_one`` and ``scalar_one_or_none``
    as on SQLAlchemy's results, ``run`` for a statement that returns nothing and ``run_many``
    for one executed over many sets of values. Parameters are the statement's bind names."""

    __slots__ = ("_plans", "statement")

    def __init__(self, statement: Any) -> None:  # an executable Core statement
        self.statement = statement
        # PostgreSQL's, by the names of the values given (an insert's columns depend on them);
        # None: not eligible, SQLAlchemy runs it
        self._plans: dict[tuple[str, ...], _Plan | None] = {}

    # -- results ---------------------------------------------------------------------------

    def rows(self, conn: sa.Connection, params: Mapping[str, Any] | None = None) -> list[Any]:
        return self._fetch(conn, params or {}, many=True)

    def first(self, conn: sa.Connection, params: Mapping[str, Any] | None = None) -> Any:
        rows = self._fetch(conn, params or {}, many=False)
        return rows[0] if rows else None

    def one_or_none(self, conn: sa.Connection, params: Mapping[str, Any] | None = None) -> Any:
        rows = self._fetch(conn, params or {}, many=True)
        if len(rows) > 1:
            raise sa.exc.MultipleResultsFound("more than one row where one or none was expected")
        return rows[0] if rows else None

    def one(self, conn: sa.Connection, params: Mapping[str, Any] | None = None) -> Any:
        row = self.one_or_none(conn, params)
        if row is None:
            raise sa.exc.NoResultFound("no row where one was expected")
        return row

    def scalar(self, conn: sa.Connection, params: Mapping[str, Any] | None = None) -> Any:
        row = self.first(conn, params)
        return None if row is None else row[0]

    def scalar_one_or_none(
        self, conn: sa.Connection, params: Mapping[str, Any] | None = None
    ) -> Any:
        row = self.one_or_none(conn, params)
        return None if row is None else row[0]

    def scalar_one(self, conn: sa.Connection, params: Mapping[str, Any] | None = None) -> Any:
        return self.one(conn, params)[0]

    def run(self, conn: sa.Connection, params: Mapping[str, Any] | None = None) -> int:
        """Execute a statement that returns no rows; the rows it changed."""
        values = params or {}
        plan = self._plan(conn, values)
        if plan is None:
            return int(conn.execute(self.statement, dict(values)).rowcount)
        cur = _cursor(conn)
        _execute(conn, cur, plan, values)
        return int(cur.rowcount)

    def run_many(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute a statement that returns no rows once for each set of values (all with the
        same names)."""
        if not rows:
            return
        plan = self._plan(conn, rows[0])
        if plan is None:
            conn.execute(self.statement, [dict(r) for r in rows])
            return
        cur = _cursor(conn)
        values = [_bound(plan, r) for r in rows]
        try:
            cur.executemany(plan.sql, values)
        except Exception as exc:
            _raise_as_sqlalchemy(conn, cur, exc, plan.sql, values)

    # -- execution -------------------------------------------------------------------------

    def _fetch(self, conn: sa.Connection, params: Mapping[str, Any], *, many: bool) -> list[Any]:
        plan = self._plan(conn, params)
        if plan is None:
            result = conn.execute(self.statement, dict(params))
            return list(result.all() if many else result.fetchmany(1))
        cur = _cursor(conn)
        _execute(conn, cur, plan, params)
        make = (plan.row or _described(self, plan, params, cur))._make
        if many:
            return [make(r) for r in cur.fetchall()]
        found = cur.fetchone()
        return [] if found is None else [make(found)]

    def _plan(self, conn: sa.Connection, params: Mapping[str, Any]) -> _Plan | None:
        dialect = conn.dialect
        if dialect.name != "postgresql" or dialect.driver != "psycopg":
            return None
        names = tuple(params)
        try:
            return self._plans[names]
        except KeyError:
            plan = _compile(self.statement, dialect, names)
            self._plans[names] = plan
            return plan


def _described(prepared: Prepared, plan: _Plan, params: Mapping[str, Any], cur: Any) -> Any:
    """The row class of a textual statement, from the columns the server described (once)."""
    names = [c.name for c in cur.description or ()]
    row = namedtuple("Row", names, rename=True)  # type: ignore[misc]
    prepared._plans[tuple(params)] = _Plan(plan.sql, plan.constants, plan.processors, row)
    return row


def _cursor(conn: sa.Connection) -> Any:
    """The driver cursor kept with the pooled connection (rows are fetched before the next
    statement, so one cursor serves every statement of the connection)."""
    fairy = conn.connection
    cur = fairy.info.get(_CURSOR)
    driver = fairy.driver_connection
    if cur is None or cur.closed or cur.connection is not driver:
        cur = fairy.info[_CURSOR] = driver.cursor()  # type: ignore[union-attr]
    return cur


def _bound(plan: _Plan, params: Mapping[str, Any]) -> dict[str, Any]:
    values = {**plan.constants, **params}
    for name, process in plan.processors.items():
        values[name] = process(values[name])
    return values


def _execute(conn: sa.Connection, cur: Any, plan: _Plan, params: Mapping[str, Any]) -> None:
    values = _bound(plan, params)
    try:
        cur.execute(plan.sql, values, prepare=True)
    except Exception as exc:
        _raise_as_sqlalchemy(conn, cur, exc, plan.sql, values)


def _raise_as_sqlalchemy(
    conn: sa.Connection, cur: Any, exc: Exception, sql: str, values: Any
) -> None:
    dbapi = conn.dialect.loaded_dbapi
    if not isinstance(exc, dbapi.Error):
        raise exc
    lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cur)
    if lost:
        conn.invalidate(exc)
    raise sa.exc.DBAPIError.instance(
        sql, values, exc, dbapi.Error, connection_invalidated=lost, dialect=conn.dialect
    ) from exc


def _compile(statement: ClauseElement, dialect: sa.Dialect, names: tuple[str, ...]) -> _Plan | None:
    """The plan of the statement on PostgreSQL, or None when SQLAlchemy must run it: a
    statement needing work at execution time (expanding or literal parameters, escaped names,
    Python-side defaults, values converted on the way out)."""
    if _has_python_defaults(statement):
        return None
    compiled = statement.compile(dialect=dialect, column_keys=list(names))
    assert isinstance(compiled, SQLCompiler)
    if compiled.post_compile_params or compiled.literal_execute_params:
        return None
    if compiled.escaped_bind_names:
        return None
    columns = list(_returned(statement))
    for column in columns:
        if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
            return None
    processors = {}
    for bind in compiled.binds.values():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[compiled.bind_names[bind]] = process
    required = {compiled.bind_names[b] for b in compiled.binds.values() if b.required}
    given = set(names)
    constants = {
        k: v
        for k, v in compiled.construct_params({}, _check=False).items()
        if k not in given and k not in required
    }
    keys = [c.key if isinstance(c.key, str) else f"c{i}" for i, c in enumerate(columns)]
    row = namedtuple("Row", keys, rename=True) if columns else None
    return _Plan(compiled.string, constants, processors, row)


def _returned(statement: ClauseElement) -> Sequence[Any]:
    """The columns of the statement's rows: a select's, or a DML statement's RETURNING."""
    if isinstance(statement, sa.sql.expression.UpdateBase):
        return list(statement.exported_columns)
    return list(getattr(statement, "selected_columns", ()))


def _has_python_defaults(statement: ClauseElement) -> bool:
    table = getattr(statement, "table", None)
    if table is None or not isinstance(statement, sa.Insert | sa.Update):
        return False
    return any(c.default is not None or c.onupdate is not None for c in table.columns)
