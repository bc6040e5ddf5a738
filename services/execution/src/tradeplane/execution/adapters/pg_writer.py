"""The Postgres fast path of the order hot path, on plain psycopg.

The group commit (SubmitOrder intents and venue acks) and the outbox sequencer run for every
order. Through SQLAlchemy each statement cost ~0.2 ms of CPU (compile cache, result proxies,
pool checkout and pre-ping, one span per statement) and a batch took ~12 statements: that was
most of the service's CPU per order. Both are serial loops (one flush at a time), so each owns
one psycopg connection (``PgLink``), and a batch is two round trips: its reads pipelined, then
its writes and COMMIT pipelined. Same tables and the same locking as ``SqlTx`` (which SQLite
keeps using); a broken connection is reopened on the next use and its batch answered
UNAVAILABLE (retryable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from psycopg.rows import namedtuple_row
from psycopg.types.json import set_json_loads
from sqlalchemy.engine import URL

from tradeplane.execution.adapters import rows
from tradeplane.execution.adapters.pending_events import PendingEvents
from tradeplane.execution.domain.accounts import Account
from tradeplane.execution.domain.decimals import ZERO
from tradeplane.execution.domain.decisions import Decision
from tradeplane.execution.domain.orders import Order
from tradeplane.execution.domain.positions import Position
from tradeplane.execution.domain.risk import Block, RiskLimits
from tradeplane.execution.domain.trading_state import GLOBAL, TradingState
from tradeplane.execution.domain.values import OrderStatus, Side
from tradeplane.execution.service_layer.ports import EventEncoder
from tradeplane.runtime.errors import Unavailable

log = logging.getLogger(__name__)

Conn = psycopg.AsyncConnection[Any]

CONNECT_TIMEOUT_SECONDS = 5
WORKING_SQL = ", ".join(
    f"'{s.value}'" for s in (OrderStatus.NEW, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
)


def _columns_sql(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(columns)
    marks = ", ".join(["%s"] * len(columns))
    return f"INSERT INTO {table} ({names}) VALUES ({marks})"


BLOCK_COLUMNS = (
    "block_id",
    "account_id",
    "client_order_id",
    "product_id",
    "side",
    "type",
    "base_size",
    "price",
    "rule",
    "reason",
    "limit_value",
    "actual",
    "strategy_instance_id",
    "decision_id",
    "time_us",
)
DECISION_COLUMNS = (
    "decision_id",
    "strategy",
    "strategy_instance_id",
    "account_id",
    "product_id",
    "trace_id",
    "inputs",
    "reason",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cost_amount",
    "cost_currency",
    "create_time_us",
)
INSERT_BLOCK = _columns_sql("blocks", BLOCK_COLUMNS)
INSERT_DECISION = _columns_sql("decisions", DECISION_COLUMNS)
INSERT_ACCOUNT = (
    "INSERT INTO accounts (account_id, venue, display_name, valuation_currency, cash, "
    "peak_equity, daily_pnl_day, daily_pnl_amount, loss_streak_count, loss_streak_last_us, "
    "create_time_us) VALUES (%s, %s, %s, %s, %s, NULL, NULL, '0', 0, NULL, %s) "
    "ON CONFLICT (account_id) DO NOTHING"
)
# Locks in id order, so concurrent batches (and replicas) cannot deadlock; orders before
# accounts, the order of on_fill.
LOCK_ORDERS = "SELECT * FROM orders WHERE order_id = ANY(%s) ORDER BY order_id FOR UPDATE"
LOCK_ACCOUNTS = "SELECT * FROM accounts WHERE account_id = ANY(%s) ORDER BY account_id FOR UPDATE"
# The risk inputs of the locked accounts in one statement (JSON, decoded by orjson): the
# orders already using the batch's client order ids, the limits, the trading states (global
# and each account), the positions, and the remaining base size of the working orders per
# (account, product, side), summed exactly (NUMERIC).
RISK_INPUTS = f"""
SELECT
  (SELECT coalesce(json_agg(o), '[]') FROM orders o
     JOIN unnest(%(accounts)s::text[], %(client_ids)s::text[]) AS k(a, c)
       ON o.account_id = k.a AND o.client_order_id = k.c) AS known,
  (SELECT coalesce(json_agg(json_build_array(account_id, limits)), '[]')
     FROM risk_limits WHERE account_id = ANY(%(ids)s)) AS limits,
  (SELECT coalesce(json_agg(json_build_array(scope_id, state)), '[]')
     FROM trading_states WHERE scope_id = ANY(%(scopes)s)) AS states,
  (SELECT coalesce(json_agg(p), '[]') FROM positions p
     WHERE account_id = ANY(%(ids)s)) AS positions,
  (SELECT coalesce(json_agg(json_build_array(account_id, product_id, side, remaining::text)), '[]')
     FROM (SELECT account_id, product_id, side,
                  sum(base_size::numeric - filled_size::numeric) AS remaining
             FROM orders
            WHERE account_id = ANY(%(ids)s) AND product_id = ANY(%(products)s)
              AND status IN ({WORKING_SQL}) AND base_size IS NOT NULL
            GROUP BY account_id, product_id, side) AS s) AS open_sizes
