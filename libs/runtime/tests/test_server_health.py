"""Health checking, reflection and the basic round trip on a real grpc.aio server."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tradeplane.runtime.server import GrpcService
from trading.market.v1 import market_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
MARKET = "trading.market.v1.MarketService"


async def _check(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(response.status)


async def test_health_is_not_serving_until_startup_hooks_finish(kit: Any) -> None:
    app = GrpcService(kit.Settings(auth_mode="disabled", metrics_port=-1))
    kit.register_fake_market(app)
    hook_entered = asyncio.Event()
    release = asyncio.Event()

    async def wait_for_dependencies() -> None:
        hook_entered.set()
        await release.wait()

    app.on_startup(wait_for_dependencies)
    starting = asyncio.create_task(app.start())
    try:
        await asyncio.wait_for(hook_entered.wait(), timeout=10)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            assert await _check(channel) == NOT_SERVING
            assert await _check(channel, MARKET) == NOT_SERVING
            release.set()
            await asyncio.wait_for(starting, timeout=10)
            assert await _check(channel) == SERVING
            assert await _check(channel, MARKET) == SERVING
    finally:
        release.set()
        await app.stop()


async def test_set_serving_flips_health(start_service: Any) -> None:
    svc = await start_service(auth_mode="disabled")
    channel = svc.raw_channel()
    svc.app.set_serving(False)
    await asyncio.sleep(0.05)
    assert await _check(channel, MARKET) == NOT_SERVING
    svc.app.set_serving(True)
    await asyncio.sleep(0.05)
    assert await _check(channel, MARKET) == SERVING


async def test_health_needs_no_token_when_auth_is_on(start_service: Any) -> None:
    svc = await start_service()  # AUTH_MODE=jwt
    assert await _check(svc.raw_channel()) == SERVING


async def test_reflection_lists_services(start_service: Any) -> None:
    svc = await start_service()  # reflection needs no token either
    stub = reflection_pb2_grpc.ServerReflectionStub(svc.raw_channel())
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = set()
    async for response in responses:
        names = {s.name for s in response.list_services_response.service}
    assert {MARKET, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


async def test_unary_and_server_stream_round_trip(start_service: Any) -> None:
    svc = await start_service(auth_mode="disabled")
    market = svc.market()
    products = await market.ListProducts(market_pb2.ListProductsRequest(), timeout=5)
    assert [p.product_id for p in products.products] == ["BTC-USD", "ETH-USD"]
    call = market.StreamTicks(market_pb2.StreamTicksRequest(product_ids=["BTC-USD"]), timeout=5)
    seqs = [r.ticks[0].seq async for r in call]
    assert seqs == [1, 2, 3]
    assert await call.code() == grpc.StatusCode.OK


async def test_stop_ends_open_streams_with_ok(start_service: Any) -> None:
    svc = await start_service(auth_mode="disabled", shutdown_grace_seconds=5)
    call = svc.market().StreamTicks(market_pb2.StreamTicksRequest(product_ids=["forever"]))
    first = await call.read()
    assert first.ticks[0].seq == 1
    loop = asyncio.get_running_loop()
    began = loop.time()
    await svc.app.stop()
    assert loop.time() - began < 2  # the handler returned; no waiting out the grace
    async for _ in call:
        pass
    assert await call.code() == grpc.StatusCode.OK
