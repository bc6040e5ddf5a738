"""parts reference widgets; widgets gain a column (an ALTER, batch mode on SQLite)

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("widgets") as batch:
        batch.add_column(sa.Column("color", sa.String(16), nullable=False, server_default="red"))
    op.create_table(
        "parts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("widget_id", sa.Integer, sa.ForeignKey("widgets.id"), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("parts")
    with op.batch_alter_table("widgets") as batch:
        batch.drop_column("color")
