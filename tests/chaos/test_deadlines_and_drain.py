"""Deadlines and drain (issue 11, item 8), with real processes and the fault proxy:

- a black-holed dependency yields DEADLINE_EXCEEDED (504 at the gateway) within the deadline
  + 100 ms, and service resumes once the fault is gone;
- SIGTERM under 200 requests/s: health says NOT_SERVING at once and no call the server had
  already accepted fails; calls arriving after it are refused with UNAVAILABLE (retryable).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tradeplane.testing.faultproxy import FaultProxy
from tradeplane.testing.processes import ServiceFactory, service_processes
from trading.market.v1 import market_pb2, market_pb2_grpc
from trading.wallets.v1 import wallets_pb2, wallets_pb2_grpc

pytestmark = pytest.mark.slow

MARGIN = 0.1  # seconds past the deadline the caller may wait at most
RATE = 200  # requests per second during the drain test


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceFactory]:
    with service_processes(tmp_path) as factory:
        yield factory


async def test_black_holed_service_gives_deadline_exceeded_on_time(
    services: ServiceFactory,
) -> None:
    market = services.create(
        "market", "tradeplane.market", {"MARKET_FEED": "simulated", "MARKET_BACKFILL_DAYS": "0"}
    ).start()
    async with FaultProxy("127.0.0.1", market.port) as proxy:
        channel = grpc.aio.insecure_channel(proxy.address)
        stub = market_pb2_grpc.MarketServiceStub(channel)
        assert (await stub.ListProducts(market_pb2.ListProductsRequest(), timeout=5)).products
        proxy.blackhole()
        for deadline in (0.3, 1.0):
            began = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.ListProducts(market_pb2.ListProductsRequest(), timeout=deadline)
            took = time.monotonic() - began
            assert failed.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert took < deadline + MARGIN, f"{took:.3f}s for a {deadline}s deadline"
        proxy.clear()
        proxy.reset_peer()  # the black hole ate bytes: those connections are beyond repair
        deadline_at = time.monotonic() + 10
        while True:
            try:
                await stub.ListProducts(market_pb2.ListProductsRequest(), timeout=2)
                break
            except grpc.aio.AioRpcError:
                assert time.monotonic() < deadline_at, "did not recover after the fault"
                await asyncio.sleep(0.2)
        await channel.close()


async def test_gateway_answers_504_on_time_when_a_service_is_black_holed(
    services: ServiceFactory,
) -> None:
    market = services.create(
        "market", "tradeplane.market", {"MARKET_FEED": "simulated", "MARKET_BACKFILL_DAYS": "0"}
    ).start()
    async with FaultProxy("127.0.0.1", market.port) as proxy:
        gateway = services.create(
            "gateway",
            "tradeplane.gateway",
            {"MARKET_ADDR": proxy.address, "GATEWAY_UPSTREAM_TIMEOUT_SECONDS": "1"},
            http=True,
        )
        await asyncio.to_thread(gateway.start)
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
            assert (await http.get("/api/market/products")).status_code == 200
            proxy.blackhole()
            began = time.monotonic()
            reply = await http.get("/api/market/products")
            took = time.monotonic() - began
            assert reply.status_code == 504, reply.text
            assert reply.json()["code"] == "DEADLINE_EXCEEDED"
            assert took < 1.0 + MARGIN, f"{took:.3f}s for a 1s upstream deadline"
            proxy.clear()
            proxy.reset_peer()
            for _ in range(50):
                if (await http.get("/api/market/products")).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("gateway did not recover after the fault")


@pytest.mark.postgres
async def test_black_holed_postgres_gives_deadline_exceeded_then_recovers(
    services: ServiceFactory, postgres_url: str
) -> None:
    host_port = postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    async with FaultProxy(host, int(port)) as proxy:
        url = postgres_url.replace(host_port, proxy.address)
        wallets = services.create(
            "wallets",
            "tradeplane.wallets",
            {"DATABASE_URL": url},
        )
        await asyncio.to_thread(wallets.start)
        async with grpc.aio.insecure_channel(wallets.address) as channel:
            stub = wallets_pb2_grpc.WalletsServiceStub(channel)
            await stub.ListWallets(wallets_pb2.ListWalletsRequest(), timeout=5)
            proxy.blackhole()
            began = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.ListWallets(wallets_pb2.ListWalletsRequest(), timeout=1.0)
            took = time.monotonic() - began
            assert failed.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            assert took < 1.0 + MARGIN
            proxy.clear()
            proxy.reset_peer()
            deadline_at = time.monotonic() + 15
            while True:
                try:
                    await stub.ListWallets(wallets_pb2.ListWalletsRequest(), timeout=2)
                    break
                except grpc.aio.AioRpcError as error:
                    assert time.monotonic() < deadline_at, f"no recovery: {error.details()}"
                    await asyncio.sleep(0.3)


async def test_sigterm_under_200_requests_per_second_fails_no_accepted_call(
    services: ServiceFactory,
) -> None:
    market = services.create(
        "market",
        "tradeplane.market",
        {
            "MARKET_FEED": "simulated",
            "MARKET_BACKFILL_DAYS": "0.05",
            "SHUTDOWN_GRACE_SECONDS": "5",
        },
    )
    await asyncio.to_thread(market.start)
    outcomes: list[tuple[float, float, grpc.StatusCode]] = []  # sent, done, code
    async with (
        grpc.aio.insecure_channel(market.address) as channel,
        grpc.aio.insecure_channel(market.address) as health_channel,
    ):
        stub = market_pb2_grpc.MarketServiceStub(channel)
        request = market_pb2.ListProductsRequest()

        async def one() -> None:
            sent = time.monotonic()
            try:
                await stub.ListProducts(request, timeout=10)
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                code = error.code()
            outcomes.append((sent, time.monotonic(), code))

        watch = health_pb2_grpc.HealthStub(health_channel).Watch(
            health_pb2.HealthCheckRequest(service="")
        )
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        calls: list[asyncio.Task[None]] = []
        began = time.monotonic()
        signal_at = began + 1.5
        signalled = False
        flipped_after = None
        while time.monotonic() < began + 3.0:
            calls.append(asyncio.create_task(one()))
            if not signalled and time.monotonic() >= signal_at:
                market.signal(signal.SIGTERM)
                signal_at, signalled = time.monotonic(), True
                flipped = await asyncio.wait_for(watch.read(), 2)
                assert flipped.status == health_pb2.HealthCheckResponse.NOT_SERVING
                flipped_after = time.monotonic() - signal_at
            # Paced on absolute times, so a slow iteration does not lower the rate.
            await asyncio.sleep(max(0.0, began + len(calls) / RATE - time.monotonic()))
        await asyncio.gather(*calls)
    assert market.wait(10) == 0, market.log()
    before = [o for o in outcomes if o[0] < signal_at - 0.05]  # surely accepted before SIGTERM
    after = [o for o in outcomes if o[0] >= signal_at]
    rate = len([o for o in outcomes if o[0] < signal_at]) / (signal_at - began)
    print(
        f"{len(outcomes)} calls at {rate:.0f}/s; NOT_SERVING {flipped_after:.3f}s after SIGTERM;"
        f" after it: {sum(o[2] is grpc.StatusCode.OK for o in after)} OK,"
        f" {sum(o[2] is grpc.StatusCode.UNAVAILABLE for o in after)} UNAVAILABLE,"
        f" {sum(o[2] is grpc.StatusCode.CANCELLED for o in after)} CANCELLED"
    )
    assert rate > 0.9 * RATE, f"the load was only {rate:.0f} requests/s"
    assert flipped_after is not None and flipped_after < 0.5
    failed = [o for o in before if o[2] is not grpc.StatusCode.OK]
    assert not failed, f"{len(failed)} accepted calls failed: {failed[:3]}"
    # Calls sent after the signal are refused: UNAVAILABLE once the server stopped accepting,
    # or CANCELLED for one that raced grpc's stop (sent after NOT_SERVING was announced). Neither
    # is an accepted call failing; both tell the client to go elsewhere.
    refused = {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    assert {o[2] for o in after} <= refused
