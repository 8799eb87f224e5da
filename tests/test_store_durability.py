"""Durability: a bulk import killed with SIGKILL part-way leaves a consistent store.

The child imports 200k hashes (20 batches of 5,000 items, each with a PDQ and an MD5) and prints each batch number
after its transaction commits. The parent kills it without warning after a few acknowledgements, reopens the store
and checks: every acknowledged batch is there, whole; no batch is there in part; the change log replays to exactly
the tables' state; and the store still accepts writes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from hashsvc.store import Store
from hashsvc.store.schema import changes, item_hashes, items, store_counters

pytest_plugins = ["store_fixtures"]

BATCHES, BATCH_ITEMS = 20, 5_000
CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from hashsvc.store import NewItem, Store

    url, batches, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(0)
    with Store(url) as store:
        for batch in range(batches):
            codes = rng.integers(0, 256, size=(size, 48), dtype=np.uint8)
            new = [
                NewItem({"pdq": row[:32].tobytes(), "md5": row[32:].tobytes()}, external_ref=f"b{batch}-{i}")
                for i, row in enumerate(codes)
            ]
            store.add_items("import", new, actor="importer")
            print(batch, flush=True)  # only after the commit returned
    """
)


@pytest.mark.slow
def test_a_killed_bulk_import_leaves_whole_batches_and_a_matching_change_log(
    store: Store, store_url: str, replayed_index: Any, store_state: Callable[[Store], set[Any]]
) -> None:
    store.create_bank("import", category="csam", actor="t")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, store_url, str(BATCHES), str(BATCH_ITEMS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged = -1
    try:
        assert child.stdout is not None
        while acknowledged < 3:
            line = child.stdout.readline()
            assert line, f"the importer exited early with {child.wait()}"
            acknowledged = int(line)
        time.sleep(0.05)  # land the kill inside a later batch's transaction, most likely
        os.kill(child.pid, signal.SIGKILL)
        for line in child.stdout:  # acknowledgements already in the pipe still count
            acknowledged = int(line)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL, "the importer finished before it could be killed"

    with Store(store_url) as reopened:
        with reopened.engine.connect() as conn:
            refs = conn.execute(sa.select(items.c.external_ref)).scalars().all()
            per_batch = Counter(int(ref.split("-")[0][1:]) for ref in refs)
            hash_count = conn.execute(sa.select(sa.func.count()).select_from(item_hashes)).scalar_one()
            change_count = conn.execute(sa.select(sa.func.count()).select_from(changes)).scalar_one()
            counters = conn.execute(sa.select(store_counters)).one()
            if reopened.backend == "sqlite":
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
        present = sorted(per_batch)
        assert set(per_batch.values()) == {BATCH_ITEMS}, "a batch is there only in part"
        assert present == list(range(len(present))), "batches are committed in order"
        assert acknowledged + 1 <= len(present) <= acknowledged + 2  # the last one may have committed unacknowledged
        assert hash_count == 2 * len(refs)
        assert change_count == counters.last_sequence == 1 + len(present)  # the bank, then one row per batch
        assert counters.last_item_id == len(refs) and counters.last_hash_id == hash_count

        replay = replayed_index()
        replay.catch_up(reopened, page=5_000)
        assert set(replay.rows.values()) == store_state(reopened)

        item = reopened.add_item("import", {"pdq": "ab" * 32}, actor="t", external_ref="after-restart")
        assert reopened.find_item("import", "after-restart") == item
        assert reopened.max_sequence() == counters.last_sequence + 1
