"""GetPlaybackState's in-memory index answers exactly what the SQL range queries answer."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import numpy as np
import pytest

from tradeplane.backtest.adapters.repository import SqlBacktestRepository
from tradeplane.backtest.domain import BarSeries, run_backtest
from tradeplane.backtest.entrypoints.settings import BacktestServiceSettings
from tradeplane.backtest.migrations import MIGRATIONS_DIR
from tradeplane.backtest.service_layer.models import RunSpec
from tradeplane.backtest.service_layer.playback_index import PlaybackIndex, PlaybackIndexCache
from tradeplane.backtest.service_layer.rows import indicator_columns, result_rows, statistics_view
from tradeplane.backtest.service_layer.worker import engine_settings
from tradeplane.runtime.db import create_engine, run_migrations
from tradeplane.strategies import create_strategy

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_index_equals_sql_queries_at_every_bar(database_url: str) -> None:
    n = 2_000
    rng = np.random.default_rng(4)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    opens = np.concatenate(([close[0]], close[:-1]))
    times = 1_700_000_000 + 60 * np.arange(n)
    bars = BarSeries.from_arrays(
        times, opens, np.maximum(opens, close) * 1.002, np.minimum(opens, close) * 0.998, close,
        np.ones(n),
    )  # fmt: skip
    params = {"levels": "4", "spacing_pct": "0.4", "level_cash": "500"}
    spec = RunSpec(
        "grid", params, "BTC-USD", "1m", int(times[0]), int(times[-1]) + 60, Decimal(10_000)
    )
    strategy = create_strategy("grid", params)
    result = run_backtest(strategy, bars, engine_settings(spec, 50))
    assert len(result.fills) > 20 and not result.vectorised
    columns = indicator_columns(strategy.indicators(), result.indicators)

    run_migrations(database_url, MIGRATIONS_DIR)
    settings = BacktestServiceSettings(database_url=database_url, auth_mode="disabled")
    engine = create_engine(database_url, settings)
    try:
        repo = SqlBacktestRepository(engine)
        await repo.add_run("grid", spec, sweep_id=None, total_bars=n)
        assert await repo.claim_next("w", 60) == "grid"
        assert await repo.store_results(
            "grid",
            "w",
            statistics=statistics_view(result.statistics),
            vectorised=result.vectorised,
            indicators=columns,
            tables=result_rows("grid", result, columns),
            rate=0.0,
        )
        tables = await repo.playback_tables("grid", max_rows=1_000_000)
        assert tables is not None
        index = PlaybackIndex(*tables)
        saw_working = False
        for bar in range(0, n, 7):
            _, snapshot, replay, working, latest = await repo.playback_rows(
                "grid", int(times[bar]), 5
            )
            found = index.rows_at(bar, 5)
            assert (found.snapshot is None) == (snapshot is None)
            if snapshot is not None:
                assert found.snapshot is not None
                assert found.snapshot.bar_index == snapshot.bar_index
            assert [r.seq for r in found.replay] == [r.seq for r in replay]
            assert [r.seq for r in found.working] == [r.seq for r in working]
            assert [r.seq for r in found.latest] == [r.seq for r in latest]
            # ... and both equal the engine's own state at that bar.
            want = result.playback.state_at(bar)
            assert [r.order_id for r in found.working] == [o.order_id for o in want.open_orders]
            saw_working |= bool(found.working)
        assert saw_working

        # Too many rows: no index (the service answers from SQL); bounded LRU; one load.
        assert await repo.playback_tables("grid", max_rows=10) is None
        loads: list[str] = []

        async def load(backtest_id: str) -> tuple[list, list, list] | None:  # type: ignore[type-arg]
            loads.append(backtest_id)
            return await repo.playback_tables("grid", max_rows=1_000_000)

        cache = PlaybackIndexCache(load, runs=1)
        first = await asyncio.gather(*(cache.get("grid") for _ in range(10)))
        assert loads == ["grid"] and all(x is first[0] for x in first)
        await cache.get("other")
        await cache.get("grid")
        assert loads == ["grid", "other", "grid"]  # capacity 1: "grid" was evicted
    finally:
        await engine.dispose()
