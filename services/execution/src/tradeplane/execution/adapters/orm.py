"""SQLAlchemy tables of the execution service (Core; the same schema on SQLite and Postgres).

Decimals are stored as decimal strings (exact on every backend); times as integer
microseconds since the epoch (exact, and they sort the same everywhere). Every list query
walks an index ending in the time column, newest first, paged by (time, id).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
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
ID = 64


def _dec(name: str, nullable: bool = False) -> Column[str]:
    return Column(name, String(DEC), nullable=nullable)


accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("venue", String(16), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("valuation_currency", String(16), nullable=False),
    Column("cash", Text, nullable=False),  # JSON {"USD": "100000"}
    _dec("peak_equity", nullable=True),
    Column("daily_pnl_day", String(10), nullable=True),  # ISO date (UTC)
    _dec("daily_pnl_amount"),
    Column("loss_streak_count", Integer, nullable=False),
    Column("loss_streak_last_us", BigInteger, nullable=True),
    Column("create_time_us", BigInteger, nullable=False),
)

# One row per scope: "" is the global state, otherwise an account id.
trading_states = Table(
    "trading_states",
    metadata,
    Column("scope_id", String(ID), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("previous_state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("changed_by", String(200), nullable=False),
    Column("canceled_order_count", Integer, nullable=False),
    Column("time_us", BigInteger, nullable=False),
)

risk_limits = Table(
    "risk_limits",
    metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("limits", Text, nullable=False),  # JSON of the limits, decimals as strings
    Column("updated_by", String(200), nullable=False),
    Column("update_time_us", BigInteger, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(ID), primary_key=True),
    Column("account_id", String(ID), nullable=False),
    Column("client_order_id", String(128), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("venue", String(16), nullable=False),
    Column("venue_order_id", String(128), nullable=False),
    Column("product_id", String(32), nullable=False),
    Column("side", String(4), nullable=False),
    Column("type", String(16), nullable=False),
    Column("time_in_force", String(4), nullable=False),
    Column("expire_time_us", BigInteger, nullable=True),
    _dec("base_size", nullable=True),
    _dec("quote_size", nullable=True),
    _dec("limit_price", nullable=True),
    _dec("stop_price", nullable=True),
    Column("stop_direction", String(4), nullable=True),
    Column("post_only", Boolean, nullable=False),
    Column("bracket", Text, nullable=True),  # JSON
    Column("status", String(20), nullable=False),
    _dec("filled_size"),
    _dec("filled_quote"),
    _dec("fees"),
    Column("fee_currency", String(16), nullable=False),
    Column("fill_count", Integer, nullable=False),
    Column("status_reason", Text, nullable=False),
    Column("parent_order_id", String(ID), nullable=False),
    Column("bracket_leg", String(16), nullable=True),
    Column("strategy_instance_id", String(ID), nullable=False),
    Column("decision_id", String(ID), nullable=False),
    Column("external", Boolean, nullable=False),
    Column("create_time_us", BigInteger, nullable=False),
    Column("update_time_us", BigInteger, nullable=False),
    UniqueConstraint("account_id", "client_order_id", name="uq_orders_account_client_order_id"),
    Index("ix_orders_account_time", "account_id", "create_time_us"),
    Index("ix_orders_time", "create_time_us"),
    # Working orders per account, product and side with their sizes (risk checks: an
    # index-only sum), migrations 0004 and 0006.
    Index(
        "ix_orders_working",
        "account_id",
        "product_id",
        "side",
        postgresql_include=["base_size", "filled_size"],
        postgresql_where=text("status IN ('NEW', 'OPEN', 'PARTIALLY_FILLED')"),
        sqlite_where=text("status IN ('NEW', 'OPEN', 'PARTIALLY_FILLED')"),
    ),
    # Legs of a bracket (one-cancels-other), migration 0004.
    Index(
        "ix_orders_parent",
        "parent_order_id",
        postgresql_where=text("parent_order_id <> ''"),
        sqlite_where=text("parent_order_id <> ''"),
    ),
    # Partial (migration 0006): most orders have no decision, and no venue id until acked.
    Index(
        "ix_orders_decision",
        "decision_id",
        postgresql_where=text("decision_id <> ''"),
        sqlite_where=text("decision_id <> ''"),
    ),
    Index(
        "ix_orders_venue_order",
        "venue",
        "venue_order_id",
        postgresql_where=text("venue_order_id <> ''"),
        sqlite_where=text("venue_order_id <> ''"),
    ),
)

fills = Table(
    "fills",
    metadata,
    Column("fill_id", String(ID), primary_key=True),
    Column("venue", String(16), nullable=False),
    Column("venue_trade_id", String(128), nullable=False),
    Column("order_id", String(ID), nullable=False),
    Column("client_order_id", String(128), nullable=False),
    Column("account_id", String(ID), nullable=False),
    Column("product_id", String(32), nullable=False),
    Column("side", String(4), nullable=False),
    _dec("price"),
    _dec("size"),
    _dec("fee"),
    Column("fee_currency", String(16), nullable=False),
    Column("liquidity", String(8), nullable=True),
    Column("time_us", BigInteger, nullable=False),
    UniqueConstraint("venue", "venue_trade_id", name="uq_fills_venue_trade_id"),
    Index("ix_fills_account_time", "account_id", "time_us"),
    Index("ix_fills_time", "time_us"),
    Index("ix_fills_order", "order_id"),
)

positions = Table(
    "positions",
    metadata,
    Column("account_id", String(ID), primary_key=True),
    Column("product_id", String(32), primary_key=True),
    Column("venue", String(16), nullable=False),
    _dec("quantity"),
    _dec("average_entry_price"),
    _dec("mark_price", nullable=True),
    _dec("realized_pnl"),
    _dec("fees_paid"),
    Column("open_time_us", BigInteger, nullable=True),
    Column("update_time_us", BigInteger, nullable=True),
)

blocks = Table(
    "blocks",
    metadata,
    Column("block_id", String(ID), primary_key=True),
    Column("account_id", String(ID), nullable=False),
    Column("client_order_id", String(128), nullable=False),
    Column("product_id", String(32), nullable=False),
    Column("side", String(4), nullable=False),
    Column("type", String(16), nullable=False),
    _dec("base_size", nullable=True),
    _dec("price", nullable=True),
    Column("rule", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("limit_value", Text, nullable=False),
    Column("actual", Text, nullable=False),
    Column("strategy_instance_id", String(ID), nullable=False),
    Column("decision_id", String(ID), nullable=False),
    Column("time_us", BigInteger, nullable=False),
    Index("ix_blocks_account_time", "account_id", "time_us"),
    Index("ix_blocks_product_time", "product_id", "time_us"),
    Index("ix_blocks_rule_time", "rule", "time_us"),
    Index("ix_blocks_time", "time_us"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(ID), primary_key=True),
    Column("strategy", String(200), nullable=False),
    Column("strategy_instance_id", String(ID), nullable=False),
    Column("account_id", String(ID), nullable=False),
    Column("product_id", String(32), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("inputs", Text, nullable=False),  # JSON
    Column("reason", Text, nullable=False),
    Column("model", String(200), nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    _dec("cost_amount", nullable=True),
    Column("cost_currency", String(16), nullable=False),
    Column("create_time_us", BigInteger, nullable=False),
    Index("ix_decisions_strategy_time", "strategy", "create_time_us"),
    Index("ix_decisions_account_time", "account_id", "create_time_us"),
    Index("ix_decisions_trace", "trace_id"),
    Index("ix_decisions_time", "create_time_us"),
)

# The outbox: every state change's events, with a gapless seq assigned in commit order.
events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time_us", BigInteger, nullable=False),
    Column("account_id", String(ID), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Index("ix_events_account_seq", "account_id", "seq"),
)

# One row (id 1): the last seq handed out. Whoever numbers events (the SQLite writer, or the
# Postgres outbox sequencer) updates it in the same transaction, so no seq is lost or reused.
event_counter = Table(
    "event_counter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_seq", BigInteger, nullable=False),
)

# Postgres writers append here without any shared lock (``txid`` = the writing transaction);
# the outbox sequencer moves rows whose transaction is finished into ``events`` with the next
# seqs. SQLite (one writer at a time) numbers events directly in the writing transaction.
pending_events = Table(
    "pending_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    # Postgres fills it by default (migration 0004) with the writing transaction's id.
    Column("txid", BigInteger, nullable=False),
    Column("time_us", BigInteger, nullable=False),
    Column("account_id", String(ID), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

# Venue reconciliation state, one row per venue (migration 0003).
venue_sync = Table(
    "venue_sync",
    metadata,
    Column("venue", String(16), primary_key=True),
    Column("fills_since_us", BigInteger, nullable=True),
    Column("last_run_us", BigInteger, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("mismatches", Text, nullable=False),  # JSON list of strings
)
