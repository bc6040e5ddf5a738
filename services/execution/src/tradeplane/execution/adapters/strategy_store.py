"""Persistence of live strategy instances (table ``strategy_instances``, migration 0005).

A running instance is stored so it restarts with the service; its fills are read back from
the orders/fills tables (joined on ``strategy_instance_id``), so the run's position and cash
are rebuilt from what really happened, never from a counter that could drift.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from tradeplane.execution.adapters import orm
from tradeplane.execution.domain.values import Side, Venue

strategy_instances = Table(
    "strategy_instances",
    orm.metadata,
    Column("strategy_instance_id", String(orm.ID), primary_key=True),
    Column("strategy", String(64), nullable=False),
    Column("params", Text, nullable=False),  # JSON {name: string value}
    Column("product_ids", Text, nullable=False),  # JSON list
    Column("account_id", String(orm.ID), nullable=False),
    Column("venue", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("error", Text, nullable=False),
    Column("initial_cash", String(orm.DEC), nullable=False),
    Column("realized_pnl", String(orm.DEC), nullable=False),
    Column("order_count", Integer, nullable=False),
    Column("last_bar_times", Text, nullable=False),  # JSON {product: bar start, epoch s}
    Column("start_time_us", BigInteger, nullable=False),
    Column("stop_time_us", BigInteger, nullable=True),
    Index("ix_strategy_instances_start", "start_time_us", "strategy_instance_id"),
)
# Orders of one instance (ListOrders' filter and the fill rebuild after a restart).
Index("ix_orders_strategy_time", orm.orders.c.strategy_instance_id, orm.orders.c.create_time_us)


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def _from_us(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, UTC)


@dataclass(frozen=True, slots=True)
class StrategyRecord:
    """A live strategy instance as stored. ``state`` is STARTING/RUNNING/STOPPED/FAILED."""

    strategy_instance_id: str
    strategy: str
    params: dict[str, str]
    product_ids: tuple[str, ...]
    account_id: str
    venue: Venue
    state: str
    start_time: datetime
    initial_cash: Decimal
    error: str = ""
    realized_pnl: Decimal = Decimal(0)
    order_count: int = 0
    last_bar_times: dict[str, int] = field(default_factory=dict)
    stop_time: datetime | None = None

    @property
    def active(self) -> bool:
        return self.state in ("STARTING", "RUNNING")

    def with_state(
        self, state: str, error: str = "", when: datetime | None = None
    ) -> StrategyRecord:
        return replace(self, state=state, error=error, stop_time=when)


@dataclass(frozen=True, slots=True)
class RunFill:
    """One fill of an order a strategy instance placed."""

    fill_id: str
    order_id: str
    client_order_id: str
    product_id: str
    side: Side
    price: Decimal
    size: Decimal
    fee: Decimal
    time: datetime


def _row(r: Any) -> StrategyRecord:
    start = _from_us(r.start_time_us)
    assert start is not None
    return StrategyRecord(
        strategy_instance_id=r.strategy_instance_id,
        strategy=r.strategy,
        params=json.loads(r.params),
        product_ids=tuple(json.loads(r.product_ids)),
        account_id=r.account_id,
        venue=Venue(r.venue),
        state=r.state,
        error=r.error,
        initial_cash=Decimal(r.initial_cash),
        realized_pnl=Decimal(r.realized_pnl),
        order_count=r.order_count,
        last_bar_times={k: int(v) for k, v in json.loads(r.last_bar_times).items()},
        start_time=start,
        stop_time=_from_us(r.stop_time_us),
    )


class StrategyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def insert(self, rec: StrategyRecord) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                strategy_instances.insert().values(
                    strategy_instance_id=rec.strategy_instance_id,
                    strategy=rec.strategy,
                    params=json.dumps(rec.params, sort_keys=True),
                    product_ids=json.dumps(list(rec.product_ids)),
                    account_id=rec.account_id,
                    venue=rec.venue.value,
                    state=rec.state,
                    error=rec.error,
                    initial_cash=str(rec.initial_cash),
                    realized_pnl=str(rec.realized_pnl),
                    order_count=rec.order_count,
                    last_bar_times=json.dumps(rec.last_bar_times),
                    start_time_us=_us(rec.start_time),
                    stop_time_us=None if rec.stop_time is None else _us(rec.stop_time),
                )
            )

    async def save(self, rec: StrategyRecord) -> None:
        """Write the mutable fields (state, counters, progress)."""
        t = strategy_instances
        async with self._engine.begin() as conn:
            await conn.execute(
                update(t)
                .where(t.c.strategy_instance_id == rec.strategy_instance_id)
                .values(
                    state=rec.state,
                    error=rec.error,
                    realized_pnl=str(rec.realized_pnl),
                    order_count=rec.order_count,
                    last_bar_times=json.dumps(rec.last_bar_times),
                    stop_time_us=None if rec.stop_time is None else _us(rec.stop_time),
                )
            )

    async def get(self, instance_id: str) -> StrategyRecord | None:
        t = strategy_instances
        async with self._engine.connect() as conn:
            r = (
                await conn.execute(select(t).where(t.c.strategy_instance_id == instance_id))
            ).first()
        return None if r is None else _row(r)

    async def active(self) -> list[StrategyRecord]:
        t = strategy_instances
        q = select(t).where(t.c.state.in_(("STARTING", "RUNNING")))
        async with self._engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(q)).all()]

    async def page(
        self, states: Sequence[str], limit: int, after: tuple[int, str] | None
    ) -> list[StrategyRecord]:
        """Newest first, keyset-paged by (start time, id)."""
        t = strategy_instances
        q = select(t)
        if states:
            q = q.where(t.c.state.in_(list(states)))
        if after is not None:
            us, iid = after
            q = q.where(
                (t.c.start_time_us < us)
                | ((t.c.start_time_us == us) & (t.c.strategy_instance_id < iid))
            )
        q = q.order_by(t.c.start_time_us.desc(), t.c.strategy_instance_id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(q)).all()]

    async def fills(self, instance_id: str) -> list[RunFill]:
        """Every fill of the instance's orders, oldest first (one query)."""
        f, o = orm.fills, orm.orders
        q = (
            select(f)
            .join(o, o.c.order_id == f.c.order_id)
            .where(o.c.strategy_instance_id == instance_id)
            .order_by(f.c.time_us, f.c.fill_id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [
            RunFill(
                fill_id=r.fill_id,
                order_id=r.order_id,
                client_order_id=r.client_order_id,
                product_id=r.product_id,
                side=Side(r.side),
                price=Decimal(r.price),
                size=Decimal(r.size),
                fee=Decimal(r.fee),
                time=_from_us(r.time_us) or datetime.now(UTC),
            )
            for r in rows
        ]

    async def order_counts(self, instance_ids: Sequence[str]) -> dict[str, int]:
        """Orders placed per instance, for a page of instances (one grouped query)."""
        if not instance_ids:
            return {}
        o = orm.orders
        q = (
            select(o.c.strategy_instance_id, func.count())
            .where(o.c.strategy_instance_id.in_(list(instance_ids)))
            .group_by(o.c.strategy_instance_id)
        )
        async with self._engine.connect() as conn:
            return {r[0]: int(r[1]) for r in (await conn.execute(q)).all()}

    async def working_order_ids(self, instance_id: str) -> list[str]:
        o = orm.orders
        q = select(o.c.order_id).where(
            (o.c.strategy_instance_id == instance_id)
            & o.c.status.in_(("NEW", "OPEN", "PARTIALLY_FILLED"))
        )
        async with self._engine.connect() as conn:
            return [r.order_id for r in (await conn.execute(q)).all()]
