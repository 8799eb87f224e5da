"""Compiled (numba) kernels: substring extraction, table build, multi-index probe and exact scans.

Codes are held as rows of big-endian uint64 words: bit 0 of a code (the top bit of its first byte, MSB-first
packing) is bit 63 of word 0. A substring [start, start + length) is read as an integer whose top bit is the
code's bit `start`, so neighbouring substrings never overlap and together cover the whole code.

All kernels are `nogil=True` (reader threads and a background merge run truly in parallel) and `cache=True`
(compiled once per machine into __pycache__, so a server start or a test run does not pay the ~10 s of
JIT compilation again). None uses `parallel=True`: numba then never starts its thread pool, and one query
costs exactly one core, which is what a request-serving process wants.

Numba types mixed int64/uint64 arithmetic as float64, so every bit operation below casts to uint64 first.
"""

from __future__ import annotations

import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_U1 = np.uint64(1)
SUPER_SHIFT = 8  # offsets are stored as a base per 2^SUPER_SHIFT buckets plus a small offset (MainSegment)
_U64 = np.uint64(64)
_LITTLE_ENDIAN = sys.byteorder == "little"


@intrinsic
def _ctpop(typingctx, x):  # type: ignore[no-untyped-def]
    """LLVM's ctpop intrinsic: one POPCNT instruction on x86-64."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return sig, codegen


@intrinsic
def _cttz_intrinsic(typingctx, x):  # type: ignore[no-untyped-def]
    """LLVM's cttz intrinsic (count trailing zeros; x must not be 0): one TZCNT/BSF instruction on x86-64."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _cttz(x: np.uint64) -> int:
    return np.int64(_cttz_intrinsic(np.uint64(x)))


@njit(cache=True, nogil=True, inline="always")
def popcount(x: np.uint64) -> int:
    return np.int64(_ctpop(np.uint64(x)))


@njit(cache=True, nogil=True, inline="always")
def substring(row: np.ndarray, start: int, length: int) -> int:
    """Bits [start, start + length) of one code row as an int (length <= 32, may straddle two words)."""
    w = start >> 6
    off = start & 63
    if off + length <= 64:
        v = (row[w] >> np.uint64(64 - off - length)) & ((_U1 << np.uint64(length)) - _U1)
    else:
        hi_len = 64 - off
        lo_len = length - hi_len
        hi = row[w] & ((_U1 << np.uint64(hi_len)) - _U1)
        v = (hi << np.uint64(lo_len)) | (row[w + 1] >> np.uint64(64 - lo_len))
    return np.int64(v)


@njit(cache=True, nogil=True, inline="always")
def row_distance(q: np.ndarray, words: np.ndarray, p: int) -> int:
    """Hamming distance of query q to row p (indexing the 2D array directly: no row view, ~1.5x faster)."""
    d = 0
    for w in range(q.shape[0]):
        d += popcount(q[w] ^ words[p, w])
    return d


@njit(cache=True, nogil=True, inline="always")
def is_alive(alive: np.ndarray, p: int) -> bool:
    return (alive[p >> 3] >> (p & 7)) & 1 == 1


