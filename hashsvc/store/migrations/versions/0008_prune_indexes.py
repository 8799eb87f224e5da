"""Webhook deliveries and attempts: an index on their time, so that pruning them reads only what it deletes.

Without them every prune (a minute apart) read both tables whole: a row per event and subscriber, and one per
delivery attempt, kept for the retention period (90 days by default).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_webhook_outbox_created_at", "webhook_outbox", ["created_at"])
    op.create_index("ix_webhook_attempts_at", "webhook_attempts", ["at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_attempts_at", "webhook_attempts")
    op.drop_index("ix_webhook_outbox_created_at", "webhook_outbox")
