"""Channels to other services: a CLIENT span per call, whose W3C trace context rides along
with the bearer token on every call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tradeplane.runtime.auth import current_token
from tradeplane.runtime.tracing import TRACER_NAME, extract_context, inject_context

_tracer = trace.get_tracer(TRACER_NAME)
_W3C_KEYS = frozenset({"traceparent", "tracestate"})
_ending: set[asyncio.Task[None]] = set()  # strong references until the spans are ended


async def _end_span(span: trace.Span, call: grpc.aio.Call) -> None:
    try:
        code = await call.code()
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK:  # for a client every failed call is an error
            span.set_status(Status(StatusCode.ERROR, code.name))
    finally:
        span.end()


def _on_done(span: trace.Span, call: grpc.aio.Call) -> None:
    # Done callbacks are synchronous; the status is read with a coroutine (already resolved).
    try:
        task = asyncio.get_running_loop().create_task(_end_span(span, call))
    except RuntimeError:  # the loop is gone (interpreter shutdown): end it without a status
        span.end()
        return
    _ending.add(task)
    task.add_done_callback(_ending.discard)


class _ContextPropagation:
    """Starts the call's CLIENT span (ended when the call is done, whatever its kind) and adds
    its traceparent/tracestate and `authorization` to the outgoing metadata."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    def _start_span(self, details: grpc.aio.ClientCallDetails) -> trace.Span:
        method = details.method
        path = (method.decode() if isinstance(method, bytes) else str(method)).lstrip("/")
        service, _, name = path.partition("/")
        metadata = list(details.metadata or ())
        # A traceparent the caller put in the metadata itself names the parent.
        given = any(key.lower() == "traceparent" for key, _ in metadata)
        return _tracer.start_span(
            path,
            context=extract_context(metadata) if given else None,
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        )

    async def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        span = self._start_span(details)
        try:
            call = await continuation(self._details(details, span), request)
        except BaseException:
            span.end()
            raise
        call.add_done_callback(lambda done: _on_done(span, done))
        return call

    def _details(
        self, details: grpc.aio.ClientCallDetails, span: trace.Span
    ) -> grpc.aio.ClientCallDetails:
        metadata: list[tuple[str, Any]] = [
            (key, value)
            for key, value in details.metadata or ()
            if key.lower() not in _W3C_KEYS  # replaced by the client span's
        ]
        inject_context(metadata, trace.set_span_in_context(span))
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
        return await self._intercept(continuation, details, request)


class _UnaryStream(_ContextPropagation, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._intercept(continuation, details, request)


class _StreamUnary(_ContextPropagation, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await self._intercept(continuation, details, request_iterator)


class _StreamStream(_ContextPropagation, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await self._intercept(continuation, details, request_iterator)


def client_interceptors(token: str | None = None) -> Sequence[grpc.aio.ClientInterceptor]:
    return [_UnaryUnary(token), _UnaryStream(token), _StreamUnary(token), _StreamStream(token)]


# gRPC's default reconnect backoff grows to 120 s: a peer that started (or restarted) after us
# would be answered UNAVAILABLE for up to two minutes. Peers in the cluster come and go in any
# order, so retry a refused connection within 2 s at most.
RECONNECT_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def create_channel(
    target: str,
    *,
    token: str | None = None,
    options: Sequence[tuple[str, Any]] | None = None,
) -> grpc.aio.Channel:
    """An insecure (in-cluster / local) channel to `target` ("host:port"). `token` is sent as
    `authorization: Bearer <token>`; without it the token of the RPC being served is forwarded.
    `options` add to (or override) RECONNECT_OPTIONS."""
    merged = dict(RECONNECT_OPTIONS)
    merged.update(dict(options or ()))
    return grpc.aio.insecure_channel(
        target, options=list(merged.items()), interceptors=client_interceptors(token)
    )
