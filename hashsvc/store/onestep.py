"""A query's rows from SQLite in one step of its statement, for threads that share their process with busy ones.

Python's sqlite3 module lets go of the GIL around every `sqlite3_step`, i.e. once per row fetched. When other
threads of the process want the GIL (request threads, under load), each of those steps hands it over and waits to
get it back: the event writer's flood check (grouped counts of some 600 rows) took 0.17 s of wall time under
in-process single lookups, though SQLite answers such a count in 2 ms. Packed into one JSON array by SQLite
itself, the same rows come back in a single step (0.015 s a check then). PostgreSQL's driver reads a result in one
call already, so there the query runs as it is.

SQLite builds since 3.38 have the JSON functions this needs; an older library without them (JSON1 was optional
before) gets the plain query, as PostgreSQL does.

For results of plain values (integers, text, JSON columns; not timestamps, floats that must round-trip or bytes):
each row comes back as a tuple in the query's column order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import closing
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection


def _sqlite_has_json() -> bool:
    """Whether the SQLite library this interpreter links has json_group_array and json_array."""
    try:
        with closing(sqlite3.connect(":memory:")) as probe:
            probe.execute("SELECT json_group_array(json_array(1, 'a'))").fetchone()
    except sqlite3.OperationalError:
        return False
    return True


SQLITE_HAS_JSON = _sqlite_has_json()


class OneStep:
    """`query`, and the same rows packed into one JSON value for SQLite. Build it once (module level): building
    and caching a statement costs more than running a small one."""

    def __init__(self, query: sa.Select[Any] | sa.TextualSelect) -> None:
        self.query = query
        inner = query.subquery()
        # A JSON column goes in as JSON (json() of its text), so it comes back parsed, as SQLAlchemy gives it
        values = [sa.func.json(column) if isinstance(column.type, sa.JSON) else column for column in inner.c]
        self.packed = sa.select(sa.func.json_group_array(sa.func.json_array(*values)))

    def rows(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if conn.dialect.name != "sqlite" or not SQLITE_HAS_JSON:
            return [tuple(row) for row in conn.execute(self.query, params or {})]
        packed = conn.execute(self.packed, params or {}).scalar_one()
        return [tuple(row) for row in orjson.loads(packed)]
