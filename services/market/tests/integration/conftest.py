"""A real market service (GrpcService on a free port) against SQLite and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio

from tradeplane.market.entrypoints.bootstrap import MarketApp, build
from tradeplane.market.entrypoints.settings import MarketSettings
from tradeplane.testing.isolation import postgres_database
from trading.market.v1 import market_pb2_grpc


@dataclass
class RunningMarket:
    app: MarketApp
    channel: grpc.aio.Channel
    stub: market_pb2_grpc.MarketServiceStub
    target: str


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def market_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One database per test module (the service backfills it once) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('market') / 'market.db'}"
        return
    with postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


def market_settings(database_url: str, **overrides: Any) -> MarketSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "metrics_port": -1,
        "auth_mode": "disabled",
        "market_backfill_days": 2,
        "market_tick_rate": 20,
        "market_tick_replay_size": 40,
        "market_candle_flush_seconds": 0.2,
        "shutdown_grace_seconds": 2,
    }
    values.update(overrides)
    return MarketSettings(**values)


async def start_market(settings: MarketSettings) -> RunningMarket:
    app = build(settings)
    await app.server.start()
    target = f"127.0.0.1:{app.server.grpc_port}"
    channel = grpc.aio.insecure_channel(target)
    return RunningMarket(app, channel, market_pb2_grpc.MarketServiceStub(channel), target)


async def stop_market(market: RunningMarket) -> None:
    await market.channel.close()
    await market.app.server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def market(market_database_url: str) -> AsyncIterator[RunningMarket]:
    running = await start_market(market_settings(market_database_url))
    try:
        yield running
    finally:
        await stop_market(running)
