"""`Store`: every operation the service layer needs on banks, items, hashes, the change log, API keys and audit.

One instance per process (it owns a connection pool); thread-safe; construct it from a URL:
`Store("sqlite:///index/hashsvc.db")` or `Store("postgresql+psycopg://user@host/db")`. The schema must exist: call
`hashsvc.store.upgrade(url)` at start-up. Every curation change writes, in the same transaction, its change-log
rows (for the index) and an audit row (for people), so neither can be missing when the change is there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from hashsvc.errors import ConflictError, NotFoundError, ValidationError
from hashsvc.hashes.codec import get_algorithm
from hashsvc.store import changelog, validation
from hashsvc.store import features as feature_rows
from hashsvc.store.bulk import insert_rows
from hashsvc.store.engine import create_store_engine, parse_url
from hashsvc.store.records import (
    ActiveHashes,
    Actor,
    ApiKey,
    AuditEntry,
    Bank,
    Change,
    HashInput,
    Item,
    ItemHash,
    NewItem,
)
from hashsvc.store.schema import api_keys, audit_log, banks, item_hashes, items
from hashsvc.store.transactions import read_snapshot, utcnow, write_connection, write_transaction


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Default of optional fields in update methods: leave the field as it is (None means clear it)."""

MAX_PAGE = 10_000
ITEM_COLUMNS = ("id", "bank_id", "external_ref", "source", "note", "status", "created_by", "created_at", "metadata")
HASH_COLUMNS = ("id", "item_id", "algorithm", "code", "is_view")
TOKEN_PREFIX = "hsk_"
MAX_ROTATION_GRACE = dt.timedelta(days=30)  # long enough to redeploy every client; the old secret must not linger
# Writing last_used_at on every request would turn every authenticated match into a write; once a minute is
# precise enough to find unused keys.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _actor(actor: Actor | str) -> Actor:
    if isinstance(actor, str):
        actor = Actor(actor)
    validation.actor_name(actor.name)
    return actor


def _key_options(**given: Any) -> dict[str, Any]:
    """The validated subset of a key's disclosure and limits that the caller gave."""
    checks: dict[str, Callable[[Any], Any]] = {
        "disclosure": validation.disclosure,
        "rate_per_s": validation.key_rate,
        "burst": lambda value: validation.key_count("burst", value),
        "max_inflight": lambda value: validation.key_count("max_inflight", value),
        "expires_at": validation.key_expiry,
    }
    return {name: checks[name](value) for name, value in given.items()}


