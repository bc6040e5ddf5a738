"""wallets, ledger accounts, journal entries, postings, consumer cursors, reconciliation runs

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tradeplane.wallets.adapters.orm import LedgerAmount, SerialId, UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wallets",
        sa.Column("wallet_id", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("venue", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("address", sa.String(128), nullable=False),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("create_time", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("wallet_id", name="pk_wallets"),
        sa.UniqueConstraint("venue", "account_id", "chain", "address", name="uq_wallets_identity"),
    )
    op.create_table(
        "ledger_accounts",
        sa.Column("account_code", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("wallet_id", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.wallet_id"], name="fk_ledger_accounts_wallet_id_wallets"
        ),
        sa.PrimaryKeyConstraint("account_code", name="pk_ledger_accounts"),
    )
    op.create_table(
        "journal_entries",
        sa.Column("id", SerialId, autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(36), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("effective_time", UtcDateTime(), nullable=False),
        sa.Column("record_time", UtcDateTime(), nullable=False),
        sa.Column("fill_id", sa.String(128), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("external_ref", sa.String(200), nullable=False),
        sa.Column("corrects_entry_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_journal_entries"),
        sa.UniqueConstraint("entry_id", name="uq_journal_entries_entry_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_journal_entries_idempotency_key"),
    )
    op.create_index("ix_journal_entries_effective", "journal_entries", ["effective_time", "id"])
    op.create_index("ix_journal_entries_fill_id", "journal_entries", ["fill_id"])
    op.create_table(
        "postings",
        sa.Column("id", SerialId, autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(36), nullable=False),
        sa.Column("leg", sa.Integer(), nullable=False),
        sa.Column("account_code", sa.String(128), nullable=False),
        sa.Column("wallet_id", sa.String(64), nullable=True),
        sa.Column("account_kind", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("amount", LedgerAmount(), nullable=False),
        sa.Column("effective_time", UtcDateTime(), nullable=False),
        sa.Column("entry_kind", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["journal_entries.entry_id"], name="fk_postings_entry_id_journal_entries"
        ),
        sa.ForeignKeyConstraint(
            ["account_code"],
            ["ledger_accounts.account_code"],
            name="fk_postings_account_code_ledger_accounts",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_postings"),
        sa.UniqueConstraint("entry_id", "leg", name="uq_postings_entry_leg"),
    )
    op.create_index("ix_postings_wallet", "postings", ["wallet_id", "currency", "effective_time"])
    op.create_index("ix_postings_account", "postings", ["account_code", "currency"])
    op.create_table(
        "consumer_cursors",
        sa.Column("consumer", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("update_time", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", name="pk_consumer_cursors"),
    )
    op.create_table(
        "reconciliation_runs",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", UtcDateTime(), nullable=False),
        sa.Column("end_time", UtcDateTime(), nullable=True),
        sa.Column("checked_count", sa.Integer(), nullable=False),
        sa.Column("venue_calls", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(1000), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_reconciliation_runs"),
    )
    op.create_index("ix_reconciliation_runs_start", "reconciliation_runs", ["start_time", "run_id"])
    op.create_table(
        "reconciliation_run_wallets",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("wallet_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.run_id"],
            name="fk_reconciliation_run_wallets_run_id_reconciliation_runs",
        ),
        sa.PrimaryKeyConstraint("run_id", "wallet_id", name="pk_reconciliation_run_wallets"),
    )
    op.create_index(
        "ix_reconciliation_run_wallets_wallet", "reconciliation_run_wallets", ["wallet_id"]
    )
    op.create_table(
        "reconciliation_discrepancies",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("wallet_id", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("ledger_balance", LedgerAmount(), nullable=False),
        sa.Column("venue_balance", LedgerAmount(), nullable=False),
        sa.Column("difference", LedgerAmount(), nullable=False),
        sa.Column("tolerance", LedgerAmount(), nullable=False),
        sa.Column("presence", sa.String(16), nullable=False),
        sa.Column("venue_stale", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.run_id"],
            name="fk_reconciliation_discrepancies_run_id_reconciliation_runs",
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "wallet_id", "currency", name="pk_reconciliation_discrepancies"
        ),
    )
    op.create_table(
        "reconciliation_updates",
        sa.Column("seq", SerialId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reconciliation_runs.run_id"],
            name="fk_reconciliation_updates_run_id_reconciliation_runs",
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_reconciliation_updates"),
    )


def downgrade() -> None:
    for table in (
        "reconciliation_updates",
        "reconciliation_discrepancies",
        "reconciliation_run_wallets",
        "reconciliation_runs",
        "consumer_cursors",
        "postings",
        "journal_entries",
        "ledger_accounts",
        "wallets",
    ):
        op.drop_table(table)
