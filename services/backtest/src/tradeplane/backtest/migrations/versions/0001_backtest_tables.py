"""backtest tables

Revision ID: 0001
Revises:
Create Date: 2026-11-29 04:10:00.372488
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
        "backtest_bars",
        sa.Column("backtest_id", sa.String(length=36), nullable=False),
        sa.Column("bar_index", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.String(length=40), nullable=False),
        sa.Column("high", sa.String(length=40), nullable=False),
        sa.Column("low", sa.String(length=40), nullable=False),
        sa.Column("close", sa.String(length=40), nullable=False),
        sa.Column("volume", sa.String(length=40), nullable=False),
        sa.Column("equity", sa.String(length=40), nullable=False),
        sa.Column("cash", sa.String(length=40), nullable=False),
        sa.Column("position", sa.String(length=40), nullable=False),
        sa.Column("drawdown", sa.Float(), nullable=False),
        sa.Column("indicators", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("backtest_id", "bar_index", name=op.f("pk_backtest_bars")),
    )
    with op.batch_alter_table("backtest_bars", schema=None) as batch_op:
        batch_op.create_index("ix_backtest_bars_time", ["backtest_id", "time"], unique=False)

    op.create_table(
        "backtest_fills",
        sa.Column("backtest_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("bar_index", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("price", sa.String(length=40), nullable=False),
        sa.Column("size", sa.String(length=40), nullable=False),
        sa.Column("fee", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("trade_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("backtest_id", "seq", name=op.f("pk_backtest_fills")),
    )
    with op.batch_alter_table("backtest_fills", schema=None) as batch_op:
        batch_op.create_index(
            "ix_backtest_fills_bar", ["backtest_id", "bar_index", "seq"], unique=False
        )

    op.create_table(
        "backtest_orders",
        sa.Column("backtest_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("size", sa.String(length=40), nullable=False),
        sa.Column("quote_size", sa.String(length=40), nullable=False),
        sa.Column("limit_price", sa.String(length=40), nullable=False),
        sa.Column("stop_price", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filled_size", sa.String(length=40), nullable=False),
        sa.Column("average_fill_price", sa.String(length=40), nullable=False),
        sa.Column("fees", sa.String(length=40), nullable=False),
        sa.Column("submit_bar", sa.BigInteger(), nullable=False),
        sa.Column("submit_time", sa.BigInteger(), nullable=False),
        sa.Column("update_bar", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.BigInteger(), nullable=False),
        sa.Column("done_bar", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("backtest_id", "seq", name=op.f("pk_backtest_orders")),
    )
    with op.batch_alter_table("backtest_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_backtest_orders_submit", ["backtest_id", "submit_bar"], unique=False
        )

    op.create_table(
        "backtest_progress",
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("backtest_id", sa.String(length=36), nullable=False),
        sa.Column("sweep_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("bars_per_second", sa.Float(), nullable=False),
        sa.Column("eta_seconds", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("target_id", "seq", name=op.f("pk_backtest_progress")),
    )
    op.create_table(
        "backtest_runs",
        sa.Column("backtest_id", sa.String(length=36), nullable=False),
        sa.Column("sweep_id", sa.String(length=36), nullable=True),
        sa.Column("holdout_of", sa.String(length=36), nullable=True),
        sa.Column("max_parallel", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.String(length=32), nullable=False),
        sa.Column("interval", sa.String(length=4), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("bars_done", sa.BigInteger(), nullable=False),
        sa.Column("bars_total", sa.BigInteger(), nullable=False),
        sa.Column("progress_seq", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("create_time_us", sa.BigInteger(), nullable=False),
        sa.Column("start_time_us", sa.BigInteger(), nullable=True),
        sa.Column("end_time_us", sa.BigInteger(), nullable=True),
        sa.Column("worker_id", sa.String(length=128), nullable=True),
        sa.Column("heartbeat_us", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("vectorised", sa.Boolean(), nullable=False),
        sa.Column("statistics_json", sa.Text(), nullable=True),
        sa.Column("indicators_json", sa.Text(), nullable=True),
        sa.Column("total_return", sa.Float(), nullable=True),
        sa.Column("annualized_return", sa.Float(), nullable=True),
        sa.Column("sharpe", sa.Float(), nullable=True),
        sa.Column("sortino", sa.Float(), nullable=True),
        sa.Column("calmar", sa.Float(), nullable=True),
        sa.Column("max_drawdown", sa.Float(), nullable=True),
        sa.Column("win_rate", sa.Float(), nullable=True),
        sa.Column("profit_factor", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("backtest_id", name=op.f("pk_backtest_runs")),
    )
    with op.batch_alter_table("backtest_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_backtest_runs_created", ["create_time_us", "backtest_id"], unique=False
        )
        batch_op.create_index(
            "ix_backtest_runs_status_created", ["status", "create_time_us"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_backtest_runs_sweep_id"), ["sweep_id"], unique=False)

    op.create_table(
        "backtest_series",
        sa.Column("backtest_id", sa.String(length=36), nullable=False),
        sa.Column("time", sa.LargeBinary(), nullable=False),
        sa.Column("equity", sa.LargeBinary(), nullable=False),
        sa.Column("cash", sa.LargeBinary(), nullable=False),
        sa.Column("drawdown", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("backtest_id", name=op.f("pk_backtest_series")),
    )
    op.create_table(
        "backtest_snapshots",
        sa.Column("backtest_id", sa.String(length=36), nullable=False),
        sa.Column("bar_index", sa.BigInteger(), nullable=False),
        sa.Column("cash", sa.String(length=40), nullable=False),
        sa.Column("quantity", sa.String(length=40), nullable=False),
        sa.Column("average_price", sa.String(length=40), nullable=False),
        sa.Column("realized_pnl", sa.String(length=40), nullable=False),
        sa.Column("fees_paid", sa.String(length=40), nullable=False),
        sa.Column("fill_count", sa.Integer(), nullable=False),
        sa.Column("open_orders", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("backtest_id", "bar_index", name=op.f("pk_backtest_snapshots")),
    )
    op.create_table(
        "backtest_sweeps",
        sa.Column("sweep_id", sa.String(length=36), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("config_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rank_by", sa.String(length=32), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("progress_seq", sa.BigInteger(), nullable=False),
        sa.Column("varied_json", sa.Text(), nullable=False),
        sa.Column("holdout_queued", sa.Boolean(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("create_time_us", sa.BigInteger(), nullable=False),
        sa.Column("end_time_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("sweep_id", name=op.f("pk_backtest_sweeps")),
    )
    with op.batch_alter_table("backtest_sweeps", schema=None) as batch_op:
        batch_op.create_index(
            "ix_backtest_sweeps_created", ["create_time_us", "sweep_id"], unique=False
        )

    op.create_table(
        "backtest_trades",
        sa.Column("backtest_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("trade_id", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("size", sa.String(length=40), nullable=False),
        sa.Column("entry_bar", sa.BigInteger(), nullable=False),
        sa.Column("entry_time", sa.BigInteger(), nullable=False),
        sa.Column("entry_price", sa.String(length=40), nullable=False),
        sa.Column("exit_bar", sa.BigInteger(), nullable=False),
        sa.Column("exit_time", sa.BigInteger(), nullable=False),
        sa.Column("exit_price", sa.String(length=40), nullable=False),
        sa.Column("pnl", sa.String(length=40), nullable=False),
        sa.Column("fees", sa.String(length=40), nullable=False),
        sa.Column("return_fraction", sa.Float(), nullable=False),
        sa.Column("bars_held", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("backtest_id", "seq", name=op.f("pk_backtest_trades")),
    )
    with op.batch_alter_table("backtest_trades", schema=None) as batch_op:
        batch_op.create_index(
            "ix_backtest_trades_entry", ["backtest_id", "entry_time"], unique=False
        )


def downgrade() -> None:
    op.drop_table("backtest_series")
    with op.batch_alter_table("backtest_trades", schema=None) as batch_op:
        batch_op.drop_index("ix_backtest_trades_entry")

    op.drop_table("backtest_trades")
    with op.batch_alter_table("backtest_sweeps", schema=None) as batch_op:
        batch_op.drop_index("ix_backtest_sweeps_created")

    op.drop_table("backtest_sweeps")
    op.drop_table("backtest_snapshots")
    with op.batch_alter_table("backtest_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backtest_runs_sweep_id"))
        batch_op.drop_index("ix_backtest_runs_status_created")
        batch_op.drop_index("ix_backtest_runs_created")

    op.drop_table("backtest_runs")
    op.drop_table("backtest_progress")
    with op.batch_alter_table("backtest_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_backtest_orders_submit")

    op.drop_table("backtest_orders")
    with op.batch_alter_table("backtest_fills", schema=None) as batch_op:
        batch_op.drop_index("ix_backtest_fills_bar")

    op.drop_table("backtest_fills")
    with op.batch_alter_table("backtest_bars", schema=None) as batch_op:
        batch_op.drop_index("ix_backtest_bars_time")

    op.drop_table("backtest_bars")
