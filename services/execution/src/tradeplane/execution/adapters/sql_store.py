"""Storage of the execution service on SQLAlchemy Core (SQLite and Postgres).

``SqlStore.transaction()`` is the unit of work: one database transaction in which the use
case reads (rows it will change are locked with SELECT ... FOR UPDATE on Postgres; SQLite
has one writer at a time, serialised here by an asyncio lock), writes, and appends events to
the outbox. Seqs are gapless: SQLite numbers the events in the writing transaction (one
writer at a time); Postgres writers append to ``pending_events`` without a shared lock and
the ``OutboxSequencer`` numbers them once their transaction is over. Newly numbered events
wake StreamEvents readers through the event signal.

Read-only queries (lists, pages) run outside transactions, filtered and paged in SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ColumnElement, Select

from tradeplane.execution.adapters import orm, rows
from tradeplane.execution.adapters.pending_events import PendingEvents
from tradeplane.execution.adapters.pg_writer import (
    GROUP_COMMIT_STATEMENTS,
    KEYED_PLANS,
    BatchInputs,
    PgLink,
    PgTx,
    Prepared,
    results,
)
from tradeplane.execution.adapters.rows import row_account
from tradeplane.execution.domain.accounts import Account
from tradeplane.execution.domain.decimals import ZERO
from tradeplane.execution.domain.decisions import Decision
from tradeplane.execution.domain.fills import Fill
from tradeplane.execution.domain.orders import Order
from tradeplane.execution.domain.positions import Position
from tradeplane.execution.domain.risk import Block, RiskLimits
from tradeplane.execution.domain.trading_state import GLOBAL, TradingState, TradingStateChange
from tradeplane.execution.domain.values import OrderStatus, Side
from tradeplane.execution.service_layer.event_signal import EventSignal
from tradeplane.execution.service_layer.metrics import EVENTS_LAST_SEQ
from tradeplane.execution.service_layer.ports import EventEncoder

log = logging.getLogger(__name__)

WORKING = (OrderStatus.NEW.value, OrderStatus.OPEN.value, OrderStatus.PARTIALLY_FILLED.value)


class WriteLane(enum.Enum):
    """The group commits of the order hot path, each on its own connection (Postgres)."""

    INTENTS = "intents"  # SubmitOrder intents
    ACKS = "acks"  # venue acknowledgements


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    time: datetime
    account_id: str
    event_type: str
    payload: bytes


@dataclass(slots=True)
class DecisionTotals:
    """SummarizeDecisions: totals of one strategy or agent."""

    strategy: str
    decisions: int
    prompt_tokens: int
    completion_tokens: int
    last_decision_time: datetime
    orders: int = 0
    fills: int = 0
    cost: dict[str, Decimal] = field(default_factory=dict)  # per currency


@dataclass(frozen=True, slots=True)
class Page:
    """Keyset page position: rows strictly older than (time_us, id)."""

    time_us: int
    id: str


def keyset_before(time_col: Any, id_col: Any, after: Page | None) -> list[ColumnElement[bool]]:
    if after is None:
        return []
    return [or_(time_col < after.time_us, and_(time_col == after.time_us, id_col < after.id))]


class SqlTx(PendingEvents):
    """The writes and locked reads of one unit of work."""

    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        super().__init__()
        self.conn = conn
        self._dialect = dialect
        self.last_seq = 0

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    # -- accounts

    async def ensure_account(self, account: Account) -> None:
        t = orm.accounts
        await self.conn.execute(
            self._insert(t)
            .values(
                account_id=account.account_id,
                venue=account.venue.value,
                display_name=account.display_name,
                valuation_currency=account.valuation_currency,
                cash=rows.cash_json(account.cash),
                peak_equity=None,
                daily_pnl_day=None,
                daily_pnl_amount="0",
                loss_streak_count=0,
                loss_streak_last_us=None,
                create_time_us=rows.to_us(account.create_time),
            )
            .on_conflict_do_nothing(index_elements=["account_id"])
        )

    async def lock_account(self, account_id: str) -> Account | None:
        t = orm.accounts
        r = (
            await self.conn.execute(select(t).where(t.c.account_id == account_id).with_for_update())
        ).first()
        return None if r is None else row_account(r)

    async def save_account(self, account: Account) -> None:
        t = orm.accounts
        await self.conn.execute(
            update(t)
            .where(t.c.account_id == account.account_id)
            .values(
                cash=rows.cash_json(account.cash),
                peak_equity=rows.dec_text(account.peak_equity),
                daily_pnl_day=None
                if account.daily_pnl.day is None
                else account.daily_pnl.day.isoformat(),
                daily_pnl_amount=rows.dec_text(account.daily_pnl.net_realized),
                loss_streak_count=account.loss_streak.count,
                loss_streak_last_us=rows.opt_us(account.loss_streak.last_loss_time),
            )
        )

    # -- orders

    async def order(self, order_id: str, *, lock: bool = True) -> Order | None:
        t = orm.orders
        q = select(t).where(t.c.order_id == order_id)
        r = (await self.conn.execute(q.with_for_update() if lock else q)).first()
        return None if r is None else rows.row_order(r)

    async def order_by_client_id(self, account_id: str, client_order_id: str) -> Order | None:
        t = orm.orders
        q = select(t).where(t.c.account_id == account_id, t.c.client_order_id == client_order_id)
        r = (await self.conn.execute(q)).first()
        return None if r is None else rows.row_order(r)

    async def insert_order(self, order: Order) -> None:
        await self.conn.execute(orm.orders.insert().values(rows.order_row(order)))

    async def update_order(self, order: Order) -> None:
        t = orm.orders
        values = rows.order_mutable_row(order)
        await self.conn.execute(
            update(t)
            .where(t.c.order_id == order.order_id)
            .values({k: values[k] for k in rows.ORDER_MUTABLE})
        )

    async def open_sizes(self, account_id: str, product_id: str) -> tuple[Decimal, Decimal]:
        """Remaining base size of the working orders on each side (buy, sell)."""
        t = orm.orders
        q = select(t.c.side, t.c.base_size, t.c.filled_size).where(
            t.c.account_id == account_id,
            t.c.product_id == product_id,
            t.c.status.in_(WORKING),
            t.c.base_size.is_not(None),
        )
        buy = sell = ZERO
        for r in await self.conn.execute(q):
            remaining = Decimal(r.base_size) - Decimal(r.filled_size)
            if r.side == Side.BUY.value:
                buy += remaining
            else:
                sell += remaining
        return buy, sell

    async def working_order_count(self, account_id: str) -> int:
        t = orm.orders
        q = select(func.count()).where(t.c.account_id == account_id, t.c.status.in_(WORKING))
        return int((await self.conn.execute(q)).scalar_one())

    # -- batches (group commit of concurrent submits and acks)

    async def lock_accounts(self, account_ids: Sequence[str]) -> dict[str, Account]:
        """Lock the accounts (in id order, so concurrent batches cannot deadlock)."""
        t = orm.accounts
        q = (
            select(t)
            .where(t.c.account_id.in_(sorted(account_ids)))
            .order_by(t.c.account_id)
            .with_for_update()
        )
        return {r.account_id: row_account(r) for r in await self.conn.execute(q)}

    async def orders_by_client_ids(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], Order]:
        t = orm.orders
        q = select(t).where(
            t.c.account_id.in_({a for a, _ in keys}),
            t.c.client_order_id.in_({c for _, c in keys}),
        )
        wanted = set(keys)
        out: dict[tuple[str, str], Order] = {}
        for r in await self.conn.execute(q):
            if (r.account_id, r.client_order_id) in wanted:
                out[(r.account_id, r.client_order_id)] = rows.row_order(r)
        return out

    async def risk_limits_of(self, account_ids: Sequence[str]) -> dict[str, RiskLimits]:
        t = orm.risk_limits
        q = select(t.c.account_id, t.c.limits).where(t.c.account_id.in_(list(account_ids)))
        out = {a: RiskLimits(a) for a in account_ids}
        for r in await self.conn.execute(q):
            out[r.account_id] = rows.json_limits(r.account_id, r.limits)
        return out

    async def positions_of(
        self, account_ids: Sequence[str], *, lock: bool = False
    ) -> dict[str, list[Position]]:
        t = orm.positions
        out: dict[str, list[Position]] = {a: [] for a in account_ids}
        if lock and len(account_ids) == 1:
            return {account_ids[0]: await self.positions(account_ids[0], lock=True)}
        q = select(t).where(t.c.account_id.in_(list(account_ids)))
        if lock:  # in key order, like the accounts: no deadlock with another batch
            q = q.order_by(t.c.account_id, t.c.product_id).with_for_update()
        for r in await self.conn.execute(q):
            out[r.account_id].append(rows.row_position(r))
        return out

    async def open_sizes_of(
        self, pairs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
        """Remaining base size of the working orders per (account, product): (buy, sell).
        Postgres sums exactly in SQL (NUMERIC); SQLite would sum floats, so it sums here."""
        t = orm.orders
        where = [
            t.c.account_id.in_({a for a, _ in pairs}),
            t.c.product_id.in_({p for _, p in pairs}),
            t.c.status.in_(WORKING),
            t.c.base_size.is_not(None),
        ]
        out = dict.fromkeys(pairs, (ZERO, ZERO))
        if self._dialect == "postgresql":
            remaining = func.sum(
                t.c.base_size.cast(postgresql.NUMERIC) - t.c.filled_size.cast(postgresql.NUMERIC)
            )
            q: Any = (
                select(t.c.account_id, t.c.product_id, t.c.side, remaining.label("remaining"))
                .where(*where)
                .group_by(t.c.account_id, t.c.product_id, t.c.side)
            )
        else:
            q = select(
                t.c.account_id,
                t.c.product_id,
                t.c.side,
                (t.c.base_size).label("base_size"),
                t.c.filled_size,
            ).where(*where)
        for r in await self.conn.execute(q):
            key = (r.account_id, r.product_id)
            if key not in out:
                continue
            if self._dialect == "postgresql":
                amount = Decimal(r.remaining)
            else:
                amount = Decimal(r.base_size) - Decimal(r.filled_size)
            buy, sell = out[key]
            out[key] = (buy + amount, sell) if r.side == Side.BUY.value else (buy, sell + amount)
        return out

    async def insert_orders(self, orders: Sequence[Order]) -> None:
        if orders:
            await self.conn.execute(orm.orders.insert(), [rows.order_row(o) for o in orders])

    async def insert_blocks(self, blocks: Sequence[Block]) -> None:
        if blocks:
            await self.conn.execute(orm.blocks.insert(), [rows.block_row(b) for b in blocks])

    async def insert_decisions(self, decisions: Sequence[Decision]) -> None:
        if decisions:
            await self.conn.execute(
                orm.decisions.insert(), [rows.decision_row(d) for d in decisions]
            )

    async def lock_orders(self, order_ids: Sequence[str]) -> dict[str, Order]:
        """Lock the orders (in id order: no deadlock with another batch)."""
        t = orm.orders
        q = (
            select(t)
            .where(t.c.order_id.in_(sorted(order_ids)))
            .order_by(t.c.order_id)
            .with_for_update()
        )
        return {r.order_id: rows.row_order(r) for r in await self.conn.execute(q)}

    async def batch_inputs(
        self,
        order_ids: Sequence[str],
        account_ids: Sequence[str],
        keys: Sequence[tuple[str, str]],
        pairs: Sequence[tuple[str, str]],
    ) -> BatchInputs:
        """Lock the acknowledged orders, then the accounts, then read the risk inputs (the
        same as ``PgTx.batch_inputs``, one statement at a time)."""
        out = BatchInputs()
        if order_ids:
            out.orders = await self.lock_orders(order_ids)
        if account_ids:
            out.accounts = await self.lock_accounts(account_ids)
            out.known = await self.orders_by_client_ids(keys)
            out.limits = await self.risk_limits_of(account_ids)
            out.states = await self.trading_states_of(account_ids)
            out.positions = await self.positions_of(account_ids)
            out.open_sizes = await self.open_sizes_of(pairs)
        return out

    async def update_orders(self, orders: Sequence[Order]) -> None:
        if not orders:
            return
        t = orm.orders
        stmt = (
            update(t)
            .where(t.c.order_id == bindparam("b_order_id"))
            .values({k: bindparam(f"b_{k}") for k in rows.ORDER_MUTABLE})
        )
        params = []
        for order in orders:
            values = rows.order_mutable_row(order)
            params.append(
                {"b_order_id": order.order_id, **{f"b_{k}": values[k] for k in rows.ORDER_MUTABLE}}
            )
        await self.conn.execute(stmt, params)

    # -- fills and positions

    async def insert_fill(self, fill: Fill) -> bool:
        """Insert unless (venue, venue_trade_id) exists; False for a duplicate."""
        stmt = (
            self._insert(orm.fills)
            .values(rows.fill_row(fill))
            .on_conflict_do_nothing(index_elements=["venue", "venue_trade_id"])
            .returning(orm.fills.c.fill_id)
        )
        # RETURNING yields a row only when the insert happened (rowcount is not reliable).
        return (await self.conn.execute(stmt)).first() is not None

    async def insert_fills(self, fills: Sequence[Fill]) -> set[str]:
        """Insert in one statement, skipping each (venue, venue_trade_id) that exists; returns
        the fill ids inserted (the others are duplicates). ``fills`` must not repeat a trade
        id among themselves."""
        if not fills:
            return set()
        if len(fills) == 1:  # a one-row statement is cheaper to build (on_fill: one fill)
            return {fills[0].fill_id} if await self.insert_fill(fills[0]) else set()
        stmt = (
            self._insert(orm.fills)
            .values([rows.fill_row(f) for f in fills])
            .on_conflict_do_nothing(index_elements=["venue", "venue_trade_id"])
            .returning(orm.fills.c.fill_id)
        )
        return {r.fill_id for r in await self.conn.execute(stmt)}

    async def update_filled_orders(self, orders: Sequence[tuple[Order, int]]) -> None:
        """Update orders that got ``n`` new fills each: their mutable columns, and fill_count
        raised by ``n`` (an order read here does not carry the trade ids of its past fills,
        so ``len(fill_trade_ids)`` would not count them)."""
        if not orders:
            return
        t = orm.orders
        columns = rows.ORDER_MUTABLE
        stmt = (
            update(t)
            .where(t.c.order_id == bindparam("b_order_id"))
            .values(
                {
                    **{k: bindparam(f"b_{k}") for k in columns},
                    "fill_count": t.c.fill_count + bindparam("b_added"),
                }
            )
        )
        params = []
        for order, added in orders:
            values = rows.order_mutable_row(order)
            params.append(
                {
                    "b_order_id": order.order_id,
                    "b_added": added,
                    **{f"b_{k}": values[k] for k in columns},
                }
            )
        await self.conn.execute(stmt, params[0] if len(params) == 1 else params)

    async def working_order_counts(self, account_ids: Sequence[str]) -> dict[str, int]:
        if len(account_ids) == 1:
            return {account_ids[0]: await self.working_order_count(account_ids[0])}
        t = orm.orders
        q = (
            select(t.c.account_id, func.count())
            .where(t.c.account_id.in_(list(account_ids)), t.c.status.in_(WORKING))
            .group_by(t.c.account_id)
        )
        out = dict.fromkeys(account_ids, 0)
        for account_id, count in await self.conn.execute(q):
            out[account_id] = int(count)
        return out

    async def save_positions(self, positions: Sequence[Position]) -> None:
        """Upsert many positions in one statement (executemany)."""
        if len(positions) <= 1:
            for p in positions:
                await self.save_position(p)
            return
        values = [rows.position_row(p) for p in positions]
        stmt = self._insert(orm.positions)
        stmt = stmt.on_conflict_do_update(
            index_elements=["account_id", "product_id"],
            set_={k: stmt.excluded[k] for k in values[0] if k not in ("account_id", "product_id")},
        )
        await self.conn.execute(stmt, values)

    async def positions(self, account_id: str, *, lock: bool = False) -> list[Position]:
        t = orm.positions
        q = select(t).where(t.c.account_id == account_id)
        return [
            rows.row_position(r)
            for r in await self.conn.execute(q.with_for_update() if lock else q)
        ]

    async def save_position(self, p: Position) -> None:
        values = rows.position_row(p)
        stmt = self._insert(orm.positions).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["account_id", "product_id"],
            set_={k: stmt.excluded[k] for k in values if k not in ("account_id", "product_id")},
        )
        await self.conn.execute(stmt)

    # -- blocks, decisions, limits, states

    async def insert_block(self, block: Block) -> None:
        await self.conn.execute(orm.blocks.insert().values(rows.block_row(block)))

    async def insert_decision(self, decision: Decision) -> None:
        await self.conn.execute(orm.decisions.insert().values(rows.decision_row(decision)))

    async def risk_limits(self, account_id: str) -> RiskLimits:
        return await load_risk_limits(self.conn, account_id)

    async def save_risk_limits(self, limits: RiskLimits, updated_by: str, time: datetime) -> None:
        values = {
            "account_id": limits.account_id,
            "limits": rows.limits_json(limits),
            "updated_by": updated_by,
            "update_time_us": rows.to_us(time),
        }
        stmt = self._insert(orm.risk_limits).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["account_id"],
            set_={k: stmt.excluded[k] for k in values if k != "account_id"},
        )
        await self.conn.execute(stmt)

    async def trading_states(
        self, account_id: str, *, lock: bool = False
    ) -> dict[str, TradingStateChange]:
        """The last change of the global scope and of the account (absent = never changed)."""
        t = orm.trading_states
        q = select(t).where(t.c.scope_id.in_([GLOBAL, account_id]))
        result = await self.conn.execute(q.with_for_update() if lock else q)
        return {r.scope_id: rows.row_state(r) for r in result}

    async def trading_states_of(self, account_ids: Sequence[str]) -> dict[str, TradingState]:
        """The own state of the global scope and of each account (ACTIVE when never set)."""
        t = orm.trading_states
        scopes = [GLOBAL, *account_ids]
        out = dict.fromkeys(scopes, TradingState.ACTIVE)
        q = select(t.c.scope_id, t.c.state).where(t.c.scope_id.in_(scopes))
        for r in await self.conn.execute(q):
            out[r.scope_id] = TradingState(r.state)
        return out

    async def save_trading_state(self, change: TradingStateChange) -> None:
        values = rows.state_row(change)
        stmt = self._insert(orm.trading_states).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["scope_id"],
            set_={k: stmt.excluded[k] for k in values if k != "scope_id"},
        )
        await self.conn.execute(stmt)

    # -- outbox

    async def flush_events(self, encode: EventEncoder) -> int:
        """Write the pending events; returns how many.

        Postgres: into ``pending_events`` with this transaction's id, taking no shared lock
        (the sequencer numbers them once the transaction is over). SQLite: numbered here from
        the counter row - writers are serialised anyway, so seqs follow commit order."""
        if not self.events:
            return 0
        rows_out = [
            {
                "time_us": rows.to_us(time),
                "account_id": event.account_id,
                "event_type": event.type.value,
                "payload": payload,
            }
            for (event, time), payload in zip(self.events, self._payloads(encode), strict=True)
        ]
        if self._dialect == "postgresql":
            # txid is filled by the column default (this transaction's id): no round trip.
            await self.conn.execute(orm.pending_events.insert(), rows_out)
            return len(rows_out)
        self.last_seq = await append_numbered(self.conn, rows_out)
        return len(rows_out)


async def append_numbered(conn: AsyncConnection, events: Sequence[dict[str, Any]]) -> int:
    """Give ``events`` the next seqs (the counter row stays locked until commit) and insert
    them into the outbox; returns the last seq."""
    c = orm.event_counter
    n = len(events)
    last = int(
        (
            await conn.execute(
                update(c)
                .where(c.c.id == 1)
                .values(last_seq=c.c.last_seq + n)
                .returning(c.c.last_seq)
            )
        ).scalar_one()
    )
    first = last - n + 1
    await conn.execute(orm.events.insert(), [{**e, "seq": first + i} for i, e in enumerate(events)])
    return last


async def load_risk_limits(conn: AsyncConnection, account_id: str) -> RiskLimits:
    t = orm.risk_limits
    r = (await conn.execute(select(t).where(t.c.account_id == account_id))).first()
    return RiskLimits(account_id) if r is None else rows.json_limits(account_id, r.limits)


class SqlStore:
    def __init__(
        self,
        engine: AsyncEngine,
        encode: EventEncoder,
        signal: EventSignal,
        *,
        application_name: str = "execution",
    ) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        self._encode = encode
        self._signal = signal
        # SQLite allows one writer; serialising writers here avoids "database is locked".
        self._write_lock: asyncio.Lock | None = (
            asyncio.Lock() if self._dialect == "sqlite" else None
        )
        postgres = self._dialect == "postgresql"
        # Postgres: the group commits' own connections (write_transaction, the hot path): one
        # for SubmitOrder intents, one for venue acks, so an ack never queues behind a batch
        # of intents and its risk reads (the account locks are the intents' alone).
        self._writers = (
            {
                lane: PgLink(engine.url, application_name, GROUP_COMMIT_STATEMENTS, KEYED_PLANS)
                for lane in WriteLane
            }
            if postgres
            else None
        )
        self._sequencer: OutboxSequencer | None = (
            OutboxSequencer(
                engine, PgLink(engine.url, application_name, [P_MOVE_READY], KEYED_PLANS), signal
            )
            if postgres
            else None
        )

    async def start(self) -> None:
        if self._sequencer is not None:
            await self._sequencer.start()

    async def stop(self) -> None:
        if self._sequencer is not None:
            await self._sequencer.stop()
            await self._sequencer.close()
        for writer in (self._writers or {}).values():
            await writer.close()

    @contextlib.asynccontextmanager
    async def write_transaction(
        self, lane: WriteLane = WriteLane.INTENTS
    ) -> AsyncIterator[SqlTx | PgTx]:
        """The group commit's unit of work: on Postgres a ``PgTx`` on the lane's own
        connection (reads and writes each in one round trip), on SQLite ``transaction()``."""
        if self._writers is None:
            async with self.transaction() as tx:
                yield tx
            return
        async with self._writers[lane].transaction() as conn:
            ptx = PgTx(conn, self._encode)
            yield ptx
            appended = await ptx.finish()
        if appended and self._sequencer is not None:
            self._sequencer.wake()

    @contextlib.asynccontextmanager
    async def ack_statement(self) -> AsyncIterator[PgTx | None]:
        """Postgres: a ``PgTx`` on the ack lane's connection for one statement of its own
        (``PgTx.ack_unchanged``); None on SQLite (acks take ``write_transaction``)."""
        if self._writers is None:
            yield None
            return
        async with self._writers[WriteLane.ACKS].transaction() as conn:
            ptx = PgTx(conn, self._encode)
            yield ptx
        if ptx.written and self._sequencer is not None:
            self._sequencer.wake()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTx]:
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            appended = 0
            async with self.engine.begin() as conn:
                tx = SqlTx(conn, self._dialect)
                yield tx
                appended = await tx.flush_events(self._encode)
            if appended:
                if self._sequencer is not None:
                    self._sequencer.wake()
                else:
                    EVENTS_LAST_SEQ.set(tx.last_seq)
                    self._signal.notify(
                        tx.last_seq - appended + 1,
                        tx.last_seq,
                        {event.type.value for event, _ in tx.events},
                    )

    # -- reads --------------------------------------------------------------------------------

    async def account(self, account_id: str) -> Account | None:
        t = orm.accounts
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(t).where(t.c.account_id == account_id))).first()
        return None if r is None else row_account(r)

    async def accounts(self, limit: int, after: str | None) -> list[Account]:
        t = orm.accounts
        q = select(t).order_by(t.c.account_id).limit(limit)
        if after is not None:
            q = q.where(t.c.account_id > after)
        async with self.engine.connect() as conn:
            return [row_account(r) for r in await conn.execute(q)]

    async def order(self, order_id: str) -> Order | None:
        t = orm.orders
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(t).where(t.c.order_id == order_id))).first()
        return None if r is None else rows.row_order(r)

    async def order_by_client_id(self, account_id: str, client_order_id: str) -> Order | None:
        async with self.engine.connect() as conn:
            return await SqlTx(conn, self._dialect).order_by_client_id(account_id, client_order_id)

    async def child_orders(self, parent_order_id: str) -> list[Order]:
        """The legs of a bracket."""
        t = orm.orders
        q = select(t).where(t.c.parent_order_id == parent_order_id).order_by(t.c.order_id)
        return [rows.row_order(r) for r in await self._all(q)] if parent_order_id else []

    async def working_orders(self, account_id: str | None = None) -> list[Order]:
        """Every working order (of one account, or all), with the trade ids already applied
        (one query for the orders, one for their fills)."""
        t, f = orm.orders, orm.fills
        q = select(t).where(t.c.status.in_(WORKING)).order_by(t.c.create_time_us, t.c.order_id)
        if account_id is not None:
            q = q.where(t.c.account_id == account_id)
        async with self.engine.connect() as conn:
            order_rows = list(await conn.execute(q))
            ids = [r.order_id for r in order_rows]
            trade_ids: dict[str, list[str]] = defaultdict(list)
            for chunk in _chunks(ids, 500):
                fq = select(f.c.order_id, f.c.venue_trade_id).where(f.c.order_id.in_(chunk))
                for r in await conn.execute(fq):
                    trade_ids[r.order_id].append(r.venue_trade_id)
        return [rows.row_order(r, trade_ids[r.order_id]) for r in order_rows]

    async def list_orders(
        self,
        *,
        account_id: str,
        product_id: str,
        statuses: Sequence[str],
        strategy_instance_id: str,
        venue: str,
        start_us: int | None,
        end_us: int | None,
        limit: int,
        after: Page | None,
    ) -> list[Order]:
        t = orm.orders
        where: list[ColumnElement[bool]] = []
        if account_id:
            where.append(t.c.account_id == account_id)
        if product_id:
            where.append(t.c.product_id == product_id)
        if statuses:
            where.append(t.c.status.in_(list(statuses)))
        if strategy_instance_id:
            # "<> ''" lets a generic plan use the partial index (migration 0006).
            where += [
                t.c.strategy_instance_id == strategy_instance_id,
                t.c.strategy_instance_id != "",
            ]
        if venue:
            where.append(t.c.venue == venue)
        where += _time_range(t.c.create_time_us, start_us, end_us)
        where += keyset_before(t.c.create_time_us, t.c.order_id, after)
        q = (
            select(t)
            .where(*where)
            .order_by(t.c.create_time_us.desc(), t.c.order_id.desc())
            .limit(limit)
        )
        return [rows.row_order(r) for r in await self._all(q)]

    async def orders_of_decisions(self, decision_ids: Sequence[str]) -> dict[str, list[Order]]:
        t = orm.orders
        out: dict[str, list[Order]] = defaultdict(list)
        if not decision_ids:
            return out
        # "<> ''" lets a generic plan use the partial index (migration 0006).
        ids = [d for d in decision_ids if d]
        q = (
            select(t)
            .where(t.c.decision_id.in_(ids), t.c.decision_id != "")
            .order_by(t.c.create_time_us)
        )
        for r in await self._all(q):
            out[r.decision_id].append(rows.row_order(r))
        return out

    async def list_fills(
        self,
        *,
        account_id: str,
        product_id: str,
        order_id: str,
        start_us: int | None,
        end_us: int | None,
        limit: int,
        after: Page | None,
    ) -> list[Fill]:
        t = orm.fills
        where: list[ColumnElement[bool]] = []
        if account_id:
            where.append(t.c.account_id == account_id)
        if product_id:
            where.append(t.c.product_id == product_id)
        if order_id:
            where.append(t.c.order_id == order_id)
        where += _time_range(t.c.time_us, start_us, end_us)
        where += keyset_before(t.c.time_us, t.c.fill_id, after)
        q = select(t).where(*where).order_by(t.c.time_us.desc(), t.c.fill_id.desc()).limit(limit)
        return [rows.row_fill(r) for r in await self._all(q)]

    async def list_positions(
        self,
        *,
        account_id: str,
        product_id: str,
        include_closed: bool,
        limit: int,
        after: tuple[str, str] | None,
    ) -> list[Position]:
        t = orm.positions
        where: list[ColumnElement[bool]] = []
        if account_id:
            where.append(t.c.account_id == account_id)
        if product_id:
            where.append(t.c.product_id == product_id)
        if not include_closed:
            where.append(t.c.quantity != "0")
        if after is not None:
            where.append(
                or_(
                    t.c.account_id > after[0],
                    and_(t.c.account_id == after[0], t.c.product_id > after[1]),
                )
            )
        q = select(t).where(*where).order_by(t.c.account_id, t.c.product_id).limit(limit)
        return [rows.row_position(r) for r in await self._all(q)]

    async def positions(self, account_id: str) -> list[Position]:
        async with self.engine.connect() as conn:
            return await SqlTx(conn, self._dialect).positions(account_id)

    async def working_order_count(self, account_id: str) -> int:
        async with self.engine.connect() as conn:
            return await SqlTx(conn, self._dialect).working_order_count(account_id)

    async def list_blocks(
        self,
        *,
        account_id: str,
        product_id: str,
        rule: str,
        start_us: int | None,
        end_us: int | None,
        limit: int,
        after: Page | None,
    ) -> list[Block]:
        t = orm.blocks
        where: list[ColumnElement[bool]] = []
        if account_id:
            where.append(t.c.account_id == account_id)
        if product_id:
            where.append(t.c.product_id == product_id)
        if rule:
            where.append(t.c.rule == rule)
        where += _time_range(t.c.time_us, start_us, end_us)
        where += keyset_before(t.c.time_us, t.c.block_id, after)
        q = select(t).where(*where).order_by(t.c.time_us.desc(), t.c.block_id.desc()).limit(limit)
        return [rows.row_block(r) for r in await self._all(q)]

    async def list_decisions(
        self,
        *,
        strategy: str,
        account_id: str,
        product_id: str,
        trace_id: str,
        start_us: int | None,
        end_us: int | None,
        limit: int,
        after: Page | None,
    ) -> list[Decision]:
        t, o = orm.decisions, orm.orders
        where: list[ColumnElement[bool]] = []
        if strategy:
            where.append(t.c.strategy == strategy)
        if account_id:
            where.append(t.c.account_id == account_id)
        if product_id:
            where.append(t.c.product_id == product_id)
        if trace_id:
            where.append(t.c.trace_id == trace_id)
        where += _time_range(t.c.create_time_us, start_us, end_us)
        where += keyset_before(t.c.create_time_us, t.c.decision_id, after)
        q = (
            select(t)
            .where(*where)
            .order_by(t.c.create_time_us.desc(), t.c.decision_id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            decision_rows = list(await conn.execute(q))
            ids = [r.decision_id for r in decision_rows]
            order_ids: dict[str, list[str]] = defaultdict(list)
            if ids:
                oq = (
                    select(o.c.decision_id, o.c.order_id)
                    .where(o.c.decision_id.in_(ids))
                    .order_by(o.c.create_time_us)
                )
                for r in await conn.execute(oq):
                    order_ids[r.decision_id].append(r.order_id)
        return [rows.row_decision(r, order_ids[r.decision_id]) for r in decision_rows]

    async def summarize_decisions(
        self, *, account_id: str, start_us: int | None, end_us: int | None
    ) -> list[DecisionTotals]:
        """Totals per strategy, computed in SQL (costs summed exactly: NUMERIC on Postgres,
        Decimal here on SQLite, whose sums would be floats)."""
        d, o, f = orm.decisions, orm.orders, orm.fills
        where: list[ColumnElement[bool]] = []
        if account_id:
            where.append(d.c.account_id == account_id)
        where += _time_range(d.c.create_time_us, start_us, end_us)
        totals: dict[str, DecisionTotals] = {}
        async with self.engine.connect() as conn:
            q = (
                select(
                    d.c.strategy,
                    func.count().label("decisions"),
                    func.coalesce(func.sum(d.c.prompt_tokens), 0).label("prompt"),
                    func.coalesce(func.sum(d.c.completion_tokens), 0).label("completion"),
                    func.max(d.c.create_time_us).label("last_us"),
                )
                .where(*where)
                .group_by(d.c.strategy)
            )
            for r in await conn.execute(q):
                totals[r.strategy] = DecisionTotals(
                    strategy=r.strategy,
                    decisions=int(r.decisions),
                    prompt_tokens=int(r.prompt),
                    completion_tokens=int(r.completion),
                    last_decision_time=rows.from_us(int(r.last_us)),
                )
            joined = d.join(o, o.c.decision_id == d.c.decision_id)
            q = select(d.c.strategy, func.count().label("n")).select_from(joined).where(*where)
            for r in await conn.execute(q.group_by(d.c.strategy)):
                totals[r.strategy].orders = int(r.n)
            q = (
                select(d.c.strategy, func.count().label("n"))
                .select_from(joined.join(f, f.c.order_id == o.c.order_id))
                .where(*where)
            )
            for r in await conn.execute(q.group_by(d.c.strategy)):
                totals[r.strategy].fills = int(r.n)
            costed = [*where, d.c.cost_amount.is_not(None)]
            if self._dialect == "postgresql":
                amount: Any = func.sum(d.c.cost_amount.cast(postgresql.NUMERIC))
                q = (
                    select(d.c.strategy, d.c.cost_currency, amount.label("amount"))
                    .where(*costed)
                    .group_by(d.c.strategy, d.c.cost_currency)
                )
            else:
                q = select(d.c.strategy, d.c.cost_currency, d.c.cost_amount.label("amount")).where(
                    *costed
                )
            for r in await conn.execute(q):
                cost = totals[r.strategy].cost
                cost[r.cost_currency] = cost.get(r.cost_currency, ZERO) + Decimal(r.amount)
        return [totals[k] for k in sorted(totals)]

    async def decision(self, decision_id: str) -> Decision | None:
        t = orm.decisions
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(t).where(t.c.decision_id == decision_id))).first()
        return None if r is None else rows.row_decision(r)

    async def risk_limits(self, account_id: str) -> tuple[RiskLimits, str, datetime | None]:
        t = orm.risk_limits
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(t).where(t.c.account_id == account_id))).first()
        if r is None:
            return RiskLimits(account_id), "", None
        return rows.json_limits(account_id, r.limits), r.updated_by, rows.from_us(r.update_time_us)

    async def trading_states(self, account_id: str) -> dict[str, TradingStateChange]:
        async with self.engine.connect() as conn:
            return await SqlTx(conn, self._dialect).trading_states(account_id)

    async def account_states(self, account_ids: Sequence[str]) -> dict[str, TradingState]:
        """The own trading state of each account, in one query (ACTIVE when never set)."""
        t = orm.trading_states
        out = dict.fromkeys(account_ids, TradingState.ACTIVE)
        if account_ids:
            q = select(t.c.scope_id, t.c.state).where(t.c.scope_id.in_(list(account_ids)))
            for r in await self._all(q):
                out[r.scope_id] = TradingState(r.state)
        return out

    # -- outbox reads

    async def event_bounds(self) -> tuple[int, int]:
        """(oldest retained seq or 0, last committed seq)."""
        c = orm.event_counter
        oldest = select(func.min(orm.events.c.seq)).scalar_subquery()
        q = select(c.c.last_seq, oldest.label("oldest")).where(c.c.id == 1)
        async with self.engine.connect() as conn:  # one round trip: this runs on every wake
            r = (await conn.execute(q)).one()
        return int(r.oldest or 0), int(r.last_seq)

    async def prune_events(self, before: datetime) -> int:
        """Delete outbox events committed before ``before`` (retention); returns how many."""
        t = orm.events
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            async with self.engine.begin() as conn:
                result = await conn.execute(delete(t).where(t.c.time_us < rows.to_us(before)))
        return int(result.rowcount or 0)

    async def events_after(
        self,
        after_seq: int,
        upto_seq: int,
        account_ids: Sequence[str],
        event_types: Sequence[str],
        limit: int,
    ) -> list[StoredEvent]:
        t = orm.events
        where: list[ColumnElement[bool]] = [t.c.seq > after_seq, t.c.seq <= upto_seq]
        if account_ids:
            where.append(t.c.account_id.in_([*account_ids, GLOBAL]))
        if event_types:
            where.append(t.c.event_type.in_(list(event_types)))
        q = select(t).where(*where).order_by(t.c.seq).limit(limit)
        return [
            StoredEvent(
                int(r.seq), rows.from_us(r.time_us), r.account_id, r.event_type, bytes(r.payload)
            )
            for r in await self._all(q)
        ]

    async def _all(self, q: Select[Any]) -> list[Any]:
        async with self.engine.connect() as conn:
            return list(await conn.execute(q))


def _time_range(col: Any, start_us: int | None, end_us: int | None) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if start_us is not None:
        out.append(col >= start_us)
    if end_us is not None:
        out.append(col < end_us)
    return out


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class OutboxSequencer:
    """Postgres: numbers committed ``pending_events`` into the outbox, gaplessly.

    A row is numbered only when its transaction id is below the snapshot horizon (every
    transaction that old has finished), so a seq is never handed out while an earlier
    committer could still add events; within a batch rows keep their insertion order. One
    sequencer at a time (a transaction-level advisory lock), so replicas can all run one.
    Writers therefore never wait for each other on the outbox."""

    LOCK_KEY = 0x7E5E_0B0C  # advisory lock of the execution outbox sequencer
    BATCH = 2000
    RETRY_SECONDS = 0.005
    MAX_RETRY_SECONDS = 0.05
    COALESCE_SECONDS = 0.005
    # pending_events is a queue: every numbered row is deleted. Its dead rows made each run
    # scan more (2+ ms of database time per run after a few thousand orders, autovacuum
    # comes at most once a minute), so the sequencer vacuums it itself, every so many rows;
    # at the same time it folds the open-size deltas the orders trigger appends (migration
    # 0007), which the risk check sums per batch.
    MAINTAIN_AFTER_ROWS = 1000

    def __init__(
        self, engine: AsyncEngine, link: PgLink, signal: EventSignal, poll_seconds: float = 0.5
    ):
        self._engine = engine
        self._link = link  # its own connection (plain psycopg: it runs after every commit)
        self._signal = signal
        self._poll = poll_seconds
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rows_left = False  # pending rows remained after the last run_once
        self._moved_since_maintenance = 0

    async def close(self) -> None:
        await self._link.close()

    def wake(self) -> None:
        self._wakeup.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-sequencer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = retry = self._poll
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            if self._wakeup.is_set():
                # Every commit wakes us: let the commits of the next moments join this run
                # (a run costs several statements; under load one per commit is CPU-bound).
                await asyncio.sleep(self.COALESCE_SECONDS)
            self._wakeup.clear()
            try:
                numbered = batch = await self.run_once()
                while batch == self.BATCH:
                    batch = await self.run_once()
                    numbered += batch
                self._moved_since_maintenance += numbered
                if self._moved_since_maintenance >= self.MAINTAIN_AFTER_ROWS:
                    self._moved_since_maintenance = 0
                    await self.maintain()
                if not self._rows_left:
                    delay = self._poll
                else:
                    # Rows held back by a transaction still open (possibly in another
                    # process, which will not wake us): look again soon, backing off while
                    # nothing moves - a busy loop here costs the writers CPU.
                    retry = (
                        self.RETRY_SECONDS if numbered else min(retry * 2, self.MAX_RETRY_SECONDS)
                    )
                    delay = retry
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox sequencer failed; retrying")
                delay = 1.0

    async def _pending(self) -> bool:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(orm.pending_events.c.id).limit(1))).first()
        return row is not None

    async def maintain(self) -> None:
        """Fold the open-size deltas into one row per key, then reclaim the dead rows of both
        churning tables (autocommit: VACUUM runs outside a transaction; neither blocks the
        writers' inserts)."""
        async with self._link.transaction() as conn:
            await conn.execute(FOLD_OPEN_SIZES)
            # No truncation: it would take an exclusive lock on tables every writer inserts into.
            await conn.execute("VACUUM (TRUNCATE false) pending_events, open_size_deltas")

    async def run_once(self) -> int:
        """Number one batch; returns how many events it numbered."""
        async with self._link.transaction() as conn:
            # One statement in autocommit mode: a transaction of its own, one round trip.
            bound = P_MOVE_READY.bind({"lock": self.LOCK_KEY, "batch": self.BATCH})
            (r,) = (await results(conn, [bound]))[0]
        if not r.locked:
            self._rows_left = True  # another replica's sequencer is at work
            return 0
        count = int(r.n)
        self._rows_left = count == self.BATCH or bool(r.rows_left)
        if not count:
            return 0
        last = int(r.last_seq)
        EVENTS_LAST_SEQ.set(last)
        self._signal.notify(last - count + 1, last, r.types)
        return count


# The open-size deltas folded into one row per (account, product, side), in one statement:
# the rows it deletes are those visible to it (committed); deltas committed meanwhile stay,
# and a reader sees the same sums before and after. Two replicas folding at once: the second
# skips the rows the first deleted (row locks, re-checked), so nothing counts twice.
FOLD_OPEN_SIZES = """
WITH gone AS (
    DELETE FROM open_size_deltas RETURNING account_id, product_id, side, delta
)
INSERT INTO open_size_deltas (account_id, product_id, side, delta)
SELECT account_id, product_id, side, sum(delta) FROM gone
 GROUP BY account_id, product_id, side HAVING sum(delta) <> 0
"""


# One statement, one round trip with its COMMIT: take the sequencer lock (an InitPlan, run
# once before any row is chosen; nothing moves without it), take the ready rows out (those
# of transactions below the snapshot horizon, i.e. finished), advance the counter by their
# number, insert them into the outbox with the next seqs in insertion (id) order, and say
# whether rows are held back (looked at again soon). Under READ COMMITTED a sequencer that
# committed after this statement's snapshot but before the lock was granted is handled by
# the row re-checks: its rows are no longer there to delete (skipped), and the counter is
# updated from its committed value.
MOVE_READY = """
WITH lock AS (
    SELECT pg_try_advisory_xact_lock(%(lock)s) AS locked
), ready AS (
    DELETE FROM pending_events WHERE id = ANY(ARRAY(
        SELECT id FROM pending_events
        WHERE (SELECT locked FROM lock)
          AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
        ORDER BY id LIMIT %(batch)s))
    RETURNING id, time_us, account_id, event_type, payload
), counted AS (
    SELECT count(*) AS n FROM ready
), counter AS (
    UPDATE event_counter SET last_seq = last_seq + (SELECT n FROM counted)
    WHERE id = 1 AND (SELECT n FROM counted) > 0
    RETURNING last_seq
), numbered AS (
    INSERT INTO events (seq, time_us, account_id, event_type, payload)
    SELECT c.last_seq - k.n + row_number() OVER (ORDER BY r.id),
           r.time_us, r.account_id, r.event_type, r.payload
    FROM ready r CROSS JOIN counter c CROSS JOIN counted k
    RETURNING event_type
)
SELECT (SELECT locked FROM lock) AS locked,
       (SELECT n FROM counted) AS n,
       (SELECT last_seq FROM counter) AS last_seq,
       ARRAY(SELECT DISTINCT event_type FROM numbered) AS types,
       -- Every CTE sees the rows as before the DELETE, so rows are left iff more than the
       -- numbered ones are visible; counting at most batch + 1 keeps this O(batch).
       (SELECT count(*) FROM (SELECT 1 FROM pending_events LIMIT %(batch)s + 1) AS p)
         > (SELECT n FROM counted) AS rows_left
"""
P_MOVE_READY = Prepared("tp_move_ready", MOVE_READY, (("lock", "bigint"), ("batch", "integer")))
