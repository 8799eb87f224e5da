"""Video items: the vPDQ frame list of each video item, and per-bank vPDQ match shares.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "video_frames",
        sa.Column("item_id", sa.BigInteger, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("frame", sa.Integer, nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
        sa.Column("quality", sa.SmallInteger, nullable=False),
        sa.Column("code", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("item_id", "position", name="pk_video_frames"),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name="fk_video_frames_item_id_items", ondelete="CASCADE"),
    )
    op.create_table(
        "bank_video_rules",
        sa.Column("bank_id", sa.BigInteger, nullable=False),
        sa.Column("query_share", sa.Float, nullable=False),
        sa.Column("item_share", sa.Float, nullable=False),
        sa.Column("quality", sa.SmallInteger, nullable=False),
        sa.PrimaryKeyConstraint("bank_id", name="pk_bank_video_rules"),
        sa.ForeignKeyConstraint(
            ["bank_id"], ["banks.id"], name="fk_bank_video_rules_bank_id_banks", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("bank_video_rules")
    op.drop_table("video_frames")
