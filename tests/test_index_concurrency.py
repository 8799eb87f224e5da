"""Searches running while another thread adds, replaces, removes and merges stay consistent.

The guarantee under test (HammingIndex docstring): a search finds every code that was stored before it
started and not removed while it ran, and never reports a code whose removal finished before it started.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from hashsvc.index import HammingIndex

BITS = 256


def test_readers_see_every_code_stored_before_their_search_started() -> None:
    rng = np.random.default_rng(0)
    # a small merge threshold makes background merges (and their installs) happen under the readers
    index = HammingIndex(BITS, merge_threshold=300)
    stable = rng.integers(0, 256, size=(2000, BITS // 8), dtype=np.uint8)  # never touched by the writer
    index.add(np.arange(2000), stable)

    committed: dict[int, np.ndarray] = {}  # ids the writer has finished adding (and not started removing)
    removed: dict[int, np.ndarray] = {}  # ids whose removal has returned, with their codes
    guard = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        wrng = np.random.default_rng(1)
        next_id = 10_000
        while not stop.is_set():
            batch = int(wrng.integers(1, 40))
            ids = np.arange(next_id, next_id + batch)
            next_id += batch
            codes = wrng.integers(0, 256, size=(batch, BITS // 8), dtype=np.uint8)
            index.add(ids, codes)
            with guard:
                committed.update(zip(ids.tolist(), codes, strict=True))
            with guard:
                victims = {i: committed.pop(i) for i in list(committed)[: int(wrng.integers(0, 20))]}
            index.remove(np.array(list(victims), dtype=np.int64))
            with guard:
                removed.update(victims)

    def reader(seed: int) -> None:  # an exception here fails the test (unhandled thread exception warning)
        rrng = np.random.default_rng(seed)
        while not stop.is_set():
            with guard:
                present = dict(list(committed.items())[-50:])
                gone = dict(list(removed.items())[-50:])
            ids = np.array(list(present) + rrng.integers(0, 2000, size=20).tolist(), dtype=np.int64)
            codes = np.stack(list(present.values()) + [stable[i] for i in ids[len(present) :]])
            if gone:
                ids = np.concatenate([ids, np.array(list(gone), dtype=np.int64)])
                codes = np.concatenate([codes, np.stack(list(gone.values()))])
            results = index.range_search(codes, 0)
            with guard:  # ids the writer has not begun to remove by now were present throughout the search
                still = {i for i in present if i in committed}
            for want, (found, dist) in zip(ids.tolist(), results, strict=True):
                if want in gone:
                    if want in found.tolist():
                        errors.append(f"id {want} removed before the search still matched")
                elif want not in found.tolist() and (want in still or want < 2000):
                    errors.append(f"id {want} stored before the search was not found")
                if np.any(dist != 0):
                    errors.append("distance of an exact match is not 0")

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(s,)) for s in (2, 3)]
    for t in threads:
        t.start()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join()
    index.wait_for_merge()
    assert errors == []
    assert len(index) == 2000 + len(committed)
    assert len(committed) > 300, "the writer should have passed several merges"
