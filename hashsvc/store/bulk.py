"""Fast multi-row inserts for the bulk paths (item import, change-log rows).

SQLAlchemy's executemany builds a parameter dict per row and runs every bind processor per value; at a million
items that overhead alone blows the 60 s budget. Here rows are plain tuples: SQLite gets one `executemany` of a
positional INSERT, PostgreSQL gets `COPY ... FROM STDIN` (psycopg 3), several times faster than INSERTs there.
Only the columns whose type needs converting (timestamps and JSON on SQLite, JSON on PostgreSQL) are touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection


def _converters(table: sa.Table, columns: Sequence[str], conn: Connection) -> list[Callable[[Any], Any] | None]:
    result: list[Callable[[Any], Any] | None] = []
    for name in columns:
        column_type = table.c[name].type
        if conn.dialect.name == "postgresql":
            # COPY's text format takes JSON as its text; everything else psycopg adapts itself.
            result.append(json.dumps if isinstance(column_type, sa.JSON) else None)
        else:
            result.append(column_type._cached_bind_processor(conn.dialect))  # type: ignore[attr-defined]
    return result


def insert_rows(conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert `rows` (tuples in `columns` order) into `table` inside the connection's current transaction."""
    if not rows:
        return
    converters = _converters(table, columns, conn)
    if any(converters):
        rows = [
            tuple(
                value if (convert := converters[i]) is None or value is None else convert(value)
                for i, value in enumerate(row)
            )
            for row in rows
        ]
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
    else:
        placeholders = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({placeholders})", list(rows))
