"""The store side of the local-feature stage: items' feature blobs and the per-bank switch.

Kept out of store.py: the feature stage reads its own table, and only these few queries touch it. Writing a
blob happens inside the item's own write transaction (`Store.add_item(features=...)` calls `insert_features`), so
an item's 'activate' change in the log is what tells every replica to load its features (`features_for_change`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hashsvc.errors import NotFoundError, ValidationError
from hashsvc.store import changelog
from hashsvc.store.records import Actor, Change
from hashsvc.store.schema import bank_feature_options, banks, item_features, items
from hashsvc.store.transactions import read_snapshot, write_transaction

DEFAULT_BANK_FEATURES = True  # see docs/local-features.md ("Which banks"): only items added from images have any
_CHUNK = 500  # SQLite caps bound parameters per statement


@dataclass(frozen=True)
class FeatureRow:
    """One item's stored features blob (hashsvc.features.codec)."""

    item_id: int
    algorithm: str
    count: int
    data: bytes


@dataclass(frozen=True)
class FeatureOwner:
    """An item whose features may match now: active, in an enabled bank with the feature stage on."""

    item_id: int
    external_ref: str | None
    bank: str
    category: str
    action: str


def insert_features(conn: Connection, item_id: int, algorithm: str, count: int, data: bytes) -> None:
    conn.execute(sa.insert(item_features).values(item_id=item_id, algorithm=algorithm, count=count, data=data))


def delete_for_item(conn: Connection, item_id: int) -> None:
    conn.execute(sa.delete(item_features).where(item_features.c.item_id == item_id))


def delete_for_bank(conn: Connection, bank_id: int) -> None:
    """Explicit, like the store's other deletes: ON DELETE CASCADE is off on a SQLite connection opened without
    foreign keys."""
    of_bank = sa.select(items.c.id).where(items.c.bank_id == bank_id).scalar_subquery()
    conn.execute(sa.delete(item_features).where(item_features.c.item_id.in_(of_bank)))
    conn.execute(sa.delete(bank_feature_options).where(bank_feature_options.c.bank_id == bank_id))


def features_for_change(engine: Engine, change: Change) -> list[FeatureRow]:
    """The feature rows an 'activate' change makes matchable: the items it adds or enables, or the active items
    of the bank it enables (the same rule `changelog.read_changes` applies to hashes)."""
    if change.effect != "activate":
        return []
    query = sa.select(item_features).select_from(item_features.join(items, items.c.id == item_features.c.item_id))
    if change.item_id is None:
        query = query.where(items.c.bank_id == change.bank_id, items.c.status == "active")
    else:
        last = change.last_item_id if change.last_item_id is not None else change.item_id
        query = query.where(item_features.c.item_id.between(change.item_id, last), items.c.status == "active")
    with read_snapshot(engine, lookups=change.item_id is not None) as conn:
        return [FeatureRow(r.item_id, r.algorithm, r.count, bytes(r.data)) for r in conn.execute(query)]


def features_of(engine: Engine, item_ids: Sequence[int]) -> dict[int, FeatureRow]:
    """The stored feature rows of these items (those that have one), by item id."""
    ids = sorted({int(i) for i in item_ids})
    found: dict[int, FeatureRow] = {}
    with read_snapshot(engine, lookups=True) as conn:
        for start in range(0, len(ids), _CHUNK):
            query = sa.select(item_features).where(item_features.c.item_id.in_(ids[start : start + _CHUNK]))
            for r in conn.execute(query):
                found[r.item_id] = FeatureRow(r.item_id, r.algorithm, r.count, bytes(r.data))
    return found


def active_features(engine: Engine, chunk_size: int = 2000) -> tuple[int, Iterator[list[FeatureRow]]]:
    """(sequence, chunks of every matchable item's features), consistent with that change-log sequence.

    Reads everything into memory chunk by chunk inside one snapshot; the caller builds its index from the
    chunks, then applies `changes_since(sequence)`."""
    with read_snapshot(engine) as conn:
        sequence = changelog.max_sequence(conn)
        query = (
            sa.select(item_features)
            .select_from(
                item_features.join(items, items.c.id == item_features.c.item_id).join(
                    banks, banks.c.id == items.c.bank_id
                )
            )
            .where(items.c.status == "active", banks.c.enabled.is_(True))
            .order_by(item_features.c.item_id)
        )
        rows = [FeatureRow(r.item_id, r.algorithm, r.count, bytes(r.data)) for r in conn.execute(query)]
    return sequence, (rows[i : i + chunk_size] for i in range(0, len(rows), chunk_size))


