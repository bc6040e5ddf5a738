"""SQLite specifics: exact decimal sums and write transactions that take the lock up front.

- `decimal_sum(x)`: an aggregate over decimal text, computed with Python's Decimal (SQLite's
  own SUM would go through binary floating point). Returns normalised text ("0" for zero).
- Transactions: pysqlite's implicit BEGIN is turned off and SQLAlchemy emits BEGIN itself
  (the documented recipe); a connection marked `write=True` (see `ledger_repository`) begins
  with BEGIN IMMEDIATE, so two writers serialise at BEGIN instead of one failing at COMMIT and
  two withdrawals can never both read the same available balance.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tradeplane.wallets.domain.currencies import format_amount, ledger_context

WRITE_OPTION = "wallets_write"


class DecimalSum:
    """sqlite3 aggregate: exact sum of decimal text values (NULLs skipped)."""

    def __init__(self) -> None:
        self.total = Decimal(0)
        self.seen = False

    def step(self, value: Any) -> None:
        if value is None:
            return
        with ledger_context():
            self.total += Decimal(str(value))
        self.seen = True

    def finalize(self) -> str | None:
        return format_amount(self.total) if self.seen else None


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see _on_begin)

    async def register(driver: Any) -> None:
        # aiosqlite runs sqlite3 calls on its own thread; register there.
        await driver._execute(driver._conn.create_aggregate, "decimal_sum", 1, DecimalSum)

    dbapi_connection.run_async(register)


def _on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def configure_sqlite(engine: AsyncEngine) -> None:
    """Install the aggregate and the transaction handling on a SQLite engine (no-op otherwise)."""
    if engine.dialect.name != "sqlite":
        return
    event.listen(engine.sync_engine, "connect", _on_connect)
    event.listen(engine.sync_engine, "begin", _on_begin)
