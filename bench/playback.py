"""Playback and equity latency over gRPC on a large stored run.

    .venv/bin/python bench/playback.py [--bars 1000000] [--queries 1000]
        [--database-url sqlite:////tmp/backtest-bench.db | postgresql://...]

Builds a run the way a worker does — SMA(10)/SMA(30) crossover over a seeded random walk of
one-minute bars (about 20,000 trades per 1,000,000 bars), its result rows, one
`store_results` transaction — then starts the BacktestService on a free port and measures:

- GetPlaybackState at --queries random instants: p50 / p99 (target p99 < 10 ms);
- GetEquity(max_points=2000): the first (cold) call, then p50 / p99 over 20 warm calls
  (target < 50 ms).

The machine is shared and noisy: read the figures as orders of magnitude.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from decimal import Decimal

import grpc.aio
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from tradeplane.backtest.adapters.repository import SqlBacktestRepository
from tradeplane.backtest.domain import BarSeries, run_backtest
from tradeplane.backtest.entrypoints.bootstrap import build
from tradeplane.backtest.entrypoints.settings import BacktestServiceSettings
from tradeplane.backtest.migrations import MIGRATIONS_DIR
from tradeplane.backtest.service_layer.models import RunSpec
from tradeplane.backtest.service_layer.rows import indicator_columns, result_rows, statistics_view
from tradeplane.backtest.service_layer.worker import engine_settings
from tradeplane.runtime.db import create_engine, run_migrations
from tradeplane.strategies import create_strategy
from trading.backtest.v1 import backtest_pb2 as pb
from trading.backtest.v1 import backtest_pb2_grpc


def _ms(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q) * 1000:.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--database-url", default="sqlite:////tmp/backtest-bench.db")
    args = parser.parse_args()
    settings = BacktestServiceSettings(
        database_url=args.database_url,
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=-1,
        auth_mode="disabled",
        backtest_embedded_worker=False,
        market_addr="127.0.0.1:1",
    )
    run_migrations(args.database_url, MIGRATIONS_DIR)

    n = args.bars
    rng = np.random.default_rng(42)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    opens = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(opens, close) * 1.0005
    low = np.minimum(opens, close) * 0.9995
    times = 1_600_000_000 + 60 * np.arange(n)
    bars = BarSeries.from_arrays(times, opens, high, low, close, np.ones(n))
    spec = RunSpec(
        "sma_crossover", {}, "BTC-USD", "1m", int(times[0]), int(times[-1]) + 60, Decimal(10_000)
    )
    strategy = create_strategy("sma_crossover", {})
    began = time.perf_counter()
    result = run_backtest(strategy, bars, engine_settings(spec, settings.backtest_snapshot_every))
    engine_s = time.perf_counter() - began
    columns = indicator_columns(strategy.indicators(), result.indicators)
    backtest_id = str(uuid.uuid4())
    began = time.perf_counter()
    tables = result_rows(backtest_id, result, columns)
    rows_s = time.perf_counter() - began

    engine = create_engine(args.database_url, settings)
    repo = SqlBacktestRepository(engine)
    await repo.add_run(backtest_id, spec, sweep_id=None, total_bars=n)
    await repo.claim_next("bench", 3600)
    began = time.perf_counter()
    await repo.store_results(
        backtest_id,
        "bench",
        statistics=statistics_view(result.statistics),
        vectorised=result.vectorised,
        indicators=columns,
        tables=tables,
        rate=0.0,
    )
    store_s = time.perf_counter() - began
    await engine.dispose()
    print(
        f"{n:,} bars, {len(result.trades):,} trades: engine {engine_s:.2f} s, "
        f"result rows {rows_s:.1f} s, store {store_s:.1f} s"
    )

    app = build(settings)
    await app.server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.server.grpc_port}")
    stub = backtest_pb2_grpc.BacktestServiceStub(channel)
    try:
        instants = rng.integers(int(times[0]), int(times[-1]) + 60, args.queries)
        latencies = []
        for instant in instants:
            request = pb.GetPlaybackStateRequest(
                backtest_id=backtest_id, timestamp=Timestamp(seconds=int(instant))
            )
            began = time.perf_counter()
            await stub.GetPlaybackState(request)
            latencies.append(time.perf_counter() - began)
        print(
            f"GetPlaybackState x{len(latencies)}: p50 {_ms(latencies, 50)}, "
            f"p99 {_ms(latencies, 99)} (target p99 < 10 ms)"
        )
        equity = []
        for _ in range(21):
            began = time.perf_counter()
            await stub.GetEquity(pb.GetEquityRequest(backtest_id=backtest_id, max_points=2000))
            equity.append(time.perf_counter() - began)
        # The first call reads the run's packed series from the database; later ones are
        # served from the service's per-run cache (a chart zooming and panning one run).
        print(
            f"GetEquity(max_points=2000): first (cold) {equity[0] * 1000:.1f} ms; warm x20 "
            f"p50 {_ms(equity[1:], 50)}, p99 {_ms(equity[1:], 99)} (target < 50 ms)"
        )
    finally:
        await channel.close()
        await app.server.stop()


if __name__ == "__main__":
    asyncio.run(main())
