"""A real market service and a real execution service (each a GrpcService on a free port,
in this process) against SQLite and Postgres; tests talk to execution over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio

from tradeplane.execution.entrypoints.bootstrap import ExecutionApp, build
from tradeplane.execution.entrypoints.settings import ExecutionSettings
from tradeplane.market.entrypoints.bootstrap import MarketApp
from tradeplane.market.entrypoints.bootstrap import build as build_market
from tradeplane.market.entrypoints.settings import MarketSettings
from tradeplane.testing.isolation import postgres_database
from trading.execution.v1 import execution_pb2_grpc


@dataclass
class RunningExecution:
    app: ExecutionApp
    channel: grpc.aio.Channel
    stub: execution_pb2_grpc.ExecutionServiceStub


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('market') / 'market.db'}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def market(market_db: str) -> AsyncIterator[MarketApp]:
    settings = MarketSettings(
        database_url=market_db,
        grpc_host="127.0.0.1",
        grpc_port=0,
        metrics_port=-1,
        auth_mode="disabled",
        market_backfill_days=0,
        market_tick_rate=50,
        market_candle_flush_seconds=0.5,
        shutdown_grace_seconds=1,
    )
    app = build_market(settings)
    await app.server.start()
    try:
        yield app
    finally:
        await app.server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def execution_db(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'execution.db'}"
        return
    with postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


def execution_settings(database_url: str, market_port: int, **overrides: Any) -> ExecutionSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "metrics_port": -1,
        "auth_mode": "disabled",
        "market_addr": f"127.0.0.1:{market_port}",
        "execution_paper_maker_fee_bps": "10",
        "execution_paper_taker_fee_bps": "20",
        "execution_event_poll_seconds": 0.5,
        "shutdown_grace_seconds": 1,
    }
    values.update(overrides)
    return ExecutionSettings(**values)


async def start_execution(settings: ExecutionSettings) -> RunningExecution:
    app = build(settings)
    await app.server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.server.grpc_port}")
    return RunningExecution(app, channel, execution_pb2_grpc.ExecutionServiceStub(channel))


async def stop_execution(running: RunningExecution) -> None:
    await running.channel.close()
    await running.app.server.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def execution(market: MarketApp, execution_db: str) -> AsyncIterator[RunningExecution]:
    running = await start_execution(execution_settings(execution_db, market.server.grpc_port))
    try:
        yield running
    finally:
        await stop_execution(running)
