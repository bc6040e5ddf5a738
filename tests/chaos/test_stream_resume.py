"""Stream resume across forced resets (issue 11, item 7), on both hops:

- gRPC: a StreamTicks client behind the fault proxy, reconnecting with its per-product
  `since_seq` after each reset;
- WebSocket: a browser-like client of the gateway's /ws/market behind the fault proxy (the
  gateway itself streaming from a market process), sending `resume` with its
  `sinceSeqByProduct` after each reset.

Connections are reset at random moments (seeded) while the market publishes fast. Over all
the events: no gap and no duplicate (or an explicit reset, counted and reported), and the
time from a reset to the next tick (resume) has p99 under 1 s.

Events: CHAOS_STREAM_EVENTS (default 20,000 here; `make test-chaos` sets 100,000).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import numpy as np
import pytest

from tradeplane.testing.faultproxy import FaultProxy
from tradeplane.testing.processes import ServiceFactory, service_processes
from trading.market.v1 import market_pb2, market_pb2_grpc

pytestmark = pytest.mark.slow

EVENTS = int(os.environ.get("CHAOS_STREAM_EVENTS", "20000"))
PRODUCTS = ("BTC-USD", "ETH-USD")
RATE = 2_500  # ticks/s per product


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceFactory]:
    with service_processes(tmp_path) as factory:
        yield factory


async def test_ticks_resume_without_gap_or_duplicate_across_resets(
    services: ServiceFactory, chaos_seed: int | None
) -> None:
    seed = 11 if chaos_seed is None else chaos_seed
    rng = random.Random(seed)
    market = services.create(
        "market",
        "tradeplane.market",
        {
            "MARKET_FEED": "simulated",
            "MARKET_BACKFILL_DAYS": "0",
            "MARKET_PRODUCTS": ",".join(PRODUCTS),
            "MARKET_TICK_RATE": str(RATE),
        },
    )
    await asyncio.to_thread(market.start)
    last: dict[str, int] = {}
    received = gaps = duplicates = resets = 0
    resumes: list[float] = []
    async with FaultProxy("127.0.0.1", market.port, seed=seed) as proxy:
        broken_at: float | None = None
        done = asyncio.Event()

        async def chaos() -> None:
            while not done.is_set():
                await asyncio.sleep(rng.uniform(0.2, 0.6))
                proxy.reset_peer()

        chaos_task = asyncio.create_task(chaos())
        began = time.monotonic()
        async with grpc.aio.insecure_channel(proxy.address) as channel:
            stub = market_pb2_grpc.MarketServiceStub(channel)
            while received < EVENTS:
                assert time.monotonic() - began < 120, f"only {received} events in 120 s"
                request = market_pb2.StreamTicksRequest(product_ids=PRODUCTS, since_seq=last)
                stream = stub.StreamTicks(request)
                try:
                    async for message in stream:
                        if broken_at is not None and message.ticks:
                            resumes.append(time.monotonic() - broken_at)
                            broken_at = None
                        for product in message.reset_product_ids:
                            resets += 1
                            last.pop(product, None)
                        for tick in message.ticks:
                            previous = last.get(tick.product_id)
                            if previous is not None:
                                if tick.seq <= previous:
                                    duplicates += 1
                                elif tick.seq != previous + 1:
                                    gaps += 1
                            last[tick.product_id] = max(previous or 0, tick.seq)
                            received += 1
                        if received >= EVENTS:
                            break
                except grpc.aio.AioRpcError as error:
                    assert error.code() is grpc.StatusCode.UNAVAILABLE, error
                    if broken_at is None:
                        broken_at = time.monotonic()
                finally:
                    stream.cancel()
        done.set()
        chaos_task.cancel()
    p99 = float(np.percentile(resumes, 99)) if resumes else 0.0
    print(
        f"seed {seed}: {received} ticks, {proxy.connections_total} connections, "
        f"{len(resumes)} resumes p50 {np.percentile(resumes, 50) * 1000:.0f} ms "
        f"p99 {p99 * 1000:.0f} ms; gaps {gaps}, duplicates {duplicates}, resets {resets}"
    )
    assert len(resumes) >= 3, "the proxy did not break the stream often enough"
    assert gaps == 0 and duplicates == 0
    assert resets == 0, "the replay buffer should cover a sub-second outage"
    assert p99 < 1.0


async def test_websocket_ticks_resume_without_gap_or_duplicate_across_resets(
    services: ServiceFactory, chaos_seed: int | None
) -> None:
    import websockets

    seed = 13 if chaos_seed is None else chaos_seed
    rng = random.Random(seed)
    market = services.create(
        "market",
        "tradeplane.market",
        {
            "MARKET_FEED": "simulated",
            "MARKET_BACKFILL_DAYS": "0",
            "MARKET_PRODUCTS": ",".join(PRODUCTS),
            "MARKET_TICK_RATE": str(RATE),
        },
    )
    await asyncio.to_thread(market.start)
    gateway = services.create(
        "gateway", "tradeplane.gateway", {"MARKET_ADDR": market.address}, http=True
    )
    await asyncio.to_thread(gateway.start)
    last: dict[str, int] = {}
    received = gaps = duplicates = resets = 0
    resumes: list[float] = []
    async with FaultProxy("127.0.0.1", gateway.port, seed=seed) as proxy:
        done = asyncio.Event()

        async def chaos() -> None:
            while not done.is_set():
                await asyncio.sleep(rng.uniform(0.2, 0.6))
                proxy.reset_peer()

        chaos_task = asyncio.create_task(chaos())
        began = time.monotonic()
        broken_at: float | None = None
        url = f"ws://{proxy.address}/ws/market"
        while received < EVENTS:
            assert time.monotonic() - began < 120, f"only {received} events in 120 s"
            subscription = {
                "channel": "CHANNEL_TICKS",
                "productIds": list(PRODUCTS),
                "subscriptionId": "t",
                "sinceSeqByProduct": {p: str(s) for p, s in last.items()},
            }
            frame = (
                {"resume": {"subscriptions": [subscription]}}
                if last
                else {"subscribe": subscription}
            )
            try:
                async with websockets.connect(url, max_size=None) as ws:
                    await ws.send(json.dumps(frame))
                    async for raw in ws:
                        message = json.loads(raw)
                        if "reset" in message:
                            resets += 1
                            last.clear()
                        data = message.get("data")
                        if not data or "ticks" not in data:
                            continue
                        if broken_at is not None:
                            resumes.append(time.monotonic() - broken_at)
                            broken_at = None
                        for tick in data["ticks"]["ticks"]:
                            product, seq = tick["productId"], int(tick["seq"])
                            previous = last.get(product)
                            if previous is not None:
                                if seq <= previous:
                                    duplicates += 1
                                elif seq != previous + 1:
                                    gaps += 1
                            last[product] = max(previous or 0, seq)
                            received += 1
                        if received >= EVENTS:
                            break
            except (websockets.ConnectionClosed, OSError):
                if broken_at is None:
                    broken_at = time.monotonic()
        done.set()
        chaos_task.cancel()
    p99 = float(np.percentile(resumes, 99)) if resumes else 0.0
    print(
        f"seed {seed}: {received} ticks over /ws/market, {proxy.connections_total} connections, "
        f"{len(resumes)} resumes p50 {np.percentile(resumes, 50) * 1000:.0f} ms "
        f"p99 {p99 * 1000:.0f} ms; gaps {gaps}, duplicates {duplicates}, resets {resets}"
    )
    assert len(resumes) >= 3, "the proxy did not break the stream often enough"
    assert gaps == 0 and duplicates == 0
    assert resets == 0, "the gateway's replay buffer should cover a sub-second outage"
    assert p99 < 1.0
