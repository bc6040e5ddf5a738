"""SIGTERM to a market process with an open StreamTicks stream: health flips to NOT_SERVING at
once, the stream ends with OK, and the process exits 0 within its grace period. Runs against
its own market process so the shared platform stays up.

Health is observed with Health/Watch on a second channel, opened before the signal: once
grpc.aio's server.stop(grace) begins it refuses new calls, so a Check polled during the drain
would see UNAVAILABLE rather than the NOT_SERVING that watchers (and load balancers) get."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import grpc
import pytest
from e2e_support import ServiceProcess
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trading.market.v1 import market_pb2, market_pb2_grpc

GRACE_SECONDS = 5.0

pytestmark = pytest.mark.slow


async def test_sigterm_flips_health_drains_the_stream_and_exits_zero(
    start_market: Callable[..., ServiceProcess],
) -> None:
    svc = start_market(
        SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        MARKET_BACKFILL_DAYS="0.1",
        MARKET_TICK_RATE="20",
    )
    async with (
        grpc.aio.insecure_channel(svc.address) as stream_channel,
        grpc.aio.insecure_channel(svc.address) as health_channel,
    ):
        stream = market_pb2_grpc.MarketServiceStub(stream_channel).StreamTicks(
            market_pb2.StreamTicksRequest(product_ids=["BTC-USD"])
        )
        first = await asyncio.wait_for(stream.read(), 10)
        assert first is not grpc.aio.EOF and first.ticks, "no ticks before SIGTERM"

        health = health_pb2_grpc.HealthStub(health_channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        initial = await asyncio.wait_for(watch.read(), 5)
        assert initial.status == health_pb2.HealthCheckResponse.SERVING

        sent_at = time.monotonic()
        svc.proc.send_signal(signal.SIGTERM)

        flipped = await asyncio.wait_for(watch.read(), 2)
        assert flipped.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert time.monotonic() - sent_at < 1.5, "health must flip at once"
        # The runtime ends Watch streams once NOT_SERVING is sent, so they don't hold the drain.
        assert await asyncio.wait_for(watch.read(), 2) is grpc.aio.EOF
        assert await watch.code() == grpc.StatusCode.OK

        received_after = 0
        while True:
            message = await asyncio.wait_for(stream.read(), GRACE_SECONDS + 2)
            if message is grpc.aio.EOF:
                break
            received_after += len(message.ticks)
        assert await stream.code() == grpc.StatusCode.OK, await stream.details()

    code = await asyncio.to_thread(svc.proc.wait, GRACE_SECONDS + 5)
    elapsed = time.monotonic() - sent_at
    print(f"SIGTERM -> exit 0 in {elapsed:.2f}s; {received_after} ticks drained after SIGTERM")
    assert code == 0, svc.log()
    assert elapsed < GRACE_SECONDS, f"exited after {elapsed:.1f}s, grace is {GRACE_SECONDS}s"
