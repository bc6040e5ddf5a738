"""Channels to the gRPC services, and generic multicallables built from the proto descriptors."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from tradeplane.gateway.errors import ApiError
from tradeplane.gateway.settings import GatewaySettings
from tradeplane.runtime.client import create_channel

# Registers the services' descriptors in the default pool.
from trading.backtest.v1 import backtest_pb2  # noqa: F401
from trading.execution.v1 import execution_pb2  # noqa: F401
from trading.market.v1 import market_pb2  # noqa: F401
from trading.wallets.v1 import wallets_pb2  # noqa: F401

log = logging.getLogger(__name__)

# service name -> (full proto service name, settings field, env var)
SERVICES: dict[str, tuple[str, str]] = {
    "market": ("trading.market.v1.MarketService", "MARKET_ADDR"),
    "execution": ("trading.execution.v1.ExecutionService", "EXECUTION_ADDR"),
    "wallets": ("trading.wallets.v1.WalletsService", "WALLETS_ADDR"),
    "backtest": ("trading.backtest.v1.BacktestService", "BACKTEST_ADDR"),
}


@dataclass(frozen=True)
class Method:
    service: str  # "market"
    descriptor: MethodDescriptor
    request_cls: type[Message]
    response_cls: type[Message]

    @property
    def full_name(self) -> str:
        return self.descriptor.full_name

    @property
    def path(self) -> str:
        return f"/{self.descriptor.containing_service.full_name}/{self.descriptor.name}"


def method(service: str, name: str) -> Method:
    full_service, _ = SERVICES[service]
    descriptor = descriptor_pool.Default().FindMethodByName(f"{full_service}.{name}")
    return Method(
        service,
        descriptor,
        message_factory.GetMessageClass(descriptor.input_type),
        message_factory.GetMessageClass(descriptor.output_type),
    )


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


class Upstreams:
    """One channel per configured service, shared by every request and stream; the caller's
    token travels in each call's metadata."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.timeout = settings.gateway_upstream_timeout_seconds

    def address(self, service: str) -> str | None:
        value: str | None = getattr(self._settings, f"{service}_addr")
        return value or None

    def channel(self, service: str) -> grpc.aio.Channel:
        channel = self._channels.get(service)
        if channel is None:
            target = self.address(service)
            if target is None:
                env = SERVICES[service][1]
                raise ApiError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the {service} service is not running ({env} is not set for the gateway)",
                )
            channel = self._channels[service] = create_channel(
                target,
                options=[
                    ("grpc.keepalive_time_ms", 30_000),
                    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ],
            )
        return channel

    def unary(self, m: Method) -> Any:
        return self.channel(m.service).unary_unary(
            m.path,
            request_serializer=m.request_cls.SerializeToString,
            response_deserializer=m.response_cls.FromString,
        )

    def stream(self, m: Method) -> Any:
        return self.channel(m.service).unary_stream(
            m.path,
            request_serializer=m.request_cls.SerializeToString,
            response_deserializer=m.response_cls.FromString,
        )

    async def call(self, m: Method, request: Message, token: str | None) -> Message:
        result: Message = await self.unary(m)(
            request, timeout=self.timeout, metadata=bearer_metadata(token)
        )
        return result

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
