"""candles table

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "candles",
        sa.Column("product_id", sa.String(32), nullable=False),
        sa.Column("interval", sa.String(4), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.String(40), nullable=False),
        sa.Column("high", sa.String(40), nullable=False),
        sa.Column("low", sa.String(40), nullable=False),
        sa.Column("close", sa.String(40), nullable=False),
        sa.Column("volume", sa.String(40), nullable=False),
        sa.Column("trade_count", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("product_id", "interval", "start", name="pk_candles"),
    )


def downgrade() -> None:
    op.drop_table("candles")
