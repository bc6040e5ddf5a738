"""W3C trace context from client metadata parents the server span."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text

from tradeplane.runtime import tracing
from tradeplane.runtime.cache import RedisCache
from tradeplane.runtime.db import create_engine
from tradeplane.runtime.tracing import configure_tracing
from trading.market.v1 import market_pb2

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    configure_tracing("runtime-test")  # idempotent: the process-wide SDK provider
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        pytest.skip("OTEL_SDK_DISABLED is set")
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()  # the provider keeps it, but it exports nothing any more


def _server_spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [
        s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER and s.name == name
    ]


async def _client_spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """The channel ends a CLIENT span from the call's done callback, a moment after the call."""
    for _ in range(100):
        found = [
            s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT and s.name == name
        ]
        if found:
            return found
        await asyncio.sleep(0.01)
    return []


async def test_traceparent_from_metadata_is_the_parent(
    start_service: Any, spans: InMemorySpanExporter
) -> None:
    svc = await start_service(auth_mode="disabled")
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    await svc.market().ListProducts(
        market_pb2.ListProductsRequest(), metadata=(("traceparent", traceparent),), timeout=5
    )
    name = "trading.market.v1.MarketService/ListProducts"
    [span] = _server_spans(spans, name)
    assert span.parent is not None
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent.is_remote
    # The traceparent the caller gave parents the channel's CLIENT span, which parents ours.
    [client] = await _client_spans(spans, name)
    assert client.parent is not None
    assert format(client.parent.span_id, "016x") == PARENT_SPAN_ID
    assert span.parent.span_id == client.context.span_id
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert span.attributes["rpc.service"] == "trading.market.v1.MarketService"


async def test_create_channel_propagates_the_current_span(
    start_service: Any, spans: InMemorySpanExporter
) -> None:
    svc = await start_service(auth_mode="disabled")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        call = svc.market().StreamTicks(market_pb2.StreamTicksRequest(product_ids=["BTC-USD"]))
        assert len([m async for m in call]) == 3
    name = "trading.market.v1.MarketService/StreamTicks"
    [span] = _server_spans(spans, name)
    # caller -> the channel's CLIENT span (ended just after the stream) -> the server's span
    [client] = await _client_spans(spans, name)
    assert client.parent is not None
    assert client.parent.span_id == caller.get_span_context().span_id
    assert client.attributes is not None
    assert client.attributes["rpc.grpc.status_code"] == 0
    assert span.parent is not None
    assert span.context.trace_id == caller.get_span_context().trace_id
    assert span.parent.span_id == client.context.span_id


async def test_failed_call_marks_the_span_and_status(
    start_service: Any, spans: InMemorySpanExporter
) -> None:
    svc = await start_service(auth_mode="disabled")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await svc.market().ListProducts(market_pb2.ListProductsRequest(page_token="crash"))
    [span] = _server_spans(spans, "trading.market.v1.MarketService/ListProducts")
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]
    assert span.status.status_code is trace.StatusCode.ERROR
    # The id the caller was given leads to this span.
    assert format(span.context.trace_id, "032x") in (info.value.details() or "")


async def test_database_statements_are_client_spans_of_the_caller(
    spans: InMemorySpanExporter, tmp_path: Any
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'traced.db'}")
    try:
        with tracing.span("caller") as caller:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        async with engine.connect() as conn:  # outside any trace (a poll loop): no span
            await conn.execute(text("SELECT 2"))
    finally:
        await engine.dispose()
    [statement] = [
        s
        for s in spans.get_finished_spans()
        if s.attributes and s.attributes.get("db.statement") == "SELECT 1"
    ]
    assert statement.name.startswith("SELECT")
    assert statement.kind is SpanKind.CLIENT
    assert statement.parent is not None
    assert statement.parent.span_id == caller.get_span_context().span_id
    assert statement.attributes is not None
    assert statement.attributes["db.system"] == "sqlite"
    assert [s.name for s in spans.get_finished_spans() if s.parent is None] == ["caller"]


async def test_redis_commands_are_client_spans_of_the_caller(
    spans: InMemorySpanExporter, redis_url: str
) -> None:
    cache = RedisCache(redis_url, prefix="t:traced:")
    try:
        with tracing.span("caller") as caller:
            await cache.set("k", b"v", ttl_seconds=5)
            assert await cache.get("k") == b"v"
        await cache.get("outside any trace")  # no span
    finally:
        await cache.close()
    commands = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(commands) == 2, [s.name for s in commands]
    assert {s.name for s in commands} >= {"SET", "GET"}
    for s in commands:
        assert s.parent is not None
        assert s.parent.span_id == caller.get_span_context().span_id


def test_continued_span_takes_the_first_message_as_parent_and_links_the_rest(
    spans: InMemorySpanExporter,
) -> None:
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    first = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    with tracing.continued_span("consume", [{"traceparent": first}, {"traceparent": other}, {}]):
        carried = tracing.carrier()
    [span] = [s for s in spans.get_finished_spans() if s.name == "consume"]
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_SPAN_ID
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert [format(link.context.span_id, "016x") for link in span.links] == ["2222222222222222"]
    # Inside it, the carrier for the next hop names this span.
    assert carried["traceparent"] == f"00-{TRACE_ID}-{format(span.context.span_id, '016x')}-01"
    with tracing.continued_span("fresh", []):
        pass
    [fresh] = [s for s in spans.get_finished_spans() if s.name == "fresh"]
    assert fresh.parent is None


async def test_detached_work_starts_its_own_traces(spans: InMemorySpanExporter) -> None:
    async def work(name: str) -> None:
        with tracing.span(name):
            await asyncio.sleep(0)

    with tracing.span("request"):
        await asyncio.get_running_loop().create_task(tracing.detached(work("shared")))
        await asyncio.get_running_loop().create_task(work("inherited"))
    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert by_name["shared"].parent is None
    assert by_name["inherited"].parent is not None
    assert by_name["inherited"].parent.span_id == by_name["request"].context.span_id


async def test_span_records_an_escaping_error_and_restores_the_outer_span(
    spans: InMemorySpanExporter,
) -> None:
    @tracing.traced("decorated")
    async def failing() -> None:
        raise ValueError("boom")

    with tracing.span("outer", kind=SpanKind.CLIENT, venue="PAPER") as outer:
        with pytest.raises(KeyError), tracing.span("inner"):
            assert trace.get_current_span().get_span_context().span_id != 0
            raise KeyError("missing")
        assert trace.get_current_span() is outer
        with pytest.raises(ValueError):
            await failing()
        assert trace.get_current_span() is outer
    assert not trace.get_current_span().get_span_context().is_valid
    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert by_name["outer"].kind is SpanKind.CLIENT
    assert dict(by_name["outer"].attributes or {}) == {"venue": "PAPER"}
    assert by_name["outer"].status.status_code is trace.StatusCode.UNSET
    for name, error in (("inner", "KeyError: 'missing'"), ("decorated", "ValueError: boom")):
        failed = by_name[name]
        assert failed.parent is not None
        assert failed.parent.span_id == by_name["outer"].context.span_id
        assert failed.status.status_code is trace.StatusCode.ERROR
        assert failed.status.description == error
        assert [event.name for event in failed.events] == ["exception"]
