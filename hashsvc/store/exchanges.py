"""The store side of partner feeds: exchange rows, the sync lease, and a page of entries applied in one transaction.

`apply_page` is the heart of resumable sync: a page's additions, updates and retractions, the entries kept
aside, the running totals and the client's checkpoint are written in ONE write transaction, and only if the
caller still holds the exchange's lease. A process killed between pages therefore resumes from the last page
that committed, with that page's items in the bank exactly once; a process that lost its lease (it stalled past
the lease and another replica took over) can write nothing more.

Items written by a feed carry the partner's entry id as `external_ref` (unique within the bank, which is why a
bank is fed by at most one exchange), `source` = `exchange:<name>`, and in `metadata` the provenance:
`{"exchange": name, "entry_id": ..., "labels": [...], "partner": {...}}`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from hashsvc.errors import ConflictError, HashsvcError, InvalidHashError, NotFoundError, ValidationError
from hashsvc.store import validation
from hashsvc.store.bulk import insert_rows
from hashsvc.store.records import Actor
from hashsvc.store.schema import banks, exchange_unknown, exchanges, item_hashes, items
from hashsvc.store.store import HASH_COLUMNS, ITEM_COLUMNS, Store
from hashsvc.store.transactions import WriteTransaction, utcnow, write_transaction

_IN_CHUNK = 500  # SQLite caps bound parameters per statement
STAT_NAMES = ("fetched", "added", "updated", "retracted", "restored", "unchanged", "unknown", "bad", "pages")


class LeaseLostError(HashsvcError):
    """Another process holds this exchange's sync lease (or took it over): this process must stop writing."""

    code = "sync_in_progress"
    http_status = 409


@dataclass(frozen=True)
class ExchangeRecord:
    id: int
    name: str
    type: str
    bank: str
    bank_id: int
    config: dict[str, Any]
    credentials: str | None  # the encrypted token; the service never hands it out
    every_s: int
    paused: bool
    feedback: bool
    checkpoint: dict[str, Any] | None
    next_run_at: dt.datetime | None
    lease_owner: str | None
    lease_until: dt.datetime | None
    failures: int
    last_attempt_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None
    stats: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    kept_aside: int = 0


