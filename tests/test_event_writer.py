"""The event writer's fast paths, on SQLite and PostgreSQL: what it stores is what the slower paths stored.

Timestamps and JSON columns go through hashsvc.store.bulk's own converters (not SQLAlchemy's bind processors),
and a batch request's events enter the buffer in one call; none of that may change what is read back.
"""

from __future__ import annotations

import datetime as dt
import json
import threading

import sqlalchemy as sa

from hashsvc.service.events import EventRecorder
from hashsvc.store import Store
from hashsvc.store.aftermatch import EVENT_COLUMNS, NewEvent, Recorded, get_event, insert_events
from hashsvc.store.bulk import insert_rows
from hashsvc.store.schema import UtcDateTime, events

TIMES = [
    dt.datetime(2026, 11, 30, 7, 24, 16, 123456, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 30, 7, 24, 16, 0, tzinfo=dt.UTC),  # no microseconds: still six digits in SQLite
    dt.datetime(2026, 11, 30, 9, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),  # stored as 07:00 UTC
]


def event(at: dt.datetime, **fields: object) -> NewEvent:
    return NewEvent("match", at, "upload", decision="block", **fields)  # type: ignore[arg-type]


def test_timestamps_read_back_as_written_and_as_sqlalchemy_would_store_them(store: Store) -> None:
    ids = insert_events(store.engine, [event(at) for at in TIMES])
    assert [get_event(store.engine, i)["at"] for i in ids] == [at.astimezone(dt.UTC).isoformat() for at in TIMES]
    with store.engine.connect() as conn:
        # the window queries compare stored timestamps with bound ones: both must be in one format
        assert conn.execute(sa.select(sa.func.count()).where(events.c.at >= TIMES[0])).scalar_one() == 1
        if conn.dialect.name == "sqlite":
            stored = conn.exec_driver_sql("SELECT at FROM events ORDER BY id").scalars().all()
            processor = UtcDateTime()._cached_bind_processor(conn.dialect)
            assert stored == [processor(at) for at in TIMES]


def test_json_columns_read_back_as_json_would_have_written_them(store: Store) -> None:
    metadata = {"caption": "Zürich – ☃", "nested": {"score": 0.1, "big": 2**70, "flags": [True, None]}}
    matches = [{"bank": "known", "item_id": 7, "distance": 3, "action": "block"}]
    numbered = {1: "an integer key, which json turns into a string"}
    (event_id,) = insert_events(
        store.engine, [event(TIMES[0], metadata=metadata, matches=matches, details=numbered, hashes={})]
    )
    stored = get_event(store.engine, event_id)
    assert (stored["metadata"], stored["matches"]) == (metadata, matches)
    assert stored["details"] == json.loads(json.dumps(numbered)) and stored["hashes"] == {}


def test_a_batch_enters_the_buffer_in_order_and_never_beyond_its_capacity(store: Store) -> None:
    recorder = EventRecorder(store, flush_s=0.01, buffer=3, flood=None)
    written: list[list[str]] = []

    def listener(batch: list[NewEvent], recorded: Recorded) -> None:
        written.append([e.content_key for e in batch])

    recorder.listeners.append(listener)
    uploads = [NewEvent("match", TIMES[0], f"upload-{n}", decision="block") for n in range(10)]
    adding = threading.Thread(target=recorder.add_many, args=(uploads,))
    adding.start()
    adding.join(30)
    assert not adding.is_alive(), "add_many never got room in the buffer"
    recorder.close()
    assert [key for batch in written for key in batch] == [f"upload-{n}" for n in range(10)]
    assert max(len(batch) for batch in written) <= 3


def test_multirow_inserts_write_every_row_once_in_order_whatever_the_statement_size(store: Store) -> None:
    # 4,000 rows of 11 columns are 44,000 bound values: over SQLite's limit for one statement, so it must split
    rows = [(n, TIMES[0], "match", None, f"c{n}", 0, "block", {}, {}, [], {}) for n in range(1, 4001)]
    with store.engine.begin() as conn:
        insert_rows(conn, events, EVENT_COLUMNS, rows[:7], rows_per_statement=3)
        insert_rows(conn, events, EVENT_COLUMNS, rows[7:], rows_per_statement=10**6)
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(events.c.id, events.c.content_id).order_by(events.c.id)).all()
    assert [tuple(row) for row in stored] == [(n, f"c{n}") for n in range(1, 4001)]
