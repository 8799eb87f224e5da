"""Events: the content_id index leads with a bucket of event ids (content_bucket = id // 16384).

On content_id alone, each new event's entry landed at a random place in an index of the whole retention period;
once that index outgrew what one write of the event writer touches, every event dirtied an index page of its own,
and recording cost grew with the store (hashsvc.store.aftermatch, CONTENT_BUCKET). Existing rows get their
bucket here.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTENT_BUCKET = 16_384  # as in hashsvc.store.aftermatch at this revision


def upgrade() -> None:
    op.add_column("events", sa.Column("content_bucket", sa.BigInteger, nullable=True))
    # integer division on both back ends (both columns are integers)
    op.execute(f"UPDATE events SET content_bucket = id / {CONTENT_BUCKET}")
    op.drop_index("ix_events_content_id", "events")
    op.create_index("ix_events_content_bucket_content_id", "events", ["content_bucket", "content_id"])


def downgrade() -> None:
    op.drop_index("ix_events_content_bucket_content_id", "events")
    op.create_index("ix_events_content_id", "events", ["content_id"])
    with op.batch_alter_table("events") as batch:
        batch.drop_column("content_bucket")