class FeedRecord(Protocol):
    """What the store reads of one partner entry: hashsvc.exchanges.Entry has these attributes, so a client's
    entries are applied as they are, without a copy per entry (a million per first sync)."""

    @property
    def entry_id(self) -> str: ...
    @property
    def hashes(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def labels(self) -> tuple[str, ...]: ...
    @property
    def metadata(self) -> Mapping[str, Any]: ...
    @property
    def unknown(self) -> Mapping[str, str]: ...
    @property
    def problem(self) -> str | None: ...


@dataclass(frozen=True)
class FeedEntry:
    """A FeedRecord built by hand (see hashsvc.exchanges.Entry for the meaning); `metadata` is the partner's."""

    entry_id: str
    hashes: tuple[tuple[str, str], ...] = ()
    deleted: bool = False
    labels: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    unknown: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None


@dataclass
class PageCounts:
    fetched: int = 0
    added: int = 0
    updated: int = 0
    retracted: int = 0
    restored: int = 0
    unchanged: int = 0
    unknown: int = 0
    bad: int = 0
    added_ids: list[int] = field(default_factory=list)  # for hooks that look at new items (retro-hunting)
    problems: list[str] = field(default_factory=list)  # the first few malformed entries, for the sync's log

    def as_stats(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in STAT_NAMES if name != "pages"}


def feed_actor(name: str) -> Actor:
    return Actor(f"exchange:{name}")


# --------------------------------------------------------------------------------------------- exchanges CRUD

_SELECT = sa.select(exchanges, banks.c.name.label("bank_name")).select_from(
    exchanges.join(banks, banks.c.id == exchanges.c.bank_id)
)


def _record(row: Row[Any], kept_aside: int = 0) -> ExchangeRecord:
    values = {name: row._mapping[column] for name, column in exchanges.c.items()}
    values["bank"] = row.bank_name
    return ExchangeRecord(**values, kept_aside=kept_aside)


def _kept_aside(conn: Connection, exchange_id: int) -> int:
    query = sa.select(sa.func.count()).where(exchange_unknown.c.exchange_id == exchange_id)
    return int(conn.execute(query).scalar_one())


def get_exchange(store: Store, name: str) -> ExchangeRecord:
    """Raises NotFoundError."""
    with store.engine.connect() as conn:
        row = conn.execute(_SELECT.where(exchanges.c.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"no exchange named {name!r:.80}")
        return _record(row, _kept_aside(conn, row.id))


def list_exchanges(store: Store) -> list[ExchangeRecord]:
    with store.engine.connect() as conn:
        rows = conn.execute(_SELECT.order_by(exchanges.c.name)).all()
        return [_record(row, _kept_aside(conn, row.id)) for row in rows]


def create_exchange(
    store: Store,
    *,
    name: str,
    type: str,
    bank: str,
    config: Mapping[str, Any],
    credentials: str | None,
    every_s: int,
    feedback: bool,
    actor: Actor,
) -> ExchangeRecord:
    """Raises NotFoundError (bank), ConflictError (name taken, or the bank already has a feed)."""
    with write_transaction(store.engine) as tx:
        bank_row = tx.conn.execute(sa.select(banks.c.id).where(banks.c.name == bank)).one_or_none()
        if bank_row is None:
            raise NotFoundError(f"no bank named {bank!r:.80}")
        clash = tx.conn.execute(
            sa.select(exchanges.c.name).where(sa.or_(exchanges.c.name == name, exchanges.c.bank_id == bank_row.id))
        ).first()
        if clash is not None:
            if clash.name == name:
                raise ConflictError(f"an exchange named {name!r} already exists")
            raise ConflictError(f"bank {bank!r} is already fed by exchange {clash.name!r}; one feed per bank")
        tx.conn.execute(
            sa.insert(exchanges).values(
                name=name,
                type=type,
                bank_id=bank_row.id,
                config=dict(config),
                credentials=credentials,
                every_s=every_s,
                paused=False,
                feedback=feedback,
                checkpoint=None,
                next_run_at=tx.now,
                failures=0,
                stats={},
                created_at=tx.now,
                updated_at=tx.now,
            )
        )
        # Never the credentials, not even encrypted, in the audit log.
        details = {"type": type, "config": dict(config), "every_s": every_s, "feedback": feedback}
        tx.audit(actor, "exchange.add", bank=bank, details=details)
    return get_exchange(store, name)


def update_exchange(store: Store, name: str, actor: Actor, audit: str, **values: Any) -> ExchangeRecord:
    """Set columns of an exchange (paused, every_s, feedback, config, credentials, next_run_at, checkpoint)."""
    with write_transaction(store.engine) as tx:
        row = tx.conn.execute(_SELECT.where(exchanges.c.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"no exchange named {name!r:.80}")
        tx.conn.execute(sa.update(exchanges).where(exchanges.c.id == row.id).values(**values, updated_at=tx.now))
        shown = {k: ("(set)" if k == "credentials" else v) for k, v in values.items()}
        tx.audit(actor, audit, bank=row.bank_name, details={"exchange": name, **_jsonable(shown)})
    return get_exchange(store, name)


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values, default=str))


def delete_exchange(store: Store, name: str, actor: Actor) -> None:
    """Remove the feed (its items stay in the bank, as analysts' items do). Raises NotFoundError."""
    with write_transaction(store.engine) as tx:
        row = tx.conn.execute(_SELECT.where(exchanges.c.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"no exchange named {name!r:.80}")
        tx.conn.execute(sa.delete(exchange_unknown).where(exchange_unknown.c.exchange_id == row.id))
        tx.conn.execute(sa.delete(exchanges).where(exchanges.c.id == row.id))
        tx.audit(actor, "exchange.remove", bank=row.bank_name, details={"exchange": name})


def credential_tokens(store: Store) -> list[tuple[int, str]]:
    with store.engine.connect() as conn:
        query = sa.select(exchanges.c.id, exchanges.c.credentials).where(exchanges.c.credentials.is_not(None))
        return [(row.id, row.credentials) for row in conn.execute(query)]


def replace_credential_tokens(store: Store, tokens: Iterable[tuple[int, str]], actor: Actor) -> int:
    """Store re-encrypted credentials (key rotation) in one transaction; return how many were replaced."""
    count = 0
    with write_transaction(store.engine) as tx:
        for exchange_id, token in tokens:
            tx.conn.execute(sa.update(exchanges).where(exchanges.c.id == exchange_id).values(credentials=token))
            count += 1
        tx.audit(actor, "exchange.rotate_credentials", details={"exchanges": count})
    return count


# ------------------------------------------------------------------------------------------------- the lease


def due_exchanges(store: Store, now: dt.datetime | None = None) -> list[str]:
    """Names of the unpaused exchanges whose next run is due and whose lease is free, soonest first."""
    now = now or utcnow()
    query = (
        sa.select(exchanges.c.name)
        .where(
            exchanges.c.paused.is_(False),
            sa.or_(exchanges.c.next_run_at.is_(None), exchanges.c.next_run_at <= now),
            sa.or_(exchanges.c.lease_until.is_(None), exchanges.c.lease_until < now),
        )
        .order_by(exchanges.c.next_run_at)
    )
    with store.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def acquire_lease(store: Store, name: str, owner: str, ttl_s: float) -> bool:
    """Take the exchange's sync lease if it is free or expired (or already ours). One atomic UPDATE: of two
    processes racing for it, exactly one sees its row updated."""
    now = utcnow()
    with store.engine.begin() as conn:
        result = conn.execute(
            sa.update(exchanges)
            .where(
                exchanges.c.name == name,
                sa.or_(
                    exchanges.c.lease_owner.is_(None),
                    exchanges.c.lease_until < now,
                    exchanges.c.lease_owner == owner,
                ),
            )
            .values(lease_owner=owner, lease_until=now + dt.timedelta(seconds=ttl_s), last_attempt_at=now)
        )
        return result.rowcount == 1


def renew_lease(conn: Connection, exchange_id: int, owner: str, ttl_s: float, now: dt.datetime) -> None:
    result = conn.execute(
        sa.update(exchanges)
        .where(exchanges.c.id == exchange_id, exchanges.c.lease_owner == owner)
        .values(lease_until=now + dt.timedelta(seconds=ttl_s))
    )
    if result.rowcount != 1:
        raise LeaseLostError("another process took over this exchange's sync")


def finish_sync(
    store: Store,
    name: str,
    owner: str,
    *,
    error: str | None,
    failures: int,
    next_run_at: dt.datetime,
) -> None:
    """Record a sync's outcome and release the lease (only if we still hold it)."""
    now = utcnow()
    values: dict[str, Any] = {
        "lease_owner": None,
        "lease_until": None,
        "failures": failures,
        "next_run_at": next_run_at,
    }
    if error is None:
        values["last_success_at"] = now
    else:
        values.update(last_error=error[:2000], last_error_at=now)
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(exchanges).where(exchanges.c.name == name, exchanges.c.lease_owner == owner).values(**values)
        )


def refresh_statistics(store: Store) -> None:
    """PostgreSQL: analyze the items tables now. A first sync grows a bank faster than autovacuum analyzes it;
    with the statistics of a near-empty table the planner looks a page's entry ids up by reading every item of
    the bank through the (bank_id, id) index instead of the unique (bank_id, external_ref) one (measured: 29 ms
    per 500 ids at 40k items, growing with the bank), which makes a first sync quadratic. SQLite: nothing."""
    if store.engine.dialect.name != "postgresql":
        return
    with store.engine.connect() as conn:
        conn.execute(sa.text("ANALYZE items, item_hashes"))
        conn.commit()


# ------------------------------------------------------------------------------------------- applying a page


@dataclass
class _Existing:
    item_id: int
    status: str
    status_by: str | None
    status_reason: str | None
    metadata: dict[str, Any]
    hashes: set[tuple[str, bytes]] = field(default_factory=set)


def apply_page(
    store: Store,
    exchange: ExchangeRecord,
    owner: str,
    entries: Sequence[FeedRecord],
    checkpoint: Mapping[str, Any] | None,
    *,
    lease_ttl_s: float,
    retract_missing: set[str] | None = None,
    success: bool = False,
    pages: int = 1,
) -> PageCounts:
    """Apply one page of a feed and its checkpoint in one transaction, if `owner` still holds the lease.

    `entries` may come from several partner pages (`pages` of them, for the totals); `checkpoint` is the one
    after the last of them, None leaves the stored one as it is. `retract_missing` (full-snapshot feeds, on
    their last page) names every entry id the snapshot held: the feed's active items not among them are retracted.
    Raises LeaseLostError (nothing written).
    """
    counts = PageCounts()
    actor = feed_actor(exchange.name)
    latest: dict[str, FeedRecord] = {}
    for entry in entries:  # a page may mention an entry twice: the later record is its current state
        counts.fetched += 1
        if entry.problem is not None:
            counts.bad += 1
            if len(counts.problems) < 20:
                counts.problems.append(f"{entry.entry_id[:80]}: {entry.problem[:200]}")
            continue
        latest[entry.entry_id] = entry
    with write_transaction(store.engine) as tx:
        bank_row = tx.conn.execute(sa.select(banks.c.id, banks.c.enabled).where(banks.c.id == exchange.bank_id)).one()
        existing = _existing(tx.conn, exchange.bank_id, list(latest))
        to_delete: list[int] = []
        new_items: list[tuple[str, tuple[tuple[str, str], ...], str]] = []
        unknown_rows: list[dict[str, Any]] = []
        clear_unknown: list[str] = []
        carry_disable: dict[str, _Existing] = {}
        quoted_name = _QUOTE(exchange.name)
        for entry_id, entry in latest.items():
            current = existing.get(entry_id)
            if entry.deleted:
                clear_unknown.append(entry_id)
                if current is not None and current.status == "active":
                    _set_status(tx, bank_row, current.item_id, "disabled", actor, f"retracted by {exchange.name}")
                    counts.retracted += 1
                else:
                    counts.unchanged += 1
                continue
            if not entry.hashes:
                unknown_rows.append(
                    {
                        "exchange_id": exchange.id,
                        "entry_id": entry_id,
                        "signals": dict(entry.unknown),
                        "metadata": dict(entry.metadata),
                        "seen_at": tx.now,
                    }
                )
                counts.unknown += 1
                if current is not None and current.status == "active":
                    reason = f"{exchange.name} now lists only signal types hashsvc does not store"
                    _set_status(tx, bank_row, current.item_id, "disabled", actor, reason)
                continue
            clear_unknown.append(entry_id)
            try:
                metadata_text = _provenance_text(quoted_name, exchange.name, entry)
            except ValidationError as exc:
                counts.bad += 1
                counts.problems.append(f"{entry_id[:80]}: {exc.message[:200]}")
                continue
            if current is None:
                new_items.append((entry_id, entry.hashes, metadata_text))
                continue
            metadata = _provenance(exchange.name, entry)
            wanted = {(a, bytes.fromhex(h)) for a, h in entry.hashes}
            if wanted != current.hashes:
                # Hashes never change in place (the index keys on them): the old item goes, a new one comes.
                to_delete.append(current.item_id)
                new_items.append((entry_id, entry.hashes, metadata_text))
                if current.status != "active" and current.status_by != actor.name:
                    carry_disable[entry_id] = current  # an analyst's disable outlives the partner's update
                counts.updated += 1
                counts.added -= 1  # counted below as an addition; it is an update
                continue
            changed = False
            if current.metadata != metadata:
                tx.conn.execute(sa.update(items).where(items.c.id == current.item_id).values(metadata=metadata))
                tx.change("item_update", exchange.bank_id, current.item_id, "none")
                changed = True
            if current.status != "active" and current.status_by == actor.name:
                # We retracted it, the partner lists it again. An analyst's disable (a false positive) stays.
                _set_status(tx, bank_row, current.item_id, "active", actor, f"listed again by {exchange.name}")
                counts.restored += 1
            elif changed:
                counts.updated += 1
            else:
                counts.unchanged += 1
        if retract_missing is not None:
            counts.retracted += _retract_missing(tx, bank_row, exchange, actor, retract_missing)
        _delete_items(tx, exchange.bank_id, to_delete)
        inserted = _insert_items(tx, bank_row, new_items, actor, counts)
        counts.added += len(inserted)
        for entry_id, previous in carry_disable.items():
            if entry_id in inserted:
                who = Actor(previous.status_by or actor.name)
                _set_status(tx, bank_row, inserted[entry_id], "disabled", who, previous.status_reason or "disabled")
        _keep_aside(tx.conn, exchange.id, unknown_rows, clear_unknown)
        renew_lease(tx.conn, exchange.id, owner, lease_ttl_s, tx.now)
        stats = _add_stats(tx.conn, exchange.id, counts, pages)
        values: dict[str, Any] = {"stats": stats}
        if checkpoint is not None:
            values["checkpoint"] = dict(checkpoint)
        if success:
            values.update(last_success_at=tx.now, failures=0)
        tx.conn.execute(sa.update(exchanges).where(exchanges.c.id == exchange.id).values(**values))
        if counts.added or counts.updated or counts.retracted or counts.restored:
            details = {"exchange": exchange.name, **counts.as_stats()}
            tx.audit(actor, "exchange.sync", bank=exchange.bank, details=details)
    return counts


# The items table with its metadata column seen as text: _insert_items hands over the JSON that _provenance
# already encoded to check it, instead of insert_rows encoding every item's metadata a second time.
_ITEMS_JSON_TEXT = sa.Table(
    "items",
    sa.MetaData(),
    *(sa.Column(c.name, sa.Text if c.name == "metadata" else c.type) for c in items.columns),
)


# json.dumps with options builds a new JSONEncoder per call; one encoder for every item of every page.
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def _provenance(name: str, entry: FeedRecord) -> dict[str, Any]:
    """The item's metadata: where it came from (compared with a known item's to see whether it changed)."""
    metadata: dict[str, Any] = {"exchange": name, "entry_id": entry.entry_id, "labels": list(entry.labels)}
    if entry.metadata:
        metadata["partner"] = dict(entry.metadata)
    if entry.unknown:
        metadata["other_signals"] = dict(entry.unknown)  # e.g. NCMEC's PhotoDNA beside its MD5
    return metadata


# The C string quoting json's encoder uses with ensure_ascii=False: text built with it below is the text
# _ENCODE gives for the same dict (tests/test_exchanges.py checks that on awkward strings).
_QUOTE = json.encoder.encode_basestring


def _flat_object(mapping: Mapping[str, Any]) -> str | None:
    """A mapping of strings to strings as JSON text, or None if any key or value is something else."""
    parts = []
    for key, value in mapping.items():
        if type(key) is not str or type(value) is not str:
            return None
        parts.append(f"{_QUOTE(key)}: {_QUOTE(value)}")
    return "{" + ", ".join(parts) + "}"


def _provenance_text(quoted_name: str, name: str, entry: FeedRecord) -> str:
    """_provenance(name, entry) as JSON text, checked once on that text. Raises ValidationError if the store
    could not hold it.

    Built from quoted strings when the partner's fields are flat strings (NCMEC's always are): json's encoder
    makes a new C encoder per call, 20 us per entry, the largest Python cost of a first sync after parsing.
    The text says everything validation.metadata's walk of the tree would: NUL (escaped as \\u0000), lone
    surrogates and the size."""
    partner = _flat_object(entry.metadata) if entry.metadata else ""
    unknown = _flat_object(entry.unknown) if entry.unknown else ""
    if partner is None or unknown is None or any(type(label) is not str for label in entry.labels):
        try:
            text = _ENCODE(_provenance(name, entry))
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"partner metadata is not JSON: {exc}") from None
    else:
        labels = ", ".join([_QUOTE(label) for label in entry.labels])
        text = f'{{"exchange": {quoted_name}, "entry_id": {_QUOTE(entry.entry_id)}, "labels": [{labels}]'
        if partner:
            text += f', "partner": {partner}'
        if unknown:
            text += f', "other_signals": {unknown}'
        text += "}"
    if "\\u0000" in text:
        raise ValidationError("partner metadata must not contain NUL (U+0000) characters")
    size = len(text)
    if not text.isascii():
        validation.storable("partner metadata", text)
        size = len(text.encode())
    if size > validation.MAX_METADATA_BYTES:
        raise ValidationError(f"partner metadata is larger than {validation.MAX_METADATA_BYTES} bytes")
    return text


