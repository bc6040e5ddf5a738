"""Candle storage on SQLAlchemy (Postgres and SQLite): bulk upserts and range queries in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from tradeplane.market.adapters.orm import candles_table as t
from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.intervals import (
    ALL_INTERVALS,
    Interval,
    epoch_seconds,
    from_epoch_seconds,
)

INTERVAL_BY_CODE: dict[str, Interval] = {i.code: i for i in ALL_INTERVALS}
_COLUMNS = (
    t.c.product_id,
    t.c.interval,
    t.c.start,
    t.c.open,
    t.c.high,
    t.c.low,
    t.c.close,
    t.c.volume,
    t.c.trade_count,
    t.c.closed,
)
_VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "trade_count", "closed")


def candle_to_row(candle: Candle) -> dict[str, Any]:
    return {
        "product_id": candle.product_id,
        "interval": candle.interval.code,
        "start": epoch_seconds(candle.start),
        "open": str(candle.open),
        "high": str(candle.high),
        "low": str(candle.low),
        "close": str(candle.close),
        "volume": str(candle.volume),
        "trade_count": int(candle.trade_count),
        "closed": bool(candle.closed),
    }


def row_to_candle(row: Any) -> Candle:
    return Candle(
        product_id=row.product_id,
        interval=INTERVAL_BY_CODE[row.interval],
        start=from_epoch_seconds(int(row.start)),
        open=Decimal(row.open),
        high=Decimal(row.high),
        low=Decimal(row.low),
        close=Decimal(row.close),
        volume=Decimal(row.volume),
        trade_count=int(row.trade_count),
        closed=bool(row.closed),
    )


class SqlCandleRepository:
    """Implements service_layer.ports.CandleRepository."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    def _insert(self) -> Any:
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        return insert(t)

    async def upsert(self, candles: Sequence[Candle]) -> None:
        """Insert or correct candles, in one statement batch (executemany) per call."""
        await self.upsert_rows([candle_to_row(c) for c in candles])

    async def upsert_rows(self, rows: Sequence[dict[str, Any]], *, overwrite: bool = True) -> None:
        if not rows:
            return
        stmt = self._insert()
        keys = ["product_id", "interval", "start"]
        if overwrite:
            stmt = stmt.on_conflict_do_update(
                index_elements=keys, set_={c: stmt.excluded[c] for c in _VALUE_COLUMNS}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=keys)
        async with self._engine.begin() as conn:
            await conn.execute(stmt, list(rows))

    async def latest(self, product_id: str, interval: Interval) -> Candle | None:
        query = (
            select(*_COLUMNS)
            .where(t.c.product_id == product_id, t.c.interval == interval.code)
            .order_by(t.c.start.desc())
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else row_to_candle(row)

    async def open_candles(self, product_id: str) -> list[Candle]:
        """Candles not closed yet (the current bucket of each interval)."""
        query = select(*_COLUMNS).where(t.c.product_id == product_id, t.c.closed.is_(False))
        async with self._engine.connect() as conn:
            return [row_to_candle(r) for r in await conn.execute(query)]

    async def carry_candles(self, product_id: str, since: int) -> list[Candle]:
        """Candles not closed yet, or starting at or after `since`."""
        query = select(*_COLUMNS).where(
            t.c.product_id == product_id, or_(t.c.closed.is_(False), t.c.start >= since)
        )
        async with self._engine.connect() as conn:
            return [row_to_candle(r) for r in await conn.execute(query)]

    async def count(self, product_id: str, interval: Interval) -> int:
        query = select(func.count()).where(
            t.c.product_id == product_id, t.c.interval == interval.code
        )
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def page_with_warmup(
        self,
        product_id: str,
        interval: Interval,
        start: int,
        end: int,
        limit: int,
        warmup: int,
    ) -> tuple[list[Candle], list[Candle]]:
        """In ONE query: the `warmup` candles before `start` and up to `limit` candles in
        [start, end), each in time order."""
        key = (t.c.product_id == product_id, t.c.interval == interval.code)
        page = (
            select(*_COLUMNS)
            .where(*key, t.c.start >= start, t.c.start < end)
            .order_by(t.c.start)
            .limit(limit)
        )
        if warmup <= 0:
            async with self._engine.connect() as conn:
                return [], [row_to_candle(r) for r in await conn.execute(page)]
        before = (
            select(*_COLUMNS)
            .where(*key, t.c.start < start)
            .order_by(t.c.start.desc())
            .limit(warmup)
        )
        # Each side needs its own ORDER BY/LIMIT, so wrap both as subqueries (SQLite and Postgres).
        b, p = before.subquery(), page.subquery()
        both = union_all(select(*b.c), select(*p.c)).subquery()
        query = select(*both.c).order_by(both.c.start)
        async with self._engine.connect() as conn:
            candles = [row_to_candle(r) for r in await conn.execute(query)]
        split = sum(1 for c in candles if epoch_seconds(c.start) < start)
        return candles[:split], candles[split:]
