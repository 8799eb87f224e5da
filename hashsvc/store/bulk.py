"""Fast multi-row inserts for the bulk paths (item import, change-log rows).

SQLAlchemy's executemany builds a parameter dict per row and runs every bind processor per value; at a million
items that overhead alone blows the 60 s budget. Here rows are plain tuples: SQLite gets one `executemany` of a
positional INSERT, PostgreSQL gets `COPY ... FROM STDIN` (psycopg 3), several times faster than INSERTs there.
Only the columns whose type needs converting (timestamps and JSON on SQLite, JSON on PostgreSQL) are touched.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hashsvc.store.schema import UtcDateTime

SQLITE_MAX_PARAMETERS = 32766  # SQLITE_MAX_VARIABLE_NUMBER's default since SQLite 3.32


def json_text(value: Any) -> str:
    """A JSON column's value as the drivers take it (for rows given to `insert_rows(prepared=True)`)."""
    return _json_text(value)


def timestamp_value(conn: Connection) -> Callable[[dt.datetime], Any]:
    """A UtcDateTime column's value as this connection's driver takes it (for `insert_rows(prepared=True)`)."""
    return _sqlite_utc_text if conn.dialect.name == "sqlite" else _identity


def _identity(value: Any) -> Any:
    return value


def _json_text(value: Any) -> str:
    if not value:
        return "{}"  # most imported items carry no metadata
    try:
        # orjson: the event writer encodes four JSON columns per event, and json.dumps was a third of its time
        return orjson.dumps(value).decode()
    except TypeError:  # what orjson refuses and json takes (non-string keys, integers beyond 64 bits)
        return json.dumps(value)


def _sqlite_utc_text(value: dt.datetime) -> str:
    """A timestamp as SQLAlchemy stores it in SQLite (UtcDateTime's naive UTC, "YYYY-MM-DD HH:MM:SS.ffffff"),
    without its two processors: events carry a timestamp each, so no cache of formatted values helps there."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use datetime.now(timezone.utc)")
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.isoformat(" ", "microseconds")[:-6]  # without its "+00:00"


def _converters(table: sa.Table, columns: Sequence[str], conn: Connection) -> list[Callable[[Any], Any] | None]:
    """Per column, the conversion the driver needs, or None. Both drivers take bytes, ints and str as they are."""
    result: list[Callable[[Any], Any] | None] = []
    for name in columns:
        column_type = table.c[name].type
        if isinstance(column_type, sa.JSON):
            result.append(_json_text)
        elif conn.dialect.name == "sqlite" and isinstance(column_type, UtcDateTime):
            result.append(_sqlite_utc_text)  # SQLite stores timestamps as text in SQLAlchemy's format
        else:
            result.append(None)
    return result


def insert_rows(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    rows_per_statement: int = 1,
    prepared: bool = False,
) -> None:
    """Insert `rows` (tuples in `columns` order) into `table` inside the connection's current transaction.
    `prepared`: the rows already hold what the driver takes (`json_text`, `timestamp_value`), so no column is
    converted here; the event writer builds its rows that way, once per value.

    On SQLite, `rows_per_statement` > 1 sends rows as multi-row INSERTs instead of one `executemany`: the driver
    lets go of the GIL around every statement it steps, so a writer thread inserting row by row hands the GIL to
    the request threads of its process (and waits to get it back) once per row."""
    if not rows:
        return
    active = [] if prepared else [(i, c) for i, c in enumerate(_converters(table, columns, conn)) if c is not None]
    if active:
        converted = []
        for row in rows:
            values = list(row)
            for i, convert in active:
                if values[i] is not None:
                    values[i] = convert(values[i])
            converted.append(tuple(values))
        rows = converted
    names = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        statement = f"COPY {table.name} ({names}) FROM STDIN"
        try:
            with driver.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.IntegrityError as exc:  # raw driver call: wrap like SQLAlchemy would, for one except clause
            raise sa.exc.IntegrityError(statement, None, exc) from exc
    elif rows_per_statement > 1:
        _insert_multirow(conn, f"INSERT INTO {table.name} ({names}) VALUES ", len(columns), rows, rows_per_statement)
    else:
        placeholders = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({placeholders})", list(rows))


def _insert_multirow(conn: Connection, head: str, width: int, rows: Sequence[Sequence[Any]], per: int) -> None:
    """SQLite: `rows` in INSERTs of up to `per` rows each (and within SQLite's limit of bound parameters)."""
    per = max(1, min(per, SQLITE_MAX_PARAMETERS // width))
    one = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        conn.exec_driver_sql(head + ", ".join([one] * len(chunk)), tuple(chain.from_iterable(chunk)))
