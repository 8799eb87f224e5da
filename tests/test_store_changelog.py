"""The change log: what each change records, and the guarantee an index relies on.

Guarantee: an index built from `active_hashes()` at sequence S and then fed `changes_since(S)` in order ends with
exactly the store's matchable hashes, and a reader that has seen sequence S has seen every change committed before
it, even with concurrent writers.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashsvc.store import NewItem, Store

pytest_plugins = ["store_fixtures"]


def pdq(n: int) -> str:
    return f"{n:064x}"


def test_every_change_gets_the_next_sequence_number_and_says_what_it_does_to_matching(store: Store) -> None:
    store.create_bank("b", category="csam", actor="a")
    item = store.add_item("b", {"pdq": pdq(1), "md5": f"{1:032x}"}, actor="a")
    store.update_item(item.id, note="n", actor="a")
    store.disable_item(item.id, reason="r", actor="a")
    store.enable_item(item.id, actor="a")
    store.update_bank("b", description="d", actor="a")
    store.disable_bank("b", actor="a")
    store.enable_item(item.id, actor="a")  # already active: no change, no row
    store.enable_bank("b", actor="a")
    store.delete_item(item.id, actor="a")
    store.delete_bank("b", actor="a")
    changes = store.changes_since(0)
    assert [c.sequence for c in changes] == list(range(1, 11)) and store.max_sequence() == 10
    assert [(c.kind, c.effect, c.item_id is not None) for c in changes] == [
        ("bank_create", "none", False),
        ("item_add", "activate", True),
        ("item_update", "none", True),
        ("item_disable", "deactivate", True),
        ("item_enable", "activate", True),
        ("bank_update", "none", False),
        ("bank_disable", "deactivate", False),
        ("bank_enable", "activate", False),
        ("item_delete", "deactivate", True),
        ("bank_delete", "deactivate", False),
    ]
    # Hash rows ride along with activations only; the item is deleted by now, so they join to nothing.
    assert all(c.hashes == () for c in changes)


def test_an_activation_carries_the_hash_rows_an_index_needs(store: Store) -> None:
    bank = store.create_bank("b", category="csam", actor="a")
    item = store.add_item("b", {"pdq": pdq(7), "md5": f"{7:032x}"}, actor="a")
    [change] = store.changes_since(1)
    assert change.item_id == item.id and change.bank_id == bank.id
    assert [(h.hash_id, h.item_id, h.bank_id, h.algorithm, h.code) for h in change.hashes] == [
        (h.id, item.id, bank.id, h.algorithm, h.code) for h in item.hashes
    ]
    [only_pdq] = store.changes_since(1, algorithms=["pdq"])
    assert [h.algorithm for h in only_pdq.hashes] == ["pdq"]


def test_items_added_to_a_disabled_bank_wait_for_it_to_be_enabled(store: Store) -> None:
    store.create_bank("b", category="csam", actor="a", enabled=False)
    item = store.add_item("b", {"pdq": pdq(1)}, actor="a")
    assert store.changes_since(1)[0].effect == "none"
    store.disable_item(item.id, reason="r", actor="a")
    store.enable_item(item.id, actor="a")
    assert store.changes_since(3)[0].effect == "none"  # re-enabling inside a disabled bank matches nothing yet
    store.enable_bank("b", actor="a")
    [enable] = store.changes_since(4)
    assert (enable.kind, enable.effect, [h.item_id for h in enable.hashes]) == ("bank_enable", "activate", [item.id])


def test_the_tail_is_paged_by_sequence(store: Store) -> None:
    store.create_bank("b", category="csam", actor="a")
    for i in range(10):
        store.add_item("b", {"pdq": pdq(i)}, actor="a")
    assert [c.sequence for c in store.changes_since(0, limit=4)] == [1, 2, 3, 4]
    assert [c.sequence for c in store.changes_since(8, limit=4)] == [9, 10, 11]
    assert store.changes_since(11) == []


def test_a_bulk_add_is_one_change_for_a_run_of_items_carrying_all_their_hashes(store: Store) -> None:
    bank = store.create_bank("b", category="csam", actor="a")
    ids = store.add_items("b", [NewItem({"pdq": pdq(i), "md5": f"{i:032x}"}) for i in range(1000)], actor="a")
    [change] = store.changes_since(1)
    assert (change.kind, change.effect, change.bank_id) == ("item_add", "activate", bank.id)
    assert list(change.item_ids) == ids
    assert len(change.hashes) == 2000 and {h.item_id for h in change.hashes} == set(ids)
    assert len(store.changes_since(1, algorithms=["md5"])[0].hashes) == 1000


def test_active_hashes_stream_in_numpy_chunks_consistent_with_a_sequence(store: Store) -> None:
    store.create_bank("b", category="csam", actor="a")
    store.create_bank("off", category="csam", actor="a")
    ids = store.add_items("b", [NewItem({"pdq": pdq(i), "md5": f"{i:032x}"}) for i in range(100)], actor="a")
    store.add_item("off", {"pdq": pdq(1000)}, actor="a")
    store.disable_bank("off", actor="a")
    store.disable_item(ids[0], reason="r", actor="a")
    with store.active_hashes("pdq", chunk_size=32) as snapshot:
        assert snapshot.sequence == store.max_sequence()
        chunks = list(snapshot)
    assert [len(c) for c in chunks] == [32, 32, 32, 3]
    codes = np.concatenate([c.codes for c in chunks])
    assert codes.dtype == np.uint8 and codes.shape == (99, 32)
    assert all(
        c.ids.dtype == np.int64 and c.item_ids.dtype == np.int64 and c.bank_ids.dtype == np.int64 for c in chunks
    )
    item_ids = np.concatenate([c.item_ids for c in chunks])
    assert sorted(item_ids.tolist()) == ids[1:]
    assert {bytes(row) for row in codes} == {bytes.fromhex(pdq(i)) for i in range(1, 100)}


def test_the_active_hashes_snapshot_ignores_writes_made_while_streaming(store: Store) -> None:
    store.create_bank("b", category="csam", actor="a")
    store.add_items("b", [NewItem({"pdq": pdq(i)}) for i in range(50)], actor="a")
    with store.active_hashes("pdq", chunk_size=10) as snapshot:
        chunks = iter(snapshot)
        first = next(chunks)
        store.add_items("b", [NewItem({"pdq": pdq(i)}) for i in range(50, 60)], actor="a")  # a concurrent writer
        rest = list(chunks)
    assert snapshot.sequence == 2 and len(first) + sum(len(c) for c in rest) == 50


def test_replaying_the_whole_log_or_a_snapshot_plus_the_tail_gives_the_store_state(
    store: Store, replayed_index: Any, store_state: Callable[[Store], set[Any]]
) -> None:
    store.create_bank("a", category="csam", actor="x")
    store.create_bank("b", category="terror", actor="x")
    a_ids = store.add_items("a", [NewItem({"pdq": pdq(i), "md5": f"{i:032x}"}) for i in range(20)], actor="x")
    midway = replayed_index.from_snapshot(store)
    store.disable_bank("a", actor="x")
    store.disable_item(a_ids[1], reason="r", actor="x")  # disabled while its bank is off
    store.add_items("b", [NewItem({"pdq": pdq(100 + i)}) for i in range(5)], actor="x")
    store.enable_bank("a", actor="x")
    store.delete_item(a_ids[2], actor="x")
    store.enable_item(a_ids[1], actor="x")
    store.disable_item(a_ids[3], reason="r", actor="x")
    from_zero = replayed_index()
    from_zero.catch_up(store, page=3)
    midway.catch_up(store, page=3)
    expected = store_state(store)
    assert len(expected) == 2 * 20 - 2 * 2 + 5  # item 2 deleted, item 3 disabled
    assert set(from_zero.rows.values()) == expected
    assert set(midway.rows.values()) == expected


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "disable", "enable", "delete", "bank_off", "bank_on", "snapshot"]),
        st.integers(0, 2),
        st.integers(0, 10**6),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_any_history_replays_to_the_store_state(
    store: Store, replayed_index: Any, store_state: Callable[[Store], set[Any]], operations: list[tuple[str, int, int]]
) -> None:
    """Property: whatever happened, and wherever the index's snapshot was taken, the replay matches the store."""
    prefix = f"h{store.max_sequence()}"  # examples share one store; every example uses its own banks
    banks = [f"{prefix}-{i}" for i in range(3)]
    for name in banks:
        store.create_bank(name, category="other", actor="t")
    items: list[int] = []
    snapshots = [replayed_index.from_snapshot(store)]
    for op, bank, n in operations:
        target = items[n % len(items)] if items else None
        if op == "add":
            items.append(store.add_item(banks[bank], {"pdq": pdq(n), "md5": f"{n:032x}"}, actor="t").id)
        elif op == "disable" and target is not None:
            store.disable_item(target, reason="r", actor="t")
        elif op == "enable" and target is not None:
            store.enable_item(target, actor="t")
        elif op == "delete" and target is not None:
            store.delete_item(target, actor="t")
            items.remove(target)
        elif op == "bank_off":
            store.disable_bank(banks[bank], actor="t")
        elif op == "bank_on":
            store.enable_bank(banks[bank], actor="t")
        elif op == "snapshot":
            snapshots.append(replayed_index.from_snapshot(store))
    expected = {row for row in store_state(store) if store.get_bank_by_id(row[2]).name.startswith(prefix + "-")}
    for index in snapshots:
        index.catch_up(store, page=4)
        assert {row for row in index.rows.values() if row[2] in {store.get_bank(b).id for b in banks}} == expected


