"""Restart recovery of a real execution process (`python -m tradeplane.execution`, real
Postgres, coinbase venue pointing at the fake Coinbase over HTTPS): SIGKILLed between
"intent committed" and "venue acknowledged" (the fake holds the create request or its
answer), it comes back to exactly ONE venue order for the intent; the client's retry gets that
order, and the same client_order_id with another payload is ALREADY_EXISTS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tradeplane.execution.service_layer.venue_reconciliation import TRADING_HEALTH_NAME
from tradeplane.market.entrypoints.bootstrap import MarketApp
from tradeplane.testing import free_port
from tradeplane.testing.fakes.coinbase import FakeCoinbase
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb
from trading.execution.v1 import execution_pb2_grpc

from .coinbase_support import CoinbaseKeys, coinbase_keys, coinbase_overrides, fake_coinbase

__all__ = ["coinbase_keys", "fake_coinbase"]  # fixtures

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.postgres]

START_TIMEOUT = 60.0


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def listening_since(self) -> float:
        """Seconds since the process logged "listening" (its gRPC port bound)."""
        for line in self.log.read_text(errors="replace").splitlines():
            if '"msg":"listening"' in line:
                stamp = json.loads(line)["ts"]
                return time.time() - datetime.fromisoformat(stamp).timestamp()
        return float("nan")


@pytest_asyncio.fixture(loop_scope="module")
async def launch(
    tmp_path: Path,
    market: MarketApp,
    postgres_database_url: str,
    fake_coinbase: FakeCoinbase,
    coinbase_keys: CoinbaseKeys,
) -> AsyncIterator[Callable[[], Proc]]:
    """Starts `python -m tradeplane.execution` (the same database and port each time)."""
    port = free_port()
    started: list[Proc] = []
    overrides = coinbase_overrides(fake_coinbase, coinbase_keys)
    env = {
        **os.environ,
        "DATABASE_URL": postgres_database_url,
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(port),
        "METRICS_PORT": str(free_port()),
        "AUTH_MODE": "disabled",
        "MARKET_ADDR": f"127.0.0.1:{market.server.grpc_port}",
        "SHUTDOWN_GRACE_SECONDS": "1",
        **{k.upper(): str(v) for k, v in overrides.items()},
    }
    env.pop("REDIS_URL", None)

    def start() -> Proc:
        log = tmp_path / f"execution-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tradeplane.execution"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(Proc(proc, port, log))
        return started[-1]

    try:
        yield start
    finally:
        for p in started:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(10)


async def wait_trading(p: Proc, channel: grpc.aio.Channel) -> tuple[float, float]:
    """Seconds until the process reports trading SERVING: since now, and since it bound its
    port (the interpreter's start-up alone is slow on a loaded machine)."""
    began = time.monotonic()
    stub = health_pb2_grpc.HealthStub(channel)
    while True:
        if p.proc.poll() is not None:
            pytest.fail(f"execution exited with {p.proc.returncode}:\n{p.output()}")
        try:
            answer = await stub.Check(
                health_pb2.HealthCheckRequest(service=TRADING_HEALTH_NAME), timeout=1
            )
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                return time.monotonic() - began, p.listening_since()
        except grpc.aio.AioRpcError:
            pass
        if time.monotonic() - began > START_TIMEOUT:
            pytest.fail(f"trading not SERVING after {START_TIMEOUT}s:\n{p.output()}")
        await asyncio.sleep(0.05)


def order_request(coid: str, price: Decimal) -> pb.SubmitOrderRequest:
    return pb.SubmitOrderRequest(
        client_order_id=coid,
        product_id="BTC-USD",
        side=common_pb2.SIDE_BUY,
        type=pb.ORDER_TYPE_LIMIT,
        base_size="0.001",
        limit_price=str(price),
    )


@pytest.mark.timeout(400)
@pytest.mark.slow
async def test_sigkill_between_intent_and_ack_recovers_to_one_venue_order(
    launch: Callable[[], Proc], fake_coinbase: FakeCoinbase
) -> None:
    """Twice: the venue placed the order and its answer is held ("answer"), and the request
    is held before the venue places it, which happens after the kill ("request")."""
    fake = fake_coinbase.orders
    running = launch()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    await wait_trading(running, channel)
    try:
        for n, held in enumerate(("answer", "request")):
            stub = execution_pb2_grpc.ExecutionServiceStub(channel)
            request = order_request(f"crash-{held}", Decimal("1000.00"))
            if held == "answer":
                fake.create_delay = 30.0  # placed at the venue, the answer never comes back
            else:
                fake.delay_before_create = 3.0  # reaches the venue, placed after the kill
            fake.create_pending.clear()
            call = asyncio.ensure_future(stub.SubmitOrder(request, timeout=60))
            await asyncio.wait_for(fake.create_pending.wait(), 20)
            # The intent is committed (read back) and the venue has not acknowledged it.
            intent = (
                await stub.GetOrder(pb.GetOrderRequest(client_order_id=request.client_order_id))
            ).order
            assert intent.status == pb.ORDER_STATUS_NEW and not intent.venue_order_id
            running.proc.send_signal(signal.SIGKILL)
            running.proc.wait(10)
            with pytest.raises(grpc.aio.AioRpcError) as lost:
                await call
            assert lost.value.code() is grpc.StatusCode.UNAVAILABLE
            await channel.close()
            fake.create_delay = fake.delay_before_create = 0.0

            running = launch()
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
            stub = execution_pb2_grpc.ExecutionServiceStub(channel)
            since_spawn, since_up = await wait_trading(running, channel)
            recovered = (await stub.GetOrder(pb.GetOrderRequest(order_id=intent.order_id))).order
            await fake_coinbase.wait_for(lambda n=n: fake.creates_processed >= n + 1)
            placed = fake.orders_for(intent.order_id)
            assert [p.order_id for p in placed] == [recovered.venue_order_id]
            assert recovered.status == pb.ORDER_STATUS_OPEN
            assert fake.creates_processed == n + 1  # one venue order per intent, in total
            # The client retries its call: the same order, still one at the venue.
            retry = (await stub.SubmitOrder(request)).order
            assert retry.order_id == intent.order_id
            other = order_request(request.client_order_id, Decimal("999.00"))
            with pytest.raises(grpc.aio.AioRpcError) as clash:
                await stub.SubmitOrder(other)
            assert clash.value.code() is grpc.StatusCode.ALREADY_EXISTS
            assert len(fake.orders_for(intent.order_id)) == 1
            print(
                f"held={held}: one venue order; trading SERVING {since_up:.2f}s after the "
                f"restarted process bound its port ({since_spawn:.2f}s after spawn)"
            )
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(20) == 0, running.output()
    finally:
        await channel.close()
