"""Batched range search (one kernel call for many queries) gives exactly what brute force gives, per query."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_index import SETTINGS, as_dict, brute_force, clustered_codes, flip_bits, queries_for, random_codes

from hashsvc.index import HammingIndex, _kernels
from hashsvc.index.core import BATCH_MIN_QUERIES


def assert_batch_exact(
    index: HammingIndex, ids: np.ndarray, codes: np.ndarray, queries: np.ndarray, radius: int
) -> None:
    assert len(queries) >= BATCH_MIN_QUERIES, "the batch path must be the one under test"
    for strategy in ("auto", "tables", "scan"):
        results = index.range_search(queries, radius, strategy=strategy)
        assert len(results) == len(queries)
        for n, (query, result) in enumerate(zip(queries, results, strict=True)):
            assert as_dict(result) == brute_force(ids, codes, query, radius), (strategy, radius, n)


@SETTINGS
@given(
    bits=st.sampled_from([64, 128, 256]),
    n=st.integers(0, 3000),
    clustered=st.booleans(),
    radius_fraction=st.floats(0, 1),
    queries=st.integers(BATCH_MIN_QUERIES, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_batched_search_equals_brute_force(
    bits: int, n: int, clustered: bool, radius_fraction: float, queries: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    codes = clustered_codes(rng, n, bits, seeds=5) if clustered and n else random_codes(rng, n, bits)
    ids = rng.permutation(10 * n + 1)[:n].astype(np.int64) - 5 * n
    radius = int(radius_fraction**3 * bits)
    index = HammingIndex(bits, merge_threshold=1000)
    index.add(ids, codes)
    assert_batch_exact(index, ids, codes, queries_for(rng, codes, bits, queries), radius)


@pytest.mark.parametrize("radius", [0, 21, 22, 31, 32, 33])
def test_batch_over_main_delta_and_removals_matches_brute_force(radius: int) -> None:
    """Rows in the main segment and in the delta, some removed: every query's answer is still exact."""
    rng = np.random.default_rng(radius)
    main_codes = np.concatenate([clustered_codes(rng, 3000, 256, seeds=10), random_codes(rng, 3000, 256)])
    index = HammingIndex(256, merge_threshold=100_000)
    index.add(np.arange(6000), main_codes)  # bulk load: indexed main segment
    delta_codes = clustered_codes(rng, 500, 256, seeds=3)
    index.add(np.arange(6000, 6500), delta_codes)  # below the merge threshold: stays in the delta
    removed = rng.choice(6500, 300, replace=False)
    index.remove(removed)
    codes = np.concatenate([main_codes, delta_codes])
    keep = np.setdiff1d(np.arange(6500), removed)
    queries = np.concatenate([queries_for(rng, codes, 256, 60), codes[removed[:5]]])
    assert_batch_exact(index, keep, codes[keep], queries, radius)


def test_batch_where_every_query_matches_thousands_grows_its_buffers() -> None:
    """Results far past the kernels' first buffer sizes (thousands per query, ~100k in all) are all returned."""
    rng = np.random.default_rng(1)
    seed = random_codes(rng, 1, 256)[0]
    codes = np.stack([flip_bits(rng, seed, int(rng.integers(0, 6))) for _ in range(4000)])
    index = HammingIndex(256)
    index.add(np.arange(len(codes)), codes)
    queries = np.stack([flip_bits(rng, seed, 3) for _ in range(24)])
    results = index.range_search(queries, 31)
    assert all(len(ids) == len(codes) for ids, _ in results)
    assert_batch_exact(index, np.arange(len(codes)), codes, queries, 31)


def test_batch_results_are_in_query_order_and_independent() -> None:
    """A batch answers each row as a call with that row alone would."""
    rng = np.random.default_rng(2)
    codes = random_codes(rng, 5000, 256)
    index = HammingIndex(256)
    index.add(np.arange(5000), codes)
    queries = np.stack([flip_bits(rng, codes[i], 10) for i in range(0, 5000, 250)])
    batch = index.range_search(queries, 31)
    for query, result in zip(queries, batch, strict=True):
        assert as_dict(result) == as_dict(index.range_search(query[None, :], 31)[0])
    assert [sorted(as_dict(r)) for r in batch] == [[i] for i in range(0, 5000, 250)]


def test_batch_larger_than_one_kernel_call_is_split_and_still_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch above the kernel's query limit (packed in 16 bits of a probe word) runs in chunks: same answers."""
    rng = np.random.default_rng(3)
    codes = np.concatenate([clustered_codes(rng, 2000, 256, seeds=8), random_codes(rng, 2000, 256)])
    index = HammingIndex(256, merge_threshold=1000)
    index.add(np.arange(len(codes)), codes)  # bulk load: an indexed main segment, probed by the tables
    queries = queries_for(rng, codes, 256, 45)
    monkeypatch.setattr(_kernels, "MAX_BATCH_QUERIES", 16)  # 45 queries: chunks of 16, 16 and 13
    assert_batch_exact(index, np.arange(len(codes)), codes, queries, 31)


def test_kernel_refuses_more_queries_than_a_probe_word_can_number() -> None:
    index = HammingIndex(256, merge_threshold=1000)
    index.add(np.arange(3000), random_codes(np.random.default_rng(4), 3000, 256))
    main = index._state.main
    assert main is not None
    masks, mask_flips = main._masks(2)
    too_many = np.zeros((_kernels.MAX_BATCH_QUERIES + 1, 4), dtype=np.uint64)
    with pytest.raises(ValueError, match="MAX_BATCH_QUERIES"):
        _kernels.probe_batch(
            too_many, main.words, main.alive, main.layout.starts, main.layout.lengths, main.low_bits, main.base,
            main.rel, main.positions, main.lows, masks, mask_flips, 2, 31,
        )


@pytest.mark.parametrize("seed", range(4))
def test_word_wide_filters_agree_with_byte_by_byte_popcounts(seed: int) -> None:
    """The filter's two word-wide tests (exact equality for budget 0, popcount per byte otherwise) flag exactly
    the bytes a byte-by-byte popcount keeps, among the first `size` bytes only."""
    rng = np.random.default_rng(seed)
    words = rng.integers(0, 2**63, 2000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 2000, dtype=np.uint64)
    words[::5] &= np.uint64(0x00FF00FF000000FF)  # plenty of zero bytes next to 0xFF ones (borrow cases)
    for x in words:
        for budget in range(3):
            size = int(rng.integers(-2, 11))
            limit = np.uint64(127 - budget) * np.uint64(0x0101010101010101)
            flagged = int(_kernels._within_budget_py(x, budget, limit, size))
            expected = 0
            for byte in range(min(max(size, 0), 8)):
                if bin((int(x) >> (8 * byte)) & 0xFF).count("1") <= budget:
                    expected |= 0x80 << (8 * byte)
            assert flagged == expected, (hex(int(x)), budget, size)