def feature_owners(engine: Engine, item_ids: Sequence[int]) -> dict[int, FeatureOwner]:
    """Of those items, the ones whose feature matches count now (active item, enabled bank, stage on)."""
    found: dict[int, FeatureOwner] = {}
    ids = sorted({int(i) for i in item_ids})
    option = bank_feature_options.c.enabled
    query = (
        sa.select(items.c.id, items.c.external_ref, banks.c.name, banks.c.category, banks.c.action, option)
        .select_from(
            items.join(banks, banks.c.id == items.c.bank_id).outerjoin(
                bank_feature_options, bank_feature_options.c.bank_id == banks.c.id
            )
        )
        .where(items.c.status == "active", banks.c.enabled.is_(True))
    )
    with read_snapshot(engine, lookups=True) as conn:
        for start in range(0, len(ids), _CHUNK):
            for row in conn.execute(query.where(items.c.id.in_(ids[start : start + _CHUNK]))):
                if (DEFAULT_BANK_FEATURES if row.enabled is None else row.enabled):
                    found[row.id] = FeatureOwner(row.id, row.external_ref, row.name, row.category, row.action)
    return found


def stage_reachable(engine: Engine) -> bool:
    """Whether any image upload could get a feature match now: some active image item with features in an enabled
    bank whose feature stage is on. The service extracts an upload's features only then (`LiveFeatures.reachable`).

    Cheap when the answer is yes (the first such row ends the query); when it is no, it reads the feature rows'
    items, which is why it is re-asked only at changes that can flip it (hashsvc.features.live)."""
    option = bank_feature_options.c.enabled
    stage_on = sa.or_(option.is_(None), option.is_(True)) if DEFAULT_BANK_FEATURES else option.is_(True)
    query = (
        sa.select(item_features.c.item_id)
        .select_from(
            item_features.join(items, items.c.id == item_features.c.item_id)
            .join(banks, banks.c.id == items.c.bank_id)
            .outerjoin(bank_feature_options, bank_feature_options.c.bank_id == banks.c.id)
        )
        # image items' features ("orb"); video keyframes ("orb-video") serve only video queries
        .where(item_features.c.algorithm == "orb", items.c.status == "active", banks.c.enabled.is_(True), stage_on)
        .limit(1)
    )
    with read_snapshot(engine) as conn:
        return conn.execute(query).first() is not None


def bank_features(engine: Engine) -> dict[str, bool]:
    """Bank name -> whether the local-feature stage looks at its items."""
    query = sa.select(banks.c.name, bank_feature_options.c.enabled).select_from(
        banks.outerjoin(bank_feature_options, bank_feature_options.c.bank_id == banks.c.id)
    )
    with engine.connect() as conn:
        return {
            row.name: DEFAULT_BANK_FEATURES if row.enabled is None else bool(row.enabled) for row in conn.execute(query)
        }


def set_bank_features(engine: Engine, bank: str, enabled: bool, actor: Actor) -> None:
    """Switch the local-feature stage on or off for one bank (audited; takes effect at the next match, since
    every feature candidate's bank is checked in the store). Raises NotFoundError, ValidationError."""
    if not isinstance(enabled, bool):
        raise ValidationError("'features' must be true or false")
    with write_transaction(engine) as tx:
        row = tx.conn.execute(sa.select(banks.c.id).where(banks.c.name == bank)).one_or_none()
        if row is None:
            raise NotFoundError(f"no bank named {bank!r}")
        current = tx.conn.execute(
            sa.select(bank_feature_options.c.enabled).where(bank_feature_options.c.bank_id == row.id)
        ).scalar_one_or_none()
        if current is not None and bool(current) == enabled:
            return
        if current is None:
            tx.conn.execute(sa.insert(bank_feature_options).values(bank_id=row.id, enabled=enabled))
        else:
            tx.conn.execute(
                sa.update(bank_feature_options).where(bank_feature_options.c.bank_id == row.id).values(enabled=enabled)
            )
        tx.change("bank_update", row.id, None, "none")
        tx.audit(actor, "bank.update", bank=bank, details={"features": enabled})