@njit(cache=True, nogil=True)
def build_table(
    words: np.ndarray,
    start: int,
    length: int,
    low_bits: int,
    offsets: np.ndarray,
    positions: np.ndarray,
    lows: np.ndarray,
) -> None:
    """Counting-sort the rows by the substring's high bits (the bucket) into one table.

    offsets[b]..offsets[b+1] is bucket b's range in `positions` (row numbers) and `lows` (the substring's
    remaining low bits, <= 8, for a cheap filter before touching the code). Order inside a bucket does not
    matter: a probe scans the whole bucket. O(n), no comparison sort.

    Cache-friendly two-level version: rows are first partitioned by the bucket's top 8 bits (256 counters
    and 256 sequential write streams), then each partition is counted, prefix-summed and scattered into its
    own buckets, whose offsets and destinations now span a cache-sized region. A direct counting sort over
    10M rows costs a cache miss per row for the histogram and another for the scatter, and made builds
    (and so merges and snapshot loads) several times slower.
    """
    n = words.shape[0]
    nb = offsets.shape[0] - 1
    prefix_bits = 0
    while (1 << prefix_bits) < nb:
        prefix_bits += 1
    part_shift = max(prefix_bits - 8, 0)
    n_parts = ((nb - 1) >> part_shift) + 1
    low_mask = (1 << low_bits) - 1
    keys = np.empty(n, dtype=np.uint32)
    part_start = np.zeros(n_parts + 1, dtype=np.int64)
    for i in range(n):
        k = substring(words[i], start, length)
        keys[i] = k
        part_start[((k >> low_bits) >> part_shift) + 1] += 1
    for part in range(n_parts):
        part_start[part + 1] += part_start[part]
    # pass 1: partition rows (and their keys) by the bucket's top bits
    part_fill = part_start[:-1].copy()
    part_rows = np.empty(n, dtype=np.uint32)
    part_keys = np.empty(n, dtype=np.uint32)
    for i in range(n):
        k = keys[i]
        part = (np.int64(k) >> low_bits) >> part_shift
        j = part_fill[part]
        part_fill[part] = j + 1
        part_rows[j] = i
        part_keys[j] = k
    # pass 2: per partition, count its buckets, prefix-sum from the partition's start, scatter
    offsets[:] = 0
    for part in range(n_parts):
        lo = part_start[part]
        hi = part_start[part + 1]
        b0 = part << part_shift
        b1 = min(b0 + (1 << part_shift), nb)
        for j in range(lo, hi):
            offsets[(np.int64(part_keys[j]) >> low_bits) + 1] += 1
        offsets[b0] = lo
        for b in range(b0, b1):
            offsets[b + 1] += offsets[b]
        fill = offsets[b0:b1].copy()
        for j in range(lo, hi):
            k = np.int64(part_keys[j])
            b = k >> low_bits
            dest = fill[b - b0]
            fill[b - b0] = dest + 1
            positions[dest] = part_rows[j]
            lows[dest] = k & low_mask


@njit(cache=True, nogil=True)
def probe(
    q: np.ndarray,
    words: np.ndarray,
    alive: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    low_bits: np.ndarray,
    base: np.ndarray,
    rel: np.ndarray,
    positions: np.ndarray,
    lows: np.ndarray,
    masks: np.ndarray,
    mask_flips: np.ndarray,
    flips: int,
    radius: int,
    out_pos: np.ndarray,
    out_dist: np.ndarray,
) -> int:
    """Multi-index hashing probe of one query: every live row within `radius`, each reported once.

    For each table, visit every substring key within `flips` bits of the query's: XOR the bucket (high)
    bits with each of `masks` (all masks of <= flips bits over the prefix, `mask_flips` their popcounts),
    scan the bucket and keep entries whose low bits are within the flips left. The caller guarantees
    (flips + 1) * tables > radius, so by pigeonhole every row within `radius` has some substring within
    `flips` bits and is reached. A row reached through several tables is reported only by the first table
    where its substring is within `flips` (checked after verification: free for non-matching candidates).

    The work runs in phases over arrays (bucket bounds, then low-bit filter, then row numbers, then codes)
    rather than one bucket at a time: the loads inside a phase are independent, so the CPU keeps many
    cache misses in flight instead of walking a chain of dependent misses per bucket. At 10M codes this is
    a memory-latency-bound workload.

    Returns the number of matches; if it exceeds len(out_pos) the extra ones are counted but not written
    and the caller retries with a larger buffer.
    """
    m = starts.shape[0]
    nm = masks.shape[0]
    cap = out_pos.shape[0]
    qkeys = np.empty(m, dtype=np.int64)
    for t in range(m):
        qkeys[t] = substring(q, starts[t], lengths[t])
    begin = np.empty(nm, dtype=np.int64)
    end = np.empty(nm, dtype=np.int64)
    cand = np.empty(256, dtype=np.int64)
    count = 0
    for t in range(m):
        lb = low_bits[t]
        qhigh = qkeys[t] >> lb
        qlow = np.uint64(qkeys[t] & ((1 << lb) - 1))
        bt = base[t]
        rt = rel[t]
        low = lows[t]
        pos = positions[t]
        for j in range(nm):  # phase 1: bucket bounds
            h = qhigh ^ masks[j]
            begin[j] = bt[h >> SUPER_SHIFT] + np.int64(rt[h])
            end[j] = bt[(h + 1) >> SUPER_SHIFT] + np.int64(rt[h + 1])
        nc = 0
        for j in range(nm):  # phase 2: low-bit filter inside each bucket
            budget = flips - mask_flips[j]
            for e in range(begin[j], end[j]):
                if popcount(np.uint64(low[e]) ^ qlow) <= budget:
                    if nc == cand.shape[0]:
                        grown = np.empty(2 * nc, dtype=np.int64)
                        grown[:nc] = cand
                        cand = grown
                    cand[nc] = e
                    nc += 1
        for c in range(nc):  # phase 3: row numbers
            cand[c] = pos[cand[c]]
        for c in range(nc):  # phase 4: verify against the full code
            p = cand[c]
            d = row_distance(q, words, p)
            if d > radius or not is_alive(alive, p):
                continue
            first = True
            for t2 in range(t):
                if popcount(np.uint64(substring(words[p], starts[t2], lengths[t2]) ^ qkeys[t2])) <= flips:
                    first = False
                    break
            if first:
                if count < cap:
                    out_pos[count] = p
                    out_dist[count] = d
                count += 1
    return count