def _codes(entry_id: str, hashes: tuple[tuple[str, str], ...]) -> list[tuple[str, bytes]]:
    """An item's hash codes, once its reference is checked. Its hashes were normalized by the client and its
    metadata checked by _provenance_text, so only the reference is left to check (validation.new_item would
    do it all again)."""
    if len(entry_id) > validation.MAX_REF:
        raise ValidationError(f"entry id longer than {validation.MAX_REF} characters")
    if "\x00" in entry_id or not entry_id.isascii():
        validation.storable("entry id", entry_id)
    codes = [(algorithm, bytes.fromhex(value)) for algorithm, value in hashes]
    if len(codes) > 1:
        codes = list(dict.fromkeys(codes))
        if len(codes) > validation.MAX_HASHES_PER_ITEM:
            raise ValidationError(f"an item may have at most {validation.MAX_HASHES_PER_ITEM} hashes")
    return codes


# The lookups of a page's entries: one statement of _IN_CHUNK parameters, compiled once and cached, each chunk
# padded with NULL (which matches nothing). An IN list of literals, or an expanding parameter, is rendered again
# for every execution: ~1.3 s of CPU per 100k entries of a first sync, for queries that find nothing.
_REFS = [sa.bindparam(f"ref{i}", type_=items.c.external_ref.type) for i in range(_IN_CHUNK)]
_IDS = [sa.bindparam(f"id{i}", type_=item_hashes.c.item_id.type) for i in range(_IN_CHUNK)]
_EXISTING_ITEMS = sa.select(
    items.c.id, items.c.external_ref, items.c.status, items.c.status_by, items.c.status_reason, items.c.metadata
).where(items.c.bank_id == sa.bindparam("bank_id"), items.c.external_ref.in_(_REFS))
_EXISTING_HASHES = sa.select(item_hashes.c.item_id, item_hashes.c.algorithm, item_hashes.c.code).where(
    item_hashes.c.item_id.in_(_IDS)
)
_UNKNOWN_ANY = sa.select(exchange_unknown.c.entry_id).where(exchange_unknown.c.exchange_id == sa.bindparam("xid"))
_UNKNOWN_DELETE = sa.delete(exchange_unknown).where(
    exchange_unknown.c.exchange_id == sa.bindparam("xid"), exchange_unknown.c.entry_id.in_(_REFS)
)


