"""The write transaction: serialized change-log sequence numbers, id allocation, change and audit rows.

Why a counter row and not a SEQUENCE: PostgreSQL hands out sequence values at insert time, not at commit time, so
transaction A can take sequence 10, transaction B take 11 and commit first; a reader that saw 11 and then asks for
"everything after 11" would skip 10 forever. Every writer that produces change-log rows therefore first locks the
one `store_counters` row (SELECT ... FOR UPDATE on PostgreSQL; on SQLite BEGIN IMMEDIATE already serializes
writers) and keeps it until commit, so sequence numbers are assigned in commit order and a reader that has seen S
has seen every change numbered below S. Taking the lock first also means the state a writer reads (is the bank
enabled?) cannot change under it before it commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hashsvc.store.bulk import insert_rows
from hashsvc.store.engine import WRITE_OPTION
from hashsvc.store.errors import SchemaOutOfDateError
from hashsvc.store.records import Actor
from hashsvc.store.schema import audit_log, changes, store_counters

CHANGE_COLUMNS = ("sequence", "kind", "bank_id", "item_id", "last_item_id", "effect", "created_at")
COUNTERS = ("last_sequence", "last_bank_id", "last_item_id", "last_hash_id")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class WriteTransaction:
    """One serialized write: allocate ids, append change-log and audit rows; flushed by `finish()`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.now = utcnow()
        query = sa.select(*(store_counters.c[name] for name in COUNTERS)).where(store_counters.c.id == 1)
        try:
            row = conn.execute(query.with_for_update()).one_or_none()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            if "store_counters" not in str(exc):
                raise
            raise SchemaOutOfDateError("the store has no schema yet; run hashsvc.store.upgrade(url)") from None
        if row is None:
            raise SchemaOutOfDateError("the store_counters row is missing; the schema was not created by upgrade()")
        self._counters: dict[str, int] = dict(row._mapping)
        self._changes: list[tuple[Any, ...]] = []
        self._audit: list[dict[str, Any]] = []

    def allocate(self, counter: str, count: int = 1) -> int:
        """Reserve `count` consecutive ids from `counter`; return the first."""
        first = self._counters[counter] + 1
        self._counters[counter] += count
        return first

    def change(
        self, kind: str, bank_id: int, item_id: int | None, effect: str, *, last_item_id: int | None = None
    ) -> int:
        """Append a change-log row; `item_id..last_item_id` names a run of items added together."""
        sequence = self.allocate("last_sequence")
        last = item_id if last_item_id is None else last_item_id
        self._changes.append((sequence, kind, bank_id, item_id, last, effect, self.now))
        return sequence

    def audit(
        self,
        actor: Actor,
        action: str,
        *,
        bank: str | None = None,
        item_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self._audit.append(
            {
                "at": self.now,
                "actor": actor.name,
                "action": action,
                "bank": bank,
                "item_id": item_id,
                "remote_addr": actor.remote_addr,
                "details": details or {},
            }
        )

    def finish(self) -> None:
        if self._changes:
            insert_rows(self.conn, changes, CHANGE_COLUMNS, self._changes)
        if self._audit:
            self.conn.execute(sa.insert(audit_log), self._audit)
        self.conn.execute(sa.update(store_counters).where(store_counters.c.id == 1).values(**self._counters))


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the store's write lock from its start; commits when the block ends, rolls back on
    any exception. On SQLite it begins IMMEDIATE (store/engine.py): a transaction that read first and wrote later
    would hold a read snapshot that a concurrent commit makes stale, and SQLite refuses to turn such a snapshot
    into a write ("database is locked") instead of waiting for the lock. For writes that make no change-log row;
    those that do go through `write_transaction`."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def write_transaction(engine: Engine) -> Iterator[WriteTransaction]:
    """Run a serialized write; commits when the block ends, rolls back on any exception."""
    with write_connection(engine) as conn:
        tx = WriteTransaction(conn)
        yield tx
        tx.finish()


@contextmanager
def read_snapshot(engine: Engine, *, lookups: bool = False) -> Iterator[Connection]:
    """A read transaction in which every statement sees the same committed state.

    `lookups=True` declares that every query inside is an index lookup (by id, by sequence range, by a short id
    list). On PostgreSQL that turns off sequential scans for the transaction: right after a bulk import the new
    rows have no statistics yet (autovacuum analyzes them a minute or so later), and the planner then chose a
    full scan of item_hashes for a 500-id IN list, 0.5 s per tail page; replicas tailing during an import would
    fall ever further behind.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            if lookups and conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            yield conn
