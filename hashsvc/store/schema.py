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

# SQLite only aliases the rowid (no separate primary-key index, the fastest table layout) for a column declared
# exactly INTEGER PRIMARY KEY; SQLite integers are 64-bit anyway.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

CATEGORIES = ("csam", "terror", "ncii", "other")
ACTIONS = ("block", "review", "log")
ITEM_STATUSES = ("active", "disabled")
SCOPES = ("match", "curate", "admin", "metrics")  # explicit: a key holds exactly the scopes it was given
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
