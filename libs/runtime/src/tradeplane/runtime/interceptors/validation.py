"""Rejects requests whose Timestamp or Duration fields are outside what protobuf defines,
before any handler sees them: one check for every method instead of a range check (or an
INTERNAL from a datetime overflow) in each service's mapping code.

Timestamp: seconds within 0001-01-01..9999-12-31, nanos 0..999,999,999. Duration: seconds
within +-315,576,000,000 (10,000 years), nanos within +-999,999,999 with the sign of seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message

from tradeplane.runtime.interceptors._base import _maybe_await, _write_responses

_MIN_TS, _MAX_TS = -62_135_596_800, 253_402_300_799
_MAX_DURATION = 315_576_000_000
_NANOS = 999_999_999


def _timestamp_problem(message: Any) -> str | None:
    if not _MIN_TS <= message.seconds <= _MAX_TS:
        return "must be between 0001-01-01 and 9999-12-31"
    if not 0 <= message.nanos <= _NANOS:
        return "nanos must be between 0 and 999999999"
    return None


def _duration_problem(message: Any) -> str | None:
    seconds, nanos = message.seconds, message.nanos
    if not -_MAX_DURATION <= seconds <= _MAX_DURATION:
        return "must be within 10000 years"
    if not -_NANOS <= nanos <= _NANOS or (seconds and nanos and (seconds < 0) != (nanos < 0)):
        return "nanos must be within 999999999 and have the sign of seconds"
    return None


_CHECKS = {
    "google.protobuf.Timestamp": _timestamp_problem,
    "google.protobuf.Duration": _duration_problem,
}


def invalid_field(message: Message, prefix: str = "") -> str | None:
    """'field.path: problem' for the first out-of-range Timestamp/Duration, else None."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        path = f"{prefix}{field.name}"
        if field.message_type.GetOptions().map_entry:
            has_messages = field.message_type.fields_by_name["value"].message_type is not None
            values = list(value.values()) if has_messages else []
        elif field.is_repeated:
            values = list(value)
        else:
            values = [value]
        for item in values:
            check = _CHECKS.get(item.DESCRIPTOR.full_name)
            problem = check(item) if check else invalid_field(item, f"{path}.")
            if problem is not None:
                return problem if check is None else f"{path}: {problem}"
    return None


class ValidationInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        serializers = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await _reject_invalid(request, context)
                return await _maybe_await(inner(request, context))

            return grpc.unary_unary_rpc_method_handler(unary_unary, **serializers)
        inner_stream = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> None:
            await _reject_invalid(request, context)
            await _write_responses(inner_stream(request, context), context)

        return grpc.unary_stream_rpc_method_handler(unary_stream, **serializers)


async def _reject_invalid(request: Any, context: grpc.aio.ServicerContext) -> None:
    if isinstance(request, Message):
        problem = invalid_field(request)
        if problem is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
