"""The in-memory indexes of one serving process, kept in step with the store's change log.

Start-up: per algorithm, load the newest snapshot from the data folder if there is one, else stream the
active hashes from the store; then replay the change log from each index's sequence. A background thread
keeps tailing the log every `poll_interval_s`, so a change made through any replica becomes matchable here
within about that interval. Nothing is ever rebuilt from scratch on the request path.

PDQ codes live in two indexes: those of still images (`pdq`) and the frames of video items (`pdq-frames`).
`search("pdq", ...)` searches both, so an image finds a video's frame as before; a video query searches the
stills with every frame but the frames with only the few frames that pigeonhole needs (service/video.py), which
is what makes a 60-frame query over millions of banked frames cheap. A code in the wrong part would only cost
speed, never a match: a video query's still lookup uses every frame.

The index is allowed to be a superset of what matches: a hash whose item was deleted or whose bank was
disabled may linger in it until the next rebuild, because the store is asked about every candidate before
it is reported (see `Service.match_*`), and the store is the source of truth. Disabled items are removed
from the index promptly, so that the common correction (a false positive disabled by an analyst) also
stops costing lookups.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hashsvc.errors import NotFoundError
from hashsvc.features.live import LiveFeatures
from hashsvc.hashes import ALGORITHMS
from hashsvc.index import HammingIndex, SnapshotError
from hashsvc.index.core import BATCH_MIN_QUERIES
from hashsvc.private_files import open_private, private_dir
from hashsvc.store import Change, Store
from hashsvc.store import video as video_store
from hashsvc.store.changelog import SequenceReader

log = logging.getLogger(__name__)

CHANGE_BATCH = 1000
FRAMES = "pdq-frames"  # the index of video items' frame PDQs, the second part of "pdq"
_PARTS = {"stills": "pdq", "frames": FRAMES}


@dataclass
class _AlgorithmIndex:
    index: HammingIndex
    sequence: int  # every change up to this sequence is applied


class LiveIndex:
    """One HammingIndex per algorithm, built from snapshots and the store, updated from the change log."""

    def __init__(
        self,
        store: Store,
        snapshot_dir: Path | None = None,
        *,
        poll_interval_s: float = 0.25,
        features: LiveFeatures | None = None,
    ) -> None:
        self.store = store
        # The local-feature index (hashsvc.features) follows the same snapshot + change-log path as the hashes.
        self.features = features or LiveFeatures(store, snapshot_dir)
        self.snapshot_dir = snapshot_dir
        self.poll_interval_s = poll_interval_s
        self._indexes: dict[str, _AlgorithmIndex] = {}
        self._apply_lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        # Called after each successful round of the tail thread (the API keeps its index gauges current with it,
        # so a worker that nobody has scraped yet does not report sequence 0).
        self.listeners: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.last_store_sequence = 0
        self._latest: LatestSequence | PooledSequence
        if store.backend == "sqlite":
            self._latest = PooledSequence(store)
        else:
            reader = store.sequence_reader()
            self._latest = LatestSequence(reader.read, reader.close)

    # ------------------------------------------------------------------------------------------- state

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def sequence(self) -> int:
        """The change-log sequence every index has caught up with."""
        indexes = [entry.sequence for entry in self._indexes.values()]
        return min([*indexes, self.features.sequence]) if indexes else 0

    def sizes(self) -> dict[str, int]:
        """Codes per index; "pdq" counts still images and video frames, "pdq-frames" the frames alone; "orb" the
        image items with local features, "orb-video" the video items' keyframes."""
        sizes = {name: len(entry.index) for name, entry in self._indexes.items()}
        if FRAMES in sizes:
            sizes["pdq"] += sizes[FRAMES]
        return sizes | {"orb": len(self.features.index), "orb-video": len(self.features.video)}

    def lag(self) -> int:
        return max(0, self.last_store_sequence - self.sequence)

    def search(
        self, algorithm: str, codes: np.ndarray, radius: int, *, part: str | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query row, (hash ids, distances) within `radius`. For "pdq", `part` ("stills" or "frames")
        searches only the still images' codes or only the video frames'; by default both."""
        if algorithm != "pdq":
            return self._indexes[algorithm].index.range_search(codes, radius)
        if part is not None:
            return self._indexes[_PARTS[part]].index.range_search(codes, radius)
        stills = self._indexes["pdq"].index.range_search(codes, radius)
        frames = self._indexes[FRAMES].index
        if not len(frames):
            return stills
        both = []
        for (a_ids, a_dist), (b_ids, b_dist) in zip(stills, frames.range_search(codes, radius), strict=True):
            if not len(b_ids):
                both.append((a_ids, a_dist))
            elif not len(a_ids):
                both.append((b_ids, b_dist))
            else:
                both.append((np.concatenate([a_ids, b_ids]), np.concatenate([a_dist, b_dist])))
        return both

    # ------------------------------------------------------------------------------------------ loading

    def load(self) -> None:
        """Build every index (snapshot or store), then catch up with the change log; marks the process ready."""
        for name, algorithm in ALGORITHMS.items():
            if name == "pdq":
                self._indexes.update(self._load_pdq())
            else:
                self._indexes[name] = self._load_one(name, algorithm.bits)
        self.features.load()
        warm_up_kernels()
        self.catch_up()
        self._ready.set()

    def _load_one(self, name: str, bits: int) -> _AlgorithmIndex:
        path = self._snapshot_path(name)
        if path is not None and path.exists():
            try:
                index = HammingIndex.load(path)
                log.info("loaded %s index snapshot: %d hashes at sequence %s", name, len(index), index.sequence)
                return _AlgorithmIndex(index, int(index.sequence or 0))
            except SnapshotError as exc:  # a damaged snapshot only costs a rebuild from the store
                log.warning("ignoring %s: %s", path, exc)
        index = HammingIndex(bits)
        with self.store.active_hashes(name) as active:
            # One bulk add builds the main segment once. Adding chunk by chunk left up to a chunk of rows in the
            # delta buffer, which every batched query then scans (about 40% of a 1,000-set batch's time at 1M),
            # and cost a merge per chunk. The codes are held twice while the segment is built (64 B a PDQ hash).
            ids, codes = [], []
            for chunk in active:
                ids.append(chunk.ids)
                codes.append(chunk.codes)
            if ids:
                index.add(np.concatenate(ids), np.concatenate(codes))
            index.compact()
            return _AlgorithmIndex(index, active.sequence)

    def _load_pdq(self) -> dict[str, _AlgorithmIndex]:
        """The stills and frames parts of PDQ: both from snapshots, or both from the store. (A `pdq.hidx`
        without its frames companion was written before the split and holds the frames too.)"""
        paths = [self._snapshot_path(name) for name in ("pdq", FRAMES)]
        if all(path is not None and path.exists() for path in paths):
            try:
                loaded = [HammingIndex.load(path) for path in paths if path is not None]
            except SnapshotError as exc:  # a damaged snapshot only costs a rebuild from the store
                log.warning("ignoring the pdq snapshots: %s", exc)
            else:
                if loaded[0].sequence == loaded[1].sequence:  # written together, under the same lock
                    log.info("loaded pdq index snapshots: %d stills, %d video frames at sequence %s",
                             len(loaded[0]), len(loaded[1]), loaded[0].sequence)  # fmt: skip
                    sequence = int(loaded[0].sequence or 0)
                    return {"pdq": _AlgorithmIndex(loaded[0], sequence), FRAMES: _AlgorithmIndex(loaded[1], sequence)}
        parts: dict[bool, tuple[list[np.ndarray], list[np.ndarray]]] = {False: ([], []), True: ([], [])}
        with self.store.active_hashes("pdq") as active:
            videos = np.array(sorted(video_store.video_item_ids(self.store.engine)), dtype=np.int64)
            for chunk in active:
                video = np.isin(chunk.item_ids, videos)
                for is_video, rows in ((False, ~video), (True, video)):
                    if rows.any():
                        parts[is_video][0].append(chunk.ids[rows])
                        parts[is_video][1].append(chunk.codes[rows])
            sequence = active.sequence
        built = {}
        for is_video, (ids, codes) in parts.items():
            # One bulk add per part builds its main segment once: rows left in the delta buffer would be
            # scanned by every query.
            index = HammingIndex(256)
            if ids:
                index.add(np.concatenate(ids), np.concatenate(codes))
            index.compact()
            built[FRAMES if is_video else "pdq"] = _AlgorithmIndex(index, sequence)
        return built

    def _snapshot_path(self, name: str) -> Path | None:
        return None if self.snapshot_dir is None else self.snapshot_dir / f"{name}.hidx"

    # ----------------------------------------------------------------------------------------- tailing

    def catch_up(self) -> int:
        """Apply every change the store has committed since our sequence; return how many were applied."""
        with self._apply_lock:
            return self._catch_up_locked()

    def refresh(self, timeout_s: float) -> bool:
        """Read-your-writes: apply every change the store had committed when this was called, so that a match
        made right after an add (through any process or replica) sees it. Returns whether this process has
        caught up with that point; it waits at most `timeout_s` (a long import) and then answers from what is
        applied, which the answer's `index.sequence` tells.

        One read of a one-row table per call; the tail thread still does the applying between matches."""
        try:
            target = self._latest.read(timeout_s)
        except TimeoutError:
            return False
        except Exception as exc:  # noqa: BLE001 - an unreachable store: answer from the index, as the tail does
            log.warning("read-your-writes check failed: %s: %s", type(exc).__name__, exc)
            return False
        if self.sequence >= target:
            return True
        deadline = time.monotonic() + timeout_s
        # The tail thread may be applying these very changes: then this waits for it, and finds less to do.
        if not self._apply_lock.acquire(timeout=timeout_s):
            return False
        try:
            self._catch_up_locked(until=target, deadline=deadline)
        except Exception as exc:  # noqa: BLE001 - as above; the tail thread retries
            log.warning("read-your-writes catch-up failed: %s: %s", type(exc).__name__, exc)
        finally:
            self._apply_lock.release()
        return self.sequence >= target

    def _catch_up_locked(self, *, until: int | None = None, deadline: float | None = None) -> int:
        """`catch_up` under the apply lock; with `until`, stop once that sequence is applied, and with
        `deadline` (time.monotonic()), stop between pages once it has passed."""
        applied = 0
        while until is None or self.sequence < until:
            changes = self.store.changes_since(self.sequence, limit=CHANGE_BATCH)
            activated = {row.item_id for change in changes for row in change.hashes if row.algorithm == "pdq"}
            videos = video_store.video_item_ids(self.store.engine, list(activated)) if activated else set()
            for change in changes:
                self._apply(change, videos)
            applied += len(changes)
            if len(changes) < CHANGE_BATCH or (deadline is not None and time.monotonic() > deadline):
                break
        if until is None:
            self.last_store_sequence = max(self.sequence, self.store.max_sequence())
        return applied

    def _apply(self, change: Change, videos: set[int]) -> None:
        """Apply one change; `videos` holds the ids of the video items among those it activates."""
        pending = [(name, e) for name, e in self._indexes.items() if change.sequence > e.sequence]
        if change.effect == "activate":
            for name, entry in pending:
                rows = [row for row in change.hashes if _index_of(row.algorithm, row.item_id in videos) == name]
                if rows:
                    codes = np.frombuffer(b"".join(row.code for row in rows), dtype=np.uint8).reshape(len(rows), -1)
                    entry.index.add(np.array([row.hash_id for row in rows], dtype=np.int64), codes)
        elif change.effect == "deactivate":
            for item_id in change.item_ids:  # empty for a bank: its codes are filtered at match time
                self._remove_item(item_id, pending)
        for _, entry in pending:
            entry.sequence = change.sequence
        self.features.apply(change)

    def _remove_item(self, item_id: int, pending: list[tuple[str, _AlgorithmIndex]]) -> None:
        try:
            item = self.store.get_item(item_id)
        except NotFoundError:
            return  # deleted: its rows are gone, and the store filters its lingering codes at match time
        for name, entry in pending:
            ids = np.array([h.id for h in item.hashes if h.algorithm == name.removesuffix("-frames")], dtype=np.int64)
            if len(ids):
                entry.index.remove(ids)

    def start(self) -> None:
        """Tail the change log in a daemon thread until `stop()`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hashsvc-tail", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._latest.close()

    def wait_stopped(self, timeout_s: float) -> bool:
        """Sleep up to `timeout_s`; True once `stop()` has been called (for companion background loops)."""
        return self._stop.wait(timeout_s)

    def _run(self) -> None:
        while True:  # the first round at once: a process is not ready before its first load
            try:
                if not self.ready:
                    self.load()
                else:
                    self.catch_up()
                self.last_error = None
                for listener in self.listeners:
                    listener()
            except Exception as exc:  # noqa: BLE001 - the store may be briefly unreachable; keep serving
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("change-log tail failed: %s", self.last_error)
            if self._stop.wait(self.poll_interval_s):
                return

    # ------------------------------------------------------------------------------------------ snapshots

    def save_snapshots(self) -> bool:
        """Write every index's snapshot, unless another process of this data folder is writing them now.

        Returns whether this process wrote them. Start-up then replays only the changes since.
        """
        if self.snapshot_dir is None or not self.ready:
            return False
        private_dir(self.snapshot_dir)
        with open_private(self.snapshot_dir / "snapshot.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            try:
                with self._apply_lock:  # a consistent cut between index contents and sequence
                    for name, entry in self._indexes.items():
                        path = self._snapshot_path(name)
                        assert path is not None
                        entry.index.save(path, sequence=entry.sequence)
                    self.features.save()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return True


class PooledSequence:
    """The store's latest sequence, each caller reading it at once over a connection of a small pool (one per
    caller running at the same time, kept for the next): for SQLite, where a read costs 5 us, less than making a
    thread wait for another's read and waking it. Through a server, sharing reads as `LatestSequence` does made
    single lookups 8% dearer in server CPU; a read per request, 2.6% (docs/operations.md, "Read-your-writes")."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._free: list[SequenceReader] = []
        self._lock = threading.Lock()

    def read(self, timeout_s: float) -> int:
        """(A SQLite read in WAL mode does not wait for writers, so `timeout_s` has nothing to bound.)"""
        with self._lock:
            reader = self._free.pop() if self._free else None
        if reader is None:
            reader = self._store.sequence_reader()
        try:
            return reader.read()
        finally:
            with self._lock:
                self._free.append(reader)

    def close(self) -> None:
        with self._lock:
            readers, self._free = self._free, []
        for reader in readers:
            reader.close()


class LatestSequence:
    """The store's latest sequence, read at most once at a time per process. A caller is answered by a read
    that started after it called (so it sees every change committed before that): the first caller while none
    is running reads; callers arriving during a read wait for the next one, which one of them makes as soon as
    the current ends. Under load, one read serves every request that came during the one before: for
    PostgreSQL, where a read is a round trip (70 us) and each one a connection held per process."""

    def __init__(self, read: Callable[[], int], close: Callable[[], None] = lambda: None) -> None:
        self._read = read
        self.close = close
        self._turn = threading.Condition()
        self._started = 0  # reads begun
        self._finished = 0  # reads ended, ok or not
        self._reading = False
        self._value = 0
        self._failed: BaseException | None = None  # the error of the read that ended last, if it failed

    def read(self, timeout_s: float) -> int:
        """Raises TimeoutError after `timeout_s` without a fresh read, or what the read raised."""
        deadline = time.monotonic() + timeout_s
        with self._turn:
            wanted = self._started + 1  # a read that starts from now on
            while self._finished < wanted:
                if not self._reading:
                    self._read_now()
                elif not self._turn.wait(deadline - time.monotonic()):
                    raise TimeoutError("no fresh read of the store's sequence in time")
            if self._failed is not None:
                raise self._failed
            return self._value

    def _read_now(self) -> None:
        """One read, made outside the lock (held on entry and on exit)."""
        self._reading = True
        self._started += 1
        number = self._started
        self._turn.release()
        value, failed = self._value, None
        try:
            value = self._read()
        except Exception as exc:  # noqa: BLE001 - handed to every caller this read answers
            failed = exc
        finally:
            self._turn.acquire()
            self._reading = False
            self._finished = number
            self._value, self._failed = value, failed
            self._turn.notify_all()


def _index_of(algorithm: str, video: bool) -> str:
    """The index a stored hash belongs in: a video item's PDQs are its frames."""
    return FRAMES if video and algorithm == "pdq" else algorithm


def warm_up_kernels() -> None:
    """Load (on a machine's first run: compile and cache) the index kernels of every hash length."""
    _warm_up({algorithm.bits for algorithm in ALGORITHMS.values()})


def _warm_up(bit_lengths: set[int]) -> None:
    """Run every search path once on a throw-away index, so that loading the compiled kernels (about a second
    on first use in a process) happens before the process reports ready, not inside the first request."""
    rng = np.random.default_rng(0)
    for bits in sorted(bit_lengths):
        codes = rng.integers(0, 256, (64, bits // 8), dtype=np.uint8)
        index = HammingIndex(bits, background_merge=False)
        index.add(np.arange(32, dtype=np.int64), codes[:32])
        index.compact()
        index.add(np.arange(32, 64, dtype=np.int64), codes[32:])
        for strategy in ("tables", "scan"):
            index.range_search(codes[:2], bits // 8, strategy=strategy)
            index.range_search(codes[:BATCH_MIN_QUERIES], bits // 8, strategy=strategy)  # the batched kernels