def _chunks(values: Sequence[Any], prefix: str) -> Iterator[dict[str, Any]]:
    """`values` as parameter sets of exactly _IN_CHUNK `prefix<i>` names, the last padded with None."""
    for start in range(0, len(values), _IN_CHUNK):
        chunk = list(values[start : start + _IN_CHUNK])
        chunk.extend([None] * (_IN_CHUNK - len(chunk)))
        yield dict(zip([f"{prefix}{i}" for i in range(_IN_CHUNK)], chunk, strict=True))


def _existing(conn: Connection, bank_id: int, refs: list[str]) -> dict[str, _Existing]:
    found: dict[str, _Existing] = {}
    for params in _chunks(refs, "ref"):
        for row in conn.execute(_EXISTING_ITEMS, {"bank_id": bank_id, **params}):
            found[row.external_ref] = _Existing(
                row.id, row.status, row.status_by, row.status_reason, row.metadata or {}
            )
    by_id = {e.item_id: e for e in found.values()}
    for params in _chunks(sorted(by_id), "id"):
        for row in conn.execute(_EXISTING_HASHES, params):
            by_id[row.item_id].hashes.add((row.algorithm, bytes(row.code)))
    return found


def _set_status(tx: WriteTransaction, bank_row: Row[Any], item_id: int, status: str, actor: Actor, reason: str) -> None:
    tx.conn.execute(
        sa.update(items)
        .where(items.c.id == item_id)
        .values(status=status, status_reason=reason, status_by=actor.name, status_at=tx.now)
    )
    if status == "active":
        tx.change("item_enable", bank_row.id, item_id, "activate" if bank_row.enabled else "none")
    else:
        tx.change("item_disable", bank_row.id, item_id, "deactivate")


