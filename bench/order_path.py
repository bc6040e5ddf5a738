"""The order path's CPU without gRPC: SubmitOrder -> ack on the paper venue, called in-process.

``bench/orders.py`` measures the service as callers see it (gRPC, 10 clients in another
process). This one calls the service layer directly (``ExecutionCommands.submit_order``, the
request mapped as the gRPC servicer maps it) from C concurrent submitters in the service's own
process, against real Postgres (a throwaway database) and the market service in a process of
its own, and prints the service process's CPU per order. With one submitter every group-commit
batch holds one order; with five, batches hold several: the difference is the fixed cost of a
batch cycle (the intents' round trip with COMMIT - two when they read - the ack's, the outbox
sequencer's share) against the cost of an order, which is what decides the latency at
moderate load (at 500 orders/s the batches hold one or two orders). Use it to compare a change
with its base: the machine's speed drifts by +-30%, so interleave runs of the two.

    .venv/bin/python bench/order_path.py [--orders 1500] [--concurrency 1 --concurrency 5]
        [--postgres postgresql://...]

Measured on the 2-vCPU machine (2026-11-29, 1,500 orders): session 7 (kept risk inputs: one
round trip per batch of intents) 1 submitter 1.02-1.09 ms of CPU per order, 440 orders/s; 5
submitters 0.36-0.37 ms, 1,380-1,440 orders/s - interleaved with session 6's code: 1.20-1.28
and 0.41-0.44 ms (350-370 and 980-1,060 orders/s). Session 6 (literal binding, watched
sockets) against its base: 1 submitter 1.02-1.30 against 1.20-1.94 ms."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time

from orders import _run, execution_service, market_service

from tradeplane.execution.entrypoints import mapping
from tradeplane.testing.isolation import postgres_database
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as pb


async def run(url: str, directory: str, orders: int, concurrency: list[int]) -> None:
    async with (
        market_service(directory) as market_port,
        execution_service(url, market_port) as (execution, resting),
    ):

        async def submit(client_order_id: str) -> None:
            request = pb.SubmitOrderRequest(
                account_id="bench",
                client_order_id=client_order_id,
                product_id="BTC-USD",
                side=common_pb2.SIDE_BUY,
                type=pb.ORDER_TYPE_LIMIT,
                base_size="0.0001",
                limit_price=resting,
            )
            order = await execution.commands.submit_order(mapping.order_request(request), None)
            mapping.order_out(order)  # the response, as the servicer makes it

        for i in range(50):  # warm-up: connections, prepared statements, caches
            await submit(f"warm-{i}")
        for c in concurrency:

            async def submitter(first: int, c: int = c) -> None:
                for i in range(first, orders, c):
                    await submit(f"c{c}-{i}")

            cpu, began = time.process_time(), time.perf_counter()
            await asyncio.gather(*(submitter(k) for k in range(c)))
            cpu, elapsed = time.process_time() - cpu, time.perf_counter() - began
            print(
                f"{c} submitter(s): {orders} orders, {orders / elapsed:.0f} orders/s, "
                f"service CPU {cpu / orders * 1000:.3f} ms per order",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, action="append", help="default: 1 and 5")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_database(args.postgres))
        _run(run(url, directory, args.orders, args.concurrency or [1, 5]))


if __name__ == "__main__":
    main()
