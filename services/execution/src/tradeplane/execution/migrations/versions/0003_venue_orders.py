"""venue orders: lookup of orders by venue order id, and the venue reconciliation state

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Reconciliation and the user channel find orders by the venue's id.
    op.create_index("ix_orders_venue_order", "orders", ["venue", "venue_order_id"])
    op.create_table(
        "venue_sync",
        sa.Column("venue", sa.String(length=16), nullable=False),
        # Fills are listed from here on the next run (the start of the last good run).
        sa.Column("fills_since_us", sa.BigInteger(), nullable=True),
        sa.Column("last_run_us", sa.BigInteger(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("mismatches", sa.Text(), nullable=False),  # JSON list of strings
        sa.PrimaryKeyConstraint("venue", name=op.f("pk_venue_sync")),
    )


def downgrade() -> None:
    op.drop_table("venue_sync")
    op.drop_index("ix_orders_venue_order", table_name="orders")
