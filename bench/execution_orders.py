"""SubmitOrder -> ack on the paper venue: N orders from C concurrent clients over gRPC, the
market and execution services running in this process (real gRPC on loopback), execution on
a throwaway Postgres database (or SQLite with --sqlite). Prints orders/s and p50/p99 latency.

    .venv/bin/python services/execution/bench/orders.py [--orders 1000] [--clients 10]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time
from decimal import Decimal

import grpc
import numpy as np

from tradeplane.execution.entrypoints.bootstrap import build
from tradeplane.execution.entrypoints.settings import ExecutionSettings
from tradeplane.market.entrypoints.bootstrap import build as build_market
from tradeplane.market.entrypoints.settings import MarketSettings
from tradeplane.testing.isolation import postgres_database
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb
from trading.execution.v1 import execution_pb2_grpc


async def run(database_url: str, orders: int, clients: int, accounts: int, directory: str) -> None:
    common = {"grpc_host": "127.0.0.1", "grpc_port": 0, "metrics_port": -1}
    market = build_market(
        MarketSettings(
            database_url=f"sqlite:///{directory}/market.db",
            auth_mode="disabled",
            market_backfill_days=0,
            market_tick_rate=5,
            **common,  # type: ignore[arg-type]
        )
    )
    await market.server.start()
    execution = build(
        ExecutionSettings(
            database_url=database_url,
            auth_mode="disabled",
            market_addr=f"127.0.0.1:{market.server.grpc_port}",
            log_level="WARNING",
            **common,  # type: ignore[arg-type]
        )
    )
    await execution.server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{execution.server.grpc_port}")
    stub = execution_pb2_grpc.ExecutionServiceStub(channel)
    try:
        await execution.market.wait_ready(30)
        for _ in range(600):  # the first tick follows the connection within a tick period
            if execution.market.last_price("BTC-USD") is not None:
                break
            await asyncio.sleep(0.05)
        price = execution.market.last_price("BTC-USD")
        assert price is not None
        resting = str((price / 2).quantize(Decimal("0.01")))  # acked, never fills

        def request(i: int) -> pb.SubmitOrderRequest:
            return pb.SubmitOrderRequest(
                account_id=f"bench-{i % accounts}",
                client_order_id=f"bench-{i}",
                product_id="BTC-USD",
                side=common_pb2.SIDE_BUY,
                type=pb.ORDER_TYPE_LIMIT,
                base_size="0.0001",
                limit_price=resting,
            )

        for i in range(20):  # warm-up (connections, caches, accounts)
            await stub.SubmitOrder(request(-1 - i))
        latencies: list[float] = []

        async def client(c: int) -> None:
            for i in range(c, orders, clients):
                began = time.perf_counter()
                response = await stub.SubmitOrder(request(i))
                latencies.append(time.perf_counter() - began)
                assert response.order.status == pb.ORDER_STATUS_OPEN

        began = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        elapsed = time.perf_counter() - began
        ms = np.array(latencies) * 1000
        print(
            f"{orders} orders, {clients} clients, {accounts} account(s), "
            f"{execution.engine.dialect.name}: "
            f"{orders / elapsed:.0f} orders/s, p50 {np.percentile(ms, 50):.1f} ms, "
            f"p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms"
        )
    finally:
        await channel.close()
        await execution.server.stop()
        await market.server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--accounts", type=int, default=1, help="orders spread over N accounts")
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as directory:
        if args.sqlite:
            url = f"sqlite:///{directory}/execution.db"
            asyncio.run(run(url, args.orders, args.clients, args.accounts, directory))
            return
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(postgres_database(args.postgres))
            asyncio.run(run(url, args.orders, args.clients, args.accounts, directory))


if __name__ == "__main__":
    main()
