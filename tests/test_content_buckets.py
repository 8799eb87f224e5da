"""Events by content_id: the index leads with a bucket of event ids, so that new entries stay together, and a
lookup asks every bucket, newest first, a run of buckets per statement."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from hashsvc.store import Store, aftermatch, upgrade
from hashsvc.store.aftermatch import EventFilter, NewEvent, list_events, record
from hashsvc.store.transactions import utcnow


def upload(content_id: str) -> NewEvent:
    matches = [{"bank": "known", "item_id": 1, "action": "block"}]
    return NewEvent("match", utcnow(), content_id, content_id=content_id, decision="block", matches=matches)


def pages(store: Store, content_id: str, size: int) -> list[list[int]]:
    """Every page of the events of one content_id, following before_id."""
    found, before = [], None
    while True:
        page = list_events(store.engine, EventFilter(content_id=content_id, before_id=before), size)
        if page:
            found.append([e["id"] for e in page])
        if len(page) < size:
            return found
        before = page[-1]["id"]


def test_a_content_ids_events_come_newest_first_across_buckets_and_pages(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aftermatch, "CONTENT_BUCKET", 4)  # 60 events: 16 buckets
    monkeypatch.setattr(aftermatch, "BUCKETS_PER_QUERY", 3)  # several statements per page
    ids = record(store.engine, [upload("post-a" if n % 7 == 0 else f"other-{n}") for n in range(60)], None).ids
    wanted = sorted((event_id for n, event_id in enumerate(ids) if n % 7 == 0), reverse=True)

    assert pages(store, "post-a", 3) == [wanted[:3], wanted[3:6], wanted[6:]]
    assert pages(store, "post-a", 100) == [wanted]
    assert pages(store, "nobody", 5) == []
    with store.engine.connect() as conn:
        buckets = conn.execute(sa.select(aftermatch.events.c.content_bucket).order_by(aftermatch.events.c.id))
        assert list(buckets.scalars()) == [event_id // 4 for event_id in ids]


def test_other_filters_still_apply_to_a_content_id_lookup(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aftermatch, "CONTENT_BUCKET", 2)
    record(store.engine, [upload("post-a"), upload("post-b")], None)
    later = NewEvent("match", utcnow(), "post-a", content_id="post-a", decision="review")
    record(store.engine, [later, upload("post-a")], None)

    found = list_events(store.engine, EventFilter(content_id="post-a", decision="review"), 10)
    assert [(e["content_id"], e["decision"]) for e in found] == [("post-a", "review")]


def test_a_lookup_by_content_id_reads_the_bucketed_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    with Store(url) as store:
        record(store.engine, [upload(f"c{n % 300}") for n in range(3000)], None)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        statements: list[tuple[str, object]] = []

        def seen(conn: object, cursor: object, statement: str, parameters: object, *rest: object) -> None:
            if "content_bucket IN" in statement:
                statements.append((statement, parameters))

        sa.event.listen(store.engine, "before_cursor_execute", seen)
        try:
            assert len(list_events(store.engine, EventFilter(content_id="c7"), 50)) == 10
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", seen)
        assert statements, "no bucketed lookup ran"
        with store.engine.connect() as conn:
            plan = " / ".join(
                row[-1] for s, p in statements for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + s, p)
            )
    assert "ix_events_content_bucket_content_id" in plan, plan


def test_events_stored_before_the_buckets_are_found_by_content_id_after_the_upgrade(
    fresh_url: Callable[[str], str],
) -> None:
    url = fresh_url("upgraded")
    upgrade(url, "0008")
    with Store(url) as store, store.engine.begin() as conn:
        for event_id in (5, 20_000, 40_000):  # three buckets
            conn.execute(
                sa.text(
                    "INSERT INTO events (id, at, type, content_id, decision, metadata, hashes, matches, details)"
                    " VALUES (:id, :at, 'match', 'old-post', 'block', '{}', '{}', '[]', '{}')"
                ),
                {"id": event_id, "at": utcnow().replace(tzinfo=None)},
            )
    upgrade(url)
    with Store(url) as store:
        found = list_events(store.engine, EventFilter(content_id="old-post"), 10)
    assert [e["id"] for e in found] == [40_000, 20_000, 5]
