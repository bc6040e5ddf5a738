"""A tiny service for test_server_shutdown.py, run as its own process: MarketService with an
endless StreamTicks that ends when the runtime starts draining. Prints "PORT <n>" once bound."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc.aio

from tradeplane.runtime.config import ServiceSettings, load_settings
from tradeplane.runtime.server import GrpcService, run_service
from trading.market.v1 import market_pb2, market_pb2_grpc


class TinySettings(ServiceSettings):
    service_name: str = "sigterm-test"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0
    metrics_port: int = -1


class Ticks(market_pb2_grpc.MarketServiceServicer):
    def __init__(self, app: GrpcService) -> None:
        self.app = app

    async def StreamTicks(
        self, request: market_pb2.StreamTicksRequest, context: Any
    ) -> AsyncIterator[market_pb2.StreamTicksResponse]:
        seq = 0
        while not self.app.shutdown_event.is_set():
            seq += 1
            yield market_pb2.StreamTicksResponse(ticks=[market_pb2.Tick(product_id="X", seq=seq)])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.app.shutdown_event.wait(), timeout=0.05)


async def main() -> None:
    app = GrpcService(load_settings(TinySettings))
    servicer = Ticks(app)

    def register(server: grpc.aio.Server) -> None:
        market_pb2_grpc.add_MarketServiceServicer_to_server(servicer, server)

    app.add_service(market_pb2.DESCRIPTOR.services_by_name["MarketService"], register)

    async def announce() -> None:
        print(f"PORT {app.grpc_port}", flush=True)

    app.on_startup(announce)
    await app.run()


if __name__ == "__main__":
    run_service(main)