@njit(cache=True, nogil=True)
def probe_inline(
    q: np.ndarray,
    alive: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    low_bits: np.ndarray,
    base: np.ndarray,
    rel: np.ndarray,
    positions: np.ndarray,
    table_codes: np.ndarray,
    masks: np.ndarray,
    mask_flips: np.ndarray,
    flips: int,
    radius: int,
    out_pos: np.ndarray,
    out_dist: np.ndarray,
) -> int:
    """`probe` for one-word (64-bit) codes whose tables hold each row's code inline, in bucket order.

    Verifying a candidate then reads the bucket's own contiguous codes instead of one random row per
    candidate: at radius 10 over 10M codes that is ~20k fewer cache misses per query. Same contract as
    `probe`; a row is reported by the first table where its substring is within `flips` bits.
    """
    m = starts.shape[0]
    nm = masks.shape[0]
    cap = out_pos.shape[0]
    q0 = q[0]
    qkeys = np.empty(m, dtype=np.int64)
    for t in range(m):
        qkeys[t] = substring(q, starts[t], lengths[t])
    begin = np.empty(nm, dtype=np.int64)
    end = np.empty(nm, dtype=np.int64)
    count = 0
    for t in range(m):
        bt = base[t]
        rt = rel[t]
        codes = table_codes[t]
        for j in range(nm):  # bucket bounds first, so their cache misses overlap
            h = qkeys[t] >> low_bits[t] ^ masks[j]
            begin[j] = bt[h >> SUPER_SHIFT] + np.int64(rt[h])
            end[j] = bt[(h + 1) >> SUPER_SHIFT] + np.int64(rt[h + 1])
        for j in range(nm):
            for e in range(begin[j], end[j]):
                c = codes[e]
                d = popcount(c ^ q0)
                if d > radius:
                    continue
                # reported here only if this table is the first whose substring is within `flips`
                first = True
                for t2 in range(t + 1):
                    shift = np.uint64(64 - starts[t2] - lengths[t2])
                    sub = np.int64((c >> shift) & ((_U1 << np.uint64(lengths[t2])) - _U1))
                    if popcount(np.uint64(sub ^ qkeys[t2])) <= flips:
                        first = t2 == t
                        break
                    if t2 == t:
                        first = False
                if not first:
                    continue
                p = np.int64(positions[t, e])
                if not is_alive(alive, p):
                    continue
                if count < cap:
                    out_pos[count] = p
                    out_dist[count] = d
                count += 1
    return count


@njit(cache=True, nogil=True)
def flip_masks(prefix_bits: int, flips: int) -> tuple[np.ndarray, np.ndarray]:
    """Every mask of at most `flips` set bits among `prefix_bits`, ordered by bit count (and its count)."""
    total = 0
    for k in range(min(flips, prefix_bits) + 1):
        c = 1
        for i in range(k):
            c = c * (prefix_bits - i) // (i + 1)
        total += c
    masks = np.empty(total, dtype=np.int64)
    counts = np.empty(total, dtype=np.int64)
    idx = np.empty(max(flips, 1), dtype=np.int64)
    n = 0
    for k in range(min(flips, prefix_bits) + 1):
        for i in range(k):
            idx[i] = i
        while True:
            mask = 0
            for i in range(k):
                mask |= 1 << idx[i]
            masks[n] = mask
            counts[n] = k
            n += 1
            # next k-combination in lexicographic order
            i = k - 1
            while i >= 0 and idx[i] == prefix_bits - k + i:
                i -= 1
            if i < 0:
                break
            idx[i] += 1
            for j in range(i + 1, k):
                idx[j] = idx[j - 1] + 1
    return masks, counts


