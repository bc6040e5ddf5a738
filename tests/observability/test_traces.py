"""Traces end to end: one order submitted through the gateway's JSON API is ONE trace, from the
gateway's HTTP span through execution's SubmitOrder and the venue to the wallets ledger
posting (across execution's event outbox), every span linked to the chain by its parent id.

market, execution, wallets and the gateway run in this process (real servers on loopback
sockets, SQLite files); the spans go to an in-memory exporter on the process's tracer provider.
The exporter selection (OTEL_TRACES_EXPORTER) is checked in fresh interpreters.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tradeplane.execution.entrypoints.bootstrap import ExecutionApp
from tradeplane.execution.entrypoints.bootstrap import build as build_execution
from tradeplane.execution.entrypoints.settings import ExecutionSettings
from tradeplane.gateway.server import GatewayServer
from tradeplane.gateway.settings import GatewaySettings
from tradeplane.gateway.testing import Client
from tradeplane.market.entrypoints.bootstrap import MarketApp
from tradeplane.market.entrypoints.bootstrap import build as build_market
from tradeplane.market.entrypoints.settings import MarketSettings
from tradeplane.runtime.tracing import configure_tracing
from tradeplane.testing.isolation import postgres_database
from tradeplane.wallets.entrypoints.bootstrap import WalletsApp
from tradeplane.wallets.entrypoints.bootstrap import build as build_wallets
from tradeplane.wallets.entrypoints.settings import WalletsSettings

# The "browser's" trace context: the gateway must continue it.
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
BROWSER_SPAN_ID = "b7ad6b7169203331"
SUBMIT = "trading.execution.v1.ExecutionService/SubmitOrder"
COMMON: dict[str, Any] = {
    "grpc_host": "127.0.0.1",
    "grpc_port": 0,
    "metrics_port": -1,
    "auth_mode": "disabled",
    "shutdown_grace_seconds": 1,
}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    configure_tracing("tracing-test")  # the process-wide SDK provider (idempotent)
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        pytest.skip("OTEL_SDK_DISABLED is set")
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()  # the provider keeps it, but it exports nothing any more


@dataclass
class Platform:
    market: MarketApp
    execution: ExecutionApp
    wallets: WalletsApp
    gateway: GatewayServer

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.http_port}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def execution_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite numbers outbox events in the writing transaction; Postgres moves them from
    pending_events by the sequencer task: the trace context must survive both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'execution.db'}"
        return
    with postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest_asyncio.fixture
async def platform(
    tmp_path: Path, execution_db: str, spans: InMemorySpanExporter
) -> AsyncIterator[Platform]:
    market = build_market(
        MarketSettings(
            **COMMON,
            database_url=f"sqlite:///{tmp_path / 'market.db'}",
            market_backfill_days=0,
            market_tick_rate=50,
            market_candle_flush_seconds=0.5,
        )
    )
    await market.server.start()
    market_addr = f"127.0.0.1:{market.server.grpc_port}"
    execution = build_execution(
        ExecutionSettings(
            **COMMON,
            database_url=execution_db,
            market_addr=market_addr,
            execution_event_poll_seconds=0.2,
        )
    )
    await execution.server.start()
    execution_addr = f"127.0.0.1:{execution.server.grpc_port}"
    wallets = build_wallets(
        WalletsSettings(
            **COMMON,
            database_url=f"sqlite:///{tmp_path / 'wallets.db'}",
            execution_addr=execution_addr,
            wallets_fill_backoff_initial_seconds=0.05,
            wallets_fill_backoff_max_seconds=0.2,
            wallets_stream_poll_seconds=0.2,
        )
    )
    await wallets.server.start()
    gateway = GatewayServer(
        GatewaySettings(
            **COMMON,
            http_port=0,
            market_addr=market_addr,
            execution_addr=execution_addr,
            wallets_addr=f"127.0.0.1:{wallets.server.grpc_port}",
        )
    )
    await gateway.start()
    try:
        assert await execution.market.wait_ready(15), "execution has no market data"
        assert wallets.consumer is not None
        await _until(lambda: wallets.consumer is not None and wallets.consumer.connected)
        yield Platform(market, execution, wallets, gateway)
    finally:
        await gateway.stop()
        await wallets.server.stop()
        await execution.server.stop()
        await market.server.stop()


async def _until(check: Callable[[], bool], wait: float = 15.0) -> None:
    deadline = time.monotonic() + wait
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


def _hex(span_id: int) -> str:
    return format(span_id, "016x")


class Trace:
    """The finished spans of one trace id, navigable by parent id."""

    def __init__(self, spans: Sequence[ReadableSpan], trace_id: str) -> None:
        self.spans = [s for s in spans if format(s.context.trace_id, "032x") == trace_id]
        self.by_id = {s.context.span_id: s for s in self.spans}

    def named(self, name: str, kind: SpanKind | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name and (kind is None or s.kind is kind)]

    def one(self, name: str, kind: SpanKind | None = None) -> ReadableSpan:
        found = self.named(name, kind)
        assert len(found) == 1, f"{len(found)} spans {name!r} {kind}: {self.describe()}"
        return found[0]

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        return self.by_id.get(span.parent.span_id) if span.parent is not None else None

    def ancestors(self, span: ReadableSpan) -> list[ReadableSpan]:
        out = []
        current = self.parent(span)
        while current is not None:
            out.append(current)
            current = self.parent(current)
        return out

    def describe(self) -> str:
        return "; ".join(
            f"{s.name}[{s.kind.name}] {_hex(s.context.span_id)}<-"
            f"{_hex(s.parent.span_id) if s.parent else '-'}"
            for s in self.spans
        )


async def test_one_order_through_the_gateway_is_one_trace_down_to_the_ledger(
    platform: Platform, spans: InMemorySpanExporter
) -> None:
    body = {
        "accountId": "paper-main",
        "clientOrderId": "traced-1",
        "productId": "BTC-USD",
        "side": "SIDE_BUY",
        "type": "ORDER_TYPE_MARKET",
        "baseSize": "0.001",
        "decision": {"strategy": "manual", "reason": "tracing test"},  # no trace id given
    }
    traceparent = f"00-{TRACE_ID}-{BROWSER_SPAN_ID}-01"
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=15) as http:
        reply = await http.post("/api/live/orders", json=body, headers={"traceparent": traceparent})
        assert reply.status_code == 200, reply.text
        order = reply.json()["order"]

        def posted() -> bool:
            t = Trace(spans.get_finished_spans(), TRACE_ID)
            return any(
                s.attributes and s.attributes.get("fills") for s in t.named("wallets.post_fills")
            )

        await _until(posted)
        # The decision record got this request's trace id (none was given).
        decision = (await http.get(f"/api/decisions/{order['decisionId']}")).json()["decision"]
        assert decision["traceId"] == TRACE_ID

    t = Trace(spans.get_finished_spans(), TRACE_ID)
    # gateway: the HTTP span continues the browser's traceparent...
    http_span = t.one("POST /api/live/orders", SpanKind.SERVER)
    assert http_span.parent is not None and http_span.parent.is_remote
    assert _hex(http_span.parent.span_id) == BROWSER_SPAN_ID
    # ... and its gRPC call to execution is a CLIENT span under it,
    client = t.one(SUBMIT, SpanKind.CLIENT)
    assert t.parent(client) is http_span
    # execution's server span is the child of that call (remote parent: metadata traceparent),
    server = t.one(SUBMIT, SpanKind.SERVER)
    assert server.parent is not None and server.parent.is_remote
    assert t.parent(server) is client
    # the venue call is under SubmitOrder,
    venue = t.one("venue.submit", SpanKind.CLIENT)
    assert t.parent(venue) is server
    assert venue.attributes is not None and venue.attributes["venue"] == "PAPER"
    # the paper venue fills it (in its worker task) under the venue call,
    fill = t.one("execution.apply_fill")
    assert server in t.ancestors(fill) and venue in t.ancestors(fill)
    # and wallets posts the fill to the ledger under it: execution -> outbox event ->
    # StreamEvents -> wallets, the context carried in the event's trace_context.
    [posting] = [s for s in t.named("wallets.post_fills") if s.attributes and s.attributes["fills"]]
    assert posting.kind is SpanKind.CONSUMER
    assert posting.parent is not None and posting.parent.is_remote
    assert t.parent(posting) is fill
    assert [a.name for a in t.ancestors(posting)][-4:] == [
        "venue.submit",
        SUBMIT,
        SUBMIT,
        "POST /api/live/orders",
    ]

    # Database calls are spans of the same trace: execution's (under SubmitOrder and under the
    # fill) and wallets' (under the ledger posting).
    db = [
        s
        for s in t.spans
        if s.instrumentation_scope and "sqlalchemy" in s.instrumentation_scope.name
    ]
    assert all(s.kind is SpanKind.CLIENT for s in db)
    assert any(t.parent(s) is server or server in t.ancestors(s) for s in db), t.describe()
    assert any(fill in t.ancestors(s) and posting not in t.ancestors(s) for s in db)
    assert any(posting in t.ancestors(s) for s in db), t.describe()
    # Every span of the trace hangs off the browser's span: nothing is orphaned.
    for s in t.spans:
        chain = [s, *t.ancestors(s)]
        assert chain[-1] is http_span, f"{s.name} is not linked to the request: {t.describe()}"


async def test_a_websocket_connection_is_a_span_continuing_the_browsers_trace(
    spans: InMemorySpanExporter,
) -> None:
    gateway = GatewayServer(GatewaySettings(**COMMON, http_port=0))
    await gateway.start()
    try:
        client = await Client.open(
            f"ws://127.0.0.1:{gateway.http_port}/ws/market",
            additional_headers={"traceparent": f"00-{TRACE_ID}-{BROWSER_SPAN_ID}-01"},
        )
        await client.close()

        def closed() -> bool:
            return bool(Trace(spans.get_finished_spans(), TRACE_ID).named("WS /ws/market"))

        await _until(closed)
    finally:
        await gateway.stop()
    ws = Trace(spans.get_finished_spans(), TRACE_ID).one("WS /ws/market", SpanKind.SERVER)
    assert ws.parent is not None and _hex(ws.parent.span_id) == BROWSER_SPAN_ID
    assert ws.attributes is not None
    assert ws.attributes["http.response.status_code"] == 101
    assert ws.attributes["http.route"] == "/ws/market"


SCRIPT = textwrap.dedent(
    """
    from opentelemetry import trace
    from tradeplane.runtime.tracing import configure_tracing
    configure_tracing("exporter-test")
    with trace.get_tracer("t").start_as_current_span("exported-span"):
        pass
    print("done")
    """
)


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_console_exporter_prints_spans_and_none_exports_nothing() -> None:
    console = _run(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="from-env")
    assert '"name": "exported-span"' in console.stdout
    assert '"service.name": "from-env"' in console.stdout
    for env in ({"OTEL_TRACES_EXPORTER": "none"}, {}):
        quiet = _run(**env)
        assert "exported-span" not in quiet.stdout + quiet.stderr
        assert quiet.stdout.strip() == "done"


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver (what Jaeger, Tempo or a collector run on :4317)."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_otlp_exporter_sends_spans_to_the_configured_endpoint() -> None:
    collector = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        _run(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_INSECURE="true",
            OTEL_SERVICE_NAME="otlp-test",
        )  # the batch is flushed when the interpreter exits
    finally:
        server.stop(0)
    exported = [
        (attr.value.string_value, span.name)
        for request in collector.requests
        for resource_spans in request.resource_spans
        for attr in resource_spans.resource.attributes
        if attr.key == "service.name"
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    assert exported == [("otlp-test", "exported-span")]


def test_an_unknown_exporter_is_a_clear_error() -> None:
    with pytest.raises(subprocess.CalledProcessError) as info:
        _run(OTEL_TRACES_EXPORTER="jaeger")
    assert "'jaeger' is not one of otlp, console, none" in info.value.stderr
