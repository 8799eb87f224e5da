"""Which stored items hold a hash, or one near it: the analyst's question when chasing a false positive.

Two ways to find candidates, one way to report them: the serving process asks its live index (exact at any
radius); the CLI's local mode, which has no index in memory, streams the store's active hashes once and compares
them all with numpy (a few seconds per million hashes, and no index to build). Exact holders of any status are
added from the store's (algorithm, code) index, so a disabled item is found too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import sqlalchemy as sa

from hashsvc.errors import InvalidHashError, NotFoundError, ValidationError
from hashsvc.hashes import get_algorithm, parse_hex
from hashsvc.store import Store
from hashsvc.store.schema import item_hashes

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_POPCOUNT = np.array([bin(n).count("1") for n in range(256)], dtype=np.uint8)

# (algorithm, code as a (1, nbytes) uint8 array, radius) -> [(hash ids, distances)] as HammingIndex answers
IndexSearch = Callable[[str, np.ndarray, int], list[tuple[np.ndarray, np.ndarray]]]


def max_radius(algorithm: str) -> int:
    """The widest search allowed: a quarter of the bits (64 for PDQ) already reaches unrelated images."""
    return get_algorithm(algorithm).bits // 4


def check_query(algorithm: Any, value: Any, max_distance: Any) -> tuple[str, bytes, int]:
    """Validate a search; raises InvalidHashError / ValidationError with a reason."""
    if not isinstance(algorithm, str):
        raise InvalidHashError("the algorithm must be a string such as 'pdq'")
    name = get_algorithm(algorithm).name
    code = parse_hex(name, value)
    if max_distance is None:
        max_distance = get_algorithm(name).default_threshold
    limit = max_radius(name)
    if isinstance(max_distance, bool) or not isinstance(max_distance, int) or not 0 <= max_distance <= limit:
        raise ValidationError(f"max_distance must be an integer from 0 to {limit} for {name}")
    return name, code, max_distance


def scan_store(store: Store) -> IndexSearch:
    """Brute force over the store's active hashes, streamed in chunks (constant memory)."""

    def search(algorithm: str, codes: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        query = codes[0]
        found_ids, found_distances = [], []
        with store.active_hashes(algorithm) as active:
            for chunk in active:
                distances = _POPCOUNT[np.bitwise_xor(chunk.codes, query)].sum(axis=1, dtype=np.int32)
                near = distances <= radius
                found_ids.append(chunk.ids[near])
                found_distances.append(distances[near])
        if not found_ids:
            return [(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32))]
        return [(np.concatenate(found_ids), np.concatenate(found_distances))]

    return search


def search_hash(
    store: Store,
    index_search: IndexSearch,
    algorithm: Any,
    value: Any,
    max_distance: Any = None,
    *,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Items holding `value` or a hash within `max_distance` of it, nearest first (at most `limit`)."""
    name, code, radius = check_query(algorithm, value, max_distance)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be from 1 to {MAX_LIMIT}")
    query = np.frombuffer(code, dtype=np.uint8).reshape(1, -1)
    [(ids, distances)] = index_search(name, query, radius)
    nearest: dict[int, int] = {}
    for hash_id, distance in zip(ids.tolist(), distances.tolist(), strict=True):
        nearest[int(hash_id)] = int(distance)
    for item in store.find_items_by_hash(name, code):  # exact holders of any status (disabled ones included)
        for h in item.hashes:
            if h.algorithm == name and h.code == code:
                nearest[h.id] = 0
    ranked = sorted(nearest.items(), key=lambda pair: (pair[1], pair[0]))
    owners = _hash_owners(store, [hash_id for hash_id, _ in ranked[: limit * 2]])
    matches: list[dict[str, Any]] = []
    seen: set[int] = set()
    for hash_id, distance in ranked:
        if hash_id not in owners or owners[hash_id] in seen:
            continue  # deleted since the index saw it, or another hash of an item already listed
        try:
            item = store.get_item(owners[hash_id])
        except NotFoundError:
            continue
        seen.add(item.id)
        stored = next(h for h in item.hashes if h.id == hash_id)
        matches.append(
            {
                "item_id": item.id,
                "bank": item.bank,
                "reference": item.external_ref,
                "status": item.status,
                "note": item.note,
                "algorithm": name,
                "hash": stored.hex,
                "distance": distance,
            }
        )
        if len(matches) >= limit:
            break
    return {"algorithm": name, "hash": code.hex(), "max_distance": radius, "matches": matches}


def _hash_owners(store: Store, hash_ids: list[int]) -> dict[int, int]:
    """hash id -> item id, for the ids that still exist."""
    owners: dict[int, int] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(hash_ids), 500):
            rows = conn.execute(
                sa.select(item_hashes.c.id, item_hashes.c.item_id).where(
                    item_hashes.c.id.in_(hash_ids[start : start + 500])
                )
            )
            owners.update({row.id: row.item_id for row in rows})
    return owners
