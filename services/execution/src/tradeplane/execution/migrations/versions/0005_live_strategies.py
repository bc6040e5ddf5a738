"""live strategies: running strategy instances, and orders looked up by instance

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "strategy_instances",
        sa.Column("strategy_instance_id", sa.String(length=64), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("product_ids", sa.Text(), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("venue", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("initial_cash", sa.String(length=40), nullable=False),
        sa.Column("realized_pnl", sa.String(length=40), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("last_bar_times", sa.Text(), nullable=False),
        sa.Column("start_time_us", sa.BigInteger(), nullable=False),
        sa.Column("stop_time_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("strategy_instance_id", name=op.f("pk_strategy_instances")),
    )
    with op.batch_alter_table("strategy_instances", schema=None) as batch_op:
        batch_op.create_index(
            "ix_strategy_instances_start", ["start_time_us", "strategy_instance_id"], unique=False
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_orders_strategy_time", ["strategy_instance_id", "create_time_us"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_strategy_time")
    with op.batch_alter_table("strategy_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_strategy_instances_start")
    op.drop_table("strategy_instances")
