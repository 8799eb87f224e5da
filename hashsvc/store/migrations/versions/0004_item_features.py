"""Local features of items added from images, and the per-bank switch of the local-feature stage.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # frozen copy, as in 0001


def upgrade() -> None:
    op.create_table(
        "item_features",
        sa.Column("item_id", Id, autoincrement=False, nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("item_id", name="pk_item_features"),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name="fk_item_features_item_id_items", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "bank_feature_options",
        sa.Column("bank_id", Id, autoincrement=False, nullable=False),
        sa.Column("enabled", sa.Boolean(create_constraint=False), nullable=False),
        sa.PrimaryKeyConstraint("bank_id", name="pk_bank_feature_options"),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["banks.id"], name="fk_bank_feature_options_bank_id_banks", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("bank_feature_options")
    op.drop_table("item_features")
