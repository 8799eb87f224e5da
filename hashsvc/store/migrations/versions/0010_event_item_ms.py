"""Event items: the flood guard's index is on (item_id, at_ms), a time in whole milliseconds, not on (item_id, at).

On SQLite a timestamp is stored as 26 characters of text, so an entry of (item_id, at) took about three times the
bytes of (item_id, at_ms), the index three times the pages, and every write of the event writer dirtied a page of it
per distinct item its events matched (hashsvc/store/schema.py). Existing rows get their at_ms here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("event_items", sa.Column("at_ms", sa.BigInteger, nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # `at` is "YYYY-MM-DD HH:MM:SS.ffffff" in UTC: whole seconds from %s, milliseconds from the fraction
        op.execute(
            "UPDATE event_items SET at_ms = CAST(strftime('%s', at) AS INTEGER) * 1000"
            " + CAST(substr(strftime('%f', at), 4, 3) AS INTEGER)"
        )
    else:
        op.execute("UPDATE event_items SET at_ms = floor(extract(epoch from at) * 1000)::bigint")
    op.drop_index("ix_event_items_item_id_at", "event_items")
    op.create_index("ix_event_items_item_id_at_ms", "event_items", ["item_id", "at_ms"])


def downgrade() -> None:
    op.drop_index("ix_event_items_item_id_at_ms", "event_items")
    op.create_index("ix_event_items_item_id_at", "event_items", ["item_id", "at"])
    with op.batch_alter_table("event_items") as batch:
        batch.drop_column("at_ms")