def _delete_items(tx: WriteTransaction, bank_id: int, item_ids: list[int]) -> None:
    for start in range(0, len(item_ids), _IN_CHUNK):
        chunk = item_ids[start : start + _IN_CHUNK]
        tx.conn.execute(sa.delete(item_hashes).where(item_hashes.c.item_id.in_(chunk)))
        tx.conn.execute(sa.delete(items).where(items.c.id.in_(chunk)))
    for item_id in item_ids:
        tx.change("item_delete", bank_id, item_id, "deactivate")


def _insert_items(
    tx: WriteTransaction,
    bank_row: Row[Any],
    new_items: list[tuple[str, tuple[tuple[str, str], ...], str]],
    actor: Actor,
    counts: PageCounts,
) -> dict[str, int]:
    """Insert items the way Store.add_items does (consecutive ids, one change row), inside this transaction;
    return {entry id: item id}."""
    prepared: list[tuple[str, str, list[tuple[str, bytes]]]] = []
    for entry_id, hashes, metadata in new_items:
        try:
            prepared.append((entry_id, metadata, _codes(entry_id, hashes)))
        except (ValidationError, InvalidHashError) as exc:
            counts.bad += 1
            if len(counts.problems) < 20:
                counts.problems.append(f"{entry_id[:80]}: {exc.message[:200]}")
    if not prepared:
        return {}
    first = tx.allocate("last_item_id", len(prepared))
    next_hash = tx.allocate("last_hash_id", sum(len(p[2]) for p in prepared))
    bank_id, source, now = bank_row.id, actor.name, tx.now
    item_rows = [
        (item_id, bank_id, ref, source, None, "active", source, now, meta)
        for item_id, (ref, meta, _codes_) in enumerate(prepared, start=first)
    ]
    hash_rows: list[tuple[int, int, str, bytes, bool]] = []
    append = hash_rows.append
    for item_id, (_ref, _meta, codes) in enumerate(prepared, start=first):
        for algorithm, code in codes:
            append((next_hash, item_id, algorithm, code, False))  # a partner's signals are its own
            next_hash += 1
    insert_rows(tx.conn, _ITEMS_JSON_TEXT, ITEM_COLUMNS, item_rows)
    insert_rows(tx.conn, item_hashes, HASH_COLUMNS, hash_rows)
    last = first + len(prepared) - 1
    tx.change("item_add", bank_row.id, first, "activate" if bank_row.enabled else "none", last_item_id=last)
    counts.added_ids.extend(range(first, last + 1))
    return {p[0]: item_id for item_id, p in enumerate(prepared, start=first)}


