"""SIGTERM to a service process with an open stream: health flips to NOT_SERVING at once, the
stream ends with OK, and the process exits 0 within the grace period."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import sys

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trading.market.v1 import market_pb2, market_pb2_grpc

SCRIPT = pathlib.Path(__file__).with_name("sigterm_service.py")
GRACE_SECONDS = 5.0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_drains_and_exits_zero(sig: signal.Signals) -> None:
    env = {
        **os.environ,
        "AUTH_MODE": "disabled",
        "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        "GRPC_PORT": "0",
        "METRICS_PORT": "-1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
        port = int(line.decode().split()[1])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="trading.market.v1.MarketService")
            )
            statuses = [(await health.read()).status]
            while statuses[-1] != health_pb2.HealthCheckResponse.SERVING:
                statuses.append((await asyncio.wait_for(health.read(), timeout=10)).status)

            ticks = market_pb2_grpc.MarketServiceStub(channel).StreamTicks(
                market_pb2.StreamTicksRequest(product_ids=["X"])
            )
            first = await asyncio.wait_for(ticks.read(), timeout=10)
            assert first.ticks[0].seq == 1

            loop = asyncio.get_running_loop()
            signalled_at = loop.time()
            proc.send_signal(sig)

            update = await asyncio.wait_for(health.read(), timeout=1.0)
            assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert loop.time() - signalled_at < 1.0

            while await ticks.read() is not grpc.aio.EOF:  # the rest, then a clean end
                pass
            assert await ticks.code() == grpc.StatusCode.OK
            assert await health.code() == grpc.StatusCode.OK  # the watch ends too

        returncode = await asyncio.wait_for(proc.wait(), timeout=GRACE_SECONDS + 5)
        assert returncode == 0
        assert loop.time() - signalled_at < GRACE_SECONDS
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