@njit(cache=True, nogil=True)
def scan(
    q: np.ndarray, words: np.ndarray, alive: np.ndarray, n: int, radius: int, out_pos: np.ndarray, out_dist: np.ndarray
) -> int:
    """Exact linear scan of the first n rows (same output convention as `probe`)."""
    cap = out_pos.shape[0]
    count = 0
    for p in range(n):
        d = row_distance(q, words, p)
        if d <= radius and is_alive(alive, p):
            if count < cap:
                out_pos[count] = p
                out_dist[count] = d
            count += 1
    return count


@njit(cache=True, nogil=True)
def probe_batch(
    qs: np.ndarray,
    words: np.ndarray,
    alive: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    low_bits: np.ndarray,
    base: np.ndarray,
    rel: np.ndarray,
    positions: np.ndarray,
    lows: np.ndarray,
    masks: np.ndarray,
    mask_flips: np.ndarray,
    flips: int,
    radius: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`probe` for many queries at once, returned grouped by query: (starts, rows, distances).

    Rows and distances of query i are [starts[i], starts[i + 1]). Same contract as `probe`: every live row
    within `radius`, each reported once per query (by the first table where its substring is within `flips`).

    Three phases, each arranged for memory locality rather than query by query:
    1. Per table, the batch's (query, mask) probes are counting-sorted by their bucket's top bits (a
       "partition" of 2^SUPER_SHIFT buckets, ~4k rows at 1M codes), then run partition by partition: each
       partition's offsets and low bits are read from memory once and then served from L1 for every query
       that probes it. One query at a time, each probed bucket was a random read into 5 B per row and table.
       A probe is one word (`_pack_probe`), and within a partition the probes with no low-bit budget left
       come first (most of them: 120 of 137 masks per table at 1M), so the filter's branch on it predicts.
    2. Buckets are filtered 8 low-bit bytes per step (`_filter_probes`), not byte by byte: a bucket holds
       ~15 rows at 1M codes, and the byte loop cost a mispredicted branch per bucket and per passing row.
       With no budget left, the test is byte equality, a third of the work of a popcount per byte.
    3. The candidates of every table are counting-sorted by row block and verified against the full codes
       in row order: ~300 candidates per query, which verified in table order were each a cache and TLB miss
       into the codes (32 MB at 1M); in row order the reads sweep the codes front to back.
    Hot loops live in helper kernels with fixed buffers: growing arrays inside a loop costs reference counting.
    """
    nq = qs.shape[0]
    if nq > MAX_BATCH_QUERIES:
        raise ValueError("probe_batch takes at most MAX_BATCH_QUERIES queries")
    m = starts.shape[0]
    nm = masks.shape[0]
    nb = rel.shape[1] - 1
    n_parts = (nb >> SUPER_SHIFT) + 1
    qkeys = np.empty((nq, m), dtype=np.int64)
    for i in range(nq):
        for t in range(m):
            qkeys[i, t] = substring(qs[i], starts[t], lengths[t])
    n_probes = nq * nm
    mask_slot, slot_of_masks, masks_in_slot = _mask_slots(masks, mask_flips, flips)
    slot_start = np.empty(2 * n_parts + 1, dtype=np.int64)
    probes = np.empty(n_probes, dtype=np.int64)  # one word per probe: see _pack_probe
    cand_qt = np.empty(max(4096, 64 * nq), dtype=np.int64)  # query << 8 | table
    cand_row = np.empty(cand_qt.shape[0], dtype=np.int64)
    nc = 0
    for t in range(m):
        lb = low_bits[t]
        low_mask = (1 << lb) - 1
        # Counting sort of the batch's (query, mask) probes by slot: partition << 1 | (budget > 0), so a
        # partition's budget-0 probes run together and then its others (the filter branches on the budget).
        # A query's slot is its partition's XOR each mask's: counted once per distinct slot of the masks.
        slot_start[:] = 0
        for i in range(nq):
            qslot = (qkeys[i, t] >> lb >> SUPER_SHIFT) << 1
            for u in range(slot_of_masks.shape[0]):
                slot_start[(qslot ^ slot_of_masks[u]) + 1] += masks_in_slot[u]
        for slot in range(2 * n_parts):
            slot_start[slot + 1] += slot_start[slot]
        fill = slot_start[:-1].copy()
        for i in range(nq):
            qhigh = qkeys[i, t] >> lb
            qslot = (qhigh >> SUPER_SHIFT) << 1
            qlow = qkeys[i, t] & low_mask
            for j in range(nm):
                slot = qslot ^ mask_slot[j]
                dest = fill[slot]
                fill[slot] = dest + 1
                probes[dest] = _pack_probe(qhigh ^ masks[j], i, qlow, flips - mask_flips[j])
        s = 0
        while s < n_probes:  # the filter stops where its candidate buffer is full: grow it and go on
            nc, s = _filter_probes(
                probes, s, n_probes, t, lb, base[t], rel[t], lows[t], positions[t], cand_qt, cand_row, nc
            )
            if s < n_probes:
                grown_qt = np.empty(2 * cand_qt.shape[0], dtype=np.int64)
                grown_qt[:nc] = cand_qt[:nc]
                cand_qt = grown_qt
                grown_row = np.empty(2 * cand_row.shape[0], dtype=np.int64)
                grown_row[:nc] = cand_row[:nc]
                cand_row = grown_row
    cand_qt, cand_row = _in_row_order(cand_qt, cand_row, nc, words.shape[0])
    out_q = np.empty(nc, dtype=np.int64)
    out_row = np.empty(nc, dtype=np.int64)
    out_dist = np.empty(nc, dtype=np.int32)
    count = _verify_candidates(
        qs, qkeys, words, alive, starts, lengths, flips, radius, cand_qt, cand_row, out_q, out_row, out_dist
    )
    return group_by_query(nq, out_q[:count], out_row[:count], out_dist[:count])


@njit(cache=True, nogil=True)
def _mask_slots(masks: np.ndarray, mask_flips: np.ndarray, flips: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per mask, the slot offset it moves a probe by (its partition bits << 1 | whether a budget is left), and
    the distinct offsets with how many masks share each (few: ~37 of 137 at 1M codes)."""
    mask_slot = np.empty(masks.shape[0], dtype=np.int64)
    for j in range(masks.shape[0]):
        mask_slot[j] = ((masks[j] >> SUPER_SHIFT) << 1) | (1 if mask_flips[j] < flips else 0)
    distinct = np.unique(mask_slot)
    counts = np.zeros(distinct.shape[0], dtype=np.int64)
    for j in range(masks.shape[0]):
        counts[np.searchsorted(distinct, mask_slot[j])] += 1
    return mask_slot, distinct, counts


_BYTES_LO = np.uint64(0x0101010101010101)
_BYTES_HI = np.uint64(0x8080808080808080)
_PAIRS = np.uint64(0x5555555555555555)
_QUADS = np.uint64(0x3333333333333333)
_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)

