"""W3C trace context from client metadata parents the server span."""

from __future__ import annotations

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


async def test_traceparent_from_metadata_is_the_parent(
    start_service: Any, spans: InMemorySpanExporter
) -> None:
    svc = await start_service(auth_mode="disabled")
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    await svc.market().ListProducts(
        market_pb2.ListProductsRequest(), metadata=(("traceparent", traceparent),), timeout=5
    )
    [span] = _server_spans(spans, "trading.market.v1.MarketService/ListProducts")
    assert span.parent is not None
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_SPAN_ID
    assert span.parent.is_remote
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
    [span] = _server_spans(spans, "trading.market.v1.MarketService/StreamTicks")
    assert span.parent is not None
    assert span.context.trace_id == caller.get_span_context().trace_id
    assert span.parent.span_id == caller.get_span_context().span_id


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
