"""The index's storage: an immutable, table-indexed main segment and an append-only delta buffer.

Both keep codes as (n, bits / 64) big-endian uint64 words and liveness as a bitmap (1 bit per row), so a
removal is one bit clear and never reshuffles anything.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from hashsvc.index import _kernels as k

# A probe's result buffer starts this large and grows (re-running the probe) for queries with more matches.
_INITIAL_RESULTS = 256


def to_words(codes: np.ndarray, bits: int) -> np.ndarray:
    """(n, bits / 8) packed MSB-first uint8 -> (n, bits / 64) native uint64 holding big-endian words."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    return codes.view(">u8").astype(np.uint64).reshape(-1, bits // 64)


def to_words_in_place(codes: np.ndarray, bits: int) -> np.ndarray:
    """to_words reusing the buffer of `codes` (which it clobbers): saves a copy of every code on load."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if sys.byteorder != "little":
        return to_words(codes, bits)
    words = codes.reshape(-1).view(np.uint64)
    words.byteswap(inplace=True)  # big-endian words -> native values
    return words.reshape(-1, bits // 64)


def to_bytes(words: np.ndarray) -> np.ndarray:
    """Inverse of to_words."""
    return np.ascontiguousarray(words).astype(">u8").view(np.uint8).reshape(words.shape[0], words.shape[1] * 8)


def new_bitmap(n: int, value: bool) -> np.ndarray:
    bitmap = np.full((n + 7) // 8, 0xFF if value else 0, dtype=np.uint8)
    if value and n % 8:
        bitmap[-1] = (1 << (n % 8)) - 1  # rows past n never look alive
    return bitmap


def clear_bits(bitmap: np.ndarray, rows: np.ndarray) -> None:
    rows = np.asarray(rows, dtype=np.int64)
    np.bitwise_and.at(bitmap, rows >> 3, ~(np.left_shift(1, rows & 7)).astype(np.uint8))


def alive_rows(bitmap: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(bitmap, bitorder="little", count=n).astype(bool)


@dataclass(frozen=True)
class Layout:
    """How a code is cut into substrings, one hash table each.

    `flips_for(radius)` is the per-table search radius that pigeonhole needs: a code within `radius` differs
    in at most floor(radius / m) bits in at least one of the m substrings.
    """

    bits: int
    starts: np.ndarray  # int64 (m,)
    lengths: np.ndarray  # int64 (m,)

    @classmethod
    def even(cls, bits: int, tables: int) -> Layout:
        if not 1 <= tables <= bits:
            raise ValueError(f"tables must be in 1..{bits}, got {tables}")
        base, extra = divmod(bits, tables)
        lengths = np.array([base + (1 if i < extra else 0) for i in range(tables)], dtype=np.int64)
        if lengths.max() > 32:
            raise ValueError(f"{tables} tables over {bits} bits gives substrings over 32 bits; use more tables")
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return cls(bits, starts, lengths)

    @property
    def tables(self) -> int:
        return int(self.lengths.shape[0])

    def flips_for(self, radius: int) -> int:
        return radius // self.tables


def default_tables(bits: int) -> int:
    """About 21-24 bits per substring: log2 of the ~10M codes per index the service is sized for.

    256 bits -> 11 tables (23-24 bits): radius 31 needs 2 flips per table (11 * 3 > 31).
    64 bits -> 3 tables (21-22 bits): radius 8 needs 2 flips, radius 10 needs 3.
    """
    return max(1, round(bits / 23))


def prefix_bits_for(n: int, layout: Layout) -> int:
    """Bucket (high) bits per table: about n / 8 buckets, so buckets hold ~4-16 rows.

    More buckets would cut bucket scans further but each costs 4 bytes per table (at 10M codes and 11
    tables, 2^20 buckets are 4.6 bytes per hash). The rest of the substring (<= 8 bits) is kept per row
    as a uint8 filter.
    """
    lo = int(layout.lengths.max()) - 8
    hi = int(layout.lengths.min())
    want = math.floor(math.log2(max(n, 1))) - 3
    return max(1, min(hi, max(lo, want)))


class MainSegment:
    """Immutable codes + ids sorted by id, with one bucketed table per substring.

    Rows are ordered by id so that finding an id's row is a binary search over the ids array itself,
    with no extra id -> row map (a Python dict would cost ~100 bytes per hash).
    Only `alive` ever changes after construction (bits cleared by removals).
    """

    def __init__(self, layout: Layout, ids: np.ndarray, words: np.ndarray, threads: int = 1) -> None:
        n = int(ids.shape[0])
        if n >= 2**32 - 1:
            raise ValueError("a segment holds fewer than 2^32 codes (uint32 row numbers)")
        self.layout = layout
        self.ids = ids
        self.words = words
        self.alive = new_bitmap(n, True)
        self._mask_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.prefix_bits = prefix_bits_for(n, layout)
        m = layout.tables
        self.low_bits = (layout.lengths - self.prefix_bits).astype(np.int64)
        self.positions = np.empty((m, n), dtype=np.uint32)
        self.lows = np.empty((m, n), dtype=np.uint8)
        # Bucket b of table t spans [base[t, b >> 8] + rel[t, b], base[t, (b+1) >> 8] + rel[t, b+1]): a uint32
        # base per 256 buckets plus a uint16 offset within them halves the offsets' memory (2.3 B/hash at
        # 10M). Heavily duplicated data can put more than 65535 rows under 256 buckets: rel is then uint32.
        nb = 1 << self.prefix_bits
        self.base = np.empty((m, (nb >> k.SUPER_SHIFT) + 1), dtype=np.int64)
        rels: list[np.ndarray] = [np.empty(0, dtype=np.uint32)] * m

        def build(t: int) -> None:
            offsets = np.empty(nb + 1, dtype=np.uint32)
            k.build_table(
                words,
                int(layout.starts[t]),
                int(layout.lengths[t]),
                int(self.low_bits[t]),
                offsets,
                self.positions[t],
                self.lows[t],
            )
            base = offsets[:: 1 << k.SUPER_SHIFT].astype(np.int64)
            self.base[t] = base
            rels[t] = offsets - np.repeat(base, 1 << k.SUPER_SHIFT)[: nb + 1].astype(np.uint32)

        if threads > 1 and m > 1:  # kernels release the GIL: tables build truly in parallel
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(build, range(m)))
        else:
            for t in range(m):
                build(t)
        wide = max(int(r.max()) for r in rels) > np.iinfo(np.uint16).max
        self.rel = np.stack([r if wide else r.astype(np.uint16) for r in rels])
        # 64-bit codes: keep each table's codes inline in bucket order (12 instead of 5 bytes per row and
        # table, affordable at 3 tables) so that verification reads buckets sequentially (probe_inline)
        self.table_codes: np.ndarray | None = None
        if words.shape[1] == 1:
            self.table_codes = words[:, 0][self.positions]
            self.lows = np.empty((m, 0), dtype=np.uint8)

    @classmethod
    def build(cls, layout: Layout, ids: np.ndarray, words: np.ndarray, threads: int = 1) -> MainSegment:
        """Sort by id (ids must be unique) and index, building tables on up to `threads` threads."""
        if ids.shape[0] > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            order = np.argsort(ids, kind="stable")
            ids, words = ids[order], words[order]
        segment = cls(layout, np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(words), threads)
        _release_freed_memory()
        return segment

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def nbytes(self) -> int:
        arrays = (self.ids, self.words, self.alive, self.base, self.rel, self.positions, self.lows)
        return sum(a.nbytes for a in arrays) + (self.table_codes.nbytes if self.table_codes is not None else 0)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Rows holding these ids (ids not stored here are skipped)."""
        return _match(self.ids, ids)

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        keep = alive_rows(self.alive, len(self))
        return self.ids[keep], self.words[keep]

    def probe_work(self, flips: int) -> float:
        """Expected bucket entries a probe touches, to compare with a full scan's rows."""
        buckets = sum(math.comb(self.prefix_bits, j) for j in range(min(flips, self.prefix_bits) + 1))
        return self.layout.tables * buckets * (1.0 + len(self) / (1 << self.prefix_bits))

    def _masks(self, flips: int) -> tuple[np.ndarray, np.ndarray]:
        masks = self._mask_cache.get(flips)
        if masks is None:  # benign race: two readers may both compute it
            masks = self._mask_cache[flips] = k.flip_masks(self.prefix_bits, flips)
        return masks

    def search(self, q: np.ndarray, radius: int, use_tables: bool) -> tuple[np.ndarray, np.ndarray]:
        flips = self.layout.flips_for(radius)
        cap = _INITIAL_RESULTS
        while True:
            out_pos = np.empty(cap, dtype=np.int64)
            out_dist = np.empty(cap, dtype=np.int32)
            if use_tables and self.table_codes is not None:
                masks, mask_flips = self._masks(flips)
                count = k.probe_inline(
                    q,
                    self.alive,
                    self.layout.starts,
                    self.layout.lengths,
                    self.low_bits,
                    self.base,
                    self.rel,
                    self.positions,
                    self.table_codes,
                    masks,
                    mask_flips,
                    flips,
                    radius,
                    out_pos,
                    out_dist,
                )
            elif use_tables:
                masks, mask_flips = self._masks(flips)
                count = k.probe(
                    q,
                    self.words,
                    self.alive,
                    self.layout.starts,
                    self.layout.lengths,
                    self.low_bits,
                    self.base,
                    self.rel,
                    self.positions,
                    self.lows,
                    masks,
                    mask_flips,
                    flips,
                    radius,
                    out_pos,
                    out_dist,
                )
            else:
                count = k.scan(q, self.words, self.alive, len(self), radius, out_pos, out_dist)
            if count <= cap:
                return self.ids[out_pos[:count]], out_dist[:count]
            cap = count

    def search_batch(self, qs: np.ndarray, radius: int, use_tables: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        """`search` for many query rows in one kernel call (see `_kernels.probe_batch`), one result per row."""
        if use_tables and self.table_codes is None and qs.shape[0] > k.MAX_BATCH_QUERIES:
            return [
                found
                for chunk in range(0, qs.shape[0], k.MAX_BATCH_QUERIES)
                for found in self.search_batch(qs[chunk : chunk + k.MAX_BATCH_QUERIES], radius, use_tables)
            ]
        if use_tables and self.table_codes is None:
            masks, mask_flips = self._masks(self.layout.flips_for(radius))
            first, rows, dists = k.probe_batch(
                qs,
                self.words,
                self.alive,
                self.layout.starts,
                self.layout.lengths,
                self.low_bits,
                self.base,
                self.rel,
                self.positions,
                self.lows,
                masks,
                mask_flips,
                self.layout.flips_for(radius),
                radius,
            )
        elif use_tables:  # 64-bit codes keep their inline tables: the per-query probe already reads them in order
            return [self.search(q, radius, True) for q in qs]
        else:
            first, rows, dists = k.scan_batch(qs, self.words, self.alive, len(self), radius)
        return _split(self.ids[rows], dists, first)


def _split(ids: np.ndarray, dists: np.ndarray, first: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-query (ids, distances) views of results grouped by query (`first[i]:first[i + 1]` is query i's)."""
    bounds = first.tolist()
    return [(ids[a:b], dists[a:b]) for a, b in itertools.pairwise(bounds)]


def _release_freed_memory() -> None:
    """Hand the build's freed temporaries back to the OS (glibc keeps mid-sized frees in its heap otherwise,
    which showed up as several bytes per hash of extra RSS at 10M). No-op where glibc is absent."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _match(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    rows = np.searchsorted(sorted_ids, ids)
    inside = rows < sorted_ids.shape[0]
    rows, ids = rows[inside], ids[inside]
    return rows[sorted_ids[rows] == ids]


class DeltaBuffer:
    """Append-only rows searched by exact scan; rows [0, count) are immutable once published.

    A writer appends past the published count and then publishes a larger count, so a reader holding an
    older count never sees a half-written row. When capacity runs out the writer copies into a new,
    doubled buffer; readers holding the old one keep a consistent (older) view.
    """

    def __init__(self, words_per_code: int, capacity: int = 1024) -> None:
        self.words = np.zeros((capacity, words_per_code), dtype=np.uint64)
        self.ids = np.zeros(capacity, dtype=np.int64)
        self.alive = new_bitmap(capacity, False)
        self.count = 0
        self.row_of: dict[int, int] = {}  # small by construction: merged into main past a threshold

    def append(self, ids: np.ndarray, words: np.ndarray) -> None:
        """Write rows past `count` (caller publishes the new count afterwards)."""
        n = ids.shape[0]
        end = self.count + n
        if end > self.ids.shape[0]:
            self._grow(end)
        self.words[self.count : end] = words
        self.ids[self.count : end] = ids
        rows = range(self.count, end)
        # set alive bits for the new rows (they were zero); a plain loop beats ufunc.at for the typical tiny add
        if n <= 64:
            for r in rows:
                self.alive[r >> 3] |= 1 << (r & 7)
        else:
            r = np.arange(self.count, end, dtype=np.int64)
            np.bitwise_or.at(self.alive, r >> 3, np.left_shift(1, r & 7).astype(np.uint8))
        self.row_of.update(zip(ids.tolist(), rows, strict=True))
        self.count = end

    def _grow(self, need: int) -> None:
        cap = max(need, 2 * self.ids.shape[0])
        words = np.zeros((cap, self.words.shape[1]), dtype=np.uint64)
        ids = np.zeros(cap, dtype=np.int64)
        alive = new_bitmap(cap, False)
        words[: self.count] = self.words[: self.count]
        ids[: self.count] = self.ids[: self.count]
        alive[: self.alive.shape[0]] = self.alive
        # readers that already hold the old arrays keep using them; new readers get these
        self.words, self.ids, self.alive = words, ids, alive

    def remove(self, ids: np.ndarray) -> int:
        """Clear the rows of these ids; return how many were here."""
        rows = [self.row_of.pop(i) for i in ids.tolist() if i in self.row_of]
        if rows:
            clear_bits(self.alive, np.array(rows, dtype=np.int64))
        return len(rows)

    def live(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        keep = alive_rows(self.alive, count)
        return self.ids[:count][keep], self.words[:count][keep]

    def search(
        self, arrays: tuple[np.ndarray, np.ndarray, np.ndarray], count: int, q: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray]:
        ids, words, alive = arrays
        cap = _INITIAL_RESULTS
        while True:
            out_pos = np.empty(cap, dtype=np.int64)
            out_dist = np.empty(cap, dtype=np.int32)
            n = k.scan(q, words, alive, count, radius, out_pos, out_dist)
            if n <= cap:
                return ids[out_pos[:n]], out_dist[:n]
            cap = n

    def search_batch(
        self, arrays: tuple[np.ndarray, np.ndarray, np.ndarray], count: int, qs: np.ndarray, radius: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """`search` for many query rows, scanning each block of rows once for all of them."""
        ids, words, alive = arrays
        first, rows, dists = k.scan_batch(qs, words, alive, count, radius)
        return _split(ids[rows], dists, first)
