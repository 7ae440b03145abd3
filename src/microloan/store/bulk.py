"""Moving many rows between the database and polars frames: COPY on PostgreSQL, the driver's
``executemany`` on SQLite. Repositories never commit: the caller owns the transaction.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import sqlalchemy as sa

_PG_TYPES = {
    pl.Int64: "BIGINT",
    pl.Int32: "INTEGER",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
    pl.String: "TEXT",
}


def _cursor(conn: sa.Connection) -> Any:
    """The driver's cursor of the connection's transaction (psycopg on PostgreSQL)."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def is_postgres(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def read_frame(
    conn: sa.Connection, query: sa.Select[Any], schema: Mapping[str, Any]
) -> pl.DataFrame:
    """The rows of ``query`` as a frame of ``schema`` (the query's columns, in order)."""
    if is_postgres(conn):
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        buf = io.BytesIO()
        with _cursor(conn) as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
            for block in copy:
                buf.write(block)
        read_as = {k: (pl.String if v == pl.Boolean else v) for k, v in schema.items()}
        frame = pl.read_csv(
            buf.getvalue(), has_header=False, new_columns=list(schema), schema=read_as
        )
        return frame.with_columns(
            (pl.col(k) == "t").alias(k) for k, v in schema.items() if v == pl.Boolean
        )
    rows = conn.execute(query).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=dict(schema), orient="row")


def _csv(frame: pl.DataFrame) -> bytes:
    return frame.write_csv(include_header=False, null_value="").encode()


def _driver_rows(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    """Rows for sqlite3: dates as ISO text (how SQLAlchemy stores them), booleans as 0/1."""
    cast = frame.with_columns(
        [pl.col(c).dt.to_string("%Y-%m-%d") for c, t in frame.schema.items() if t == pl.Date]
        + [pl.col(c).cast(pl.Int8) for c, t in frame.schema.items() if t == pl.Boolean]
    )
    return cast.rows()


def insert_frame(conn: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> None:
    if frame.is_empty():
        return
    cols = ", ".join(frame.columns)
    if is_postgres(conn):
        with (
            _cursor(conn) as cur,
            cur.copy(f"COPY {table.name} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy,
        ):
            copy.write(_csv(frame))
        return
    marks = ", ".join("?" for _ in frame.columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({cols}) VALUES ({marks})", _driver_rows(frame))


def stage(conn: sa.Connection, name: str, frame: pl.DataFrame) -> None:
    """PostgreSQL: the frame as a temporary table dropped at commit."""
    assert is_postgres(conn)
    cols = ", ".join(f"{c} {_PG_TYPES[t]}" for c, t in frame.schema.items())  # type: ignore[index]
    conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({cols}) ON COMMIT DROP")
    with _cursor(conn) as cur, cur.copy(f"COPY {name} FROM STDIN WITH (FORMAT csv)") as copy:
        copy.write(_csv(frame))


def update_from_frame(
    conn: sa.Connection,
    table: sa.Table,
    frame: pl.DataFrame,
    *,
    key: str | tuple[str, ...],
    columns: Sequence[str],
    constants: Mapping[str, Any] | None = None,
    guard: tuple[str, Any] | None = None,
) -> int:
    """Set ``columns`` (and ``constants``) of the rows whose ``key`` is in the frame, only where
    ``guard`` (column, value) still holds; returns how many rows changed."""
    keys = (key,) if isinstance(key, str) else key
    constants = dict(constants or {})
    if frame.is_empty():
        return 0
    if is_postgres(conn):
        stage(conn, "bulk_stage", frame.select(*keys, *columns))
        sets = [f"{c} = s.{c}" for c in columns] + [f"{c} = :c_{c}" for c in constants]
        where = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        params: dict[str, Any] = {f"c_{c}": v for c, v in constants.items()}
        # the key's range too, so the plan never rests on an estimate of the guard's rows
        params["lo"], params["hi"] = frame[keys[0]].min(), frame[keys[0]].max()
        where += f" AND t.{keys[0]} BETWEEN :lo AND :hi"
        if guard is not None:
            where += f" AND t.{guard[0]} = :guard"
            params["guard"] = guard[1]
        sql = f"UPDATE {table.name} AS t SET {', '.join(sets)} FROM bulk_stage s WHERE {where}"
        count = conn.execute(sa.text(sql), params).rowcount
        conn.exec_driver_sql("DROP TABLE bulk_stage")
        return int(count)
    sets = [f"{c} = ?" for c in columns] + [f"{c} = ?" for c in constants]
    where = " AND ".join(f"{k} = ?" for k in keys)
    if guard is not None:
        where += f" AND {guard[0]} = ?"
    tail: tuple[Any, ...] = tuple(_plain(v) for v in constants.values())
    extra: tuple[Any, ...] = () if guard is None else (_plain(guard[1]),)
    n = len(keys)
    rows = [(*r[:-n], *tail, *r[-n:], *extra) for r in _driver_rows(frame.select(*columns, *keys))]
    cur = conn.exec_driver_sql(f"UPDATE {table.name} SET {', '.join(sets)} WHERE {where}", rows)
    return int(cur.rowcount)


def _plain(value: Any) -> Any:
    """A Python value as sqlite3 takes it the way SQLAlchemy stores it."""
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value