@pytest.mark.slow
def test_concurrent_writers_never_let_a_tailing_reader_skip_a_change(
    store: Store, replayed_index: Any, store_state: Callable[[Store], set[Any]]
) -> None:
    """Writers add, disable, enable and delete items and toggle banks in parallel while a reader tails the log.

    The reader must see every sequence number exactly once, in order, and end with the store's exact state.
    """
    banks = [store.create_bank(f"c{i}", category="other", actor="t").name for i in range(3)]
    reader = replayed_index.from_snapshot(store)
    stop = threading.Event()

    def write(worker: int) -> None:
        rng = random.Random(worker)
        mine: list[int] = []  # each writer touches only its own items, so no conflict is expected
        for step in range(60):
            bank = rng.choice(banks)
            roll = rng.random()
            if roll < 0.4 or not mine:
                batch = [NewItem({"pdq": pdq(worker * 10**6 + step * 10 + k)}) for k in range(rng.randint(1, 4))]
                mine.extend(store.add_items(bank, batch, actor=f"w{worker}"))
            elif roll < 0.6:
                store.disable_item(rng.choice(mine), reason="r", actor=f"w{worker}")
            elif roll < 0.75:
                store.enable_item(rng.choice(mine), actor=f"w{worker}")
            elif roll < 0.85:
                store.delete_item(mine.pop(rng.randrange(len(mine))), actor=f"w{worker}")
            else:
                store.update_bank(bank, enabled=rng.random() < 0.6, actor=f"w{worker}")

    def tail() -> None:
        while not stop.is_set():
            if not reader.catch_up(store, page=7):
                time.sleep(0.002)

    with ThreadPoolExecutor(max_workers=5) as pool:
        tailer = pool.submit(tail)
        writers = [pool.submit(write, worker) for worker in range(4)]
        try:
            for future in writers:
                future.result()  # re-raises a writer's exception here
        finally:
            stop.set()
        tailer.result()
    reader.catch_up(store)
    assert reader.seen == list(range(4, store.max_sequence() + 1))  # 1-3 were the banks, before the snapshot
    assert set(reader.rows.values()) == store_state(store)
    assert len(reader.rows) > 0
