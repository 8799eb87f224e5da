"""The feature index of one serving process, kept in step with the store's change log like the hash indexes.

`LiveIndex` (hashsvc.service.live_index) owns one `LiveFeatures` and calls it at the same three points as its
hash indexes: `load` at start-up (snapshot, else the store), `apply` for every change of the tail, `save` when it
writes snapshots. An item's features arrive with its 'activate' change (they are written in the item's own
transaction), so a new image item is crop-matchable on every replica within the poll interval. Removal follows
'deactivate' of an item; a disabled or deleted bank is filtered at match time by the store (`feature_owners`),
as for hashes.

Video items' keyframes (hashsvc.features.video) live in a second index, `video`, with one row owner per keyframe
(`video.keyframe_key`); they share the store table (algorithm "orb-video"), the change-log path and the
snapshot sequence, so both indexes always reflect the same changes.

`reachable` says whether an image upload could get a feature match at all (some active image item with features
in an enabled bank whose stage is on, by the store); the service extracts an upload's features only then, so banks
with the stage switched off cost their uploads nothing. It is re-read from the store at load, at every change that
can flip it (a bank-level change, an item change that adds or removes image features) and when this process
switches a bank (`refresh_reachable`), so another replica follows a bank switch within its change-log poll
interval. A query video's keyframes are extracted whenever `video` holds any (the video stage's own check).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hashsvc.features import codec, snapshot, verify_pairs
from hashsvc.features import video as video_features
from hashsvc.features.index import FeatureIndex, IndexKind
from hashsvc.index.snapshot import SnapshotError
from hashsvc.store import Change, Store
from hashsvc.store import features as feature_rows

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "features.fidx"
VIDEO_SNAPSHOT_NAME = "video-features.fidx"
COMPACT_DEAD_SHARE = 0.25  # rebuild without removed items once they hold this share of the rows...
COMPACT_MIN_DEAD_ROWS = 50_000  # ...and at least this many rows (small indexes just carry them)


class LiveFeatures:
    def __init__(self, store: Store, snapshot_dir: Path | None, kind: IndexKind = "ivf") -> None:
        self.store = store
        self.snapshot_dir = snapshot_dir
        self.kind = kind
        self.index = FeatureIndex(kind)
        self.video = FeatureIndex(kind)  # video items' keyframes, owners video_features.keyframe_key
        self.reachable = False

    def refresh_reachable(self) -> None:
        """Re-read from the store whether any bank the stage may match holds image items with features."""
        self.reachable = feature_rows.stage_reachable(self.store.engine)

    @property
    def sequence(self) -> int:
        return min(self.index.sequence, self.video.sequence)

    def load(self) -> None:
        _warm_up()
        loaded = self._load_snapshots()
        if loaded is not None:
            self.index, self.video = loaded
            self.refresh_reachable()
            return
        index, video = FeatureIndex(self.kind), FeatureIndex(self.kind)
        sequence, chunks = feature_rows.active_features(self.store.engine)
        for chunk in chunks:
            for row in chunk:
                _add(index, video, row)
        index.sequence = video.sequence = sequence
        self.index, self.video = index, video
        self.refresh_reachable()

    def _load_snapshots(self) -> tuple[FeatureIndex, FeatureIndex] | None:
        """Both snapshots, when both are readable, of this kind and of the same sequence; else None (rebuild)."""
        paths = self._path(), self._video_path()
        if paths[0] is None or paths[1] is None or not (paths[0].exists() and paths[1].exists()):
            return None
        try:
            index, video = snapshot.load(paths[0]), snapshot.load(paths[1])
        except SnapshotError as exc:  # a damaged snapshot only costs a rebuild from the store
            log.warning("ignoring the feature snapshots: %s", exc)
            return None
        if index.kind != self.kind or video.kind != self.kind or index.sequence != video.sequence:
            log.info("ignoring the feature snapshots: kinds %s/%s (%s wanted), sequences %d/%d",
                     index.kind, video.kind, self.kind, index.sequence, video.sequence)
            return None
        log.info("loaded feature snapshots: %d image items, %d video keyframes at sequence %d",
                 len(index), len(video), index.sequence)
        return index, video

    def apply(self, change: Change) -> None:
        """Apply one change of the tail (callers hold the live index's apply lock)."""
        if change.sequence <= self.sequence:
            return
        touched = change.item_id is None  # a bank-level change: enabled, disabled, deleted, its stage switched
        if change.effect == "activate":
            for row in feature_rows.features_for_change(self.store.engine, change):
                _add(self.index, self.video, row)
                touched = touched or row.algorithm != video_features.ALGORITHM
        elif change.effect == "deactivate" and change.item_id is not None:
            last = change.last_item_id if change.last_item_id is not None else change.item_id
            removed = {i for i in range(change.item_id, last + 1) if i in self.index}
            self.index.remove(removed)
            self.video.remove(video_features.keys_in_range(self.video.owners(), change.item_id, last))
            touched = touched or bool(removed)
        if touched:
            self.refresh_reachable()
        self.index.sequence = self.video.sequence = change.sequence
        self.index, self.video = _compacted_if_due(self.index), _compacted_if_due(self.video)

    def save(self) -> None:
        path, video_path = self._path(), self._video_path()
        if path is not None and video_path is not None:
            snapshot.save(path, self.index, self.index.sequence)
            snapshot.save(video_path, self.video, self.video.sequence)

    def _path(self) -> Path | None:
        return None if self.snapshot_dir is None else self.snapshot_dir / SNAPSHOT_NAME

    def _video_path(self) -> Path | None:
        return None if self.snapshot_dir is None else self.snapshot_dir / VIDEO_SNAPSHOT_NAME


def _compacted_if_due(index: FeatureIndex) -> FeatureIndex:
    dead = index.dead_rows
    if dead >= COMPACT_MIN_DEAD_ROWS and dead >= COMPACT_DEAD_SHARE * index.rows:
        return index.compacted()
    return index


def _warm_up() -> None:
    """Import OpenCV and FAISS and run RANSAC once before the process reports ready (about 0.2 s on first use,
    which would otherwise land in the first upload's answer)."""
    grid = np.array([(x, y) for x in range(3) for y in range(3)], dtype=np.float32) * 10
    verify_pairs(grid, grid + 1)
    FeatureIndex("flat")


def _add(index: FeatureIndex, video: FeatureIndex, row: feature_rows.FeatureRow) -> None:
    """One stored row into the index its algorithm belongs to (an image's features, a video's keyframes)."""
    try:
        if row.algorithm == video_features.ALGORITHM:
            video_features.add_item(video, row.item_id, video_features.decode(row.data))
        else:
            index.add(row.item_id, codec.decode(row.data))
    except codec.FeatureCodecError as exc:  # one bad row must not stop a replica from loading
        log.warning("item %d: unreadable features skipped: %s", row.item_id, exc)
