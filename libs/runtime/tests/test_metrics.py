"""grpc-ecosystem server metrics, scraped from the real /metrics HTTP endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tradeplane.runtime.auth import issue_token
from trading.market.v1 import market_pb2

MARKET = "trading.market.v1.MarketService"


def _key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


def _delta(before: dict[Any, float], after: dict[Any, float], key: Any) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_metrics_series_and_counts(start_service: Any, kit: Any) -> None:
    svc = await start_service()  # AUTH_MODE=jwt: rejected calls must be counted too
    token = issue_token("alice", ["read"], secret=kit.JWT_SECRET)
    before = await svc.scrape()

    market = svc.market(token=token)
    for _ in range(2):
        await market.ListProducts(market_pb2.ListProductsRequest(), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError):
        await market.ListProducts(market_pb2.ListProductsRequest(page_size=-1), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as no_token:
        await svc.market().ListProducts(market_pb2.ListProductsRequest(), timeout=5)
    assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
    ticks = market.StreamTicks(market_pb2.StreamTicksRequest(product_ids=["BTC-USD"]), timeout=5)
    assert len([t async for t in ticks]) == 3

    after = await svc.scrape()
    unary = {"grpc_type": "unary", "grpc_service": MARKET, "grpc_method": "ListProducts"}
    stream = {"grpc_type": "server_stream", "grpc_service": MARKET, "grpc_method": "StreamTicks"}

    assert _delta(before, after, _key("grpc_server_started_total", **unary)) == 4
    handled = "grpc_server_handled_total"
    assert _delta(before, after, _key(handled, **unary, grpc_code="OK")) == 2
    assert _delta(before, after, _key(handled, **unary, grpc_code="InvalidArgument")) == 1
    assert _delta(before, after, _key(handled, **unary, grpc_code="Unauthenticated")) == 1
    assert _delta(before, after, _key("grpc_server_handling_seconds_count", **unary)) == 4
    assert _delta(before, after, _key("grpc_server_msg_received_total", **unary)) == 4
    assert _delta(before, after, _key("grpc_server_msg_sent_total", **unary)) == 2

    assert _delta(before, after, _key("grpc_server_started_total", **stream)) == 1
    assert _delta(before, after, _key(handled, **stream, grpc_code="OK")) == 1
    assert _delta(before, after, _key("grpc_server_msg_received_total", **stream)) == 1
    assert _delta(before, after, _key("grpc_server_msg_sent_total", **stream)) == 3
    bucket = _key("grpc_server_handling_seconds_bucket", **stream, le="+Inf")
    assert _delta(before, after, bucket) == 1


async def test_metrics_port_can_be_disabled(start_service: Any) -> None:
    svc = await start_service(auth_mode="disabled", metrics_port=-1)
    assert svc.app.metrics_port == 0


async def test_stream_types_and_message_counts(start_service: Any, kit: Any) -> None:
    svc = await start_service(auth_mode="disabled")
    channel = svc.raw_channel()
    before = await svc.scrape()

    # client_stream: three requests, one response.
    count = channel.stream_unary(kit.COUNT_METHOD)
    assert await count(iter([b"a", b"b", b"c"]), timeout=5) == b"3"

    # bidi_stream: server reflection, two requests, two responses.
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")] * 2), timeout=5
    )
    assert len([r async for r in reflect]) == 2

    # server_stream using context.write() (Health/Watch): its messages count as sent too.
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()
    await asyncio.sleep(0.2)  # let the server see the cancellation

    after = await svc.scrape()
    client = {
        "grpc_type": "client_stream",
        "grpc_service": "tradeplane.test.v1.Probe",
        "grpc_method": "Count",
    }
    bidi = {
        "grpc_type": "bidi_stream",
        "grpc_service": "grpc.reflection.v1alpha.ServerReflection",
        "grpc_method": "ServerReflectionInfo",
    }
    health = {"grpc_type": "server_stream", "grpc_service": "grpc.health.v1.Health"}
    health["grpc_method"] = "Watch"
    for labels, received, sent, code in (
        (client, 3, 1, "OK"),
        (bidi, 2, 2, "OK"),
        (health, 1, 1, "Canceled"),
    ):
        assert _delta(before, after, _key("grpc_server_started_total", **labels)) == 1
        assert _delta(before, after, _key("grpc_server_msg_received_total", **labels)) == received
        assert _delta(before, after, _key("grpc_server_msg_sent_total", **labels)) == sent
        handled = _key("grpc_server_handled_total", **labels, grpc_code=code)
        assert _delta(before, after, handled) == 1, labels


async def test_deadline_exceeded_is_counted_as_such(start_service: Any) -> None:
    svc = await start_service(auth_mode="disabled")
    before = await svc.scrape()
    call = svc.market().StreamTicks(
        market_pb2.StreamTicksRequest(product_ids=["forever"]), timeout=0.3
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.2)
    after = await svc.scrape()
    labels = {"grpc_type": "server_stream", "grpc_service": MARKET, "grpc_method": "StreamTicks"}
    key = _key("grpc_server_handled_total", **labels, grpc_code="DeadlineExceeded")
    assert _delta(before, after, key) == 1
