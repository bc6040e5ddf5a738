"""A real market service (SQLite, backfilled once per session) and backtest services on free
ports against SQLite and Postgres (`database_url`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio

from tradeplane.backtest.entrypoints.bootstrap import BacktestApp, build, build_worker
from tradeplane.backtest.entrypoints.settings import BacktestServiceSettings
from tradeplane.market.entrypoints.bootstrap import MarketApp
from tradeplane.market.entrypoints.bootstrap import build as build_market
from tradeplane.market.entrypoints.settings import MarketSettings
from trading.backtest.v1 import backtest_pb2 as pb
from trading.backtest.v1 import backtest_pb2_grpc
from trading.common.v1 import common_pb2 as cpb
from trading.market.v1 import market_pb2 as mpb

PRODUCT = "BTC-USD"


@dataclass
class Market:
    app: MarketApp
    target: str
    started: int  # epoch seconds when it started (backfill ends at that minute)


@pytest.fixture(scope="session")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('market') / 'market.db'}"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def market(market_db: str) -> AsyncIterator[Market]:
    settings = MarketSettings(
        database_url=market_db,
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=-1,
        auth_mode="disabled",
        market_backfill_days=0.5,
        market_products=PRODUCT,
        market_tick_rate=5,
        shutdown_grace_seconds=1,
    )
    app = build_market(settings)
    started = int(time.time())
    await app.server.start()
    try:
        yield Market(app, f"127.0.0.1:{app.server.grpc_port}", started)
    finally:
        await app.server.stop()


def backtest_settings(
    database_url: str, market_addr: str, **overrides: Any
) -> BacktestServiceSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "metrics_port": -1,
        "auth_mode": "disabled",
        "market_addr": market_addr,
        "backtest_poll_seconds": 0.1,
        "backtest_progress_seconds": 0.1,
        "backtest_snapshot_every": 50,
        "shutdown_grace_seconds": 1,
    }
    values.update(overrides)
    return BacktestServiceSettings(**values)


@dataclass
class Backtest:
    app: BacktestApp
    channel: grpc.aio.Channel
    stub: backtest_pb2_grpc.BacktestServiceStub
    target: str


async def start_backtest(settings: BacktestServiceSettings, *, worker: bool = False) -> Backtest:
    app = build_worker(settings) if worker else build(settings)
    await app.server.start()
    target = f"127.0.0.1:{app.server.grpc_port}"
    channel = grpc.aio.insecure_channel(target)
    return Backtest(app, channel, backtest_pb2_grpc.BacktestServiceStub(channel), target)


async def stop_backtest(service: Backtest) -> None:
    await service.channel.close()
    await service.app.server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def backtest(database_url: str, market: Market) -> AsyncIterator[Backtest]:
    service = await start_backtest(backtest_settings(database_url, market.target))
    try:
        yield service
    finally:
        await stop_backtest(service)


def config(market: Market, *, hours: float = 6.0, **overrides: Any) -> pb.BacktestConfig:
    """A run over the last `hours` of the market's backfilled one-minute history."""
    end = market.started - market.started % 60
    start = end - int(hours * 3600)
    values: dict[str, Any] = {
        "strategy": "sma_crossover",
        "params": {"fast_period": "5", "slow_period": "20"},
        "product_id": PRODUCT,
        "interval": mpb.CANDLE_INTERVAL_ONE_MINUTE,
        "time_range": cpb.TimeRange(
            start={"seconds": start},  # type: ignore[arg-type]
            end={"seconds": end},  # type: ignore[arg-type]
        ),
        "initial_cash": "10000",
        "commission": pb.Commission(fixed="0", bps="10"),
        "slippage_bps": "2",
    }
    values.update(overrides)
    return pb.BacktestConfig(**values)


async def wait_final(stub: backtest_pb2_grpc.BacktestServiceStub, backtest_id: str) -> pb.Backtest:
    final = {pb.RUN_STATUS_COMPLETED, pb.RUN_STATUS_FAILED, pb.RUN_STATUS_CANCELED}
    for _ in range(600):
        got = (await stub.GetBacktest(pb.GetBacktestRequest(backtest_id=backtest_id))).backtest
        if got.status in final:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"backtest {backtest_id} did not finish")
