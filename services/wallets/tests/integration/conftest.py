"""A real wallets service (GrpcService on a free port) against SQLite and Postgres, and a fake
execution service (a real grpc.aio server) whose StreamEvents serves fills from a list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest_asyncio

from tradeplane.wallets.entrypoints.bootstrap import WalletsApp, build
from tradeplane.wallets.entrypoints.settings import WalletsSettings
from tradeplane.wallets.service_layer.ports import VenueBalances
from trading.common.v1 import common_pb2
from trading.execution.v1 import execution_pb2 as xpb
from trading.execution.v1 import execution_pb2_grpc
from trading.wallets.v1 import wallets_pb2_grpc

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class RunningWallets:
    app: WalletsApp
    channel: grpc.aio.Channel
    stub: wallets_pb2_grpc.WalletsServiceStub
    target: str


def wallets_settings(database_url: str, **overrides: Any) -> WalletsSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "metrics_port": -1,
        "auth_mode": "disabled",
        "shutdown_grace_seconds": 1,
        "wallets_fill_backoff_initial_seconds": 0.05,
        "wallets_fill_backoff_max_seconds": 0.2,
        "wallets_stream_poll_seconds": 0.2,
    }
    values.update(overrides)
    return WalletsSettings(**values)


async def start_wallets(
    settings: WalletsSettings, *, venues: Sequence[VenueBalances] | None = None
) -> RunningWallets:
    app = build(settings, venues=venues)
    await app.server.start()
    target = f"127.0.0.1:{app.server.grpc_port}"
    channel = grpc.aio.insecure_channel(target)
    return RunningWallets(app, channel, wallets_pb2_grpc.WalletsServiceStub(channel), target)


async def stop_wallets(running: RunningWallets) -> None:
    await running.channel.close()
    await running.app.server.stop()


@pytest_asyncio.fixture
async def wallets(database_url: str) -> AsyncIterator[RunningWallets]:
    running = await start_wallets(wallets_settings(database_url))
    try:
        yield running
    finally:
        await stop_wallets(running)


# -- fake execution ---------------------------------------------------------------------------


def fill_event(seq: int, *, account_id: str = "paper-main", side: int = 0) -> xpb.Event:
    """Fill number `seq`: alternating buys and sells of 0.001 BTC around 50,000 USD."""
    side = side or (common_pb2.SIDE_BUY if seq % 2 else common_pb2.SIDE_SELL)
    event = xpb.Event(
        seq=seq,
        account_id=account_id,
        fill=xpb.Fill(
            fill_id=f"fill-{seq}",
            venue_trade_id=f"trade-{seq}",
            order_id=f"order-{seq}",
            account_id=account_id,
            venue=common_pb2.VENUE_PAPER,
            product_id="BTC-USD",
            base_currency="BTC",
            quote_currency="USD",
            side=side,
            price=f"{50000 + seq}.5",
            size="0.001",
            fee=common_pb2.Money(currency="USD", amount="0.05"),
        ),
    )
    event.time.FromDatetime(T0 + timedelta(seconds=seq))
    event.fill.time.FromDatetime(T0 + timedelta(seconds=seq))
    return event


class FakeExecution(execution_pb2_grpc.ExecutionServiceServicer):
    """StreamEvents from `events` (in seq order), `batch` events per message, `delay` between
    messages, honouring since_seq; then, like a live stream, it stays open and sends what
    `publish` adds until the client leaves or the server stops. Before its first event a stream
    sends nothing at all (as the real one may). Other event types may be mixed in."""

    def __init__(self, events: Sequence[xpb.Event], *, batch: int = 10, delay: float = 0.0):
        self.events = list(events)
        self.batch = batch
        self.delay = delay
        self.requests: list[xpb.StreamEventsRequest] = []
        self.list_fills_requests: list[xpb.ListFillsRequest] = []
        # Events with seq < retained_from are gone from the outbox (their fills stay listed).
        self.retained_from = 0
        self.max_page_size = 1000
        self.stop = asyncio.Event()
        self._changed = asyncio.Event()

    def publish(self, *events: xpb.Event) -> None:
        self.events.extend(events)
        self._changed.set()

    async def StreamEvents(
        self, request: xpb.StreamEventsRequest, context: Any
    ) -> AsyncIterator[xpb.StreamEventsResponse]:
        self.requests.append(request)
        cursor = request.since_seq if request.HasField("since_seq") else self.last_seq
        # Like execution: a since_seq older than what is retained gets `reset` on the first
        # message, then the retained events.
        reset = cursor < self.retained_from - 1
        cursor = max(cursor, self.retained_from - 1)
        if reset:
            yield xpb.StreamEventsResponse(reset=True)
        while not self.stop.is_set():
            pending = [e for e in self.events if e.seq > cursor]
            for i in range(0, len(pending), self.batch):
                yield xpb.StreamEventsResponse(events=pending[i : i + self.batch])
                if self.delay:
                    await asyncio.sleep(self.delay)
            if pending:
                cursor = pending[-1].seq
            self._changed.clear()
            waiters = [
                asyncio.ensure_future(self._changed.wait()),
                asyncio.ensure_future(self.stop.wait()),
            ]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:  # also when the call is cancelled: no waiter outlives it
                for w in waiters:
                    w.cancel()

    async def ListFills(self, request: xpb.ListFillsRequest, context: Any) -> xpb.ListFillsResponse:
        """Every fill, newest first, paged by offset."""
        self.list_fills_requests.append(request)
        fills = [e.fill for e in reversed(self.events) if e.WhichOneof("payload") == "fill"]
        start = int(request.page_token or 0)
        size = min(request.page_size or 100, self.max_page_size)
        page = fills[start : start + size]
        more = start + size < len(fills)
        return xpb.ListFillsResponse(fills=page, next_page_token=str(start + size) if more else "")

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0


@dataclass
class RunningExecution:
    server: grpc.aio.Server
    servicer: FakeExecution
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def close(self) -> None:
        self.servicer.stop.set()
        await self.server.stop(0)


async def start_fake_execution(servicer: FakeExecution, port: int = 0) -> RunningExecution:
    server = grpc.aio.server()
    execution_pb2_grpc.add_ExecutionServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return RunningExecution(server, servicer, bound)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20) -> None:
    """Poll `check` until it is true (fails the test with TimeoutError after `seconds`)."""
    async with asyncio.timeout(seconds):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)
