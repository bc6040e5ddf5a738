"""A service for test_stream_cancellation.py, run as its own process: MarketService whose
StreamTicks sends a small message about every millisecond until the runtime starts draining.
Runs on uvloop through run_service like the real services (`--loop asyncio`: the plain asyncio
loop). Prints "PORTS <grpc> <metrics>" once serving."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc.aio

from tradeplane.runtime.config import ServiceSettings, load_settings
from tradeplane.runtime.server import GrpcService, run_service
from trading.market.v1 import market_pb2, market_pb2_grpc


class FastStreamSettings(ServiceSettings):
    service_name: str = "stream-cancel-test"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0
    metrics_port: int = 0


class FastTicks(market_pb2_grpc.MarketServiceServicer):
    def __init__(self, app: GrpcService) -> None:
        self.app = app

    async def StreamTicks(
        self, request: market_pb2.StreamTicksRequest, context: Any
    ) -> AsyncIterator[market_pb2.StreamTicksResponse]:
        seq = 0
        while not self.app.shutdown_event.is_set():
            seq += 1
            yield market_pb2.StreamTicksResponse(
                ticks=[market_pb2.Tick(product_id=p, seq=seq) for p in request.product_ids]
            )
            await asyncio.sleep(0.001)


async def main() -> None:
    app = GrpcService(load_settings(FastStreamSettings))
    servicer = FastTicks(app)

    def register(server: grpc.aio.Server) -> None:
        market_pb2_grpc.add_MarketServiceServicer_to_server(servicer, server)

    app.add_service(market_pb2.DESCRIPTOR.services_by_name["MarketService"], register)

    async def announce() -> None:
        print(f"PORTS {app.grpc_port} {app.metrics_port}", flush=True)

    app.on_startup(announce)
    await app.run()


if __name__ == "__main__":
    if sys.argv[1:] == ["--loop", "asyncio"]:
        asyncio.run(main())
    else:
        run_service(main)
