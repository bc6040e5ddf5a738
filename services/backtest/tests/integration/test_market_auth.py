"""With AUTH_MODE=jwt on the market service, queued runs read candles with the workers' own
token (BACKTEST_MARKET_TOKEN): there is no caller whose token could be forwarded. Without it
the run fails with the reason; with it the run completes."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from tradeplane.market.entrypoints.bootstrap import build as build_market
from tradeplane.market.entrypoints.settings import MarketSettings
from tradeplane.runtime.auth import issue_token
from trading.backtest.v1 import backtest_pb2 as pb

from .conftest import (
    PRODUCT,
    Backtest,
    Market,
    backtest_settings,
    config,
    start_backtest,
    stop_backtest,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

FINAL = {pb.RUN_STATUS_COMPLETED, pb.RUN_STATUS_FAILED, pb.RUN_STATUS_CANCELED}
Metadata = tuple[tuple[str, str], ...]


async def _final(service: Backtest, backtest_id: str, metadata: Metadata) -> pb.Backtest:
    request = pb.GetBacktestRequest(backtest_id=backtest_id)
    for _ in range(600):
        got = (await service.stub.GetBacktest(request, metadata=metadata)).backtest
        if got.status in FINAL:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("the run did not finish")


async def test_workers_read_candles_with_their_own_token(tmp_path: Path, database_url: str) -> None:
    secret = secrets.token_urlsafe(32)
    market_app = build_market(
        MarketSettings(
            database_url=f"sqlite:///{tmp_path / 'market.db'}",
            grpc_host="127.0.0.1",
            grpc_port=0,
            metrics_port=-1,
            auth_mode="jwt",
            jwt_secret=secret,
            market_backfill_days=0.1,
            market_products=PRODUCT,
            shutdown_grace_seconds=1,
        )
    )
    await market_app.server.start()
    market = Market(market_app, f"127.0.0.1:{market_app.server.grpc_port}", int(time.time()))
    metadata = (("authorization", f"Bearer {issue_token('tester', ['trade'], secret=secret)}"),)
    try:
        for worker_token, want in (
            (None, pb.RUN_STATUS_FAILED),
            (issue_token("backtest", ["read"], secret=secret), pb.RUN_STATUS_COMPLETED),
        ):
            service = await start_backtest(
                backtest_settings(
                    database_url,
                    market.target,
                    auth_mode="jwt",
                    jwt_secret=secret,
                    backtest_market_token=worker_token,
                    backtest_market_retries=0,
                )
            )
            try:
                run = await service.stub.RunBacktest(
                    pb.RunBacktestRequest(config=config(market, hours=1)), metadata=metadata
                )
                final = await _final(service, run.backtest_id, metadata)
                assert final.status == want, final.error
                if want == pb.RUN_STATUS_FAILED:
                    assert "unauthenticated" in final.error.lower(), final.error
            finally:
                await stop_backtest(service)
    finally:
        await market_app.server.stop()