# A batch's probe is packed in one int64 (bucket << 32 | query << 16 | query's low bits << 8 | budget), so the
# counting sort by partition moves one word per probe and the filter reads one. Low bits are at most 8 and
# budgets (flips) at most 32; a batch holds at most 2^16 queries (MainSegment.search_batch splits larger ones);
# buckets have at most 29 bits (prefix_bits_for, segments under 2^32 codes), so the word is never negative.
MAX_BATCH_QUERIES = 1 << 16


@njit(cache=True, nogil=True, inline="always")
def _pack_probe(bucket: int, query: int, qlow: int, budget: int) -> int:
    return (bucket << 32) | (query << 16) | (qlow << 8) | budget


@njit(cache=True, nogil=True, inline="always")
def _unpack_probe(probe: int) -> tuple[int, int, int, int]:
    """(bucket, query, query's low bits, budget) of a `_pack_probe` word."""
    return probe >> 32, (probe >> 16) & 0xFFFF, (probe >> 8) & 0xFF, probe & 0xFF


@intrinsic
def _load8_intrinsic(typingctx, a, e):  # type: ignore[no-untyped-def]
    """One unaligned 8-byte load of a uint8 array's a[e:e + 8], in native byte order (no bounds check)."""
    sig = types.uint64(a, e)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        array = context.make_array(signature.args[0])(context, builder, args[0])
        address = builder.gep(array.data, [args[1]])
        return builder.load(builder.bitcast(address, ir.IntType(64).as_pointer()), align=1)

    return sig, codegen


