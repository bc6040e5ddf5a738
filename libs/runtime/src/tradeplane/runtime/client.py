"""Channels to other services: W3C trace context and the bearer token ride along on every call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from tradeplane.runtime.auth import current_token
from tradeplane.runtime.tracing import inject_context


class _ContextPropagation:
    """Adds traceparent/tracestate and `authorization` to the outgoing metadata."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata: list[tuple[str, Any]] = list(details.metadata or ())
        inject_context(metadata)
        token = self._token or current_token()  # explicit, else the caller's being served
        if token and not any(key.lower() == "authorization" for key, _ in metadata):
            metadata.append(("authorization", f"Bearer {token}"))
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*metadata),
            details.credentials,
            details.wait_for_ready,
        )


class _UnaryUnary(_ContextPropagation, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_ContextPropagation, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_ContextPropagation, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(details), request_iterator)


class _StreamStream(_ContextPropagation, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(details), request_iterator)


def client_interceptors(token: str | None = None) -> Sequence[grpc.aio.ClientInterceptor]:
    return [_UnaryUnary(token), _UnaryStream(token), _StreamUnary(token), _StreamStream(token)]


def create_channel(
    target: str,
    *,
    token: str | None = None,
    options: Sequence[tuple[str, Any]] | None = None,
) -> grpc.aio.Channel:
    """An insecure (in-cluster / local) channel to `target` ("host:port"). `token` is sent as
    `authorization: Bearer <token>`; without it the token of the RPC being served is forwarded."""
    return grpc.aio.insecure_channel(
        target, options=list(options or ()), interceptors=client_interceptors(token)
    )
