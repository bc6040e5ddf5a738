"""The SQL candle repository and migrations on SQLite and Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tradeplane.market.adapters.candle_repository import SqlCandleRepository
from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.intervals import Interval, epoch_seconds
from tradeplane.market.domain.products import catalog_products
from tradeplane.market.domain.simulation import SimulatedMarket
from tradeplane.market.migrations import MIGRATIONS_DIR, VERSION_TABLE
from tradeplane.market.service_layer.backfill import backfill
from tradeplane.runtime.db import create_engine, run_migrations

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def candle(minute: int, close: str, *, interval: Interval = Interval.ONE_MINUTE) -> Candle:
    price = Decimal(close)
    return Candle(
        "BTC-USD",
        interval,
        T0 + timedelta(seconds=interval.seconds * minute),
        price,
        price + 1,
        price - 1,
        price,
        Decimal("0.00000001"),
        1,
        True,
    )


@pytest.fixture
async def repo(database_url: str) -> AsyncIterator[SqlCandleRepository]:
    await asyncio.to_thread(run_migrations, database_url, MIGRATIONS_DIR)
    engine = create_engine(database_url)
    try:
        yield SqlCandleRepository(engine)
    finally:
        await engine.dispose()


async def test_migrations_are_idempotent_and_use_their_own_version_table(
    database_url: str,
) -> None:
    await asyncio.to_thread(run_migrations, database_url, MIGRATIONS_DIR)
    await asyncio.to_thread(run_migrations, database_url, MIGRATIONS_DIR)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            version = (
                await conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
            ).scalar()
        assert {"candles", VERSION_TABLE} <= set(tables)
        assert version == "0001"
    finally:
        await engine.dispose()


async def test_upsert_corrects_and_queries_filter_in_sql(repo: SqlCandleRepository) -> None:
    await repo.upsert([candle(i, str(100 + i)) for i in range(10)])
    await repo.upsert([candle(3, "555.5"), candle(0, "1", interval=Interval.ONE_HOUR)])
    before, page = await repo.page_with_warmup(
        "BTC-USD",
        Interval.ONE_MINUTE,
        epoch_seconds(T0) + 4 * 60,
        epoch_seconds(T0) + 8 * 60,
        3,
        2,
    )
    assert [c.close for c in before] == [Decimal(102), Decimal("555.5")]  # corrected
    assert [c.close for c in page] == [Decimal(104), Decimal(105), Decimal(106)]
    assert page[0].start == T0 + timedelta(minutes=4)
    assert page[0].volume == Decimal("0.00000001")  # exact decimals on both backends
    latest = await repo.latest("BTC-USD", Interval.ONE_MINUTE)
    assert latest is not None and latest.close == Decimal(109)
    assert await repo.count("BTC-USD", Interval.ONE_HOUR) == 1
    assert await repo.count("ETH-USD", Interval.ONE_MINUTE) == 0


async def test_backfill_fills_only_the_gap_and_continues_the_walk(
    repo: SqlCandleRepository,
) -> None:
    products = catalog_products(["BTC-USD"])
    now = epoch_seconds(T0) + 5 * 3600 + 30
    first = await backfill(
        SimulatedMarket(products, seed=1, tick_rate=5), repo, products, days=0.5, now=now
    )
    assert first.candles_written > 720
    assert first.seconds < 5
    minutes = await repo.count("BTC-USD", Interval.ONE_MINUTE)
    assert minutes == 720
    last = await repo.latest("BTC-USD", Interval.ONE_MINUTE)
    day_before = await repo.latest("BTC-USD", Interval.ONE_DAY)
    assert last is not None and day_before is not None and not day_before.closed

    later = now + 600  # ten minutes later: a restart backfills the ten missing minutes
    second = await backfill(
        SimulatedMarket(products, seed=1, tick_rate=5), repo, products, days=0.5, now=later
    )
    assert await repo.count("BTC-USD", Interval.ONE_MINUTE) == 730
    assert second.candles_written < 20
    _, gap = await repo.page_with_warmup(
        "BTC-USD", Interval.ONE_MINUTE, epoch_seconds(last.start) + 60, later, 100, 0
    )
    assert len(gap) == 10 and gap[0].open == last.close  # the walk continues
    day = await repo.latest("BTC-USD", Interval.ONE_DAY)
    assert day is not None and day.start == day_before.start
    assert day.open == day_before.open
    assert day.trade_count == day_before.trade_count + sum(c.trade_count for c in gap)


async def test_carry_candles_are_the_open_ones_and_the_recent_closed_ones(
    repo: SqlCandleRepository,
) -> None:
    from dataclasses import replace

    old_open = replace(candle(0, "100", interval=Interval.ONE_HOUR), closed=False)
    rows = [candle(m, "100") for m in range(10)] + [old_open]
    await repo.upsert(rows)
    since = epoch_seconds(T0) + 7 * 60  # minutes 7, 8, 9 are recent enough
    carried = await repo.carry_candles("BTC-USD", since)
    assert sorted((c.interval.code, epoch_seconds(c.start)) for c in carried) == sorted(
        [("1h", epoch_seconds(T0))] + [("1m", epoch_seconds(T0) + 60 * m) for m in (7, 8, 9)]
    )
    assert await repo.carry_candles("ETH-USD", 0) == []
