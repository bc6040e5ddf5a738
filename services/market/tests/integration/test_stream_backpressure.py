"""Slow stream subscribers and shutdown, over real gRPC (a fast feed, SQLite)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from tradeplane.market.service_layer import metrics
from trading.market.v1 import market_pb2 as pb
from trading.market.v1 import market_pb2_grpc

from .conftest import market_settings, start_market, stop_market

# A second of ticks (3 products x 1,000/s): the fast subscriber shares this process's event loop
# with the server, so a pause of the loop (GC, a busy CI machine) must not look like falling
# behind; the slow one still overflows it within about a second of its window filling.
QUEUE_SIZE = 3000


async def test_subscriber_that_stops_reading_is_dropped_others_unaffected(
    tmp_path: Path,
) -> None:
    market = await start_market(
        market_settings(
            f"sqlite:///{tmp_path / 'market.db'}",
            market_backfill_days=0,
            market_tick_rate=1000,  # x 3 products
            market_tick_queue_size=QUEUE_SIZE,
        )
    )
    # No BDP probing: the slow client's receive window stays at its initial size, so the
    # server's writes to it block soon (as for a real client that stopped reading).
    slow_channel = grpc.aio.insecure_channel(market.target, options=[("grpc.http2.bdp_probe", 0)])
    try:
        dropped_before = metrics.SUBSCRIBERS_DROPPED.labels("ticks", "fell_behind")._value.get()
        request = pb.StreamTicksRequest(product_ids=["BTC-USD", "ETH-USD", "SOL-USD"])
        slow = market_pb2_grpc.MarketServiceStub(slow_channel).StreamTicks(request)
        await slow.initial_metadata()  # subscribed; never read from now on

        fast = market.stub.StreamTicks(request)
        latencies: list[float] = []
        received = 0
        hub = market.app.tick_hub
        dropped_at: float | None = None
        async with asyncio.timeout(60):
            async for message in fast:
                now = time.time()
                received += len(message.ticks)
                newest = message.ticks[-1].time
                latencies.append(now - (newest.seconds + newest.nanos / 1e9))
                if dropped_at is None and hub.subscriber_count == 1:
                    dropped_at = now
                if dropped_at is not None and now - dropped_at > 1.0:
                    break
        fast.cancel()
        assert dropped_at is not None
        dropped_after = metrics.SUBSCRIBERS_DROPPED.labels("ticks", "fell_behind")._value.get()
        assert dropped_after - dropped_before == 1
        # The fast subscriber kept up throughout, before and after the drop.
        assert received > 1000
        assert float(np.percentile(latencies, 99)) < 0.25
        # The slow client, once it reads again, drains what was in flight and learns why.
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async with asyncio.timeout(30):
                async for _ in slow:
                    pass
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "fell behind" in (error.value.details() or "")
    finally:
        await slow_channel.close()
        await stop_market(market)


async def test_shutdown_ends_open_streams_cleanly(tmp_path: Path) -> None:
    market = await start_market(
        market_settings(f"sqlite:///{tmp_path / 'market.db'}", market_backfill_days=0)
    )
    try:
        call = market.stub.StreamTicks(pb.StreamTicksRequest(product_ids=["BTC-USD"]))
        candles = market.stub.StreamCandles(
            pb.StreamCandlesRequest(product_ids=["BTC-USD"], interval=pb.CANDLE_INTERVAL_ONE_HOUR)
        )
        assert (await call.read()).ticks
        await candles.initial_metadata()
        began = time.monotonic()
        stopping = asyncio.create_task(market.app.server.stop())
        async with asyncio.timeout(5):
            while await call.read() is not grpc.aio.EOF:
                pass
            while await candles.read() is not grpc.aio.EOF:
                pass
        assert await call.code() == grpc.StatusCode.OK
        assert await candles.code() == grpc.StatusCode.OK
        await stopping
        assert time.monotonic() - began < market.app.settings.shutdown_grace_seconds
    finally:
        await stop_market(market)
