"""Pruning: what retention let go of is deleted a chunk at a time, and found through an index, never by reading
a whole table (a prune runs every minute over up to 90 days of rows)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hashsvc.store import Store, pruning, upgrade
from hashsvc.store import webhooks as webhook_table
from hashsvc.store.aftermatch import OUTBOX_COLUMNS, NewEvent, prune, record
from hashsvc.store.bulk import insert_rows
from hashsvc.store.schema import event_items, events, reviews, webhook_attempts, webhook_outbox
from hashsvc.store.transactions import utcnow

PRUNED_TABLES = ("events", "event_items", "reviews", "webhook_outbox", "webhook_attempts")


def decided(decision: str, content_id: str, item_id: int, at: dt.datetime) -> NewEvent:
    action = "block" if decision == "block" else "review"
    matches = [{"bank": "known", "item_id": item_id, "action": action}]
    return NewEvent(
        "match",
        at,
        content_id,
        content_id=content_id,
        decision=decision,
        matches=matches,
        opens_review=decision == "review",
    )


def deliveries(store: Store, at: dt.datetime, statuses: list[str], first: int = 0) -> None:
    """Outbox rows with these statuses, created at `at`, and one delivery attempt each."""
    outbox = [(1, f"evt-{first + n}-wh-1", "block", {}, at, status, 1, at) for n, status in enumerate(statuses)]
    attempts = [(first + n, 1, at, 200, None, 1.0) for n in range(len(statuses))]
    with store.engine.begin() as conn:
        insert_rows(conn, webhook_outbox, OUTBOX_COLUMNS, outbox)
        insert_rows(
            conn, webhook_attempts, ("outbox_id", "webhook_id", "at", "status_code", "error", "duration_ms"), attempts
        )


def count(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_old_events_go_a_chunk_at_a_time_but_those_open_reviews_need_stay(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pruning, "PRUNE_CHUNK", 3)
    old, now = utcnow() - dt.timedelta(days=100), utcnow()
    record(store.engine, [decided("block", f"old-{n}", n, old) for n in range(10)], None)
    record(store.engine, [decided("review", "old-review", 99, old)], None)
    record(store.engine, [decided("block", "new", 1, now)], None)

    assert prune(store.engine, now - dt.timedelta(days=90)) == 10

    with store.engine.connect() as conn:
        kept = conn.execute(sa.select(events.c.content_id).order_by(events.c.id)).scalars().all()
        items = conn.execute(sa.select(event_items.c.content_key).order_by(event_items.c.event_id)).scalars().all()
    assert kept == ["old-review", "new"]
    assert items == ["old-review", "new"]  # the pruned events' item rows went with them


def test_resolved_reviews_and_settled_deliveries_go_pending_ones_stay(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pruning, "PRUNE_CHUNK", 2)
    old, now = utcnow() - dt.timedelta(days=100), utcnow()
    deliveries(store, old, ["delivered"] * 4 + ["failed", "pending"])
    deliveries(store, now, ["delivered"], first=100)
    record(store.engine, [decided("review", f"r{n}", n, old) for n in range(5)], None)
    with store.engine.begin() as conn:
        conn.execute(sa.update(reviews).where(reviews.c.id <= 3).values(status="resolved", resolution="dismissed"))
    before = now - dt.timedelta(days=90)

    webhook_table.prune(store.engine, before)
    pruned = prune(store.engine, before)

    with store.engine.connect() as conn:
        statuses = conn.execute(sa.select(webhook_outbox.c.status).order_by(webhook_outbox.c.id)).scalars().all()
    assert statuses == ["pending", "delivered"]
    assert count(store, webhook_attempts) == 1  # attempts are history: the old ones go, pending or not
    assert count(store, reviews) == 2  # the open ones
    assert pruned == 3  # the resolved reviews' events; the open ones' stay
    assert count(store, events) == 2


def test_pruning_reads_only_what_it_deletes(tmp_path: Path) -> None:
    """SQLite, after ANALYZE (a store that has run a while): no statement a prune runs scans a pruned table."""
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    with Store(url) as store:
        old, now = utcnow() - dt.timedelta(days=100), utcnow()
        record(store.engine, [decided("block", f"c{n}", n % 50, old if n < 100 else now) for n in range(2000)], None)
        record(store.engine, [decided("review", f"r{n}", n, old if n < 20 else now) for n in range(500)], None)
        with store.engine.begin() as conn:  # most of a queue's history is resolved
            conn.execute(sa.update(reviews).where(reviews.c.id % 10 != 0).values(status="resolved"))
        deliveries(store, old, ["delivered"] * 100)
        deliveries(store, now, ["delivered"] * 1900, first=100)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        ran = capture(
            store.engine,
            lambda: (
                prune(store.engine, now - dt.timedelta(days=90)),
                webhook_table.prune(store.engine, now - dt.timedelta(days=90)),
            ),
        )
        scans = []
        with store.engine.connect() as conn:
            for statement, parameters in ran:
                for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all():
                    step = row[-1]
                    if any(step.startswith(f"SCAN {table}") for table in PRUNED_TABLES):
                        scans.append(f"{step}: {statement}")
    assert [s for s, _ in ran if s.startswith("DELETE")], "nothing was pruned: the test tests nothing"
    assert scans == []


def capture(engine: sa.Engine, run: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The SELECT and DELETE statements (with their parameters) that `run` sends to the database."""
    ran: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "DELETE")):
            ran.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    return ran
