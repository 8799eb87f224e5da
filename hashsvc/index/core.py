"""HammingIndex: exact Hamming range search with immediate adds/removes and snapshots (design: package doc)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hashsvc.index import snapshot
from hashsvc.index.segments import (
    DeltaBuffer,
    Layout,
    MainSegment,
    clear_bits,
    default_tables,
    to_bytes,
    to_words,
    to_words_in_place,
)

Strategy = Literal["auto", "tables", "scan"]

# Delta rows are scanned exhaustively by every query (32 bytes each at 256 bits); 64k rows cost ~0.2-0.35 ms.
DEFAULT_MERGE_THRESHOLD = 65536
# A scan touches rows sequentially; a probe touches bucket entries at random. Prefer tables only when they
# touch this many times fewer entries than a scan would rows.
_SCAN_ADVANTAGE = 4.0
# From this many query rows in one call, range_search runs the batched kernels (queries grouped by the table
# region they probe, delta rows scanned once per block for all queries); below it, one probe per query.
BATCH_MIN_QUERIES = 8


@dataclass(frozen=True)
class _DeltaView:
    """What a reader needs of a delta buffer: arrays and the count published with them."""

    buffer: DeltaBuffer
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray]  # ids, words, alive
    count: int

    @classmethod
    def of(cls, buffer: DeltaBuffer) -> _DeltaView:
        return cls(buffer, (buffer.ids, buffer.words, buffer.alive), buffer.count)


@dataclass(frozen=True)
class _State:
    """One immutable reference a reader takes per search (only liveness bits change underneath)."""

    main: MainSegment | None
    merging: _DeltaView | None  # a frozen delta being folded into a new main in the background
    delta: _DeltaView


class HammingIndex:
    """Exact Hamming range index over fixed-size binary codes (64, 128, 256... bits).

    * `add(ids, codes)`: codes are uint8 (n, bits / 8), packed MSB-first. An id that is already stored gets
      its code replaced; within one call the last occurrence of an id wins.
    * `remove(ids)`: those ids stop matching. Unknown ids are ignored.
    * `range_search(codes, max_distance)`: for each query row, (ids int64, distances int32) of every stored
      code within max_distance (inclusive), in no particular order. Exact for every radius 0..bits: radii
      the tables cannot cover cheaply fall back to a compiled exact scan.

    Concurrency guarantee: any number of threads may search while one or more threads write (writers are
    serialized by an internal lock). A search sees every add and remove that returned before it started; an
    add or remove that runs concurrently with a search may or may not be visible to it. Codes stored before
    a search starts and not removed during it are always found. While an id's code is being replaced, a
    concurrent search may return the id for the old code, the new code, or both (never neither).

    Merges of the delta into the main segment run in a background thread by default (`background_merge`);
    `compact()` merges synchronously and waits for a running merge. `sequence` holds the change-log number
    recorded by the last `save`/`load` (None before either).
    """

    def __init__(
        self,
        bits: int = 256,
        *,
        tables: int | None = None,
        merge_threshold: int = DEFAULT_MERGE_THRESHOLD,
        background_merge: bool = True,
        build_threads: int = 1,
    ) -> None:
        if bits <= 0 or bits % 64:
            raise ValueError(f"bits must be a positive multiple of 64, got {bits}")
        self.bits = bits
        self.layout = Layout.even(bits, tables if tables is not None else default_tables(bits))
        self.merge_threshold = max(1, merge_threshold)
        self.background_merge = background_merge
        # Threads that build the tables of a bulk add into an empty index (the kernels release the GIL); one by
        # default, since a serving process shares its cores with request threads.
        self.build_threads = max(1, build_threads)
        self.sequence: int | None = None
        self._words_per_code = bits // 64
        self._lock = threading.RLock()
        self._state = _State(None, None, _DeltaView.of(DeltaBuffer(self._words_per_code)))
        self._size = 0
        self._merge_thread: threading.Thread | None = None
        self._merge_error: Exception | None = None
        self._removed_during_merge: list[np.ndarray] = []

    # ----------------------------------------------------------------------------------------- reading

    def __len__(self) -> int:
        return self._size

    def range_search(
        self, codes: np.ndarray, max_distance: int, *, strategy: Strategy = "auto"
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every stored code within `max_distance` of each query row (see class doc).

        `strategy` is for tests and benchmarks: "tables" forces the multi-index probe, "scan" the exact
        scan of the main segment; both are exact, "auto" picks the cheaper.
        """
        if isinstance(max_distance, bool) or not isinstance(max_distance, int | np.integer):
            raise TypeError("max_distance must be an int")
        radius = int(max_distance)
        if radius < 0:
            raise ValueError("max_distance must be >= 0")
        queries = self._check_codes(codes)
        state = self._state  # one reference per call: a consistent view for the whole batch
        use_tables = state.main is not None and self._use_tables(state.main, radius, strategy)
        deltas = [d for d in (state.merging, state.delta) if d is not None and d.count]
        if queries.shape[0] >= BATCH_MIN_QUERIES:
            return self._range_search_batch(state, queries, radius, use_tables, deltas)
        results: list[tuple[np.ndarray, np.ndarray]] = []
        for q in queries:
            parts = []
            if state.main is not None and len(state.main):
                parts.append(state.main.search(q, radius, use_tables))
            for d in deltas:
                parts.append(d.buffer.search(d.arrays, d.count, q, radius))
            if len(parts) == 1:
                results.append(parts[0])
            elif parts:
                results.append((np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])))
            else:
                results.append((np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32)))
        return results

    @staticmethod
    def _range_search_batch(
        state: _State, queries: np.ndarray, radius: int, use_tables: bool, deltas: list[_DeltaView]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """range_search for many queries: one batched kernel call per segment, then per-query concatenation."""
        parts: list[list[tuple[np.ndarray, np.ndarray]]] = []
        if state.main is not None and len(state.main):
            parts.append(state.main.search_batch(queries, radius, use_tables))
        for d in deltas:
            parts.append(d.buffer.search_batch(d.arrays, d.count, queries, radius))
        if not parts:
            empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32))
            return [empty for _ in range(queries.shape[0])]
        if len(parts) == 1:
            return parts[0]
        results = []
        for per_query in zip(*parts, strict=True):
            found = [p for p in per_query if p[0].shape[0]]
            if len(found) > 1:
                results.append((np.concatenate([p[0] for p in found]), np.concatenate([p[1] for p in found])))
            else:
                results.append(found[0] if found else per_query[0])
        return results

    def _use_tables(self, main: MainSegment, radius: int, strategy: Strategy) -> bool:
        if strategy == "tables":
            return True
        if strategy == "scan":
            return False
        if strategy != "auto":
            raise ValueError(f"unknown strategy {strategy!r}")
        rows = len(main) * self._words_per_code
        return main.probe_work(self.layout.flips_for(radius)) * _SCAN_ADVANTAGE < rows

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        arr = np.asarray(codes)
        if arr.dtype != np.uint8:
            raise TypeError(f"codes must be uint8, got {arr.dtype}")
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != self.bits // 8:
            raise ValueError(f"codes must have shape (n, {self.bits // 8}), got {np.asarray(codes).shape}")
        return to_words(arr, self.bits)

    # ----------------------------------------------------------------------------------------- writing

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Store codes under ids, replacing the code of any id already stored (see class doc)."""
        words = self._check_codes(codes)
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.shape[0] != words.shape[0] or ids.dtype.kind not in "iu":
            raise ValueError("ids must be an integer array with one id per code row")
        ids = ids.astype(np.int64)
        if ids.shape[0] == 0:
            return
        if ids.shape[0] > 1:  # last occurrence of each id wins
            rev_unique, rev_first = np.unique(ids[::-1], return_index=True)
            if rev_unique.shape[0] != ids.shape[0]:
                keep = np.sort(ids.shape[0] - 1 - rev_first)
                ids, words = ids[keep], words[keep]
        with self._lock:
            self._raise_merge_error()
            state = self._state
            empty = state.main is None and state.merging is None and state.delta.count == 0
            if empty and ids.shape[0] >= self.merge_threshold:  # bulk load: straight into an indexed main segment
                main = MainSegment.build(self.layout, ids, words, self.build_threads)
                self._state = _State(main, None, state.delta)
                self._size = ids.shape[0]
                return
            # new rows first, then tombstone old versions: a concurrent reader never misses a replaced id
            stale_main, stale_merging = self._locate(state, ids)
            delta = state.delta.buffer
            replaced_in_delta = [i for i in ids.tolist() if i in delta.row_of]
            old_rows = [delta.row_of[i] for i in replaced_in_delta]
            delta.append(ids, words)
            self._state = _State(state.main, state.merging, _DeltaView.of(delta))
            if old_rows:
                clear_bits(delta.alive, np.array(old_rows, dtype=np.int64))
            replaced = len(old_rows) + self._tombstone(state, stale_main, stale_merging, ids)
            self._size += ids.shape[0] - replaced
            self._maybe_merge()

    def remove(self, ids: np.ndarray) -> None:
        """Make these ids stop matching; ids not stored are ignored."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).ravel())
        if ids.shape[0] == 0:
            return
        with self._lock:
            self._raise_merge_error()
            state = self._state
            stale_main, stale_merging = self._locate(state, ids)
            removed = state.delta.buffer.remove(ids) + self._tombstone(state, stale_main, stale_merging, ids)
            self._size -= removed

    def _locate(self, state: _State, ids: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Live rows of these ids in the main segment and in the delta being merged."""
        main_rows = np.empty(0, dtype=np.int64)
        if state.main is not None and ids.shape[0] <= 8:
            # a few scalar binary searches beat the vectorized path's fixed cost for the typical tiny add
            main_ids, alive, n, found = state.main.ids, state.main.alive, len(state.main), []
            for i in ids.tolist():
                r = int(main_ids.searchsorted(i))
                if r < n and main_ids[r] == i and (alive[r >> 3] >> (r & 7)) & 1:
                    found.append(r)
            main_rows = np.array(found, dtype=np.int64)
        elif state.main is not None:
            rows = state.main.rows_of(ids)
            alive = (state.main.alive[rows >> 3] >> (rows & 7)) & 1
            main_rows = rows[alive == 1]
        merging_rows: list[int] = []
        if state.merging is not None:
            row_of = state.merging.buffer.row_of
            merging_rows = [row_of[i] for i in ids.tolist() if i in row_of]
        return main_rows, merging_rows

    def _tombstone(self, state: _State, main_rows: np.ndarray, merging_rows: list[int], ids: np.ndarray) -> int:
        if main_rows.shape[0]:
            clear_bits(state.main.alive, main_rows)  # type: ignore[union-attr]
        if merging_rows:
            merging = state.merging.buffer  # type: ignore[union-attr]
            for i in merging.ids[np.array(merging_rows)].tolist():
                merging.row_of.pop(i, None)
            clear_bits(merging.alive, np.array(merging_rows, dtype=np.int64))
        if state.merging is not None:
            # the main being built may already hold these rows: re-applied when it is installed
            self._removed_during_merge.append(ids.copy())
        return int(main_rows.shape[0]) + len(merging_rows)

    # ----------------------------------------------------------------------------------------- merging

    def _maybe_merge(self) -> None:
        state = self._state
        if state.delta.count < self.merge_threshold:
            return
        if self._merge_thread is not None and self._merge_thread.is_alive():
            # Keep appending while a merge runs (waiting here, under the writer lock, would deadlock the merge's
            # install); the next write after it finishes starts the next merge.
            return
        self._start_merge(background=self.background_merge and state.main is not None)

    def _start_merge(self, background: bool) -> None:
        state = self._state
        frozen = state.delta
        self._state = _State(state.main, frozen, _DeltaView.of(DeltaBuffer(self._words_per_code)))
        self._removed_during_merge = []
        if background:
            self._merge_thread = threading.Thread(target=self._merge_worker, name="hashsvc-index-merge", daemon=True)
            self._merge_thread.start()
        else:
            self._install(self._build_merged())

    def _merge_worker(self) -> None:
        try:
            main = self._build_merged()
            with self._lock:
                self._install(main)
        except Exception as e:  # noqa: BLE001 - any failure is re-raised on the next write, not lost in a thread
            self._merge_error = e

    def _build_merged(self) -> MainSegment:
        state = self._state
        assert state.merging is not None
        parts_ids, parts_words = [], []
        if state.main is not None:
            ids, words = state.main.live()
            parts_ids.append(ids)
            parts_words.append(words)
        ids, words = state.merging.buffer.live(state.merging.count)
        parts_ids.append(ids)
        parts_words.append(words)
        all_ids = np.concatenate(parts_ids)
        all_words = np.concatenate(parts_words)
        return MainSegment.build(self.layout, all_ids, all_words)

    def _install(self, main: MainSegment) -> None:
        """Publish a freshly built main (writer lock held), replaying removals it has not seen."""
        if self._removed_during_merge:
            removed = np.unique(np.concatenate(self._removed_during_merge))
            rows = main.rows_of(removed)
            # ids re-added after their removal live in the new delta, not in `main`: clearing is right
            clear_bits(main.alive, rows)
        self._removed_during_merge = []
        self._state = _State(main, None, self._state.delta)

    def _raise_merge_error(self) -> None:
        if self._merge_error is not None:
            error, self._merge_error = self._merge_error, None
            raise RuntimeError("background index merge failed") from error

    def wait_for_merge(self) -> None:
        """Block until a running background merge has been installed."""
        thread = self._merge_thread
        if thread is not None:
            thread.join()
        with self._lock:
            self._raise_merge_error()

    def compact(self) -> None:
        """Fold every delta row into the main segment now (searches then probe tables only)."""
        while True:
            self.wait_for_merge()
            with self._lock:
                if self._merge_thread is not None and self._merge_thread.is_alive():
                    continue  # a write started another merge meanwhile: two merges must never overlap
                if self._state.delta.count:
                    self._start_merge(background=False)
                return

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays (codes, ids, tables, liveness; delta buffers at capacity)."""
        state = self._state
        total = state.main.nbytes if state.main is not None else 0
        for d in (state.merging, state.delta):
            if d is not None:
                total += sum(a.nbytes for a in d.arrays)
        return total

    # ----------------------------------------------------------------------------------------- snapshots

    def _live(self) -> tuple[np.ndarray, np.ndarray]:
        state = self._state
        parts = []
        if state.main is not None:
            parts.append(state.main.live())
        for d in (state.merging, state.delta):
            if d is not None:
                parts.append(d.buffer.live(d.count))
        if not parts:
            return np.empty(0, dtype=np.int64), np.empty((0, self._words_per_code), dtype=np.uint64)
        ids = np.concatenate([p[0] for p in parts])
        words = np.concatenate([p[1] for p in parts])
        order = np.argsort(ids, kind="stable")
        return ids[order], words[order]

    def save(self, path: str | os.PathLike[str], *, sequence: int) -> None:
        """Write an atomic, checksummed snapshot covering the change log up to `sequence` (an int64)."""
        if isinstance(sequence, bool) or not isinstance(sequence, int | np.integer):
            raise TypeError("sequence must be an int")
        if not -(2**63) <= int(sequence) < 2**63:
            raise ValueError("sequence must fit in a signed 64-bit integer")
        with self._lock:  # a consistent cut: no write lands half-way through the copy
            ids, words = self._live()
        snapshot.write(
            path,
            snapshot.Snapshot(self.bits, self.layout.tables, int(sequence), ids, to_bytes(words)),
        )
        self.sequence = int(sequence)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, threads: int | None = None, **options: object) -> HammingIndex:
        """Read a snapshot written by `save` (raises SnapshotError if it is not intact).

        Tables are rebuilt on `threads` threads (default: every core, at most one per table): a load usually
        happens at process start, before requests compete for the cores. Other options go to the constructor.
        """
        snap = snapshot.read(path)
        try:
            index = cls(snap.bits, tables=snap.tables, **options)  # type: ignore[arg-type]
        except ValueError as e:
            raise snapshot.SnapshotError(f"index snapshot {path} has an invalid layout: {e}") from e
        if snap.ids.shape[0]:
            index._state = _State(
                MainSegment.build(
                    index.layout, snap.ids, to_words_in_place(snap.codes, snap.bits), threads or os.cpu_count() or 1
                ),
                None,
                index._state.delta,
            )
        index._size = int(snap.ids.shape[0])
        index.sequence = snap.sequence
        return index
