"""SQLAlchemy tables of the backtest service.

Money and prices are decimal strings (exact on every backend); ratios (statistics, drawdown,
progress) are floats, as in the proto. Times are epoch seconds (bars) or microseconds
(run lifecycle). Every per-run table is keyed (backtest_id, ordinal) so pages and ranges are
index walks.

`backtest_runs` is also the job queue: a QUEUED row is a job; a worker claims it with
`SELECT ... FOR UPDATE SKIP LOCKED` (Postgres) followed by a compare-and-set on `status`
(which alone is enough on SQLite, where writers are serialised). See adapters/repository.py.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

DEC = 40  # decimal strings
ID = 36  # uuid text

STAT_COLUMNS = (
    "total_return",
    "annualized_return",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "win_rate",
    "profit_factor",
)

runs = Table(
    "backtest_runs",
    metadata,
    Column("backtest_id", String(ID), primary_key=True),
    Column("sweep_id", String(ID), nullable=True, index=True),
    # A walk-forward hold-out re-run: the in-sample run of the same sweep it re-runs.
    Column("holdout_of", String(ID), nullable=True),
    # Its sweep's max_parallel (0 = no limit): at most that many of the sweep's runs RUNNING.
    Column("max_parallel", Integer, nullable=False, default=0),
    Column("strategy", String(64), nullable=False),
    Column("product_id", String(32), nullable=False),
    Column("interval", String(4), nullable=False),
    Column("config_json", Text, nullable=False),  # the RunSpec
    Column("status", String(16), nullable=False),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("progress", Float, nullable=False, default=0.0),
    Column("bars_done", BigInteger, nullable=False, default=0),
    Column("bars_total", BigInteger, nullable=False, default=0),
    Column("progress_seq", BigInteger, nullable=False, default=0),
    Column("error", Text, nullable=False, default=""),
    Column("create_time_us", BigInteger, nullable=False),
    Column("start_time_us", BigInteger, nullable=True),
    Column("end_time_us", BigInteger, nullable=True),
    Column("worker_id", String(128), nullable=True),
    Column("heartbeat_us", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("vectorised", Boolean, nullable=False, default=False),
    Column("statistics_json", Text, nullable=True),
    Column("indicators_json", Text, nullable=True),  # playback indicator series layout
    *(Column(name, Float, nullable=True) for name in STAT_COLUMNS),
    Index("ix_backtest_runs_status_created", "status", "create_time_us"),
    Index("ix_backtest_runs_created", "create_time_us", "backtest_id"),
)

progress = Table(
    "backtest_progress",
    metadata,
    Column("target_id", String(ID), primary_key=True),  # backtest or sweep id
    Column("seq", BigInteger, primary_key=True),
    Column("backtest_id", String(ID), nullable=False),
    Column("sweep_id", String(ID), nullable=False),
    Column("status", String(16), nullable=False),
    Column("progress", Float, nullable=False),
    Column("done", BigInteger, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("bars_per_second", Float, nullable=False),
    Column("eta_seconds", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("time_us", BigInteger, nullable=False),
)

orders = Table(
    "backtest_orders",
    metadata,
    Column("backtest_id", String(ID), primary_key=True),
    Column("seq", Integer, primary_key=True),  # index into the run's orders
    Column("order_id", String(32), nullable=False),
    Column("side", String(4), nullable=False),
    Column("type", String(16), nullable=False),
    Column("size", String(DEC), nullable=False),
    Column("quote_size", String(DEC), nullable=False),
    Column("limit_price", String(DEC), nullable=False),
    Column("stop_price", String(DEC), nullable=False),
    Column("status", String(16), nullable=False),
    Column("filled_size", String(DEC), nullable=False),
    Column("average_fill_price", String(DEC), nullable=False),
    Column("fees", String(DEC), nullable=False),
    Column("submit_bar", BigInteger, nullable=False),
    Column("submit_time", BigInteger, nullable=False),
    Column("update_bar", BigInteger, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    Column("done_bar", BigInteger, nullable=False),  # bar it stopped working; huge while open
    Column("reason", Text, nullable=False),
    Column("note", Text, nullable=False),
    Index("ix_backtest_orders_submit", "backtest_id", "submit_bar"),
)

fills = Table(
    "backtest_fills",
    metadata,
    Column("backtest_id", String(ID), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("order_id", String(32), nullable=False),
    Column("bar_index", BigInteger, nullable=False),
    Column("time", BigInteger, nullable=False),
    Column("side", String(4), nullable=False),
    Column("price", String(DEC), nullable=False),
    Column("size", String(DEC), nullable=False),
    Column("fee", String(DEC), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("trade_id", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_backtest_fills_bar", "backtest_id", "bar_index", "seq"),
)

trades = Table(
    "backtest_trades",
    metadata,
    Column("backtest_id", String(ID), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("trade_id", String(32), nullable=False),
    Column("side", String(4), nullable=False),
    Column("size", String(DEC), nullable=False),
    Column("entry_bar", BigInteger, nullable=False),
    Column("entry_time", BigInteger, nullable=False),
    Column("entry_price", String(DEC), nullable=False),
    Column("exit_bar", BigInteger, nullable=False),
    Column("exit_time", BigInteger, nullable=False),
    Column("exit_price", String(DEC), nullable=False),  # "" while open
    Column("pnl", String(DEC), nullable=False),
    Column("fees", String(DEC), nullable=False),
    Column("return_fraction", Float, nullable=False),
    Column("bars_held", BigInteger, nullable=False),
    Column("open", Boolean, nullable=False),
    Index("ix_backtest_trades_entry", "backtest_id", "entry_time"),
)

# One row per bar: the playback candle, its indicator values and the equity point, written
# in one bulk insert at the end of a run (GetEquity and GetPlaybackCandles read it).
bars = Table(
    "backtest_bars",
    metadata,
    Column("backtest_id", String(ID), primary_key=True),
    Column("bar_index", BigInteger, primary_key=True),
    Column("time", BigInteger, nullable=False),
    Column("open", String(DEC), nullable=False),
    Column("high", String(DEC), nullable=False),
    Column("low", String(DEC), nullable=False),
    Column("close", String(DEC), nullable=False),
    Column("volume", String(DEC), nullable=False),
    Column("equity", String(DEC), nullable=False),
    Column("cash", String(DEC), nullable=False),
    Column("position", String(DEC), nullable=False),
    Column("drawdown", Float, nullable=False),
    Column("indicators", Text, nullable=False),  # JSON list aligned with indicators_json
    Index("ix_backtest_bars_time", "backtest_id", "time"),
)

# The run's time, equity, cash and drawdown columns as packed int64/float64 arrays (a derived
# copy of backtest_bars): GetEquity(max_points) and CompareBacktests downsample these with LTTB
# without reading a million rows. Formatted with the same exact float -> decimal rule, the
# points equal the stored decimal strings.
series = Table(
    "backtest_series",
    metadata,
    Column("backtest_id", String(ID), primary_key=True),
    Column("time", LargeBinary, nullable=False),
    Column("equity", LargeBinary, nullable=False),
    Column("cash", LargeBinary, nullable=False),
    Column("drawdown", LargeBinary, nullable=False),
)

snapshots = Table(
    "backtest_snapshots",
    metadata,
    Column("backtest_id", String(ID), primary_key=True),
    Column("bar_index", BigInteger, primary_key=True),
    Column("cash", String(DEC), nullable=False),
    Column("quantity", String(DEC), nullable=False),
    Column("average_price", String(DEC), nullable=False),
    Column("realized_pnl", String(DEC), nullable=False),
    Column("fees_paid", String(DEC), nullable=False),
    Column("fill_count", Integer, nullable=False),
    Column("open_orders", Text, nullable=False),  # JSON list of order seqs working then
)

sweeps = Table(
    "backtest_sweeps",
    metadata,
    Column("sweep_id", String(ID), primary_key=True),
    Column("strategy", String(64), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("rank_by", String(32), nullable=False),
    Column("total", Integer, nullable=False),
    Column("done", Integer, nullable=False, default=0),
    Column("progress_seq", BigInteger, nullable=False, default=0),
    Column("varied_json", Text, nullable=False),  # names of the varied parameters
    Column("holdout_queued", Boolean, nullable=False, default=False),
    Column("queued", Integer, nullable=False, default=0),  # in-sample runs queued so far
    Column("error", Text, nullable=False, default=""),
    Column("create_time_us", BigInteger, nullable=False),
    Column("end_time_us", BigInteger, nullable=True),
    Index("ix_backtest_sweeps_created", "create_time_us", "sweep_id"),
)
