"""HammingIndex: exact range search (same result set as brute force), updates, duplicates, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashsvc.index import HammingIndex

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def brute_force(ids: np.ndarray, codes: np.ndarray, query: np.ndarray, radius: int) -> dict[int, int]:
    """{id: distance} of every code within radius: the definition the index must reproduce."""
    if len(ids) == 0:
        return {}
    dist = np.unpackbits(codes ^ query[None, :], axis=1).sum(axis=1)
    keep = dist <= radius
    return dict(zip(ids[keep].tolist(), dist[keep].tolist(), strict=True))


def as_dict(result: tuple[np.ndarray, np.ndarray]) -> dict[int, int]:
    ids, dist = result
    assert ids.dtype == np.int64
    assert len(set(ids.tolist())) == len(ids), "an id is reported twice"
    return dict(zip(ids.tolist(), dist.tolist(), strict=True))


def flip_bits(rng: np.random.Generator, code: np.ndarray, count: int) -> np.ndarray:
    bits = np.unpackbits(code)
    bits[rng.choice(bits.size, size=count, replace=False)] ^= 1
    return np.packbits(bits)


def random_codes(rng: np.random.Generator, n: int, bits: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, bits // 8), dtype=np.uint8)


def clustered_codes(rng: np.random.Generator, n: int, bits: int, seeds: int) -> np.ndarray:
    """Many near-duplicates (0..bits/4 flipped bits) of a few seed codes, as re-uploads produce."""
    centers = random_codes(rng, seeds, bits)
    return np.stack([flip_bits(rng, centers[rng.integers(seeds)], int(rng.integers(0, bits // 4))) for _ in range(n)])


def queries_for(rng: np.random.Generator, codes: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Half near-duplicates of stored codes, half random codes."""
    out = []
    for i in range(count):
        if i % 2 == 0 and len(codes):
            out.append(flip_bits(rng, codes[rng.integers(len(codes))], int(rng.integers(0, bits // 4))))
        else:
            out.append(random_codes(rng, 1, bits)[0])
    return np.stack(out)


def assert_exact(index: HammingIndex, ids: np.ndarray, codes: np.ndarray, queries: np.ndarray, radius: int) -> None:
    for strategy in ("auto", "tables", "scan"):
        results = index.range_search(queries, radius, strategy=strategy)
        assert len(results) == len(queries)
        for query, result in zip(queries, results, strict=True):
            assert as_dict(result) == brute_force(ids, codes, query, radius), (strategy, radius)


@SETTINGS
@given(
    bits=st.sampled_from([64, 128, 256]),
    n=st.integers(0, 3000),
    clustered=st.booleans(),
    radius_fraction=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_range_search_equals_brute_force(bits: int, n: int, clustered: bool, radius_fraction: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    codes = clustered_codes(rng, n, bits, seeds=5) if clustered and n else random_codes(rng, n, bits)
    ids = rng.permutation(10 * n + 1)[:n].astype(np.int64) - 5 * n  # unsorted, negative ids too
    radius = int(radius_fraction**3 * bits)  # mostly small radii, sometimes up to all bits
    index = HammingIndex(bits, merge_threshold=1000)
    index.add(ids, codes)
    assert len(index) == n
    assert_exact(index, ids, codes, queries_for(rng, codes, bits, 6), radius)


@pytest.mark.parametrize(
    ("bits", "radii"),
    [
        # 256 bits, 11 tables: 2 flips per table cover radius <= 32, 33 needs 3; 63 and 256 the extremes
        (256, [0, 1, 21, 22, 31, 32, 33, 63, 64, 128, 256]),
        # 64 bits, 3 tables: radius 8 needs 2 flips per table, 9-11 need 3
        (64, [0, 1, 2, 3, 8, 9, 10, 11, 12, 16, 32, 64]),
        (128, [0, 17, 18, 40, 128]),
    ],
)
def test_edge_radii_on_clustered_codes(bits: int, radii: list[int]) -> None:
    rng = np.random.default_rng(bits)
    codes = np.concatenate([clustered_codes(rng, 4000, bits, seeds=20), random_codes(rng, 2000, bits)])
    ids = np.arange(len(codes), dtype=np.int64) * 7
    index = HammingIndex(bits)
    index.add(ids, codes)
    queries = queries_for(rng, codes, bits, 8)
    for radius in radii:
        assert_exact(index, ids, codes, queries, radius)


def test_every_code_within_radius_of_a_stored_code_finds_it() -> None:
    rng = np.random.default_rng(1)
    codes = random_codes(rng, 20000, 256)
    index = HammingIndex(256)
    index.add(np.arange(20000), codes)
    for flipped in (0, 1, 15, 30, 31):
        query = flip_bits(rng, codes[123], flipped)
        found = as_dict(index.range_search(query[None, :], 31)[0])
        assert found.get(123) == flipped


def test_empty_index_returns_empty_results() -> None:
    index = HammingIndex(256)
    assert len(index) == 0
    results = index.range_search(np.zeros((3, 32), dtype=np.uint8), 31)
    assert [len(ids) for ids, _ in results] == [0, 0, 0]
    assert index.range_search(np.zeros((0, 32), dtype=np.uint8), 31) == []


def test_duplicate_codes_under_different_ids_are_all_returned() -> None:
    rng = np.random.default_rng(2)
    code = random_codes(rng, 1, 256)
    index = HammingIndex(256)
    index.add(np.array([5, 9, 2]), np.repeat(code, 3, axis=0))
    index.add(np.array([11]), code)  # one more in the delta
    ids, dist = index.range_search(code, 0)[0]
    assert sorted(ids.tolist()) == [2, 5, 9, 11]
    assert dist.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("bulk", [True, False], ids=["in-main", "in-delta"])
def test_adding_an_existing_id_replaces_its_code(bulk: bool) -> None:
    rng = np.random.default_rng(3)
    old, new = random_codes(rng, 2, 256)
    index = HammingIndex(256, merge_threshold=1 if bulk else 1000, background_merge=False)
    index.add(np.array([1, 2]), np.stack([old, old]))
    index.add(np.array([1]), new[None, :])
    assert len(index) == 2
    assert as_dict(index.range_search(old[None, :], 0)[0]) == {2: 0}
    assert as_dict(index.range_search(new[None, :], 0)[0]) == {1: 0}


def test_within_one_add_the_last_code_of_an_id_wins() -> None:
    rng = np.random.default_rng(4)
    a, b = random_codes(rng, 2, 64)
    index = HammingIndex(64)
    index.add(np.array([7, 7]), np.stack([a, b]))
    assert len(index) == 1
    assert as_dict(index.range_search(b[None, :], 0)[0]) == {7: 0}
    assert as_dict(index.range_search(a[None, :], 0)[0]) == {}


def test_removed_ids_no_longer_match_and_unknown_ids_are_ignored() -> None:
    rng = np.random.default_rng(5)
    codes = random_codes(rng, 100, 256)
    index = HammingIndex(256, merge_threshold=50, background_merge=False)
    index.add(np.arange(80), codes[:80])  # bulk: main segment
    index.add(np.arange(80, 100), codes[80:])  # delta
    index.remove(np.array([3, 90, 12345, -1]))
    assert len(index) == 98
    for removed in (3, 90):
        assert removed not in as_dict(index.range_search(codes[removed][None, :], 256)[0])
    index.remove(np.array([3, 90]))  # removing twice is a no-op
    assert len(index) == 98
    index.add(np.array([3]), codes[3][None, :])  # and an id can come back
    assert as_dict(index.range_search(codes[3][None, :], 0)[0]) == {3: 0}


@SETTINGS
@given(
    bits=st.sampled_from([64, 256]),
    background=st.booleans(),
    ops=st.lists(
        st.tuples(st.sampled_from(["add", "remove", "compact"]), st.integers(1, 40), st.integers(0, 2**32 - 1)),
        min_size=1,
        max_size=25,
    ),
)
def test_adds_and_removes_interleaved_match_a_model(
    bits: int, background: bool, ops: list[tuple[str, int, int]]
) -> None:
    """Against a dict model, through delta appends, merges (sync and background), replaces and removals."""
    index = HammingIndex(bits, merge_threshold=16, background_merge=background)
    model: dict[int, np.ndarray] = {}
    for op, size, seed in ops:
        rng = np.random.default_rng(seed)
        ids = rng.integers(0, 120, size=size)
        if op == "add":
            codes = random_codes(rng, size, bits)
            base = np.stack(list(model.values())) if model else random_codes(rng, 1, bits)
            codes[::2] = base[rng.integers(len(base), size=len(codes[::2]))]  # exact duplicates too
            index.add(ids, codes)
            model.update(zip(ids.tolist(), codes, strict=True))
        elif op == "remove":
            index.remove(ids)
            for i in ids.tolist():
                model.pop(i, None)
        else:
            index.compact()
        assert len(index) == len(model)
        model_ids = np.array(list(model), dtype=np.int64)
        model_codes = np.stack(list(model.values())) if model else np.zeros((0, bits // 8), np.uint8)
        queries = queries_for(rng, model_codes, bits, 2)
        radius = int(rng.integers(0, bits // 4))
        for query, result in zip(queries, index.range_search(queries, radius), strict=True):
            assert as_dict(result) == brute_force(model_ids, model_codes, query, radius)
    index.wait_for_merge()


def test_invalid_arguments_are_rejected() -> None:
    index = HammingIndex(256)
    with pytest.raises(ValueError):
        HammingIndex(100)
    with pytest.raises(ValueError):
        index.add(np.arange(2), np.zeros((2, 8), dtype=np.uint8))  # 64-bit codes into a 256-bit index
    with pytest.raises(TypeError):
        index.add(np.arange(2), np.zeros((2, 32), dtype=np.int64))
    with pytest.raises(ValueError):
        index.add(np.arange(3), np.zeros((2, 32), dtype=np.uint8))
    with pytest.raises(ValueError):
        index.range_search(np.zeros((1, 32), dtype=np.uint8), -1)
    with pytest.raises(TypeError):
        index.range_search(np.zeros((1, 32), dtype=np.uint8), 2.5)  # type: ignore[arg-type]


def test_a_single_code_may_be_passed_as_one_row() -> None:
    code = np.arange(8, dtype=np.uint8)
    index = HammingIndex(64)
    index.add(np.array([1]), code)
    assert as_dict(index.range_search(code, 0)[0]) == {1: 0}


def test_tens_of_thousands_of_identical_codes_are_all_returned() -> None:
    """One bucket then holds more rows than a compact (16-bit) bucket offset can address."""
    rng = np.random.default_rng(6)
    code = random_codes(rng, 1, 256)
    others = random_codes(rng, 1000, 256)
    index = HammingIndex(256)
    index.add(np.arange(71000), np.concatenate([np.repeat(code, 70000, axis=0), others]))
    ids, dist = index.range_search(code, 3)[0]
    assert set(ids.tolist()) == set(range(70000)) | set(brute_force(np.arange(70000, 71000), others, code[0], 3))
    assert int(dist.max()) <= 3


@pytest.mark.parametrize(("bits", "tables", "radius"), [(256, 16, 31), (256, 12, 20), (64, 4, 10), (64, 5, 9)])
def test_other_table_layouts_are_exact_too(bits: int, tables: int, radius: int) -> None:
    rng = np.random.default_rng(tables)
    codes = np.concatenate([clustered_codes(rng, 3000, bits, seeds=10), random_codes(rng, 3000, bits)])
    ids = np.arange(len(codes), dtype=np.int64)
    index = HammingIndex(bits, tables=tables)
    index.add(ids, codes)
    queries = queries_for(rng, codes, bits, 6)
    for r in (0, radius // 2, radius, radius + 1):
        assert_exact(index, ids, codes, queries, r)


def test_a_bulk_add_built_on_several_threads_answers_exactly_like_brute_force() -> None:
    """`build_threads` only changes who builds the tables of a bulk add into an empty index, never the answers."""
    rng = np.random.default_rng(13)
    codes = random_codes(rng, 70_000, 256)  # above the merge threshold: the bulk path
    codes[1::2] = codes[::2]  # duplicates and near-duplicates, so that radii find more than the query itself
    codes[1::4, 0] ^= 1
    ids = np.arange(10, 70_010, dtype=np.int64)
    index = HammingIndex(256, build_threads=2)
    index.add(ids, codes)
    queries = codes[rng.choice(codes.shape[0], 20, replace=False)]
    for query, found in zip(queries, index.range_search(queries, 31), strict=True):
        assert as_dict(found) == brute_force(ids, codes, query, 31)
