"""Shared pieces for the runtime's server tests: a fake MarketService on a real grpc.aio server
bound to a free port on 127.0.0.1, plus a test-only method without a scope option."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tradeplane.runtime import errors
from tradeplane.runtime.config import ServiceSettings
from tradeplane.runtime.server import GrpcService
from trading.market.v1 import market_pb2, market_pb2_grpc

JWT_SECRET = "runtime-tests-secret-that-is-at-least-32-bytes-long"

# A method no proto declares, so it has no required_scope option: it needs admin.
PROBE_METHOD = "/tradeplane.test.v1.Probe/Raise"
COUNT_METHOD = "/tradeplane.test.v1.Probe/Count"  # client-streaming, also admin-only

ERRORS_BY_NAME: dict[str, Callable[[], BaseException]] = {
    "InvalidArgument": lambda: errors.InvalidArgument("page_size", "must be at most 1000"),
    "NotFound": lambda: errors.NotFound("product XYZ-USD not found"),
    "AlreadyExists": lambda: errors.AlreadyExists("order c-1 exists"),
    "FailedPrecondition": lambda: errors.FailedPrecondition("insufficient balance"),
    "Aborted": lambda: errors.Aborted("conflict, retry"),
    "ResourceExhausted": lambda: errors.ResourceExhausted("rate limited"),
    "Unavailable": lambda: errors.Unavailable("database down"),
    "Unauthenticated": lambda: errors.Unauthenticated("who are you"),
    "PermissionDenied": lambda: errors.PermissionDenied("not yours"),
    "Crash": lambda: RuntimeError("password=hunter2 at db.internal:5432"),
}


class RuntimeTestSettings(ServiceSettings):
    service_name: str = "runtime-test"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0
    metrics_port: int = 0
    shutdown_grace_seconds: float = 2.0


class FakeMarket(market_pb2_grpc.MarketServiceServicer):
    """Just enough MarketService to drive the runtime: errors are chosen by the request."""

    def __init__(self, app: GrpcService) -> None:
        self.app = app

    async def ListProducts(
        self, request: market_pb2.ListProductsRequest, context: Any
    ) -> market_pb2.ListProductsResponse:
        if request.page_size < 0:
            raise errors.InvalidArgument("page_size", "must not be negative")
        if request.page_token == "crash":
            raise RuntimeError("password=hunter2 at db.internal:5432")
        return market_pb2.ListProductsResponse(
            products=[
                market_pb2.Product(product_id="BTC-USD"),
                market_pb2.Product(product_id="ETH-USD"),
            ]
        )

    async def GetCandles(
        self, request: market_pb2.GetCandlesRequest, context: Any
    ) -> market_pb2.GetCandlesResponse:
        raise errors.NotFound(f"product_id: unknown product {request.product_id!r}")

    async def StreamTicks(
        self, request: market_pb2.StreamTicksRequest, context: Any
    ) -> AsyncIterator[market_pb2.StreamTicksResponse]:
        seq = 0
        while not self.app.shutdown_event.is_set():
            seq += 1
            yield market_pb2.StreamTicksResponse(
                ticks=[market_pb2.Tick(product_id=p, seq=seq) for p in request.product_ids]
            )
            if seq == 2 and "fail-after-2" in request.product_ids:
                raise errors.Unavailable("feed disconnected")
            if seq >= 3 and "forever" not in request.product_ids:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.app.shutdown_event.wait(), timeout=0.02)


async def _probe(request: bytes, context: Any) -> bytes:
    if request:
        raise ERRORS_BY_NAME[request.decode()]()
    return b"ok"


async def _count(requests: AsyncIterator[bytes], context: Any) -> bytes:
    """Client-streaming probe: answers how many messages it received."""
    return str(len([r async for r in requests])).encode()


def register_fake_market(app: GrpcService) -> FakeMarket:
    servicer = FakeMarket(app)

    def register(server: grpc.aio.Server) -> None:
        market_pb2_grpc.add_MarketServiceServicer_to_server(servicer, server)
        probe = grpc.method_handlers_generic_handler(
            "tradeplane.test.v1.Probe",
            {
                "Raise": grpc.unary_unary_rpc_method_handler(_probe),
                "Count": grpc.stream_unary_rpc_method_handler(_count),
            },
        )
        server.add_generic_rpc_handlers((probe,))

    app.add_service(market_pb2.DESCRIPTOR.services_by_name["MarketService"], register)
    return servicer


@dataclass
class Running:
    app: GrpcService
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.grpc_port}"

    def channel(self, **kwargs: Any) -> grpc.aio.Channel:
        from tradeplane.runtime.client import create_channel

        ch = create_channel(self.target, **kwargs)
        self.channels.append(ch)
        return ch

    def raw_channel(self) -> grpc.aio.Channel:
        ch = grpc.aio.insecure_channel(self.target)
        self.channels.append(ch)
        return ch

    def market(self, **kwargs: Any) -> market_pb2_grpc.MarketServiceStub:
        return market_pb2_grpc.MarketServiceStub(self.channel(**kwargs))

    async def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """All samples of the real /metrics endpoint, keyed by (name, labels)."""
        url = f"http://127.0.0.1:{self.app.metrics_port}/metrics"

        def fetch() -> str:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())

        text = await asyncio.to_thread(fetch)
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


StartService = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_service() -> AsyncIterator[StartService]:
    """`await start_service(auth_mode="disabled", ...)` -> a started service (stopped after)."""
    running: list[Running] = []

    async def start(**settings: Any) -> Running:
        settings.setdefault("jwt_secret", JWT_SECRET)
        app = GrpcService(RuntimeTestSettings(**settings))
        register_fake_market(app)
        await app.start()
        result = Running(app)
        running.append(result)
        return result

    yield start
    for r in running:
        for ch in r.channels:
            await ch.close()
        await r.app.stop()


@pytest.fixture
def kit() -> Any:
    """The helpers above for test modules (with --import-mode=importlib they cannot import
    conftest)."""
    import types

    return types.SimpleNamespace(
        JWT_SECRET=JWT_SECRET,
        PROBE_METHOD=PROBE_METHOD,
        COUNT_METHOD=COUNT_METHOD,
        ERRORS_BY_NAME=ERRORS_BY_NAME,
        Settings=RuntimeTestSettings,
        register_fake_market=register_fake_market,
    )
