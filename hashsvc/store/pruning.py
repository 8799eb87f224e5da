"""Deleting what retention let go of, a chunk at a time.

A prune runs every minute while the service takes traffic. It must read only the rows it deletes (a condition no
index serves turns every prune into a scan of the whole table, which grows for the retention period), and it
must not hold the store's write lock for long: on SQLite one transaction deleting a backlog (after a restart, or
when retention is shortened) would keep the event writer out for its whole duration, and once the writer's
buffer is full, matching waits for it. So each chunk of PRUNE_CHUNK rows is a transaction of its own, holding the
write lock from its start (`write_connection`: a chunk reads the ids it deletes).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from hashsvc.store.transactions import write_connection

# Rows per transaction. With 100k events past retention in a store of 1M (and as many webhook deliveries), the
# longest a concurrent write waited for a chunk was 0.23-0.33 s (`bench_after_match.py prune`, docs/workflow.md).
PRUNE_CHUNK = 5_000


def delete_in_chunks(engine: sa.Engine, table: sa.Table, *where: Any) -> int:
    """Delete the rows of `table` (keyed by `id`) that match `where`, PRUNE_CHUNK rows per transaction; return
    how many. `where` must be served by an index, or each chunk scans the table."""
    chunk = PRUNE_CHUNK
    pick = sa.select(table.c.id).where(*where).limit(chunk).scalar_subquery()
    statement = sa.delete(table).where(table.c.id.in_(pick))
    total = 0
    while True:
        with write_connection(engine) as conn:
            done = conn.execute(statement).rowcount
        total += done
        if done < chunk:
            return total
