"""API keys: disclosure ('full' or 'decision') and per-key overrides of the rate limit and concurrency.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch_alter_table: SQLite cannot add constraints or drop columns in place; on PostgreSQL it is plain ALTERs.
    with op.batch_alter_table("api_keys") as batch:
        # Existing keys keep what they had: full answers and the server's limits.
        batch.add_column(sa.Column("disclosure", sa.String(16), nullable=False, server_default="full"))
        batch.add_column(sa.Column("rate_per_s", sa.Float, nullable=True))
        batch.add_column(sa.Column("burst", sa.Integer, nullable=True))
        batch.add_column(sa.Column("max_inflight", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        for column in ("max_inflight", "burst", "rate_per_s", "disclosure"):
            batch.drop_column(column)