@intrinsic
def _prefetch_intrinsic(typingctx, a, e):  # type: ignore[no-untyped-def]
    """Hint the CPU to fetch the cache line holding a[e] (LLVM's prefetch: read, keep in all cache levels)."""
    sig = types.void(a, e)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        array = context.make_array(signature.args[0])(context, builder, args[0])
        address = builder.bitcast(builder.gep(array.data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32]), "llvm.prefetch.p0i8"
        )
        builder.call(fn, [address, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _prefetch_range(a: np.ndarray, lo: int, hi: int) -> None:
    """Prefetch every cache line of a[lo:hi] (a uint8 or uint16 array; lines of 64 bytes)."""
    step = 64 // a.itemsize
    for e in range(lo, min(hi, a.shape[0]), step):
        _prefetch_intrinsic(a, np.int64(e))


@njit(cache=True, nogil=True, inline="always")
def _load8(a: np.ndarray, e: int) -> np.uint64:
    """Bytes a[e:e + 8] as a little-endian uint64: byte a[e + k] is bits 8k..8k+7. One load, where byte loads
    compiled to eight (numba's negative-index handling keeps LLVM from merging them)."""
    if _LITTLE_ENDIAN:
        return _load8_intrinsic(a, np.int64(e))
    v = np.uint64(0)
    for k in range(8):
        v |= np.uint64(a[e + k]) << np.uint64(8 * k)
    return v


@njit(cache=True, nogil=True, inline="always")
def _over_budget(x: np.uint64, limit: np.uint64) -> np.uint64:
    """Top bit of each byte of x set where that byte's popcount exceeds the budget (`limit` = 127 - budget in
    every byte; popcounts are <= 8, so adding it never carries into the next byte)."""
    x = x - ((x >> np.uint64(1)) & _PAIRS)
    x = (x & _QUADS) + ((x >> np.uint64(2)) & _QUADS)
    x = (x + (x >> np.uint64(4))) & _NIBBLES
    return (x + limit) & _BYTES_HI


@njit(cache=True, nogil=True, inline="always")
def _first_bytes(n: int) -> np.uint64:
    """A mask of the low `n` bytes of a uint64 (all of them from 8 on, none below 1), without a branch: a
    bucket's size decides it, and branching on that mispredicted about twice per bucket."""
    half = np.uint64(4 * min(max(n, 0), 8))
    return ((_U1 << half) << half) - _U1  # two shifts: one by 64 bits would be undefined


@njit(cache=True, nogil=True, inline="always")
def _emit(ok: np.uint64, e: int, qt: int, cand_qt: np.ndarray, cand_row: np.ndarray, nc: int) -> int:
    """Append entry e + k for each byte k of `ok` whose top bit is set."""
    while ok:
        cand_qt[nc] = qt
        cand_row[nc] = e + (_cttz(ok) >> 3)
        nc += 1
        ok &= ok - _U1
    return nc


@njit(cache=True, nogil=True, inline="always")
def _zero_bytes(x: np.uint64) -> np.uint64:
    """Top bit of each byte of x set where that byte is 0, exactly (no borrow between bytes): adding 127 to a
    byte's low 7 bits sets its top bit unless they are all 0, and the byte's own top bit is or-ed in."""
    return ~(((x & _LOW7) + _LOW7) | x) & _BYTES_HI


@njit(cache=True, nogil=True, inline="always")
def _within_budget(x: np.uint64, budget: int, limit: np.uint64, size: int) -> np.uint64:
    """Top bit of each of the first `size` bytes of x (low bits XOR the query's) set where that byte's popcount
    is within the budget. Most probes of a batch spend every flip on their bucket (budget 0): for them an
    equality test is a third of the work of a popcount per byte."""
    if budget == 0:
        return _zero_bytes(x) & _first_bytes(size)
    return ~_over_budget(x, limit) & _BYTES_HI & _first_bytes(size)


@njit(cache=True, nogil=True)
def _within_budget_py(x: np.uint64, budget: int, limit: np.uint64, size: int) -> np.uint64:
    """`_within_budget` callable from Python (tests)."""
    return _within_budget(x, budget, limit, size)


@njit(cache=True, nogil=True)
def _filter_probes(
    probes: np.ndarray,
    s: int,
    hi: int,
    t: int,
    lb: int,
    bt: np.ndarray,
    rt: np.ndarray,
    low: np.ndarray,
    pos: np.ndarray,
    cand_qt: np.ndarray,
    cand_row: np.ndarray,
    nc: int,
) -> tuple[int, int]:
    """Scan the buckets of probes [s, hi) (packed by `_pack_probe`) and append (query << 8 | t, row) where the
    low bits are within the probe's budget. Stops before a bucket that might not fit the buffers: returns
    (count, next probe).

    A bucket's first 24 low-bit bytes are tested as three words with no loop (buckets hold ~10-15 rows, and
    a loop over them cost a mispredicted exit per bucket); bytes past the bucket are read and masked out.
    """
    cap = cand_qt.shape[0]
    n_low = low.shape[0]
    start_nc = nc
    fetched = -1  # the last partition whose offsets and low bits were prefetched
    while s < hi:
        h, i, qlow, budget = _unpack_probe(probes[s])
        ahead = (h >> SUPER_SHIFT) + 1
        if ahead > fetched and ahead + 1 < bt.shape[0]:
            # The next partition's probes read its offsets and low bits at random: have their lines on the way
            # while this partition runs (~70 lines at 1M codes; one cache miss each when read in probe order).
            _prefetch_range(low, bt[ahead], bt[ahead + 1])
            _prefetch_range(rt, ahead << SUPER_SHIFT, (ahead + 1) << SUPER_SHIFT)
            fetched = ahead
        b = bt[h >> SUPER_SHIFT] + np.int64(rt[h])
        end = bt[(h + 1) >> SUPER_SHIFT] + np.int64(rt[h + 1])
        size = end - b
        if nc + size > cap:
            break
        qt = (i << 8) | t
        if budget >= lb:  # every row of the bucket is within budget
            for e in range(b, end):
                cand_qt[nc] = qt
                cand_row[nc] = e
                nc += 1
        elif b + 24 <= n_low:
            spread = np.uint64(qlow) * _BYTES_LO
            limit = np.uint64(127 - budget) * _BYTES_LO
            ok0 = _within_budget(_load8(low, b) ^ spread, budget, limit, size)
            ok1 = _within_budget(_load8(low, b + 8) ^ spread, budget, limit, size - 8)
            ok2 = _within_budget(_load8(low, b + 16) ^ spread, budget, limit, size - 16)
            if ok0 | ok1 | ok2:
                nc = _emit(ok0, b, qt, cand_qt, cand_row, nc)
                nc = _emit(ok1, b + 8, qt, cand_qt, cand_row, nc)
                nc = _emit(ok2, b + 16, qt, cand_qt, cand_row, nc)
            for e in range(b + 24, end):
                if popcount(np.uint64(low[e] ^ qlow)) <= budget:
                    cand_qt[nc] = qt
                    cand_row[nc] = e
                    nc += 1
        else:  # the table's last bytes: fewer than 24 left to read
            for e in range(b, end):
                if popcount(np.uint64(low[e] ^ qlow)) <= budget:
                    cand_qt[nc] = qt
                    cand_row[nc] = e
                    nc += 1
        s += 1
    for c in range(start_nc, nc):  # entry -> row number, as a separate pass: independent loads
        cand_row[c] = pos[cand_row[c]]
    return nc, s


ROW_BLOCK_SHIFT = 8  # candidates are verified in blocks of 2^8 rows (8 KiB of 256-bit codes)


@njit(cache=True, nogil=True)
def _in_row_order(cand_qt: np.ndarray, cand_row: np.ndarray, nc: int, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The first nc candidates counting-sorted by row block (moved, not indexed: verifying through an index
    array made each candidate two more random reads)."""
    n_blocks = (n_rows >> ROW_BLOCK_SHIFT) + 1
    block_start = np.zeros(n_blocks + 1, dtype=np.int64)
    for c in range(nc):
        block_start[(cand_row[c] >> ROW_BLOCK_SHIFT) + 1] += 1
    for b in range(n_blocks):
        block_start[b + 1] += block_start[b]
    sorted_qt = np.empty(nc, dtype=np.int64)
    sorted_row = np.empty(nc, dtype=np.int64)
    for c in range(nc):
        b = cand_row[c] >> ROW_BLOCK_SHIFT
        dest = block_start[b]
        block_start[b] = dest + 1
        sorted_qt[dest] = cand_qt[c]
        sorted_row[dest] = cand_row[c]
    return sorted_qt, sorted_row


@njit(cache=True, nogil=True)
def _verify_candidates(
    qs: np.ndarray,
    qkeys: np.ndarray,
    words: np.ndarray,
    alive: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    flips: int,
    radius: int,
    cand_qt: np.ndarray,
    cand_row: np.ndarray,
    out_q: np.ndarray,
    out_row: np.ndarray,
    out_dist: np.ndarray,
) -> int:
    """Keep the live candidates within `radius` whose table is the first to reach them."""
    count = 0
    for c in range(cand_qt.shape[0]):
        i = cand_qt[c] >> 8
        t = cand_qt[c] & 255
        p = cand_row[c]
        d = row_distance(qs[i], words, p)
        if d > radius or not is_alive(alive, p):
            continue
        first = True
        for t2 in range(t):
            if popcount(np.uint64(substring(words[p], starts[t2], lengths[t2]) ^ qkeys[i, t2])) <= flips:
                first = False
                break
        if first:
            out_q[count] = i
            out_row[count] = p
            out_dist[count] = d
            count += 1
    return count


@njit(cache=True, nogil=True)
def group_by_query(
    nq: int, out_q: np.ndarray, out_row: np.ndarray, out_dist: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counting-sort (query, row, distance) triples by query: (starts, rows, distances), as probe_batch returns."""
    n = out_q.shape[0]
    first = np.zeros(nq + 1, dtype=np.int64)
    for c in range(n):
        first[out_q[c] + 1] += 1
    for i in range(nq):
        first[i + 1] += first[i]
    fill = first[:-1].copy()
    rows = np.empty(n, dtype=np.int64)
    dists = np.empty(n, dtype=np.int32)
    for c in range(n):
        dest = fill[out_q[c]]
        fill[out_q[c]] = dest + 1
        rows[dest] = out_row[c]
        dists[dest] = out_dist[c]
    return first, rows, dists


@njit(cache=True, nogil=True)
def scan_batch(
    qs: np.ndarray, words: np.ndarray, alive: np.ndarray, n: int, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact scan of the first n rows for many queries (same output as probe_batch): `scan` per query row.

    The rows scanned (a delta of at most ~64k codes, 2 MiB) stay in cache across queries anyway. Looping
    inline here with result arrays that grow measured 5-7x slower than calling `scan`, whose output buffers
    are fixed arguments (an array variable reassigned in a loop costs reference counting per iteration).
    """
    nq = qs.shape[0]
    first = np.zeros(nq + 1, dtype=np.int64)
    tmp_pos = np.empty(256, dtype=np.int64)
    tmp_dist = np.empty(256, dtype=np.int32)
    rows = np.empty(256, dtype=np.int64)
    dists = np.empty(256, dtype=np.int32)
    count = 0
    for i in range(nq):
        c = scan(qs[i], words, alive, n, radius, tmp_pos, tmp_dist)
        if c > tmp_pos.shape[0]:
            tmp_pos = np.empty(c, dtype=np.int64)
            tmp_dist = np.empty(c, dtype=np.int32)
            c = scan(qs[i], words, alive, n, radius, tmp_pos, tmp_dist)
        if count + c > rows.shape[0]:
            grown_r = np.empty(2 * (count + c), dtype=np.int64)
            grown_r[:count] = rows[:count]
            rows = grown_r
            grown_d = np.empty(2 * (count + c), dtype=np.int32)
            grown_d[:count] = dists[:count]
            dists = grown_d
        rows[count : count + c] = tmp_pos[:c]
        dists[count : count + c] = tmp_dist[:c]
        count += c
        first[i + 1] = count
    return first, rows[:count], dists[:count]