def _keep_aside(conn: Connection, exchange_id: int, rows: list[dict[str, Any]], clear: list[str]) -> None:
    """Replace the kept-aside rows of `rows`' entries and delete those of `clear`.

    Most feeds keep nothing aside: one query then saves a delete per 500 entries of every page (the caller
    holds the store's write lock and the exchange's lease, so no row can appear meanwhile)."""
    if rows or conn.execute(_UNKNOWN_ANY, {"xid": exchange_id}).first() is not None:
        for params in _chunks(clear + [r["entry_id"] for r in rows], "ref"):
            conn.execute(_UNKNOWN_DELETE, {"xid": exchange_id, **params})
    if rows:
        conn.execute(sa.insert(exchange_unknown), rows)


def _retract_missing(
    tx: WriteTransaction, bank_row: Row[Any], exchange: ExchangeRecord, actor: Actor, present: set[str]
) -> int:
    query = sa.select(items.c.id, items.c.external_ref).where(
        items.c.bank_id == exchange.bank_id, items.c.status == "active", items.c.source == actor.name
    )
    gone = [row.id for row in tx.conn.execute(query) if row.external_ref not in present]
    for item_id in gone:
        _set_status(tx, bank_row, item_id, "disabled", actor, f"no longer in {exchange.name}'s list")
    unknown = sa.select(exchange_unknown.c.entry_id).where(exchange_unknown.c.exchange_id == exchange.id)
    stale = [e for e in tx.conn.execute(unknown).scalars() if e not in present]
    _keep_aside(tx.conn, exchange.id, [], stale)
    return len(gone)


def _add_stats(conn: Connection, exchange_id: int, counts: PageCounts, pages: int) -> dict[str, int]:
    current = conn.execute(sa.select(exchanges.c.stats).where(exchanges.c.id == exchange_id)).scalar_one() or {}
    totals = {name: int(current.get(name, 0)) for name in STAT_NAMES}
    for name, value in counts.as_stats().items():
        totals[name] += value
    totals["pages"] += pages
    return totals