def _auditable(options: dict[str, Any]) -> dict[str, Any]:
    """Key options as JSON for the audit log (times as ISO text)."""
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in options.items()}


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    """The source of truth. See the module docstring and docs/store.md."""

    def __init__(self, url: str | sa.URL, **engine_options: Any) -> None:
        self.url = parse_url(url)
        self.engine: Engine = create_store_engine(self.url, **engine_options)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string(hide_password=True)!r})"

    @property
    def backend(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    # ----------------------------------------------------------------------------------------------- banks

    def create_bank(
        self,
        name: str,
        *,
        category: str,
        actor: Actor | str,
        action: str = "block",
        description: str = "",
        enabled: bool = True,
        thresholds: Mapping[str, int] | None = None,
    ) -> Bank:
        """Create a bank. Raises ValidationError for a bad field, ConflictError if the name is taken."""
        who = _actor(actor)
        values = {
            "name": validation.bank_name(name),
            "category": validation.category(category),
            "action": validation.action(action),
            "description": validation.text("description", description) or "",
            "enabled": bool(enabled),
            "thresholds": validation.thresholds(thresholds),
        }
        with write_transaction(self.engine) as tx:
            if self._bank_row(tx.conn, name, missing_ok=True) is not None:
                raise ConflictError(f"bank {name!r} already exists")
            bank_id = tx.allocate("last_bank_id")
            tx.conn.execute(sa.insert(banks).values(id=bank_id, created_at=tx.now, updated_at=tx.now, **values))
            tx.change("bank_create", bank_id, None, "none")
            tx.audit(who, "bank.create", bank=name, details={k: v for k, v in values.items() if k != "name"})
            return self._bank(self._bank_row(tx.conn, name))

    def get_bank(self, name: str) -> Bank:
        """Raises NotFoundError."""
        with self.engine.connect() as conn:
            return self._bank(self._bank_row(conn, name))

    def get_bank_by_id(self, bank_id: int) -> Bank:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(banks).where(banks.c.id == bank_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no bank with id {bank_id}")
        return self._bank(row)

    def list_banks(self) -> list[Bank]:
        with self.engine.connect() as conn:
            return [self._bank(row) for row in conn.execute(sa.select(banks).order_by(banks.c.name))]

    def update_bank(
        self,
        name: str,
        *,
        actor: Actor | str,
        description: str | _Unset = UNSET,
        category: str | _Unset = UNSET,
        action: str | _Unset = UNSET,
        enabled: bool | _Unset = UNSET,
        thresholds: Mapping[str, int] | _Unset | None = UNSET,
    ) -> Bank:
        """Change a bank's fields; disabling it makes its items stop matching, enabling brings them back.

        Raises NotFoundError, ValidationError.
        """
        who = _actor(actor)
        values: dict[str, Any] = {}
        if not isinstance(description, _Unset):
            values["description"] = validation.text("description", description) or ""
        if not isinstance(category, _Unset):
            values["category"] = validation.category(category)
        if not isinstance(action, _Unset):
            values["action"] = validation.action(action)
        if not isinstance(thresholds, _Unset):
            values["thresholds"] = validation.thresholds(thresholds)
        with write_transaction(self.engine) as tx:
            row = self._bank_row(tx.conn, name)
            changed = {k: v for k, v in values.items() if getattr(row, k) != v}
            toggled = not isinstance(enabled, _Unset) and bool(enabled) != row.enabled
            if not changed and not toggled:
                return self._bank(row)
            if toggled:
                changed["enabled"] = bool(enabled)
            tx.conn.execute(sa.update(banks).where(banks.c.id == row.id).values(updated_at=tx.now, **changed))
            if set(changed) - {"enabled"}:
                tx.change("bank_update", row.id, None, "none")
            if toggled:
                tx.change(
                    "bank_enable" if enabled else "bank_disable", row.id, None, "activate" if enabled else "deactivate"
                )
            tx.audit(who, "bank.update", bank=name, details=changed)
            return self._bank(self._bank_row(tx.conn, name))

    def disable_bank(self, name: str, *, actor: Actor | str) -> Bank:
        return self.update_bank(name, actor=actor, enabled=False)

    def enable_bank(self, name: str, *, actor: Actor | str) -> Bank:
        return self.update_bank(name, actor=actor, enabled=True)

    def delete_bank(self, name: str, *, actor: Actor | str) -> None:
        """Delete a bank with all its items and hashes. Raises NotFoundError."""
        who = _actor(actor)
        with write_transaction(self.engine) as tx:
            row = self._bank_row(tx.conn, name)
            count = tx.conn.execute(sa.select(sa.func.count()).where(items.c.bank_id == row.id)).scalar_one()
            # Explicit deletes rather than relying on ON DELETE CASCADE alone: it works even on a SQLite
            # connection opened elsewhere with foreign keys off.
            item_ids = sa.select(items.c.id).where(items.c.bank_id == row.id).scalar_subquery()
            tx.conn.execute(sa.delete(item_hashes).where(item_hashes.c.item_id.in_(item_ids)))
            feature_rows.delete_for_bank(tx.conn, row.id)
            tx.conn.execute(sa.delete(items).where(items.c.bank_id == row.id))
            tx.conn.execute(sa.delete(banks).where(banks.c.id == row.id))
            tx.change("bank_delete", row.id, None, "deactivate")
            tx.audit(who, "bank.delete", bank=name, details={"items": count})

    # ----------------------------------------------------------------------------------------------- items

    def add_item(
        self,
        bank: str,
        hashes: HashInput,
        *,
        actor: Actor | str,
        external_ref: str | None = None,
        source: str | None = None,
        note: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        views: HashInput = (),
        features: tuple[str, int, bytes] | None = None,
        with_rows: Callable[[Connection, int], None] | None = None,
        video: bool = False,
    ) -> Item:
        """Add one item with its hashes (and the hashes of edited views of its image, and its local features:
        (algorithm, count, blob), see hashsvc.store.features). Raises NotFoundError (bank), ConflictError
        (reference taken in the bank), ValidationError, InvalidHashError. `with_rows(conn, item_id)` writes rows
        of another table that belong to the item (a video's frame list) in the same transaction."""
        new = NewItem(
            hashes, external_ref=external_ref, source=source, note=note, metadata=metadata, views=views, video=video
        )
        [item_id] = self._add_items(
            bank, [new], _actor(actor), action="item.add", features=features, with_rows=with_rows
        )
        return self.get_item(item_id)

    def add_items(self, bank: str, new_items: Iterable[NewItem], *, actor: Actor | str) -> list[int]:
        """Add many items in one transaction (all or none); return their ids in input order.

        Raises as add_item; nothing is written if any item is invalid or conflicts.
        """
        return self._add_items(bank, list(new_items), _actor(actor), action="items.import")

    def _add_items(
        self,
        bank: str,
        new_items: Sequence[NewItem],
        who: Actor,
        *,
        action: str,
        features: tuple[str, int, bytes] | None = None,
        with_rows: Callable[[Connection, int], None] | None = None,
    ) -> list[int]:
        validation.bank_name(bank)
        prepared = []
        for position, new in enumerate(new_items):
            try:
                prepared.append(validation.new_item(new))
            except ValidationError as exc:  # InvalidHashError is not a ValidationError: it passes unchanged
                raise ValidationError(
                    f"item {position}: {exc.message}" if len(new_items) > 1 else exc.message
                ) from None
        if not prepared:
            return []
        refs = [p[0] for p in prepared if p[0] is not None]
        if len(set(refs)) != len(refs):
            raise ConflictError("the same reference appears twice in one import")
        creator = who.name
        with write_transaction(self.engine) as tx:
            bank_row = self._bank_row(tx.conn, bank)
            if len(prepared) == 1 and refs:
                self._check_ref_free(tx.conn, bank_row, refs[0])
            first_item = tx.allocate("last_item_id", len(prepared))
            next_hash = tx.allocate("last_hash_id", sum(len(p[4]) for p in prepared))
            ids = list(range(first_item, first_item + len(prepared)))
            item_rows: list[tuple[Any, ...]] = []
            hash_rows: list[tuple[int, int, str, bytes, bool]] = []
            for item_id, (ref, source, note, meta, codes) in zip(ids, prepared, strict=True):
                item_rows.append((item_id, bank_row.id, ref, source, note, "active", creator, tx.now, meta))
                for algorithm, code, view in codes:
                    hash_rows.append((next_hash, item_id, algorithm, code, view))
                    next_hash += 1
            try:
                insert_rows(tx.conn, items, ITEM_COLUMNS, item_rows)
            except sa.exc.IntegrityError:
                raise ConflictError(f"a reference in this import already exists in bank {bank!r}") from None
            insert_rows(tx.conn, item_hashes, HASH_COLUMNS, hash_rows)
            if features is not None:  # one item added from an image: its features come with its 'activate'
                feature_rows.insert_features(tx.conn, ids[0], *features)
            if with_rows is not None:
                for item_id in ids:
                    with_rows(tx.conn, item_id)
            effect = "activate" if bank_row.enabled else "none"
            tx.change("item_add", bank_row.id, ids[0], effect, last_item_id=ids[-1])
            details: dict[str, Any] = {"count": len(ids), "hashes": len(hash_rows)}
            if len(ids) > 1:
                details.update(first_id=ids[0], last_id=ids[-1])
            tx.audit(who, action, bank=bank, item_id=ids[0] if len(ids) == 1 else None, details=details)
            return ids

    def get_item(self, item_id: int) -> Item:
        """Raises NotFoundError."""
        with read_snapshot(self.engine, lookups=True) as conn:
            found = self._load_items(conn, items.c.id == item_id)
        if not found:
            raise NotFoundError(f"no item with id {item_id}")
        return found[0]

    def find_item(self, bank: str, external_ref: str) -> Item:
        """Look an item up by its partner reference. Raises NotFoundError, ValidationError."""
        validation.lookup("reference", external_ref)
        with read_snapshot(self.engine, lookups=True) as conn:
            bank_row = self._bank_row(conn, bank)
            found = self._load_items(
                conn, sa.and_(items.c.bank_id == bank_row.id, items.c.external_ref == external_ref)
            )
        if not found:
            raise NotFoundError(f"no item with reference {external_ref!r} in bank {bank!r}")
        return found[0]

    def find_items_by_hash(self, algorithm: str, code: str | bytes) -> list[Item]:
        """Every item (any status, any bank) holding exactly this hash. Raises InvalidHashError."""
        [(name, packed)] = validation.hashes([(algorithm, code)])
        holders = sa.select(item_hashes.c.item_id).where(item_hashes.c.algorithm == name, item_hashes.c.code == packed)
        with read_snapshot(self.engine, lookups=True) as conn:
            return self._load_items(conn, items.c.id.in_(holders))

    def list_items(self, bank: str, *, after_id: int = 0, limit: int = 100, status: str | None = None) -> list[Item]:
        """A page of a bank's items in id order; pass the last id seen as `after_id` for the next page."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be from 1 to {MAX_PAGE}")
        with read_snapshot(self.engine, lookups=True) as conn:
            bank_row = self._bank_row(conn, bank)
            where = sa.and_(items.c.bank_id == bank_row.id, items.c.id > after_id)
            if status is not None:
                where = sa.and_(where, items.c.status == validation.choice("status", status, ("active", "disabled")))
            return self._load_items(conn, where, limit=limit)

    def count_items(self, bank: str, *, status: str | None = None) -> int:
        with self.engine.connect() as conn:
            bank_row = self._bank_row(conn, bank)
            query = sa.select(sa.func.count()).where(items.c.bank_id == bank_row.id)
            if status is not None:
                query = query.where(items.c.status == validation.choice("status", status, ("active", "disabled")))
            return int(conn.execute(query).scalar_one())

    def update_item(
        self,
        item_id: int,
        *,
        actor: Actor | str,
        note: str | _Unset | None = UNSET,
        source: str | _Unset | None = UNSET,
        metadata: Mapping[str, Any] | _Unset | None = UNSET,
    ) -> Item:
        """Edit an item's descriptive fields (hashes never change: delete and re-add instead)."""
        who = _actor(actor)
        values: dict[str, Any] = {}
        if not isinstance(note, _Unset):
            values["note"] = validation.text("note", note)
        if not isinstance(source, _Unset):
            values["source"] = validation.text("source", source, max_length=validation.MAX_REF)
        if not isinstance(metadata, _Unset):
            values["metadata"] = validation.metadata(metadata)
        with write_transaction(self.engine) as tx:
            row = self._item_row(tx.conn, item_id)
            if values:
                tx.conn.execute(sa.update(items).where(items.c.id == item_id).values(**values))
                tx.change("item_update", row.bank_id, item_id, "none")
                tx.audit(who, "item.update", bank=row.bank_name, item_id=item_id, details=values)
        return self.get_item(item_id)

    def disable_item(self, item_id: int, *, reason: str, actor: Actor | str) -> Item:
        """Stop an item from matching, recording why and who. Raises NotFoundError, ValidationError."""
        return self._set_status(item_id, "disabled", _actor(actor), validation.text("reason", reason, required=True))

    def enable_item(self, item_id: int, *, actor: Actor | str, reason: str | None = None) -> Item:
        return self._set_status(item_id, "active", _actor(actor), validation.text("reason", reason))

    def _set_status(self, item_id: int, status: str, who: Actor, reason: str | None) -> Item:
        with write_transaction(self.engine) as tx:
            row = self._item_row(tx.conn, item_id)
            if row.status != status:
                tx.conn.execute(
                    sa.update(items)
                    .where(items.c.id == item_id)
                    .values(status=status, status_reason=reason, status_by=who.name, status_at=tx.now)
                )
                if status == "active":
                    # Enabling an item of a disabled bank changes nothing for matching until the bank is enabled.
                    tx.change("item_enable", row.bank_id, item_id, "activate" if row.bank_enabled else "none")
                else:
                    tx.change("item_disable", row.bank_id, item_id, "deactivate")
                verb = "enable" if status == "active" else "disable"
                tx.audit(who, f"item.{verb}", bank=row.bank_name, item_id=item_id, details={"reason": reason})
        return self.get_item(item_id)

    def delete_item(self, item_id: int, *, actor: Actor | str) -> None:
        """Remove an item and its hashes for good. Raises NotFoundError."""
        who = _actor(actor)
        with write_transaction(self.engine) as tx:
            row = self._item_row(tx.conn, item_id)
            tx.conn.execute(sa.delete(item_hashes).where(item_hashes.c.item_id == item_id))
            feature_rows.delete_for_item(tx.conn, item_id)
            tx.conn.execute(sa.delete(items).where(items.c.id == item_id))
            tx.change("item_delete", row.bank_id, item_id, "deactivate")
            tx.audit(
                who, "item.delete", bank=row.bank_name, item_id=item_id, details={"external_ref": row.external_ref}
            )

    # ------------------------------------------------------------------------------------------ change log

    def max_sequence(self) -> int:
        """The sequence number of the latest committed change (0 for an empty store)."""
        with self.engine.connect() as conn:
            return changelog.max_sequence(conn)

    def sequence_reader(self) -> changelog.SequenceReader:
        """`max_sequence` for one caller that reads it on every request, over a connection of its own."""
        return changelog.SequenceReader(self.engine)

    def changes_since(
        self, sequence: int, *, limit: int = 1000, algorithms: Sequence[str] | None = None
    ) -> list[Change]:
        """Up to `limit` changes with a sequence number above `sequence`, in order, each with the hash rows it
        activates (only of `algorithms`, when given). See `records.Change` for how to apply them."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be from 1 to {MAX_PAGE}")
        wanted = None if algorithms is None else [get_algorithm(a).name for a in algorithms]
        with read_snapshot(self.engine, lookups=True) as conn:
            return changelog.read_changes(conn, sequence, limit, wanted)

    @contextmanager
    def active_hashes(self, algorithm: str, *, chunk_size: int = 65_536) -> Iterator[ActiveHashes]:
        """Stream the hashes that currently match (active item, enabled bank) of one algorithm, in chunks.

        The snapshot is consistent with `.sequence`: build an index from the chunks, then apply
        `changes_since(.sequence)`. Memory is bounded by `chunk_size`. Use as a context manager; the read
        transaction stays open until the block ends.
        """
        algo = get_algorithm(algorithm)
        with read_snapshot(self.engine) as conn:
            sequence = changelog.max_sequence(conn)
            if conn.dialect.name == "postgresql":
                # This query reads every row of an algorithm: hash joins are right. Just after a bulk import the
                # tables have no statistics yet and the planner picked nested loops over a cursor (20k rows took
                # 18 s); tell it we want all the rows, and no nested loops.
                conn.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
                conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
            chunks = changelog.stream_active_hashes(conn, algo.name, algo.nbytes, chunk_size)
            try:
                yield ActiveHashes(algo.name, sequence, chunks)
            finally:
                chunks.close()  # closes the cursor even if the caller stopped early

    # -------------------------------------------------------------------------------------------- API keys

    def create_api_key(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        actor: Actor | str,
        disclosure: str = "full",
        rate_per_s: float | None = None,
        burst: int | None = None,
        max_inflight: int | None = None,
        expires_at: dt.datetime | str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key; return it and its token. The token is shown only now: the store keeps its sha256.

        `disclosure` is 'full' or 'decision'; the limits left as None follow the server's settings.
        Raises ValidationError, ConflictError (name taken).
        """
        who = _actor(actor)
        key_name = validation.slug("key name", name)  # a slug like bank names: it shows up in logs and the audit
        scope_list = validation.scopes(list(scopes))
        options = _key_options(
            disclosure=disclosure, rate_per_s=rate_per_s, burst=burst, max_inflight=max_inflight, expires_at=expires_at
        )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 bits of entropy
        with write_transaction(self.engine) as tx:
            if tx.conn.execute(sa.select(api_keys.c.id).where(api_keys.c.name == key_name)).first() is not None:
                raise ConflictError(f"API key {key_name!r} already exists")
            tx.conn.execute(
                sa.insert(api_keys).values(
                    name=key_name,
                    key_hash=_hash_token(token),
                    scopes=scope_list,
                    created_at=tx.now,
                    revoked=False,
                    **options,
                )
            )
            tx.audit(who, "key.create", details={"name": key_name, "scopes": scope_list, **_auditable(options)})
            row = tx.conn.execute(sa.select(api_keys).where(api_keys.c.name == key_name)).one()
        return self._api_key(row), token

    def verify_api_key(self, token: str) -> ApiKey | None:
        """Return the key record for a presented token, or None if unknown or revoked."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            return None
        digest = _hash_token(token)
        now = utcnow()
        current = api_keys.c.key_hash == digest
        # After a rotation the previous secret works until its grace period ends.
        previous = sa.and_(api_keys.c.previous_key_hash == digest, api_keys.c.previous_expires_at > now)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(sa.or_(current, previous))).first()
        # The lookup is by hash, so timing reveals nothing about the token; compare anyway as a belt and braces.
        if row is None or row.revoked:
            return None
        if not (hmac.compare_digest(row.key_hash, digest) or hmac.compare_digest(row.previous_key_hash or "", digest)):
            return None
        key = self._api_key(row)
        if key.expired(now):
            return None
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            with self._plain_write() as conn:
                conn.execute(sa.update(api_keys).where(api_keys.c.id == row.id).values(last_used_at=now))
            key = dataclasses.replace(key, last_used_at=now)
        return key

    def list_api_keys(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            return [self._api_key(row) for row in conn.execute(sa.select(api_keys).order_by(api_keys.c.name))]

    def update_api_key(
        self,
        name: str,
        *,
        actor: Actor | str,
        disclosure: str | _Unset = UNSET,
        rate_per_s: float | _Unset | None = UNSET,
        burst: int | _Unset | None = UNSET,
        max_inflight: int | _Unset | None = UNSET,
        expires_at: dt.datetime | str | _Unset | None = UNSET,
    ) -> ApiKey:
        """Change a key's disclosure, limits (None: back to the server's setting) or expiry (None: never).
        Raises NotFoundError."""
        who = _actor(actor)
        validation.lookup("key name", name)
        given = {
            "disclosure": disclosure,
            "rate_per_s": rate_per_s,
            "burst": burst,
            "max_inflight": max_inflight,
            "expires_at": expires_at,
        }
        changed = _key_options(**{k: v for k, v in given.items() if v is not UNSET})
        with write_transaction(self.engine) as tx:
            row = tx.conn.execute(sa.select(api_keys).where(api_keys.c.name == name)).one_or_none()
            if row is None:
                raise NotFoundError(f"no API key named {name!r}")
            if changed:
                tx.conn.execute(sa.update(api_keys).where(api_keys.c.id == row.id).values(**changed))
                tx.audit(who, "key.update", details={"name": name, **_auditable(changed)})
            row = tx.conn.execute(sa.select(api_keys).where(api_keys.c.id == row.id)).one()
        return self._api_key(row)

    def rotate_api_key(self, name: str, *, grace: dt.timedelta, actor: Actor | str) -> tuple[ApiKey, str]:
        """Give a key a new secret; the current one keeps working for `grace` (0: stops now), then only the new.

        Returns the key and its new token (shown only now). A secret from an earlier rotation that is still in
        its grace period stops at once: only the latest two secrets are ever valid. Raises NotFoundError,
        ValidationError (a revoked key, or a grace beyond MAX_ROTATION_GRACE).
        """
        who = _actor(actor)
        validation.lookup("key name", name)
        if not dt.timedelta(0) <= grace <= MAX_ROTATION_GRACE:
            raise ValidationError(f"the grace period must be from 0 to {MAX_ROTATION_GRACE.days} days")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with write_transaction(self.engine) as tx:
            row = tx.conn.execute(sa.select(api_keys).where(api_keys.c.name == name)).one_or_none()
            if row is None:
                raise NotFoundError(f"no API key named {name!r}")
            if row.revoked:
                raise ValidationError(f"API key {name!r} is revoked; create a new key instead")
            ends = tx.now + grace
            tx.conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == row.id)
                .values(key_hash=_hash_token(token), previous_key_hash=row.key_hash, previous_expires_at=ends)
            )
            tx.audit(who, "key.rotate", details={"name": name, "previous_valid_until": ends.isoformat()})
            row = tx.conn.execute(sa.select(api_keys).where(api_keys.c.id == row.id)).one()
        return self._api_key(row), token

    def revoke_api_key(self, name: str, *, actor: Actor | str) -> ApiKey:
        """Revoke a key for good (idempotent). Raises NotFoundError."""
        who = _actor(actor)
        validation.lookup("key name", name)
        with write_transaction(self.engine) as tx:
            row = tx.conn.execute(sa.select(api_keys).where(api_keys.c.name == name)).one_or_none()
            if row is None:
                raise NotFoundError(f"no API key named {name!r}")
            if not row.revoked:
                tx.conn.execute(
                    sa.update(api_keys).where(api_keys.c.id == row.id).values(revoked=True, revoked_at=tx.now)
                )
                tx.audit(who, "key.revoke", details={"name": name})
            row = tx.conn.execute(sa.select(api_keys).where(api_keys.c.id == row.id)).one()
        return self._api_key(row)

    # ----------------------------------------------------------------------------------------------- audit

    def record_audit(
        self,
        actor: Actor | str,
        action: str,
        *,
        bank: str | None = None,
        item_id: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record an event that changes nothing in the store (an export, a denied request...). Curation methods
        audit themselves."""
        who = _actor(actor)
        validation.text("action", action, max_length=64, required=True)
        entry = {
            "at": utcnow(),
            "actor": who.name,
            "action": action,
            "bank": bank,
            "item_id": item_id,
            "remote_addr": who.remote_addr,
            "details": validation.metadata(details),
        }
        with self._plain_write() as conn:
            conn.execute(sa.insert(audit_log).values(**entry))

    def list_audit(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        actor: str | None = None,
        bank: str | None = None,
        action: str | None = None,
        item_id: int | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[AuditEntry]:
        """Newest first; pass the last id seen as `before_id` for the next page.

        `action` is exact ("item.disable") or a family with a trailing `*` ("item.*"); `since` is inclusive and
        `until` exclusive, both timezone-aware.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be from 1 to {MAX_PAGE}")
        query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        if actor is not None:
            query = query.where(audit_log.c.actor == validation.lookup("actor", actor))
        if bank is not None:
            query = query.where(audit_log.c.bank == validation.lookup("bank name", bank))
        if action is not None:
            action = validation.lookup("action", action)
            if action.endswith("*"):
                query = query.where(audit_log.c.action.startswith(action[:-1], autoescape=True))
            else:
                query = query.where(audit_log.c.action == action)
        if item_id is not None:
            query = query.where(audit_log.c.item_id == item_id)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        if until is not None:
            query = query.where(audit_log.c.at < until)
        with self.engine.connect() as conn:
            return [AuditEntry(**row._mapping) for row in conn.execute(query)]

    # ------------------------------------------------------------------------------------------- internals

    @contextmanager
    def _plain_write(self) -> Iterator[Connection]:
        """A write that produces no change-log row, so it need not wait for the counter lock."""
        with write_connection(self.engine) as conn:
            yield conn

    @staticmethod
    def _bank_row(conn: Connection, name: str, *, missing_ok: bool = False) -> Row[Any]:
        validation.lookup("bank name", name)  # a NUL in a WHERE clause is an error on PostgreSQL, not a miss
        row = conn.execute(sa.select(banks).where(banks.c.name == name)).one_or_none()
        if row is None and not missing_ok:
            raise NotFoundError(f"no bank named {name!r}")
        return row  # type: ignore[return-value]

    @staticmethod
    def _check_ref_free(conn: Connection, bank_row: Row[Any], ref: str) -> None:
        taken = conn.execute(
            sa.select(items.c.id).where(items.c.bank_id == bank_row.id, items.c.external_ref == ref)
        ).first()
        if taken is not None:
            raise ConflictError(f"bank {bank_row.name!r} already has an item with reference {ref!r} (id {taken.id})")

    @staticmethod
    def _item_row(conn: Connection, item_id: int) -> Row[Any]:
        row = conn.execute(
            sa.select(
                items.c.id,
                items.c.bank_id,
                items.c.status,
                items.c.external_ref,
                banks.c.name.label("bank_name"),
                banks.c.enabled.label("bank_enabled"),
            )
            .select_from(items.join(banks, banks.c.id == items.c.bank_id))
            .where(items.c.id == item_id)
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"no item with id {item_id}")
        return row

    @staticmethod
    def _load_items(conn: Connection, where: sa.ColumnElement[bool], *, limit: int | None = None) -> list[Item]:
        query = (
            sa.select(items, banks.c.name.label("bank_name"))
            .select_from(items.join(banks, banks.c.id == items.c.bank_id))
            .where(where)
            .order_by(items.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        rows = conn.execute(query).all()
        if not rows:
            return []
        codes: dict[int, list[ItemHash]] = {row.id: [] for row in rows}
        for batch_start in range(0, len(rows), 500):  # bounded IN lists: SQLite caps bound parameters
            ids = [row.id for row in rows[batch_start : batch_start + 500]]
            for h in conn.execute(
                sa.select(item_hashes).where(item_hashes.c.item_id.in_(ids)).order_by(item_hashes.c.id)
            ):
                codes[h.item_id].append(ItemHash(h.id, h.algorithm, bytes(h.code), bool(h.is_view)))
        return [
            Item(
                id=row.id,
                bank_id=row.bank_id,
                bank=row.bank_name,
                external_ref=row.external_ref,
                source=row.source,
                note=row.note,
                status=row.status,
                status_reason=row.status_reason,
                status_by=row.status_by,
                status_at=row.status_at,
                created_by=row.created_by,
                created_at=row.created_at,
                metadata=dict(row.metadata),
                hashes=tuple(codes[row.id]),
            )
            for row in rows
        ]

    @staticmethod
    def _bank(row: Row[Any]) -> Bank:
        return Bank(**{k: v for k, v in row._mapping.items()})

    @staticmethod
    def _api_key(row: Row[Any]) -> ApiKey:
        values = dict(row._mapping)
        del values["key_hash"], values["previous_key_hash"]
        values["scopes"] = tuple(values["scopes"])
        return ApiKey(**values)


__all__ = ["UNSET", "Store"]
