"""Fan-out benchmark: the market service (its own process) publishes ticks at a fixed rate to
N StreamTicks subscribers on loopback; prints delivered ticks/s and p50/p99 latency from the
tick's exchange time (stamped when the feed publishes it) to its receipt by the client.

    .venv/bin/python bench/market_fanout.py [--rates 1000,2000] [--subs 1,10,100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np

from trading.market.v1 import market_pb2 as pb
from trading.market.v1 import market_pb2_grpc


def start_server(rate: float, directory: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start the service on a port it picks itself (GRPC_PORT=0), read back from its log."""
    env = dict(
        os.environ,
        DATABASE_URL=f"sqlite:///{directory}/market-{rate}.db",
        AUTH_MODE="disabled",
        GRPC_HOST="127.0.0.1",
        GRPC_PORT="0",
        METRICS_PORT="-1",
        MARKET_PRODUCTS="BTC-USD",
        MARKET_TICK_RATE=str(rate),
        MARKET_BACKFILL_DAYS="0",
        LOG_LEVEL="INFO",
    )
    log = open(f"{directory}/market-{rate}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "tradeplane.market"], env=env, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        with open(f"{directory}/market-{rate}.log", "rb") as f:
            for line in f:
                if b'"msg":"listening"' in line:
                    return proc, f"127.0.0.1:{json.loads(line)['grpc_port']}"
        time.sleep(0.1)
    raise RuntimeError("market service did not report its port")


async def wait_ready(target: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                stub = market_pb2_grpc.MarketServiceStub(channel)
                await stub.ListProducts(pb.ListProductsRequest(), timeout=1)
                return
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.2)
    raise RuntimeError("market service did not start")


async def measure(target: str, subscribers: int, seconds: float) -> tuple[float, float, float]:
    channels = [grpc.aio.insecure_channel(target) for _ in range(min(subscribers, 8))]
    latencies: list[float] = []
    counts = [0] * subscribers
    measuring = asyncio.Event()

    async def subscriber(i: int) -> None:
        stub = market_pb2_grpc.MarketServiceStub(channels[i % len(channels)])
        call = stub.StreamTicks(pb.StreamTicksRequest(product_ids=["BTC-USD"]))
        async for message in call:
            if not measuring.is_set() or not message.ticks:
                continue
            now = time.time()
            oldest = message.ticks[0].time  # the longest-waiting tick of the batch
            latencies.append(now - oldest.seconds - oldest.nanos * 1e-9)
            counts[i] += len(message.ticks)

    tasks = [asyncio.create_task(subscriber(i)) for i in range(subscribers)]
    await asyncio.sleep(2.0)  # connect and warm up
    measuring.set()
    began = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - began
    measuring.clear()
    for task in tasks:
        task.cancel()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if not isinstance(result, asyncio.CancelledError | None):
            print("subscriber failed:", repr(result)[:300], file=sys.stderr)
    for channel in channels:
        await channel.close()
    lat = np.array(latencies) * 1000
    return sum(counts) / elapsed, float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="100,1000,2000")
    parser.add_argument("--subs", default="1,10,100")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(f"{'ticks/s':>8} {'subs':>5} {'delivered/s':>12} {'p50 ms':>8} {'p99 ms':>8}")
    with tempfile.TemporaryDirectory(prefix="market-fanout-") as directory:
        for rate in [float(r) for r in args.rates.split(",")]:
            for n in [int(s) for s in args.subs.split(",")]:
                # A fresh process per point, so one measurement cannot skew the next.
                proc, target = start_server(rate, directory)
                try:
                    await wait_ready(target)
                    delivered, p50, p99 = await measure(target, n, args.seconds)
                    print(f"{rate:8.0f} {n:5d} {delivered:12.0f} {p50:8.1f} {p99:8.1f}", flush=True)
                finally:
                    proc.terminate()
                    proc.wait(15)


if __name__ == "__main__":
    asyncio.run(main())
