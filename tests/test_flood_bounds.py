"""The flood guard's count bounds (hashsvc.store.aftermatch.CountBounds), on SQLite and PostgreSQL.

A replica's check counts over the window only the items whose bound (last exact count plus every row written
since, by any replica) crossed the rule. That must never change a decision: the same events and the same checks
quarantine exactly the same items, in the same order, as checks that count every item.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from hashsvc.store import Store, upgrade
from hashsvc.store.aftermatch import (
    _ROWS_SINCE,
    CountBounds,
    FloodRule,
    NewEvent,
    guard,
    guarded_items,
    record,
    set_quarantine,
)
from hashsvc.store.schema import event_items
from hashsvc.store.transactions import utcnow

RULE = FloodRule(max_contents=6, window_s=3600)


def blocks(content_key: str, *item_ids: int) -> NewEvent:
    """A `block` match event of one upload on these items."""
    matches = [{"bank": "known", "item_id": item_id, "action": "block"} for item_id in item_ids]
    return NewEvent("match", utcnow(), content_key, decision="block", matches=matches, webhook_type="block")


def distinct_contents(store: Store, item_id: int) -> int:
    query = sa.select(sa.func.count(sa.distinct(event_items.c.content_key))).where(event_items.c.item_id == item_id)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def rows_since(store: Store, item_id: int, event_id: int) -> int:
    query = sa.select(sa.func.count()).where(event_items.c.item_id == item_id, event_items.c.event_id > event_id)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.fixture
def twin_stores(fresh_url: Callable[[str], str]) -> Iterator[tuple[Store, Store]]:
    """Two empty stores that will see the same events: one checked with bounds, one with exact counts."""
    urls = [fresh_url("bounded"), fresh_url("exact")]
    for url in urls:
        upgrade(url)
    with Store(urls[0]) as bounded, Store(urls[1]) as exact:
        yield bounded, exact


def test_rows_another_replica_wrote_count_toward_this_replicas_bounds(store: Store) -> None:
    here, there = CountBounds(), CountBounds()
    record(store.engine, [blocks(f"here-{n}", 1) for n in range(3)], None)
    assert guard(store.engine, {1: "known"}, RULE, here) == []  # 3 contents: under the rule, bound 3
    assert here.bounds[1] == 3
    # The other replica writes 4 more contents for the item and checks nothing: its own bound knows nothing.
    record(store.engine, [blocks(f"there-{n}", 1) for n in range(4)], None)
    # This replica's next check, prompted by one more content of its own, counts the other's rows too: 8 > 6.
    record(store.engine, [blocks("here-last", 1)], None)
    assert guard(store.engine, {1: "known"}, RULE, here) == [1]
    assert guard(store.engine, {1: "known"}, RULE, there) == []  # quarantined once, by whoever counted first


def test_an_item_far_under_the_rule_is_not_counted_again(store: Store) -> None:
    """Its bound stays under the rule: the check reads the rows written since, not the whole window."""
    bounds = CountBounds()
    record(store.engine, [blocks("a", 1), blocks("b", 1)], None)
    guard(store.engine, {1: "known"}, RULE, bounds)
    record(store.engine, [blocks("a", 1)], None)  # the same content again: the bound grows by a row anyway
    guard(store.engine, {1: "known"}, RULE, bounds)
    assert bounds.bounds[1] == 3 >= distinct_contents(store, 1) == 2
    for _ in range(3):  # 3 + 3 rows = 6: still not over
        record(store.engine, [blocks("a", 1)], None)
    guard(store.engine, {1: "known"}, RULE, bounds)
    assert bounds.bounds[1] == 6
    record(store.engine, [blocks("a", 1)], None)  # 7 > 6: counted exactly, and the bound drops to the count
    assert guard(store.engine, {1: "known"}, RULE, bounds) == []
    assert bounds.bounds[1] == distinct_contents(store, 1) == 2


def test_bounded_checks_quarantine_exactly_what_exact_checks_do(twin_stores: tuple[Store, Store]) -> None:
    bounded, exact = twin_stores
    replicas = [CountBounds(), CountBounds()]
    pending: list[dict[int, str]] = [{}, {}]  # per replica, the items blocked on since its last check
    rng = random.Random(13)
    quarantined: list[int] = []
    for step in range(80):
        replica = rng.randrange(2)
        batch = [
            blocks(f"c{rng.randrange(25)}", *rng.sample(range(1, 9), rng.randint(1, 3)))
            for _ in range(rng.randint(1, 6))
        ]
        record(bounded.engine, batch, None)
        record(exact.engine, batch, None)
        pending[replica].update(guarded_items(batch))
        if rng.random() < 0.5:
            found = guard(bounded.engine, pending[replica], RULE, replicas[replica])
            assert found == guard(exact.engine, pending[replica], RULE), f"step {step}"
            quarantined += found
            pending[replica] = {}
            # The invariant the skipping rests on: no bound plus the rows written since under its item's count.
            known = replicas[replica]
            for item_id, bound in known.bounds.items():
                later = rows_since(bounded, item_id, known.upto)
                assert bound + later >= distinct_contents(bounded, item_id), f"step {step}, item {item_id}"
        if quarantined and rng.random() < 0.15:  # an analyst re-arms one: its count restarts from now
            item_id = quarantined.pop(rng.randrange(len(quarantined)))
            for store in twin_stores:
                set_quarantine(store.engine, item_id, "rearmed", "analyst")
    assert quarantined, "the sequence never crossed the rule: it tests nothing"


def test_a_check_reads_only_the_rows_written_since_the_last_one(tmp_path: Path) -> None:
    """SQLite: the check's grouped count goes through the event_id index (the rows since its last check), not
    through the (item_id, at) index in item order, which is every row kept: a check would then cost more the
    longer events are retained."""
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade(url)
    with Store(url) as store:
        record(store.engine, [blocks(f"c{n}", n % 50 + 1) for n in range(2000)], None)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")  # the planner's view of a store that has been running a while
            packed = str(_ROWS_SINCE.packed.compile(dialect=conn.dialect))  # what runs on SQLite
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + packed, (1990,)).all()
    steps = " / ".join(row[-1] for row in plan)
    assert "USING INDEX ix_event_items_event_id (event_id>?)" in steps, steps
    assert "ix_event_items_item_id_at" not in steps, steps
