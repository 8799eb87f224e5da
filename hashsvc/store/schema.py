"""The store's tables, declared once with SQLAlchemy Core; the Alembic migrations must agree with them.

Ids of banks, items and hashes are allocated from the one-row `store_counters` table inside the writing
transaction (see `writes.py`), never by the database's autoincrement: that gives the same behaviour on SQLite and
PostgreSQL, ids that are never reused after a delete (the change log refers to them forever), and bulk inserts that
need no RETURNING round trip.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from hashsvc.vocabulary import ACTIONS, CATEGORIES, SCOPES  # noqa: F401 - re-exported for validation and the API spec

# SQLite only aliases the rowid (no separate primary-key index, the fastest table layout) for a column declared
# exactly INTEGER PRIMARY KEY; SQLite integers are 64-bit anyway.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ITEM_STATUSES = ("active", "disabled")
DISCLOSURES = ("full", "decision")  # what a key's match answers carry: distances too, or decisions only


class UtcDateTime(sa.TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on both back ends (SQLite stores naive text; we store and return UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(timezone.utc)")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

store_counters = sa.Table(
    "store_counters",
    metadata,
    # Exactly one row (id = 1). Updating it inside a write transaction serializes every writer that produces
    # change-log rows, so sequence numbers are assigned in commit order (a PostgreSQL SEQUENCE is not).
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_sequence", sa.BigInteger, nullable=False),
    sa.Column("last_bank_id", sa.BigInteger, nullable=False),
    sa.Column("last_item_id", sa.BigInteger, nullable=False),
    sa.Column("last_hash_id", sa.BigInteger, nullable=False),
)

banks = sa.Table(
    "banks",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("category", sa.String(16), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("enabled", sa.Boolean(create_constraint=False), nullable=False),
    sa.Column("thresholds", sa.JSON, nullable=False),  # {"pdq": 31}; absent algorithms use their default
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=False),
    sa.Column("bank_id", sa.BigInteger, sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("external_ref", sa.String(255), nullable=True),  # the partner's id, unique within a bank
    sa.Column("source", sa.String(255), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_reason", sa.Text, nullable=True),
    sa.Column("status_by", sa.String(128), nullable=True),
    sa.Column("status_at", UtcDateTime, nullable=True),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.UniqueConstraint("bank_id", "external_ref"),
    sa.Index(None, "bank_id", "id"),  # keyset paging of a bank's items
)

item_hashes = sa.Table(
    "item_hashes",
    metadata,
    # Keyed by the hash id (the rowid on SQLite): the matcher turns every index candidate's hash id into its
    # owner with a lookup by id (hashsvc.store.owners), the hot read. An item's hashes are found through the
    # item_id index (tail reads, deletes, foreign-key checks); ids ascend with item ids, so both stay append-only
    # during imports and only the (algorithm, code) index takes random inserts.
    sa.Column("id", Id, primary_key=True, autoincrement=False),
    sa.Column("item_id", sa.BigInteger, sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False),
    sa.Column("algorithm", sa.String(16), nullable=False),
    sa.Column("code", sa.LargeBinary, nullable=False),  # packed MSB-first, see hashsvc.hashes.codec
    # A hash of an edited view of the item's image (a crop, the trimmed picture), stored so that edited re-uploads
    # match; not the item's own hash, so exports leave it out unless asked (a partner would receive ~17 signals
    # per image, most of them crops that match other things than the item).
    sa.Column("is_view", sa.Boolean(create_constraint=False), nullable=False, server_default=sa.false()),
    sa.Index(None, "algorithm", "code"),  # exact lookups (md5 lists, "is this PDQ already known?")
    sa.Index(None, "item_id"),
)

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("sequence", Id, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(32), nullable=False),
    # No foreign keys: a change outlives the bank or item it describes.
    sa.Column("bank_id", sa.BigInteger, nullable=False),
    sa.Column("item_id", sa.BigInteger, nullable=True),  # NULL for bank-level changes
    # A bulk add is one row for items item_id..last_item_id (ids allocated together are consecutive): a million
    # imported items cost a few hundred change rows, not a million. Equal to item_id for single-item changes.
    sa.Column("last_item_id", sa.BigInteger, nullable=True),
    # What the change does to the index: 'activate' (the item's / bank's active items' hashes become
    # matchable), 'deactivate' (they stop matching), or 'none' (metadata only).
    sa.Column("effect", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),  # sha256 hex of the token, never the token
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_used_at", UtcDateTime, nullable=True),
    sa.Column("revoked", sa.Boolean(create_constraint=False), nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Column("disclosure", sa.String(16), nullable=False, server_default="full"),
    # Per-key overrides of the serving limits; NULL means the server's setting (HASHSVC_KEY_*).
    sa.Column("rate_per_s", sa.Float, nullable=True),
    sa.Column("burst", sa.Integer, nullable=True),
    sa.Column("max_inflight", sa.Integer, nullable=True),
    # Optional end of life, and key rotation: after `rotate`, the previous secret's hash keeps working until
    # previous_expires_at so that clients can switch over without an outage.
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("previous_key_hash", sa.String(64), nullable=True, index=True),
    sa.Column("previous_expires_at", UtcDateTime, nullable=True),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("bank", sa.String(64), nullable=True),
    sa.Column("item_id", sa.BigInteger, nullable=True),
    sa.Column("remote_addr", sa.String(64), nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
)


# ------------------------------------------------------------------ after a match (hashsvc.store.aftermatch)

event_counters = sa.Table(
    "event_counters",
    metadata,
    # One row (id = 1): a flush of N events reserves N ids with one UPDATE, so a batch needs no RETURNING per row
    # and ids ascend in commit order closely enough for keyset paging.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_event_id", sa.BigInteger, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("type", sa.String(16), nullable=False),  # match | suppression | quarantine | retrohunt
    sa.Column("key_name", sa.String(128), nullable=True),
    sa.Column("content_id", sa.String(255), nullable=True),
    # id // CONTENT_BUCKET (hashsvc.store.aftermatch), set by the writer: the content_id index leads with it, so
    # new entries stay together instead of landing all over an index of the whole retention period
    sa.Column("content_bucket", sa.BigInteger, nullable=True),
    sa.Column("decision", sa.String(16), nullable=True),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("hashes", sa.JSON, nullable=False),  # the query's own hashes, never an image
    sa.Column("matches", sa.JSON, nullable=False),  # every counted match, each a generic dict
    sa.Column("details", sa.JSON, nullable=False),  # suppressed matches, the quarantine's reason...
    sa.Index(None, "at"),
    sa.Index(None, "content_bucket", "content_id"),
)

event_items = sa.Table(
    "event_items",
    metadata,
    # One row per (event, matched item): the filters by bank and item, and the flood guard's distinct count.
    sa.Column("event_id", sa.BigInteger, nullable=False),
    sa.Column("item_id", sa.BigInteger, nullable=False),
    sa.Column("bank", sa.String(64), nullable=False),
    sa.Column("content_key", sa.String(255), nullable=False),  # content_id, or a per-upload token without one
    sa.Column("at", UtcDateTime, nullable=False),
    # `at` again, as whole milliseconds since 1970 (UTC), for the flood guard's index: on SQLite a timestamp is 26
    # characters of text, so (item_id, at) took three times the pages, and the event writer dirtied one of them per
    # matched item of every write (migration 0010; nullable only because rows written before it had none)
    sa.Column("at_ms", sa.BigInteger, nullable=True),
    sa.Index(None, "item_id", "at_ms"),
    sa.Index(None, "event_id"),
)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=False),  # the id of the event that opened it
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | resolved
    sa.Column("bank", sa.String(64), nullable=True),
    sa.Column("category", sa.String(16), nullable=True),
    sa.Column("item_id", sa.BigInteger, nullable=True),
    sa.Column("claimed_by", sa.String(128), nullable=True),
    sa.Column("claim_expires_at", UtcDateTime, nullable=True),
    sa.Column("resolution", sa.String(16), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("resolved_by", sa.String(128), nullable=True),
    sa.Column("resolved_at", UtcDateTime, nullable=True),
    sa.Column("outcome", sa.JSON, nullable=False),
    sa.Index(None, "status", "opened_at"),
)

quarantines = sa.Table(
    "quarantines",
    metadata,
    sa.Column("item_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("bank", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # active | rearmed | disabled
    sa.Column("since", UtcDateTime, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("changed_by", sa.String(128), nullable=True),
    sa.Column("changed_at", UtcDateTime, nullable=True),
)

recent_uploads = sa.Table(
    "recent_uploads",
    metadata,
    # Retro-hunt: the PDQ codes of recent uploads (never images), kept for a retention period when enabled.
    sa.Column("id", Id, primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("key_name", sa.String(128), nullable=True),
    sa.Column("content_id", sa.String(255), nullable=True),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("algorithm", sa.String(16), nullable=False),
    sa.Column("code", sa.LargeBinary, nullable=False),
    sa.Index(None, "at"),
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),  # needed to sign; shown to the caller once
    sa.Column("event_types", sa.JSON, nullable=False),
    sa.Column("banks", sa.JSON, nullable=True),  # null: every bank
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("deleted", sa.Boolean(create_constraint=False), nullable=False),
)

webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    # Written in the transaction that records the event, so nothing acknowledged can be lost.
    sa.Column("id", Id, primary_key=True),
    sa.Column("webhook_id", sa.BigInteger, nullable=False),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | failed | cancelled
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "webhook_id", "id"),
    sa.Index(None, "created_at"),  # pruning: without it, every prune read the whole outbox
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("outbox_id", sa.BigInteger, nullable=False),
    sa.Column("webhook_id", sa.BigInteger, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Index(None, "webhook_id", "id"),
    sa.Index(None, "at"),  # pruning, as for the outbox
)

leases = sa.Table(
    "leases",
    metadata,
    # Background work that one process across all replicas should do at a time (deliveries, pruning).
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

job_checkpoints = sa.Table(
    "job_checkpoints",
    metadata,
    # How far a background job got (the retro-hunt: the change-log sequence it has searched up to); written in the
    # transaction that records the job's results, so a crash neither loses nor repeats them.
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)


# ------------------------------------------------------------------------------------ partner feeds (issue 14)

exchanges = sa.Table(
    "exchanges",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("type", sa.String(32), nullable=False),
    # One feed per bank: the partner's entry id is the item's external_ref, unique within the bank.
    sa.Column("bank_id", sa.BigInteger, sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False, unique=True),
    sa.Column("config", sa.JSON, nullable=False),  # url, format, base_url, privacy_group...: nothing secret
    sa.Column("credentials", sa.Text, nullable=True),  # a Fernet token (hashsvc.service.credentials), never clear
    sa.Column("every_s", sa.Integer, nullable=False),
    sa.Column("paused", sa.Boolean(create_constraint=False), nullable=False),
    sa.Column("feedback", sa.Boolean(create_constraint=False), nullable=False),  # report false positives back
    sa.Column("checkpoint", sa.JSON, nullable=True),  # the client's resume point, written with each page
    sa.Column("next_run_at", UtcDateTime, nullable=True),
    # The sync lease: one process syncs an exchange at a time, across replicas; every page write checks it.
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_until", UtcDateTime, nullable=True),
    sa.Column("failures", sa.Integer, nullable=False),  # consecutive failed syncs (backoff)
    sa.Column("last_attempt_at", UtcDateTime, nullable=True),
    sa.Column("last_success_at", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_error_at", UtcDateTime, nullable=True),
    sa.Column("stats", sa.JSON, nullable=False),  # running totals: fetched, added, updated, retracted, ...
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

exchange_unknown = sa.Table(
    "exchange_unknown",
    metadata,
    # Entries whose every signal is of a type hashsvc does not store (PhotoDNA, SHA-1, video TMK...): kept
    # here, counted, and replaced or dropped when the partner updates or retracts them.
    sa.Column("exchange_id", sa.BigInteger, sa.ForeignKey("exchanges.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("entry_id", sa.String(255), primary_key=True),
    sa.Column("signals", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("seen_at", UtcDateTime, nullable=False),
)


item_features = sa.Table(
    "item_features",
    metadata,
    # Local features (hashsvc.features) of an item added from an image: one blob per item (hashsvc.features.codec,
    # at most MAX_STORED keypoints, about 10 KiB), written in the item's own transaction so that the item's
    # 'activate' change in the log brings them to every replica. Hash-list items have no row here.
    sa.Column("item_id", Id, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    sa.Column("algorithm", sa.String(16), nullable=False),  # "orb"
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

bank_feature_options = sa.Table(
    "bank_feature_options",
    metadata,
    # Whether the local-feature stage looks at a bank's items; a bank without a row uses the default (on).
    sa.Column("bank_id", Id, sa.ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
    sa.Column("enabled", sa.Boolean(create_constraint=False), nullable=False),
)


video_frames = sa.Table(
    "video_frames",
    metadata,
    # The vPDQ hash of a video item as it was hashed or imported, frame by frame (for export and for the time
    # ranges of a match). The item's distinct frame PDQs of quality >= 50 are also its `pdq` rows in
    # item_hashes, which is what the index holds: frames match stills, and stills match frames, by that.
    sa.Column("item_id", sa.BigInteger, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),  # order in the vPDQ list
    sa.Column("frame", sa.Integer, nullable=False),
    sa.Column("timestamp", sa.Float, nullable=False),  # seconds
    sa.Column("quality", sa.SmallInteger, nullable=False),
    sa.Column("code", sa.LargeBinary, nullable=False),  # 32 bytes, PDQ packed MSB-first
)

bank_video_rules = sa.Table(
    "bank_video_rules",
    metadata,
    # A bank's own vPDQ match shares (percent) and frame quality threshold; banks without a row use Meta's
    # defaults (80, 0, 50). The frame distance is the bank's PDQ threshold.
    sa.Column("bank_id", sa.BigInteger, sa.ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("query_share", sa.Float, nullable=False),
    sa.Column("item_share", sa.Float, nullable=False),
    sa.Column("quality", sa.SmallInteger, nullable=False),
)
