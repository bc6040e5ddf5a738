"""SQLAlchemy tables of the wallets service (the Alembic migrations create the same schema).

Amounts are NUMERIC(38, 18) on Postgres (exact SUM in SQL). SQLite has no exact numeric type,
so there they are stored as decimal text and summed by the `decimal_sum` aggregate that
`adapters.sqlite` registers on every connection (Python Decimal, exact). Times are
timezone-aware UTC on Postgres and naive-UTC ISO text on SQLite (which sorts correctly).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

AMOUNT_TEXT = 48  # sign + 20 integer digits + point + 18 decimals, with room to spare


class LedgerAmount(TypeDecorator[Decimal]):
    """NUMERIC(38, 18) on Postgres; exact decimal text on SQLite."""

    impl = Numeric(38, 18)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(AMOUNT_TEXT))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return format(value, "f")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on both backends."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; Postgres gets a BIGINT identity.
SerialId = BigInteger().with_variant(Integer(), "sqlite")

wallets = Table(
    "wallets",
    metadata,
    Column("wallet_id", String(64), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("venue", String(16), nullable=False),
    Column("account_id", String(128), nullable=False),
    Column("address", String(128), nullable=False),
    Column("chain", String(64), nullable=False),
    Column("read_only", Boolean, nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    # One wallet per venue account and per watched address.
    UniqueConstraint("venue", "account_id", "chain", "address", name="uq_wallets_identity"),
)

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("account_code", String(128), primary_key=True),  # e.g. wallet/<id>/available
    Column("kind", String(16), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("wallet_id", String(64), ForeignKey("wallets.wallet_id"), nullable=True),
)

journal_entries = Table(
    "journal_entries",
    metadata,
    Column("id", SerialId, primary_key=True, autoincrement=True),
    Column("entry_id", String(36), nullable=False, unique=True),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("fingerprint", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("description", String(500), nullable=False),
    Column("effective_time", UtcDateTime, nullable=False),
    Column("record_time", UtcDateTime, nullable=False),
    Column("fill_id", String(128), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("external_ref", String(200), nullable=False),
    Column("corrects_entry_id", String(36), nullable=False),
    Index("ix_journal_entries_effective", "effective_time", "id"),
    Index("ix_journal_entries_fill_id", "fill_id"),
)

postings = Table(
    "postings",
    metadata,
    Column("id", SerialId, primary_key=True, autoincrement=True),
    Column("entry_id", String(36), ForeignKey("journal_entries.entry_id"), nullable=False),
    Column("leg", Integer, nullable=False),
    Column("account_code", String(128), ForeignKey("ledger_accounts.account_code"), nullable=False),
    # Denormalised from the account and the entry so balances are one GROUP BY, no join.
    Column("wallet_id", String(64), nullable=True),
    Column("account_kind", String(16), nullable=False),
    Column("currency", String(16), nullable=False),
    Column("amount", LedgerAmount, nullable=False),
    Column("effective_time", UtcDateTime, nullable=False),
    Column("entry_kind", String(32), nullable=False),
    UniqueConstraint("entry_id", "leg", name="uq_postings_entry_leg"),
    Index("ix_postings_wallet", "wallet_id", "currency", "effective_time"),
    Index("ix_postings_account", "account_code", "currency"),
)

consumer_cursors = Table(
    "consumer_cursors",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
)

reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", UtcDateTime, nullable=False),
    Column("end_time", UtcDateTime, nullable=True),
    Column("checked_count", Integer, nullable=False),
    Column("venue_calls", Integer, nullable=False),
    Column("error", String(1000), nullable=False),
    Column("venue_stale", Boolean, nullable=False, server_default=false()),
    Column("last_seq", BigInteger, nullable=False),
    Index("ix_reconciliation_runs_start", "start_time", "run_id"),
)

reconciliation_run_wallets = Table(
    "reconciliation_run_wallets",
    metadata,
    Column("run_id", String(36), ForeignKey("reconciliation_runs.run_id"), primary_key=True),
    Column("wallet_id", String(64), primary_key=True),
    Index("ix_reconciliation_run_wallets_wallet", "wallet_id"),
)

reconciliation_discrepancies = Table(
    "reconciliation_discrepancies",
    metadata,
    Column("run_id", String(36), ForeignKey("reconciliation_runs.run_id"), primary_key=True),
    Column("wallet_id", String(64), primary_key=True),
    Column("currency", String(16), primary_key=True),
    Column("ledger_balance", LedgerAmount, nullable=False),
    Column("venue_balance", LedgerAmount, nullable=False),
    Column("difference", LedgerAmount, nullable=False),
    Column("tolerance", LedgerAmount, nullable=False),
    Column("presence", String(16), nullable=False),
    Column("venue_stale", Boolean, nullable=False),
)

# The durable feed of StreamReconciliations: one row per run update (start, finish).
reconciliation_updates = Table(
    "reconciliation_updates",
    metadata,
    Column("seq", SerialId, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("reconciliation_runs.run_id"), nullable=False),
    Column("status", String(16), nullable=False),
)
