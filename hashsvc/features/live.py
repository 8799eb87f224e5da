"""The feature index of one serving process, kept in step with the store's change log like the hash indexes.

`LiveIndex` (hashsvc.service.live_index) owns one `LiveFeatures` and calls it at the same three points as its
hash indexes: `load` at start-up (snapshot, else the store), `apply` for every change of the tail, `save` when it
writes snapshots. An item's features arrive with its 'activate' change (they are written in the item's own
transaction), so a new image item is crop-matchable on every replica within the poll interval. Removal follows
'deactivate' of an item; a disabled or deleted bank is filtered at match time by the store (`feature_owners`),
as for hashes.

`reachable` says whether an upload could get a feature match at all (some active item with features in an
enabled bank whose stage is on, by the store); the service extracts an upload's features only then, so banks with
the stage switched off cost their uploads nothing. It is re-read from the store at load, at every change that can
flip it (a bank-level change, an item change that adds or removes features) and when this process switches a bank
(`refresh_reachable`), so another replica follows a bank switch within its change-log poll interval.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hashsvc.features import codec, snapshot, verify_pairs
from hashsvc.features.index import FeatureIndex, IndexKind
from hashsvc.index.snapshot import SnapshotError
from hashsvc.store import Change, Store
from hashsvc.store import features as feature_rows

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "features.fidx"
COMPACT_DEAD_SHARE = 0.25  # rebuild without removed items once they hold this share of the rows...
COMPACT_MIN_DEAD_ROWS = 50_000  # ...and at least this many rows (small indexes just carry them)


class LiveFeatures:
    def __init__(self, store: Store, snapshot_dir: Path | None, kind: IndexKind = "ivf") -> None:
        self.store = store
        self.snapshot_dir = snapshot_dir
        self.kind = kind
        self.index = FeatureIndex(kind)
        self.reachable = False

    def refresh_reachable(self) -> None:
        """Re-read from the store whether any bank the stage may match holds items with features."""
        self.reachable = feature_rows.stage_reachable(self.store.engine)

    @property
    def sequence(self) -> int:
        return self.index.sequence

    def load(self) -> None:
        _warm_up()
        path = self._path()
        if path is not None and path.exists():
            try:
                loaded = snapshot.load(path)
                if loaded.kind == self.kind:
                    self.index = loaded
                    self.refresh_reachable()
                    log.info("loaded feature snapshot: %d items at sequence %d", len(loaded), loaded.sequence)
                    return
                log.info("ignoring %s: a %s index, %s wanted", path, loaded.kind, self.kind)
            except SnapshotError as exc:  # a damaged snapshot only costs a rebuild from the store
                log.warning("ignoring %s: %s", path, exc)
        index = FeatureIndex(self.kind)
        sequence, chunks = feature_rows.active_features(self.store.engine)
        for chunk in chunks:
            for row in chunk:
                _add(index, row)
        index.sequence = sequence
        self.index = index
        self.refresh_reachable()

    def apply(self, change: Change) -> None:
        """Apply one change of the tail (callers hold the live index's apply lock)."""
        if change.sequence <= self.index.sequence:
            return
        touched = change.item_id is None  # a bank-level change: enabled, disabled, deleted, its stage switched
        if change.effect == "activate":
            for row in feature_rows.features_for_change(self.store.engine, change):
                _add(self.index, row)
                touched = True
        elif change.effect == "deactivate" and change.item_id is not None:
            last = change.last_item_id if change.last_item_id is not None else change.item_id
            removed = {i for i in range(change.item_id, last + 1) if i in self.index}
            self.index.remove(removed)
            touched = touched or bool(removed)
        if touched:
            self.refresh_reachable()
        self.index.sequence = change.sequence
        dead = self.index.dead_rows
        if dead >= COMPACT_MIN_DEAD_ROWS and dead >= COMPACT_DEAD_SHARE * self.index.rows:
            self.index = self.index.compacted()

    def save(self) -> None:
        path = self._path()
        if path is not None:
            snapshot.save(path, self.index, self.index.sequence)

    def _path(self) -> Path | None:
        return None if self.snapshot_dir is None else self.snapshot_dir / SNAPSHOT_NAME


def _warm_up() -> None:
    """Import OpenCV and FAISS and run RANSAC once before the process reports ready (about 0.2 s on first use,
    which would otherwise land in the first upload's answer)."""
    grid = np.array([(x, y) for x in range(3) for y in range(3)], dtype=np.float32) * 10
    verify_pairs(grid, grid + 1)
    FeatureIndex("flat")


def _add(index: FeatureIndex, row: feature_rows.FeatureRow) -> None:
    try:
        index.add(row.item_id, codec.decode(row.data))
    except codec.FeatureCodecError as exc:  # one bad row must not stop a replica from loading
        log.warning("item %d: unreadable features skipped: %s", row.item_id, exc)
