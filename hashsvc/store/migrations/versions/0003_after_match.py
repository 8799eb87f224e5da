"""After a match: events, reviews, quarantines, retained uploads, webhooks with their outbox, leases.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hashsvc.store.schema import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the id type (see 0001).
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLES = (
    "job_checkpoints",
    "leases",
    "webhook_attempts",
    "webhook_outbox",
    "webhooks",
    "recent_uploads",
    "quarantines",
    "reviews",
    "event_items",
    "events",
    "event_counters",
)


def upgrade() -> None:
    counters = op.create_table(
        "event_counters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_event_id", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_counters"),
    )
    op.bulk_insert(counters, [{"id": 1, "last_event_id": 0}])

    op.create_table(
        "events",
        sa.Column("id", Id, autoincrement=False, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("key_name", sa.String(128), nullable=True),
        sa.Column("content_id", sa.String(255), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("hashes", sa.JSON, nullable=False),
        sa.Column("matches", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_content_id", "events", ["content_id"])

    op.create_table(
        "event_items",
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("item_id", sa.BigInteger, nullable=False),
        sa.Column("bank", sa.String(64), nullable=False),
        sa.Column("content_key", sa.String(255), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_event_items_item_id_at", "event_items", ["item_id", "at"])
    op.create_index("ix_event_items_event_id", "event_items", ["event_id"])

    op.create_table(
        "reviews",
        sa.Column("id", Id, autoincrement=False, nullable=False),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
    )
    op.create_index("ix_reviews_status_opened_at", "reviews", ["status", "opened_at"])

    op.create_table(
        "quarantines",
        sa.Column("item_id", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("bank", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("since", UtcDateTime, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=True),
        sa.Column("changed_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("item_id", name="pk_quarantines"),
    )

    op.create_table(
        "recent_uploads",
        sa.Column("id", Id, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("key_name", sa.String(128), nullable=True),
        sa.Column("content_id", sa.String(255), nullable=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("code", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recent_uploads"),
    )
    op.create_index("ix_recent_uploads_at", "recent_uploads", ["at"])

    op.create_table(
        "webhooks",
        sa.Column("id", Id, nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("event_types", sa.JSON, nullable=False),
        sa.Column("banks", sa.JSON, nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("deleted", sa.Boolean(create_constraint=False), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhooks"),
    )

    op.create_table(
        "webhook_outbox",
        sa.Column("id", Id, nullable=False),
        sa.Column("webhook_id", sa.BigInteger, nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("delivered_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_outbox"),
        sa.UniqueConstraint("idempotency_key", name="uq_webhook_outbox_idempotency_key"),
    )
    op.create_index("ix_webhook_outbox_status_next_attempt_at", "webhook_outbox", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_outbox_webhook_id_id", "webhook_outbox", ["webhook_id", "id"])

    op.create_table(
        "webhook_attempts",
        sa.Column("id", Id, nullable=False),
        sa.Column("outbox_id", sa.BigInteger, nullable=False),
        sa.Column("webhook_id", sa.BigInteger, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
    )
    op.create_index("ix_webhook_attempts_webhook_id_id", "webhook_attempts", ["webhook_id", "id"])

    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )

    op.create_table(
        "job_checkpoints",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_job_checkpoints"),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
