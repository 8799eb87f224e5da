"""Reading the change log: the tail since a sequence number, and the active hashes an index is built from.

Both read inside one snapshot (`read_snapshot`), so what they return is consistent with the sequence they report.
Item hashes never change after the item is added, so an item-level 'activate' joins the item's hash rows at read
time. A bank-level 'activate' (bank enabled) joins the hashes of the bank's items that are active when the tail is
read: an item disabled later is left out (its later 'deactivate' would remove it anyway), an item enabled later is
included early (its later 'activate' is then a no-op). Either way, applying the tail in order converges on exactly
the store's state, which is the guarantee the index needs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import suppress
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from hashsvc.store.records import Change, HashChunk, HashRow
from hashsvc.store.schema import changes, item_hashes, items, store_counters

IN_LIST_SIZE = 500  # SQLite caps bound parameters per statement


# Plain SQL, for `max_sequence` and for `SequenceReader`, which runs it on every match (read-your-writes,
# service/live_index.py): skipping the expression layer halves a read on SQLite (88 -> 42 us through the pool).
_MAX_SEQUENCE = f"SELECT last_sequence FROM {store_counters.name} WHERE id = 1"


def max_sequence(conn: Connection) -> int:
    return int(conn.exec_driver_sql(_MAX_SEQUENCE).scalar_one())


def read_changes(conn: Connection, after: int, limit: int, algorithms: Sequence[str] | None = None) -> list[Change]:
    rows = conn.execute(
        sa.select(changes).where(changes.c.sequence > after).order_by(changes.c.sequence).limit(limit)
    ).all()
    if not rows:
        return []
    # The algorithm filter is applied here, not in SQL: given `algorithm = ?`, SQLite's planner drives the join
    # from the (algorithm, code) index over every hash of that algorithm, which made one page take minutes.
    keep = (lambda name: True) if algorithms is None else set(algorithms).__contains__
    hashes: dict[int, list[HashRow]] = defaultdict(list)
    activations = [row for row in rows if row.effect == "activate" and row.item_id is not None]
    # Single-item activations are fetched together with bounded IN lists; an item may be activated more than
    # once in a page (enabled, disabled, enabled again), and each of those changes carries the hashes.
    singles: dict[int, list[Row[Any]]] = defaultdict(list)
    for row in activations:
        if row.item_id == row.last_item_id:
            singles[row.item_id].append(row)
    single_ids = list(singles)
    for start in range(0, len(single_ids), IN_LIST_SIZE):
        query = sa.select(item_hashes).where(item_hashes.c.item_id.in_(single_ids[start : start + IN_LIST_SIZE]))
        for h in conn.execute(query):
            if keep(h.algorithm):
                for row in singles[h.item_id]:
                    hashes[row.sequence].append(HashRow(h.id, h.item_id, row.bank_id, h.algorithm, h.code))
    # A bulk add is one change for a run of consecutive item ids: one range scan of the item_id index.
    for row in activations:
        if row.item_id != row.last_item_id:
            query = sa.select(item_hashes).where(item_hashes.c.item_id.between(row.item_id, row.last_item_id))
            hashes[row.sequence] = [
                HashRow(h.id, h.item_id, row.bank_id, h.algorithm, h.code)
                for h in conn.execute(query)
                if keep(h.algorithm)
            ]
    for row in rows:
        if row.effect == "activate" and row.item_id is None:
            query = (
                sa.select(item_hashes)
                .select_from(item_hashes.join(items, items.c.id == item_hashes.c.item_id))
                .where(items.c.bank_id == row.bank_id, items.c.status == "active")
            )
            hashes[row.sequence] = [
                HashRow(h.id, h.item_id, row.bank_id, h.algorithm, h.code)
                for h in conn.execute(query)
                if keep(h.algorithm)
            ]
    return [
        Change(
            sequence=row.sequence,
            kind=row.kind,
            bank_id=row.bank_id,
            item_id=row.item_id,
            last_item_id=row.last_item_id,
            effect=row.effect,
            created_at=row.created_at,
            hashes=tuple(sorted(hashes.get(row.sequence, ()), key=lambda h: h.hash_id)),
        )
        for row in rows
    ]


# Written out rather than built with Core: it runs on the driver's own cursor (a server-side one on PostgreSQL),
# because SQLAlchemy's per-row result machinery cost a third of the time of a million-row stream, and SQLite needs
# NOT INDEXED: left to itself its planner walks the (algorithm, code) index, visiting item_hashes in random
# order, five times slower than scanning the table in id order (which is also roughly items' order).
ACTIVE_HASHES_SQL = (
    "SELECT h.id, h.item_id, i.bank_id, h.code FROM item_hashes AS h{not_indexed} "
    "JOIN items AS i ON i.id = h.item_id JOIN banks AS b ON b.id = i.bank_id "
    "WHERE h.algorithm = {param} AND i.status = 'active' AND b.enabled = {true}"
)


def stream_active_hashes(conn: Connection, algorithm: str, nbytes: int, chunk_size: int) -> Iterator[HashChunk]:
    """Yield the active hashes of `algorithm` as numpy chunks; memory is bounded by `chunk_size` rows."""
    driver: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        sql = ACTIVE_HASHES_SQL.format(not_indexed="", param="%s", true="true")
        cursor = driver.cursor(name="hashsvc_active_hashes")  # server-side: rows arrive chunk by chunk
        cursor.itersize = chunk_size
    else:
        sql = ACTIVE_HASHES_SQL.format(not_indexed=" NOT INDEXED", param="?", true="1")
        cursor = driver.cursor()
    try:
        cursor.execute(sql, (algorithm,))
        while rows := cursor.fetchmany(chunk_size):
            ids, item_ids, bank_ids, codes = zip(*rows, strict=True)
            yield HashChunk(
                ids=np.array(ids, dtype=np.int64),
                item_ids=np.array(item_ids, dtype=np.int64),
                bank_ids=np.array(bank_ids, dtype=np.int64),
                codes=np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(len(rows), nbytes),
            )
    finally:
        cursor.close()


class SequenceReader:
    """Reads the latest committed sequence over one connection it keeps, for a caller that reads it very often
    from one thread at a time (the read-your-writes check of every match).

    The connection is in autocommit mode (one statement, no BEGIN or ROLLBACK round trips, no open transaction
    pinning a snapshot) and the read goes through the driver's own cursor, SQLAlchemy's statement handling being
    most of the cost of so small a read: 240 -> 70 us wall and 125 -> 35 us of CPU on PostgreSQL, 27 -> 5 us on
    SQLite, against the same read through SQLAlchemy in a transaction (docs/operations.md, "Read-your-writes").

    A broken connection (a restarted database) is discarded and the read retried once on a new one."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._driver_errors = (sa.exc.DBAPIError, engine.dialect.loaded_dbapi.Error)

    def read(self) -> int:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                cursor = self._conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.execute(_MAX_SEQUENCE)
                    return int(cursor.fetchone()[0])
                finally:
                    cursor.close()
            except self._driver_errors:
                self._discard()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            with suppress(*self._driver_errors):
                self._conn.close()
            self._conn = None

    def _discard(self) -> None:
        """Drop a connection that failed, so that the pool never hands it out again."""
        if self._conn is not None:
            with suppress(*self._driver_errors):  # already broken: this is best effort
                self._conn.invalidate()
            self._conn = None
