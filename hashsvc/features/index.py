"""FeatureIndex: every stored item's ORB descriptors in one FAISS binary index, and the lookup that turns a
query's descriptors into per-item correspondences for geometric verification.

Approximate by design (DESIGN.md, "Local features"): a descriptor whose true nearest neighbour the index misses
only costs one correspondence, and what decides a match is the geometric check on the correspondences found,
never a descriptor distance. The index kind is chosen from the measurements in docs/local-features.md
(scripts/bench_feature_index.py):

* "ivf" (default): `IndexBinaryIVF`, inverted lists; a search reads nprobe of about 2 sqrt(n) lists. Exact (a
  flat index) until IVF_MIN_ROWS descriptors, then trained on what it holds and retrained at every doubling
  (`_retrain_if_grown`, in the change-log tail's thread). The cheapest search and 40 B per descriptor;
* "hnsw": `IndexBinaryHNSW`, graph search; measured slower to build and to search than IVF here, and about 4x
  the memory (its graph);
* "flat": `IndexBinaryFlat`, exact and exhaustive, cost linear in the stored descriptors.

Removal: none of these delete in place cheaply, so removed items are tombstones filtered at lookup (dead rows,
owner -1, in snapshots) until `compacted()` rebuilds without them (hashsvc.features.live decides when).

Memory per stored item: MAX_STORED x (32 B descriptor + 8 B position + 8 B row owner), plus 8 B per descriptor
for IVF's ids and direct map, or HNSW's graph (about 2 x M x 4 B per descriptor): measured in
docs/local-features.md.

Thread safety: FAISS indexes are not safe to search while adding, so one lock serializes adds, removals and the
FAISS search itself; the grouping and verification after the search run outside it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hashsvc.features import native
from hashsvc.features.orb import DESCRIPTOR_BYTES, Features
from hashsvc.features.verify import MAX_DESCRIPTOR_DISTANCE, MIN_PAIRS, one_to_one

IndexKind = Literal["ivf", "hnsw", "flat"]
HNSW_NEIGHBOURS = 16  # M: graph degree (memory ~ 2M x 4 B per descriptor at the base level)
HNSW_EF_SEARCH = 32  # beam width of a search: recall of the nearest neighbour vs time, see the benchmark
HNSW_EF_CONSTRUCTION = 40
IVF_MIN_ROWS = 65_536  # below this many descriptors (~256 items) an "ivf" index is exact (flat)
# Inverted lists searched per query descriptor. 2 (round 4): half the list scan of 4 (lookup of 160 descriptors
# at 10,000 items 5.2-5.6 -> 2.9-3.8 ms under load); through that index 2 of 456 tune-half crop edits were lost,
# no random-offset crop (held-out: 2 of 85 random-offset crops; docs/local-features.md, round 4). Half the lists
# (sqrt(n)) at 2 probes was no cheaper and no better.
IVF_NPROBE = 2
NEIGHBOURS = 4  # stored descriptors looked at per query descriptor (different items may hold the nearest few)
MAX_CANDIDATES = 4  # items verified per query, those with the most correspondences first


@dataclass(frozen=True)
class Candidate:
    """One stored item with enough correspondences to be worth a geometric check."""

    item_id: int
    query_xy: np.ndarray  # (n, 2) float32
    stored_xy: np.ndarray  # (n, 2) float32


class _Growing:
    """A numpy array that grows by doubling; `view()` is the filled part (stable for earlier rows)."""

    def __init__(self, shape: tuple[int, ...], dtype: type | np.dtype) -> None:
        self._data = np.empty((1024, *shape), dtype=dtype)
        self.size = 0

    def extend(self, rows: np.ndarray) -> None:
        need = self.size + len(rows)
        if need > len(self._data):
            grown = np.empty((max(need, 2 * len(self._data)), *self._data.shape[1:]), dtype=self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : need] = rows
        self.size = need

    def view(self) -> np.ndarray:
        return self._data[: self.size]


def new_faiss_index(kind: IndexKind) -> Any:
    """An empty index of that kind ("ivf" starts flat: it is trained once there is enough to train on)."""
    faiss = native.faiss()
    bits = DESCRIPTOR_BYTES * 8
    if kind in ("flat", "ivf"):
        return faiss.IndexBinaryFlat(bits)
    if kind == "hnsw":
        index = faiss.IndexBinaryHNSW(bits, HNSW_NEIGHBOURS)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        return index
    raise ValueError(f"unknown feature index kind {kind!r}; expected 'ivf', 'hnsw' or 'flat'")


def trained_ivf(descriptors: np.ndarray) -> Any:
    """An IVF index over these descriptors: about 2 sqrt(n) lists (a power of two), trained on a fixed-seed
    sample of 64 per list, with a direct map so that rows can be read back (snapshots, compaction)."""
    faiss = native.faiss()
    rows = len(descriptors)
    nlist = 1 << min(16, max(8, round(np.log2(2 * np.sqrt(rows)))))
    sample = np.random.default_rng(0).choice(rows, size=min(rows, 64 * nlist), replace=False)
    quantizer = faiss.IndexBinaryFlat(DESCRIPTOR_BYTES * 8)
    index = faiss.IndexBinaryIVF(quantizer, DESCRIPTOR_BYTES * 8, nlist)
    index.own_fields = True
    quantizer.this.disown()  # the IVF index frees its quantizer
    index.train(np.ascontiguousarray(descriptors[np.sort(sample)]))
    index.nprobe = IVF_NPROBE
    index.make_direct_map()
    index.add(np.ascontiguousarray(descriptors))
    return index


class FeatureIndex:
    """Items' descriptors in one FAISS binary index; see the module docstring."""

    def __init__(self, kind: IndexKind = "ivf") -> None:
        self.kind = kind
        self._index = new_faiss_index(kind)
        self._owner = _Growing((), np.int64)  # row -> item id
        self._positions = _Growing((2,), np.float32)  # row -> keypoint position
        self._spans: dict[int, tuple[int, int]] = {}  # item id -> (first row, rows)
        self._removed: set[int] = set()
        self._orphaned = 0  # rows owned by -1: earlier copies of re-added items, removed rows of a snapshot
        self._lock = threading.Lock()
        self._trained_rows = 0  # an "ivf" index is retrained when it has doubled since
        self.sequence = 0  # the change-log sequence this index reflects (kept by the live index)

    # ------------------------------------------------------------------------------------------- state

    def __len__(self) -> int:
        """Items that can match."""
        return len(self._spans) - len(self._removed)

    @property
    def rows(self) -> int:
        """Descriptors held, tombstoned ones included."""
        return self._owner.size

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._spans and item_id not in self._removed

    def owners(self) -> list[int]:
        """The owners that can match (item ids, or the keys a caller chose)."""
        with self._lock:
            return [i for i in self._spans if i not in self._removed]

    # ---------------------------------------------------------------------------------------- changes

    def add(self, item_id: int, features: Features) -> None:
        """Make an item's features matchable. Adding an item again (a replayed 'activate') is a no-op unless
        it was removed, in which case it is added afresh."""
        if not len(features):
            return
        with self._lock:
            if item_id in self._spans and item_id not in self._removed:
                return
            if item_id in self._removed:
                # Its old rows die for good: left owned by the item, a lookup would find every descriptor twice
                # (doubling correspondences) and a snapshot would give the item a span over both copies.
                old_start, old_count = self._spans[item_id]
                self._owner.view()[old_start : old_start + old_count] = -1
                self._orphaned += old_count
            self._removed.discard(item_id)
            start = self._owner.size
            self._index.add(np.ascontiguousarray(features.descriptors, dtype=np.uint8))
            self._owner.extend(np.full(len(features), item_id, dtype=np.int64))
            self._positions.extend(np.asarray(features.positions, dtype=np.float32))
            self._spans[item_id] = (start, len(features))
        self._retrain_if_grown()

    def _retrain_if_grown(self) -> None:
        """For "ivf": (re)build the inverted lists once the index holds IVF_MIN_ROWS descriptors and whenever it
        has doubled since, so that lists stay about 2 sqrt(n) and a search reads about nprobe / nlist of the rows.

        Runs in the caller's thread (the change-log tail, never a request) without the lock: searches keep using
        the old index until the new one replaces it. Only the tail thread adds, so no row can be added meanwhile.
        """
        rows = self._index.ntotal
        if self.kind != "ivf" or rows < max(IVF_MIN_ROWS, 2 * self._trained_rows):
            return
        rebuilt = trained_ivf(self._index.reconstruct_n(0, rows).reshape(rows, DESCRIPTOR_BYTES))
        with self._lock:
            self._index, self._trained_rows = rebuilt, rows

    def remove(self, item_ids: list[int] | set[int]) -> None:
        with self._lock:
            self._removed.update(i for i in item_ids if i in self._spans)

    # ----------------------------------------------------------------------------------------- lookup

    def candidates(
        self, query: Features, *, neighbours: int = NEIGHBOURS, max_items: int = MAX_CANDIDATES,
        min_pairs: int = MIN_PAIRS,
    ) -> list[Candidate]:
        """The stored items with at least `min_pairs` correspondences to the query, most first (at most
        `max_items`); the service passes the policy's inlier minimum, since fewer pairs can never verify.
        A correspondence is a query descriptor and its nearest stored descriptor of that item
        among the query's `neighbours` nearest overall, within MAX_DESCRIPTOR_DISTANCE bits; each stored
        keypoint keeps only its closest query keypoint (`verify.one_to_one`), as in `verify.correspondences`."""
        if not len(query):
            return []
        with self._lock:
            if self._owner.size == 0:
                return []
            distances, rows = self._index.search(np.ascontiguousarray(query.descriptors), neighbours)
            owner, positions = self._owner.view(), self._positions.view()
            removed = np.fromiter(self._removed, dtype=np.int64, count=len(self._removed))
        q = np.repeat(np.arange(len(query)), rows.shape[1])
        rows, distances = rows.ravel(), distances.ravel()
        keep = (rows >= 0) & (distances <= MAX_DESCRIPTOR_DISTANCE)
        q, rows, distances = q[keep], rows[keep], distances[keep]
        items = owner[rows]
        live = items >= 0  # rows of items removed before the last snapshot
        q, rows, distances, items = q[live], rows[live], distances[live], items[live]
        if len(removed):
            alive = ~np.isin(items, removed)
            q, rows, distances, items = q[alive], rows[alive], distances[alive], items[alive]
        if not len(q):
            return []
        # Per (query descriptor, item): only the closest stored descriptor of that item.
        order = np.lexsort((distances, q, items))
        q, rows, distances, items = q[order], rows[order], distances[order], items[order]
        first = np.ones(len(q), dtype=bool)
        first[1:] = (items[1:] != items[:-1]) | (q[1:] != q[:-1])
        q, rows, distances, items = q[first], rows[first], distances[first], items[first]
        # Per item: the correspondences, one query keypoint per stored keypoint.
        bounds = np.flatnonzero(np.r_[True, items[1:] != items[:-1], True])
        enough = np.flatnonzero(np.diff(bounds) >= min_pairs)  # most items hold a pair or two: skip them unlooped
        found: list[Candidate] = []
        for start, end in zip(bounds[enough].tolist(), bounds[enough + 1].tolist(), strict=True):
            kept = one_to_one(q[start:end], rows[start:end], distances[start:end])
            if len(kept) < min_pairs:
                continue
            found.append(Candidate(
                int(items[start]),
                np.ascontiguousarray(query.positions[q[start:end][kept]]),
                np.ascontiguousarray(positions[rows[start:end][kept]]),
            ))
        found.sort(key=lambda c: (-len(c.query_xy), c.item_id))
        return found[:max_items]

    # -------------------------------------------------------------------------------------- snapshots

    def live_items(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(item ids, rows per item, positions, descriptors) of the items that can match, in item order."""
        with self._lock:
            items = sorted(i for i in self._spans if i not in self._removed)
            spans = [self._spans[i] for i in items]
            counts = np.array([n for _, n in spans], dtype=np.int32)
            rows = np.concatenate([np.arange(s, s + n) for s, n in spans]) if spans else np.zeros(0, np.int64)
            positions = self._positions.view()[rows]
            descriptors = self._index.reconstruct_n(0, self._index.ntotal).reshape(-1, DESCRIPTOR_BYTES)[rows]
        return np.array(items, dtype=np.int64), counts, positions, np.ascontiguousarray(descriptors)

    @property
    def dead_rows(self) -> int:
        """Rows of removed items still in the FAISS index (HNSW cannot delete; `compacted` drops them)."""
        return self._orphaned + sum(self._spans[i][1] for i in self._removed)

    def compacted(self) -> FeatureIndex:
        """A new index of the live items only (a rebuild: call from the background, not a request)."""
        fresh = FeatureIndex.from_arrays(self.kind, *self.live_items())
        fresh.sequence = self.sequence
        return fresh

    def raw(self) -> tuple[Any, np.ndarray, np.ndarray, dict[int, tuple[int, int]]]:
        """(FAISS index, row owners with removed items' rows as -1, positions, live spans): what a snapshot holds."""
        with self._lock:
            owner = self._owner.view().copy()
            for item in self._removed:
                start, count = self._spans[item]
                owner[start : start + count] = -1
            spans = {i: span for i, span in self._spans.items() if i not in self._removed}
            return self._index, owner, self._positions.view().copy(), spans

    @classmethod
    def from_raw(
        cls, kind: IndexKind, index: Any, owner: np.ndarray, positions: np.ndarray
    ) -> FeatureIndex:
        """The inverse of `raw` (rows owned by -1 are dead and never returned)."""
        made = cls(kind)
        made._index = index
        made._trained_rows = index.ntotal if kind == "ivf" and index.ntotal >= IVF_MIN_ROWS else 0
        made._owner.extend(owner.astype(np.int64))
        made._positions.extend(positions.astype(np.float32))
        live = np.flatnonzero(owner >= 0)
        made._orphaned = len(owner) - len(live)
        if len(live):
            ids, first, counts = np.unique(owner[live], return_index=True, return_counts=True)
            made._spans = {int(i): (int(live[f]), int(n)) for i, f, n in zip(ids, first, counts, strict=True)}
        return made

    @classmethod
    def from_arrays(
        cls, kind: IndexKind, items: np.ndarray, counts: np.ndarray, positions: np.ndarray, descriptors: np.ndarray
    ) -> FeatureIndex:
        """An index holding exactly these items (the inverse of `live_items`): one FAISS add for all rows."""
        index = cls(kind)
        if len(items):
            index._index.add(np.ascontiguousarray(descriptors, dtype=np.uint8))
            index._owner.extend(np.repeat(items.astype(np.int64), counts))
            index._positions.extend(positions.astype(np.float32))
            starts = np.r_[0, np.cumsum(counts)[:-1]]
            index._spans = {int(i): (int(s), int(n)) for i, s, n in zip(items, starts, counts, strict=True)}
            index._retrain_if_grown()
        return index
