"""Who owns a stored hash: the question the matcher asks about every candidate the index returns.

Kept in its own module because it is the one read on the match path: it must stay a single indexed query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hashsvc.store.onestep import OneStep
from hashsvc.store.schema import banks, item_hashes, items
from hashsvc.store.transactions import read_snapshot

_CHUNK = 500  # SQLite caps bound parameters per statement


@dataclass(frozen=True)
class HashOwner:
    """A stored hash that currently matches: its item is active and its bank enabled."""

    hash_id: int
    algorithm: str
    item_id: int
    external_ref: str | None
    bank: str
    category: str
    action: str
    thresholds: dict[str, int]
    # For an item from a partner feed: {"exchange", "entry_id", "labels"}, so a pipeline can report the match
    # to the body that shared the hash (hashsvc.store.exchanges writes this provenance).
    partner: dict[str, Any] | None = None


# Built once, not per match (a statement and its cache key); `ids` is expanded per call.
_OWNERS = OneStep(
    sa.select(
        item_hashes.c.id,
        item_hashes.c.algorithm,
        items.c.id.label("item_id"),
        items.c.external_ref,
        banks.c.name,
        banks.c.category,
        banks.c.action,
        banks.c.thresholds,
        items.c.source,
        items.c.metadata,
    )
    .select_from(
        item_hashes.join(items, items.c.id == item_hashes.c.item_id).join(banks, banks.c.id == items.c.bank_id)
    )
    .where(
        items.c.status == "active",
        banks.c.enabled.is_(True),
        item_hashes.c.id.in_(sa.bindparam("ids", expanding=True)),
    )
)


def matching_owners(engine: sa.Engine, hash_ids: Sequence[int]) -> dict[int, HashOwner]:
    """Owners of those hash ids that currently match (active item, enabled bank); others are left out."""
    found: dict[int, HashOwner] = {}
    ids = sorted({int(i) for i in hash_ids})
    # An index lookup by id: on PostgreSQL, read_snapshot keeps the planner off sequential scans even right
    # after a bulk import, when the new rows have no statistics yet. On SQLite the rows of a chunk come back in
    # one step of the statement (hashsvc.store.onestep): a batch of matches read a row per GIL hand-over.
    with read_snapshot(engine, lookups=True) as conn:
        for start in range(0, len(ids), _CHUNK):
            for hash_id, algorithm, item_id, ref, bank, category, action, thresholds, source, metadata in _OWNERS.rows(
                conn, {"ids": ids[start : start + _CHUNK]}
            ):
                found[hash_id] = HashOwner(
                    hash_id,
                    algorithm,
                    item_id,
                    ref,
                    bank,
                    category,
                    action,
                    dict(thresholds or {}),
                    _partner(source, metadata),
                )
    return found


def _partner(source: str | None, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    if not source or not source.startswith("exchange:") or not metadata or "entry_id" not in metadata:
        return None
    return {
        "exchange": metadata.get("exchange"),
        "entry_id": metadata["entry_id"],
        "labels": list(metadata.get("labels") or []),
    }


def item_codes(engine: sa.Engine, item_ids: Sequence[int], algorithm: str) -> dict[int, list[tuple[int, bytes]]]:
    """The (hash id, code) pairs of one algorithm stored for each of those items.

    The match path asks this only for items another hash already matched (a pHash within threshold whose PDQ
    may be just beyond it), so it is a short indexed read, not a scan."""
    found: dict[int, list[tuple[int, bytes]]] = {}
    ids = sorted({int(i) for i in item_ids})
    query = sa.select(item_hashes.c.id, item_hashes.c.item_id, item_hashes.c.code).where(
        item_hashes.c.algorithm == algorithm
    )
    with read_snapshot(engine, lookups=True) as conn:
        for start in range(0, len(ids), _CHUNK):
            for row in conn.execute(query.where(item_hashes.c.item_id.in_(ids[start : start + _CHUNK]))):
                found.setdefault(row.item_id, []).append((row.id, bytes(row.code)))
    return found
