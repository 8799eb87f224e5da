"""Initial schema: banks, items, item hashes, change log, counters, API keys, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hashsvc.store.schema import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types used here: a later change to schema.py must come with a new migration, not
# silently rewrite this one (the models-vs-migrations test catches drift).
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    counters = op.create_table(
        "store_counters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.Column("last_bank_id", sa.BigInteger, nullable=False),
        sa.Column("last_item_id", sa.BigInteger, nullable=False),
        sa.Column("last_hash_id", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_counters"),
    )
    op.bulk_insert(counters, [{"id": 1, "last_sequence": 0, "last_bank_id": 0, "last_item_id": 0, "last_hash_id": 0}])

    op.create_table(
        "banks",
        sa.Column("id", Id, autoincrement=False, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("thresholds", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_banks"),
        sa.UniqueConstraint("name", name="uq_banks_name"),
    )

    op.create_table(
        "items",
        sa.Column("id", Id, autoincrement=False, nullable=False),
        sa.Column("bank_id", sa.BigInteger, nullable=False),
        sa.Column("external_ref", sa.String(255), nullable=True),
        sa.Column("source", sa.String(255), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("status_by", sa.String(128), nullable=True),
        sa.Column("status_at", UtcDateTime, nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
        sa.ForeignKeyConstraint(["bank_id"], ["banks.id"], name="fk_items_bank_id_banks", ondelete="CASCADE"),
        sa.UniqueConstraint("bank_id", "external_ref", name="uq_items_bank_id_external_ref"),
    )
    op.create_index("ix_items_bank_id_id", "items", ["bank_id", "id"])

    op.create_table(
        "item_hashes",
        sa.Column("id", Id, autoincrement=False, nullable=False),
        sa.Column("item_id", sa.BigInteger, nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("code", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_item_hashes"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_item_hashes_item_id_items", ondelete="CASCADE"),
    )
    op.create_index("ix_item_hashes_algorithm_code", "item_hashes", ["algorithm", "code"])
    op.create_index("ix_item_hashes_item_id", "item_hashes", ["item_id"])

    op.create_table(
        "changes",
        sa.Column("sequence", Id, autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("bank_id", sa.BigInteger, nullable=False),
        sa.Column("item_id", sa.BigInteger, nullable=True),
        sa.Column("last_item_id", sa.BigInteger, nullable=True),
        sa.Column("effect", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("sequence", name="pk_changes"),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("last_used_at", UtcDateTime, nullable=True),
        sa.Column("revoked", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", Id, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("bank", sa.String(64), nullable=True),
        sa.Column("item_id", sa.BigInteger, nullable=True),
        sa.Column("remote_addr", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )


def downgrade() -> None:
    for table in ("audit_log", "api_keys", "changes", "item_hashes", "items", "banks", "store_counters"):
        op.drop_table(table)
