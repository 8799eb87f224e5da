"""The flood guard's window is read from `event_items.at_ms` (whole milliseconds since 1970, UTC), through the index
on (item_id, at_ms): a third of the pages (item_id, at) took on SQLite, where a timestamp is 26 characters of text.
On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from hashsvc.store import Store, upgrade
from hashsvc.store.aftermatch import FloodRule, NewEvent, epoch_ms, guard, list_quarantines, record
from hashsvc.store.schema import event_items
from hashsvc.store.transactions import utcnow

ITEM = 7


def blocks(content_key: str, at: dt.datetime) -> NewEvent:
    matches = [{"bank": "known", "item_id": ITEM, "action": "block"}]
    return NewEvent("match", at, content_key, decision="block", matches=matches)


def test_milliseconds_since_1970_are_exact() -> None:
    assert epoch_ms(dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) == 0
    assert epoch_ms(dt.datetime(2026, 11, 30, 22, 0, 0, 123999, tzinfo=dt.UTC)) == 1_796_076_000_123
    assert epoch_ms(dt.datetime(2026, 11, 30, 23, 0, 0, 123999, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == (
        1_796_076_000_123
    )


def test_every_item_row_carries_its_events_time_in_milliseconds(store: Store) -> None:
    at = dt.datetime(2026, 11, 30, 22, 0, 0, 5_432, tzinfo=dt.UTC)
    record(store.engine, [blocks("post-1", at)], None)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(event_items.c.at_ms)).scalars().all() == [epoch_ms(at)]


def test_only_contents_inside_the_window_count(store: Store) -> None:
    rule = FloodRule(max_contents=2, window_s=60)
    now = utcnow()
    old = [blocks(f"old-{n}", now - dt.timedelta(seconds=61)) for n in range(5)]
    recent = [blocks("new-1", now - dt.timedelta(seconds=30)), blocks("new-2", now)]
    record(store.engine, old + recent, None)

    assert guard(store.engine, {ITEM: "known"}, rule) == []  # two in the window: at the limit, not over it

    record(store.engine, [blocks("new-3", utcnow())], None)
    assert guard(store.engine, {ITEM: "known"}, rule) == [ITEM]
    (held,) = list_quarantines(store.engine, "active")
    assert "matched 3 distinct contents" in held["reason"]


def test_the_flood_count_reads_the_millisecond_index_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    with Store(url) as store:
        now = utcnow()
        record(store.engine, [blocks(f"post-{n}", now) for n in range(500)], None)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        counts: list[tuple[str, object]] = []

        def seen(conn: object, cursor: object, statement: str, parameters: object, *rest: object) -> None:
            if "count(" in statement and "at_ms >=" in statement:
                counts.append((statement, parameters))

        sa.event.listen(store.engine, "before_cursor_execute", seen)
        try:
            guard(store.engine, {ITEM: "known"}, FloodRule(max_contents=1_000, window_s=60))
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", seen)
        assert counts, "no flood count ran"
        with store.engine.connect() as conn:
            plans = [
                " / ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
                for statement, parameters in counts
            ]
    for plan in plans:
        assert "COVERING INDEX ix_event_items_item_id_at_ms" in plan, plan


def test_items_recorded_before_the_upgrade_get_their_milliseconds(fresh_url: Callable[[str], str]) -> None:
    url = fresh_url("upgraded")
    upgrade(url, "0009")
    now = utcnow()
    times = [now - dt.timedelta(hours=2), now - dt.timedelta(seconds=10), now - dt.timedelta(seconds=5, microseconds=1)]
    with Store(url) as store, store.engine.begin() as conn:
        for n, at in enumerate(times, start=1):
            conn.execute(
                sa.text(
                    "INSERT INTO event_items (event_id, item_id, bank, content_key, at)"
                    " VALUES (:id, :item, 'known', :key, :at)"
                ),
                {
                    "id": n,
                    "item": ITEM,
                    "key": f"old-{n}",
                    "at": at if conn.dialect.name != "sqlite" else at.replace(tzinfo=None),
                },
            )
    upgrade(url)
    with Store(url) as store:
        with store.engine.connect() as conn:
            stored = conn.execute(sa.select(event_items.c.at_ms).order_by(event_items.c.event_id)).scalars().all()
        # SQLite keeps times to the millisecond, rounded; PostgreSQL's are truncated, as epoch_ms does
        assert [abs(ms - epoch_ms(at)) <= 1 for ms, at in zip(stored, times, strict=True)] == [True] * 3
        # the two recent ones count in a minute's window, with one new upload: three, over a limit of two
        record(store.engine, [blocks("new-1", utcnow())], None)
        assert guard(store.engine, {ITEM: "known"}, FloodRule(max_contents=2, window_s=60)) == [ITEM]
