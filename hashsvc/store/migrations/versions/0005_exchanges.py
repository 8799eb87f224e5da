"""Partner feeds: exchanges (config, encrypted credentials, checkpoint, lease, status) and entries kept aside.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hashsvc.store.schema import UtcDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "exchanges",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("bank_id", sa.BigInteger, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("credentials", sa.Text, nullable=True),
        sa.Column("every_s", sa.Integer, nullable=False),
        sa.Column("paused", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("feedback", sa.Boolean(create_constraint=False), nullable=False),
        sa.Column("checkpoint", sa.JSON, nullable=True),
        sa.Column("next_run_at", UtcDateTime, nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_until", UtcDateTime, nullable=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_attempt_at", UtcDateTime, nullable=True),
        sa.Column("last_success_at", UtcDateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_error_at", UtcDateTime, nullable=True),
        sa.Column("stats", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_exchanges"),
        sa.UniqueConstraint("name", name="uq_exchanges_name"),
        sa.UniqueConstraint("bank_id", name="uq_exchanges_bank_id"),
        sa.ForeignKeyConstraint(["bank_id"], ["banks.id"], name="fk_exchanges_bank_id_banks", ondelete="CASCADE"),
    )
    op.create_table(
        "exchange_unknown",
        sa.Column("exchange_id", sa.BigInteger, nullable=False),
        sa.Column("entry_id", sa.String(255), nullable=False),
        sa.Column("signals", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("seen_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("exchange_id", "entry_id", name="pk_exchange_unknown"),
        sa.ForeignKeyConstraint(
            ["exchange_id"], ["exchanges.id"], name="fk_exchange_unknown_exchange_id_exchanges", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("exchange_unknown")
    op.drop_table("exchanges")
