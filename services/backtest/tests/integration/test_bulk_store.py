"""A large run's results (COPY on Postgres, executemany on SQLite) read back exactly."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import func, select

from tradeplane.backtest.adapters import orm
from tradeplane.backtest.adapters.repository import COPY_THRESHOLD, SqlBacktestRepository
from tradeplane.backtest.domain import BarSeries, run_backtest
from tradeplane.backtest.entrypoints.settings import BacktestServiceSettings
from tradeplane.backtest.migrations import MIGRATIONS_DIR
from tradeplane.backtest.service_layer.models import RunSpec, Status
from tradeplane.backtest.service_layer.rows import (
    indicator_columns,
    num,
    result_rows,
    statistics_view,
)
from tradeplane.backtest.service_layer.worker import engine_settings
from tradeplane.runtime.db import create_engine, run_migrations
from tradeplane.strategies import create_strategy

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_large_result_round_trips(database_url: str) -> None:
    n = COPY_THRESHOLD + 5_000
    rng = np.random.default_rng(9)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    times = 1_700_000_000 + 60 * np.arange(n)
    bars = BarSeries.from_arrays(times, close, close * 1.001, close * 0.999, close, np.ones(n))
    spec = RunSpec(
        "sma_crossover", {}, "BTC-USD", "1m", int(times[0]), int(times[-1]) + 60, Decimal(10_000)
    )
    strategy = create_strategy("sma_crossover", {})
    result = run_backtest(strategy, bars, engine_settings(spec, 1000))
    columns = indicator_columns(strategy.indicators(), result.indicators)

    run_migrations(database_url, MIGRATIONS_DIR)
    settings = BacktestServiceSettings(database_url=database_url, auth_mode="disabled")
    engine = create_engine(database_url, settings)
    try:
        repo = SqlBacktestRepository(engine)
        await repo.add_run("big", spec, sweep_id=None, total_bars=n)
        assert await repo.claim_next("w", 60) == "big"
        stored = await repo.store_results(
            "big",
            "w",
            statistics=statistics_view(result.statistics),
            vectorised=result.vectorised,
            indicators=columns,
            tables=result_rows("big", result, columns),
            rate=0.0,
        )
        assert stored
        run = await repo.get_run("big")
        assert run is not None and run.status is Status.COMPLETED
        b = orm.bars.c
        async with engine.connect() as conn:
            count = (
                await conn.execute(select(func.count()).where(b.backtest_id == "big"))
            ).scalar_one()
            last = (
                await conn.execute(
                    select(b.equity, b.close).where(b.backtest_id == "big", b.bar_index == n - 1)
                )
            ).one()
        assert count == n
        assert last.equity == num(float(result.equity[-1]))
        assert last.close == num(float(close[-1]))
        series = await repo.equity_series("big")
        assert series is not None and (series.equity == result.equity).all()
    finally:
        await engine.dispose()
