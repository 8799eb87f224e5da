"""Item hashes: mark the hashes of edited views (crops, the trimmed picture) apart from the item's own.
API keys: an optional expiry, and the previous secret's hash and end of grace after a rotation.

Exports carry an item's own hashes by default. Hashes stored before this revision are all taken as the item's
own (nothing recorded which were views); re-adding such an item from its image marks them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hashsvc.store.schema import UtcDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("item_hashes") as batch:
        batch.add_column(
            sa.Column("is_view", sa.Boolean(create_constraint=False), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("previous_key_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("previous_expires_at", UtcDateTime(), nullable=True))
        batch.create_index("ix_api_keys_previous_key_hash", ["previous_key_hash"])


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_previous_key_hash")
        batch.drop_column("previous_expires_at")
        batch.drop_column("previous_key_hash")
        batch.drop_column("expires_at")
    with op.batch_alter_table("item_hashes") as batch:
        batch.drop_column("is_view")
