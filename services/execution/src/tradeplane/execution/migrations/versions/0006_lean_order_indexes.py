"""lean order indexes: fewer index entries per order insert and ack

Every new order and every acknowledgement wrote an entry in each of the orders table's ten
indexes (an ack changes ``status`` and ``venue_order_id``, both indexed, so it is never a HOT
update). ``ix_orders_status`` (five distinct values) is dropped: the working-order queries use
the partial ``ix_orders_working``, the others lead with the account or the time. The
decision, strategy-instance and venue-order-id indexes become partial (most orders have no
decision or strategy instance, and no venue id until acknowledged); their queries add the
``<> ''`` predicate so a generic plan can still use them.

``ix_orders_working`` gains ``side`` and, on Postgres, carries the sizes (INCLUDE): the risk
check's sum of the working orders' remaining size per (account, product, side) is an
index-only scan in group order instead of a heap scan and a sort (2,000 working orders:
4.9 -> 1.5 ms per batch of the database's time).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTIAL = {
    "ix_orders_decision": ["decision_id"],
    "ix_orders_strategy_time": ["strategy_instance_id", "create_time_us"],
    "ix_orders_venue_order": ["venue", "venue_order_id"],
}
NOT_EMPTY = {
    "ix_orders_decision": "decision_id <> ''",
    "ix_orders_strategy_time": "strategy_instance_id <> ''",
    "ix_orders_venue_order": "venue_order_id <> ''",
}


WORKING = sa.text("status IN ('NEW', 'OPEN', 'PARTIALLY_FILLED')")


def upgrade() -> None:
    op.drop_index("ix_orders_status", table_name="orders")
    op.drop_index("ix_orders_working", table_name="orders")
    op.create_index(
        "ix_orders_working",
        "orders",
        ["account_id", "product_id", "side"],
        postgresql_include=["base_size", "filled_size"],
        postgresql_where=WORKING,
        sqlite_where=WORKING,
    )
    for name, columns in PARTIAL.items():
        op.drop_index(name, table_name="orders")
        where = sa.text(NOT_EMPTY[name])
        op.create_index(name, "orders", columns, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    op.drop_index("ix_orders_working", table_name="orders")
    op.create_index(
        "ix_orders_working",
        "orders",
        ["account_id", "product_id"],
        postgresql_where=WORKING,
        sqlite_where=WORKING,
    )
    for name, columns in PARTIAL.items():
        op.drop_index(name, table_name="orders")
        op.create_index(name, "orders", columns)
    op.create_index("ix_orders_status", "orders", ["status"])
