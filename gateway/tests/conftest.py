"""Gateway tests: a real market service (in-process, SQLite), small fake grpc.aio servicers for
services that are faked, and the gateway itself (uvicorn on a free port) — all over sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp

from tradeplane.gateway.server import GatewayServer
from tradeplane.gateway.settings import GatewaySettings
from tradeplane.market.entrypoints.bootstrap import MarketApp
from tradeplane.market.entrypoints.bootstrap import build as build_market
from tradeplane.market.entrypoints.settings import MarketSettings
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2, execution_pb2_grpc


@dataclass
class RunningMarket:
    app: MarketApp
    target: str

    @property
    def tick_streams(self) -> int:
        """StreamTicks subscribers the market service itself counts (upstream streams)."""
        return self.app.tick_hub.subscriber_count


async def start_market(tmp_dir: Any, **overrides: Any) -> RunningMarket:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_dir / 'market.db'}",
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "metrics_port": -1,
        "auth_mode": "disabled",
        "market_backfill_days": 1,
        "market_tick_rate": 50,
        "market_candle_flush_seconds": 0.2,
        "shutdown_grace_seconds": 1,
    }
    values.update(overrides)
    app = build_market(MarketSettings(**values))
    await app.server.start()
    return RunningMarket(app, f"127.0.0.1:{app.server.grpc_port}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def market(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningMarket]:
    running = await start_market(tmp_path_factory.mktemp("market"), market_tick_rate=200)
    try:
        yield running
    finally:
        await running.app.server.stop()


# -- fake execution service ------------------------------------------------------------------


def _ts(seconds: int) -> Timestamp:
    ts = Timestamp()
    ts.FromSeconds(seconds)
    return ts


def make_fill_event(seq: int, account: str = "acct-1", product: str = "BTC-USD") -> Any:
    return execution_pb2.Event(
        seq=seq,
        time=_ts(1_700_000_000 + seq),
        account_id=account,
        fill=execution_pb2.Fill(
            fill_id=f"fill-{seq}",
            order_id=f"order-{seq}",
            account_id=account,
            product_id=product,
            side=common_pb2.SIDE_BUY,
            price="100.5",
            size="0.01",
        ),
    )


class FakeExecution(execution_pb2_grpc.ExecutionServiceServicer):  # type: ignore[misc]
    """Just enough of ExecutionService: orders, a NOT_FOUND case and StreamEvents(since_seq)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.open_streams = 0
        self.stream_requests: list[Any] = []
        self.tokens: list[str | None] = []
        self._changed = asyncio.Condition()

    async def emit(self, count: int, **kwargs: Any) -> None:
        async with self._changed:
            for _ in range(count):
                self.events.append(make_fill_event(len(self.events) + 1, **kwargs))
            self._changed.notify_all()

    def _token(self, context: Any) -> None:
        metadata = dict(context.invocation_metadata() or ())
        self.tokens.append(metadata.get("authorization"))

    async def ListOrders(self, request: Any, context: Any) -> Any:
        self._token(context)
        if request.page_size < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_size: must be >= 0")
        order = execution_pb2.Order(
            order_id="order-1",
            account_id=request.account_id or "acct-1",
            product_id=request.product_id or "BTC-USD",
            side=common_pb2.SIDE_BUY,
            status=execution_pb2.ORDER_STATUS_OPEN,
            base_size="0.5",
            limit_price="101.25",
        )
        return execution_pb2.ListOrdersResponse(orders=[order])

    async def GetOrder(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id} not found")

    async def SubmitOrder(self, request: Any, context: Any) -> Any:
        await context.abort(
            grpc.StatusCode.FAILED_PRECONDITION, "risk: max_order_notional exceeded"
        )

    async def HaltTrading(self, request: Any, context: Any) -> Any:
        target = request.WhichOneof("target")
        return execution_pb2.HaltTradingResponse(
            change=execution_pb2.TradingStateChange(
                account_id=request.account_id if target == "account_id" else "",
                state=execution_pb2.TRADING_STATE_HALTED,
                reason=f"{target}: {request.reason}",
            )
        )

    async def StreamEvents(self, request: Any, context: Any) -> AsyncIterator[Any]:
        self.stream_requests.append(request)
        self.open_streams += 1
        try:
            cursor = request.since_seq if request.HasField("since_seq") else len(self.events)
            while True:
                async with self._changed:
                    await self._changed.wait_for(lambda c=cursor: len(self.events) > c)
                    batch = self.events[cursor:]
                cursor += len(batch)
                for i in range(0, len(batch), 100):
                    yield execution_pb2.StreamEventsResponse(events=batch[i : i + 100])
        finally:
            self.open_streams -= 1


@dataclass
class FakeService:
    servicer: FakeExecution
    server: grpc.aio.Server
    target: str


async def start_fake_execution(port: int = 0) -> FakeService:
    servicer = FakeExecution()
    server = grpc.aio.server()
    execution_pb2_grpc.add_ExecutionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return FakeService(servicer, server, f"127.0.0.1:{port}")


@pytest_asyncio.fixture(loop_scope="module")
async def execution() -> AsyncIterator[FakeService]:
    service = await start_fake_execution()
    try:
        yield service
    finally:
        await service.server.stop(0)


@pytest_asyncio.fixture(loop_scope="module")
async def execution_on_port() -> AsyncIterator[Callable[[int], Awaitable[FakeService]]]:
    """Starts a fake ExecutionService on a given port (to bring an upstream up late)."""
    started: list[FakeService] = []

    async def start(port: int) -> FakeService:
        service = await start_fake_execution(port)
        started.append(service)
        return service

    yield start
    for service in started:
        await service.server.stop(0)


# -- the gateway -----------------------------------------------------------------------------


@dataclass
class RunningGateway:
    server: GatewayServer

    @property
    def port(self) -> int:
        return self.server.http_port

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, endpoint: str, query: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/ws/{endpoint}" + (f"?{query}" if query else "")

    @property
    def hub(self) -> Any:
        return self.server.gateway.hub


GatewayFactory = Callable[..., Awaitable[RunningGateway]]


@pytest_asyncio.fixture(loop_scope="module")
async def gateway_factory() -> AsyncIterator[GatewayFactory]:
    started: list[GatewayServer] = []

    async def start(**overrides: Any) -> RunningGateway:
        values: dict[str, Any] = {
            "grpc_host": "127.0.0.1",
            "http_port": 0,
            "metrics_port": -1,
            "auth_mode": "disabled",
            "shutdown_grace_seconds": 2,
            "gateway_heartbeat_seconds": 5,
        }
        values.update(overrides)
        server = GatewayServer(GatewaySettings(**values))
        await server.start()
        started.append(server)
        return RunningGateway(server)

    yield start
    for server in started:
        await server.stop()