"""
# A batch's writes in one statement: the new orders, the acknowledged ones and the outbox
# rows (txid filled by the column default: this transaction's id). The updated orders were
# committed by earlier transactions, so the two parts never touch the same row.
WRITE_BATCH = (
    """
WITH inserted AS (
  INSERT INTO orders SELECT * FROM json_populate_recordset(NULL::orders, %(new)s::json)
), updated AS (
  UPDATE orders o SET """
    + ", ".join(f"{k} = v.{k}" for k in rows.ORDER_MUTABLE)
    + """
    FROM json_populate_recordset(NULL::orders, %(changed)s::json) AS v
   WHERE o.order_id = v.order_id
)
INSERT INTO pending_events (time_us, account_id, event_type, payload)
SELECT * FROM unnest(%(times)s::bigint[], %(event_accounts)s::text[], %(types)s::text[],
                     %(payloads)s::bytea[])
"""
)


class _Row:
    """A JSON object read as a row (attribute access, as rows.* expects)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def conninfo(url: URL) -> str:
    """libpq connection string of a SQLAlchemy Postgres URL (any driver name)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(slots=True)
class BatchInputs:
    """What one group-commit batch reads before deciding: the acknowledged orders and the
    accounts (both locked), and the risk inputs of those accounts."""

    orders: dict[str, Order] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    known: dict[tuple[str, str], Order] = field(default_factory=dict)  # by client order id
    limits: dict[str, RiskLimits] = field(default_factory=dict)
    states: dict[str, TradingState] = field(default_factory=dict)  # GLOBAL and each account
    positions: dict[str, list[Position]] = field(default_factory=dict)
    open_sizes: dict[tuple[str, str], tuple[Decimal, Decimal]] = field(default_factory=dict)


class PgLink:
    """One psycopg connection for one serial user, opened on first use and reopened after it
    broke (the database restarted): the batch that found it broken gets UNAVAILABLE."""

    def __init__(self, url: URL, application_name: str) -> None:
        self._conninfo = conninfo(url)
        self._application_name = application_name
        self._conn: Conn | None = None
        # Its users are serial; this keeps it so (one transaction at a time on the connection).
        self._lock = asyncio.Lock()

    async def _connection(self) -> Conn:
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            await self.close()
        if self._conn is None:
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                application_name=self._application_name,
                row_factory=namedtuple_row,  # attribute access, as rows.* expects
            )
            set_json_loads(orjson.loads, self._conn)
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """One transaction on the connection: committed when the block returns, rolled back
        (or the connection dropped, when its state is unknown) when it raises."""
        async with self._lock, self._transaction() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        try:
            conn = await self._connection()
        except psycopg.OperationalError as exc:
            raise Unavailable("database unavailable") from exc
        try:
            yield conn
            await conn.commit()
        except BaseException as exc:
            if isinstance(exc, Exception) and not (conn.closed or conn.broken):
                try:
                    await conn.rollback()
                except Exception:
                    await self.close()
            else:
                # Cancelled mid-statement (shutdown), or the connection broke: the protocol
                # state is unknown; closing it rolls the transaction back on the server.
                await self.close()
            if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
                raise Unavailable("database unavailable") from exc
            raise


class PgTx(PendingEvents):
    """The group commit's unit of work on Postgres: the reads of a batch in one round trip
    (``batch_inputs``), its writes kept and sent with COMMIT in another (``finish``)."""

    def __init__(self, conn: Conn) -> None:
        super().__init__()
        self.conn = conn
        self._new: list[dict[str, Any]] = []
        self._changed: list[dict[str, Any]] = []
        self._rare: list[tuple[str, list[tuple[Any, ...]]]] = []  # blocks, decisions

    async def ensure_account(self, account: Account) -> None:
        await self.conn.execute(
            INSERT_ACCOUNT,
            (
                account.account_id,
                account.venue.value,
                account.display_name,
                account.valuation_currency,
                rows.cash_json(account.cash),
                rows.to_us(account.create_time),
            ),
        )

    async def batch_inputs(
        self,
        order_ids: Sequence[str],
        account_ids: Sequence[str],
        keys: Sequence[tuple[str, str]],
        pairs: Sequence[tuple[str, str]],
    ) -> BatchInputs:
        """Lock the acknowledged orders and the accounts (in that order), then read what the
        risk checks need; one round trip. Each statement of the pipeline starts after the
        previous one finished, so the reads see whatever was committed before the locks were
        granted (READ COMMITTED)."""
        conn = self.conn
        ids = sorted(account_ids)
        c_orders = c_accounts = c_inputs = None
        async with conn.pipeline():
            if order_ids:
                c_orders = await conn.execute(LOCK_ORDERS, (sorted(order_ids),))
            if ids:
                c_accounts = await conn.execute(LOCK_ACCOUNTS, (ids,))
                c_inputs = await conn.execute(
                    RISK_INPUTS,
                    {
                        "accounts": [a for a, _ in keys],
                        "client_ids": [c for _, c in keys],
                        "ids": ids,
                        "scopes": [GLOBAL, *ids],
                        "products": sorted({p for _, p in pairs}),
                    },
                )
        out = BatchInputs()
        if c_orders is not None:
            out.orders = {r.order_id: rows.row_order(r) for r in await c_orders.fetchall()}
        if c_accounts is None or c_inputs is None:
            return out
        out.accounts = {r.account_id: rows.row_account(r) for r in await c_accounts.fetchall()}
        r = await c_inputs.fetchone()
        assert r is not None
        for o in r.known:
            order = rows.row_order(_Row(o))
            out.known[(order.spec.account_id, order.spec.client_order_id)] = order
        out.limits = {a: RiskLimits(a) for a in ids}
        for account_id, limits in r.limits:
            out.limits[account_id] = rows.json_limits(account_id, limits)
        out.states = dict.fromkeys([GLOBAL, *ids], TradingState.ACTIVE)
        for scope_id, state in r.states:
            out.states[scope_id] = TradingState(state)
        out.positions = {a: [] for a in ids}
        for p in r.positions:
            out.positions[p["account_id"]].append(rows.row_position(_Row(p)))
        out.open_sizes = dict.fromkeys(pairs, (ZERO, ZERO))
        for account_id, product_id, side, remaining in r.open_sizes:
            key = (account_id, product_id)
            if key in out.open_sizes:
                buy, sell = out.open_sizes[key]
                amount = Decimal(remaining)
                out.open_sizes[key] = (
                    (buy + amount, sell) if side == Side.BUY.value else (buy, sell + amount)
                )
        return out

    # Writes are kept, and sent with the outbox rows and COMMIT in one round trip.

    async def insert_orders(self, orders: Sequence[Order]) -> None:
        self._new += [rows.order_row(o) for o in orders]

    async def update_orders(self, orders: Sequence[Order]) -> None:
        for order in orders:
            self._changed.append({"order_id": order.order_id, **rows.order_mutable_row(order)})

    async def insert_blocks(self, blocks: Sequence[Block]) -> None:
        if blocks:
            self._rare.append(
                (INSERT_BLOCK, [_values(rows.block_row(b), BLOCK_COLUMNS) for b in blocks])
            )

    async def insert_decisions(self, decisions: Sequence[Decision]) -> None:
        if decisions:
            self._rare.append(
                (
                    INSERT_DECISION,
                    [_values(rows.decision_row(d), DECISION_COLUMNS) for d in decisions],
                )
            )

    async def finish(self, encode: EventEncoder) -> int:
        """Send the writes, the outbox rows and COMMIT in one round trip; returns how many
        events were written."""
        if not (self._new or self._changed or self.events or self._rare):
            return 0
        async with self.conn.pipeline():
            for sql, params in self._rare:
                await self.conn.cursor().executemany(sql, params)
            await self.conn.execute(
                WRITE_BATCH,
                {
                    "new": orjson.dumps(self._new).decode(),
                    "changed": orjson.dumps(self._changed).decode(),
                    "times": [rows.to_us(t) for _, t in self.events],
                    "event_accounts": [e.account_id for e, _ in self.events],
                    "types": [e.type.value for e, _ in self.events],
                    "payloads": self._payloads(encode),
                },
            )
            await self.conn.commit()
        return len(self.events)


def _values(row: dict[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row[c] for c in columns)
