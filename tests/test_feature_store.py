"""The store side of local features, on SQLite and PostgreSQL: blobs come with their item's transaction and its
'activate' change, follow every status change through the change log, go with deletes, and the per-bank switch
decides which items' feature matches count."""

from __future__ import annotations

import numpy as np
import pytest

from hashsvc.errors import NotFoundError, ValidationError
from hashsvc.features import Features, codec
from hashsvc.features.live import LiveFeatures
from hashsvc.store import Actor, Store
from hashsvc.store import features as feature_rows

pytest_plugins = ["store_fixtures"]

ACTOR = Actor("analyst")


def _features(seed: int, count: int = 40) -> Features:
    rng = np.random.default_rng(seed)
    return Features(rng.uniform(0, 500, (count, 2)).astype(np.float32),
                    rng.integers(0, 256, (count, 32), dtype=np.uint8))


def _add(store: Store, bank: str, seed: int) -> int:
    found = _features(seed)
    item = store.add_item(bank, {"md5": f"{seed:032x}"}, actor=ACTOR, features=("orb", len(found), codec.encode(found)))
    return item.id


def test_features_ride_along_with_the_items_activate_change(store: Store) -> None:
    store.create_bank("b", category="csam", actor=ACTOR)
    first, second = _add(store, "b", 1), _add(store, "b", 2)
    store.add_item("b", {"md5": f"{99:032x}"}, actor=ACTOR)  # a hash-list item has no features
    adds = [c for c in store.changes_since(0) if c.kind == "item_add"]
    assert [[r.item_id for r in feature_rows.features_for_change(store.engine, c)] for c in adds] == [
        [first], [second], []
    ]
    sequence, chunks = feature_rows.active_features(store.engine)
    rows = [row for chunk in chunks for row in chunk]
    assert sequence == store.max_sequence() and [r.item_id for r in rows] == [first, second]
    assert np.array_equal(codec.decode(rows[0].data).descriptors, _features(1).descriptors)


def test_a_live_feature_index_follows_disable_enable_bank_switches_and_deletes(store: Store) -> None:
    store.create_bank("b", category="csam", actor=ACTOR)
    live = LiveFeatures(store, None, kind="flat")
    live.load()
    item = _add(store, "b", 3)

    def tail() -> None:
        for change in store.changes_since(live.sequence):
            live.apply(change)

    tail()
    assert item in live.index and live.sequence == store.max_sequence()
    store.disable_item(item, reason="false positive", actor=ACTOR)
    tail()
    assert item not in live.index
    store.enable_item(item, actor=ACTOR)
    tail()
    assert item in live.index
    store.disable_bank("b", actor=ACTOR)
    tail()
    assert feature_rows.feature_owners(store.engine, [item]) == {}  # filtered in the store, as for hashes
    store.enable_bank("b", actor=ACTOR)
    tail()
    assert item in live.index and item in feature_rows.feature_owners(store.engine, [item])
    rebuilt = LiveFeatures(store, None, kind="flat")
    rebuilt.load()
    assert item in rebuilt.index and rebuilt.sequence == live.sequence
    store.delete_item(item, actor=ACTOR)
    tail()
    assert item not in live.index
    assert feature_rows.active_features(store.engine)[0] == store.max_sequence()


def test_deleting_a_bank_deletes_its_features_and_its_switch(store: Store) -> None:
    store.create_bank("b", category="csam", actor=ACTOR)
    _add(store, "b", 4)
    feature_rows.set_bank_features(store.engine, "b", False, ACTOR)
    store.delete_bank("b", actor=ACTOR)
    with store.engine.connect() as conn:
        for table in (feature_rows.item_features, feature_rows.bank_feature_options):
            assert conn.execute(table.select()).all() == []


def test_the_bank_switch_decides_whose_feature_matches_count_and_is_audited(store: Store) -> None:
    store.create_bank("on", category="csam", actor=ACTOR)
    store.create_bank("off", category="terror", actor=ACTOR, action="review")
    kept, dropped = _add(store, "on", 5), _add(store, "off", 6)
    assert set(feature_rows.feature_owners(store.engine, [kept, dropped])) == {kept, dropped}  # default: on
    feature_rows.set_bank_features(store.engine, "off", False, ACTOR)
    owners = feature_rows.feature_owners(store.engine, [kept, dropped])
    assert set(owners) == {kept} and owners[kept].bank == "on" and owners[kept].action == "block"
    assert feature_rows.bank_features(store.engine) == {"on": True, "off": False}
    feature_rows.set_bank_features(store.engine, "off", True, ACTOR)
    assert set(feature_rows.feature_owners(store.engine, [kept, dropped])) == {kept, dropped}
    audit = [e for e in store.list_audit() if e.action == "bank.update"]
    assert [e.details for e in audit][:2] == [{"features": True}, {"features": False}]  # newest first
    with pytest.raises(NotFoundError):
        feature_rows.set_bank_features(store.engine, "nope", False, ACTOR)
    with pytest.raises(ValidationError):
        feature_rows.set_bank_features(store.engine, "on", "no", ACTOR)  # type: ignore[arg-type]
