"""What the server interceptor shares: the method being called, how a call ended, and the
helpers that run a streaming handler.

grpc.aio server interceptors only see the call *before* the handler runs. To observe the
outcome (status code, message counts, exceptions) the interceptor wraps the behaviour of the
RpcMethodHandler (unary_unary / unary_stream / stream_unary / stream_stream), in the RPC's own
task for the whole call.

Every wrapper is a plain coroutine, never an async generator. grpc drives a streaming
behaviour that is a coroutine function with the reader/writer API: it awaits it in the RPC's
task and cancels that task when the client goes away. The wrapper pulls the servicer's
responses itself, hands each one to `context.write()`, and `aclose()`s the servicer's
generator in a `finally`. So the call's bookkeeping ends, and every generator is closed, in
the RPC's task while the call is still alive. (An async-generator wrapper suspended at
`yield` when grpc cancels is left unclosed by grpc; it is finalised later by the event loop's
asyncgen hooks, in another task and contextvars context, after grpc released the call: its
cleanup then reads the freed call (SIGSEGV in `context.peer()`) and detaches OpenTelemetry
context in the wrong context.)
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

# grpc-ecosystem `grpc_type` label values.
UNARY = "unary"
SERVER_STREAM = "server_stream"
CLIENT_STREAM = "client_stream"
BIDI_STREAM = "bidi_stream"

# What a server span treats as a server-side failure (OpenTelemetry gRPC conventions); the
# per-call log line has these at ERROR.
SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


_DEADLINE_MARGIN_SECONDS = 0.25


@dataclass(frozen=True)
class RpcInfo:
    """What is being called: ``/trading.market.v1.MarketService/ListProducts``."""

    full_method: str
    service: str
    method: str
    grpc_type: str

    @property
    def proto_name(self) -> str:
        """Dotted name as the descriptor pool knows it."""
        return f"{self.service}.{self.method}"

    @classmethod
    def of(cls, full_method: str, handler: grpc.RpcMethodHandler) -> RpcInfo:
        service, _, method = full_method.lstrip("/").rpartition("/")
        if handler.request_streaming and handler.response_streaming:
            grpc_type = BIDI_STREAM
        elif handler.request_streaming:
            grpc_type = CLIENT_STREAM
        elif handler.response_streaming:
            grpc_type = SERVER_STREAM
        else:
            grpc_type = UNARY
        return cls(full_method, service, method, grpc_type)


def status_code_of(context: grpc.aio.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    """The status the call ends with, given how the wrapped handler finished."""
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        # grpc cancels the handler both when the client goes away and when the deadline passes.
        # The server's deadline is the client's, re-based on arrival, so it lags the client's by
        # the transit time: a client-side expiry can reach us as a cancel while a sliver of our
        # deadline remains. Within that margin it is a missed deadline, not a cancel.
        remaining = context.time_remaining()
        if remaining is not None and remaining <= _DEADLINE_MARGIN_SECONDS:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    if exc is not None and not isinstance(exc, grpc.aio.AbortError):
        return grpc.StatusCode.UNKNOWN  # what grpc sends for an escaped exception
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # some grpc versions keep the numeric code
        for candidate in grpc.StatusCode:
            if candidate.value[0] == code:
                return candidate
    return grpc.StatusCode.UNKNOWN if exc is not None else grpc.StatusCode.OK


def code_label(code: grpc.StatusCode) -> str:
    """Go-style code name used by grpc-ecosystem metrics: OK, InvalidArgument, Unauthenticated."""
    if code is grpc.StatusCode.OK:
        return "OK"
    if code is grpc.StatusCode.CANCELLED:
        return "Canceled"
    return "".join(part.capitalize() for part in code.name.split("_"))


class CountingContext:
    """Counts messages of handlers using the read/write API (e.g. Health/Watch); everything
    else is the real servicer context."""

    def __init__(
        self, context: Any, received: Callable[[], None], sent: Callable[[], None]
    ) -> None:
        self._context = context
        self._received = received
        self._sent = sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def read(self) -> Any:
        message = await self._context.read()
        if message is not grpc.aio.EOF:
            self._received()
        return message

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._sent()


async def maybe_await(result: Any) -> Any:
    if inspect.isawaitable(result):
        return await result
    return result


async def write_responses(result: Any, context: Any) -> None:
    """Send what a streaming handler produced, in the RPC's task.

    `result` is a coroutine (the reader/writer API, which includes the wrapper of the next
    interceptor: it wrote its messages itself), an async iterator (an async generator
    servicer) or a plain iterable. An iterator is always closed here, whether the stream
    ended, failed, or the RPC was cancelled while we were writing."""
    if inspect.isawaitable(result):
        await result
        return
    if hasattr(result, "__aiter__"):
        responses = aiter(result)
        try:
            async for response in responses:
                await _write(context, response)
        finally:
            aclose = getattr(responses, "aclose", None)
            if aclose is not None:
                await aclose()
        return
    if result is not None:
        try:
            for response in result:
                await _write(context, response)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


async def _write(context: Any, response: Any) -> None:
    try:
        await context.write(response)
    except (grpc.aio.AbortError, grpc.aio.UsageError):
        raise
    except grpc.aio.BaseError as exc:
        # grpc's own errors for a call that is already over: the write batch failed because
        # the client cancelled or the deadline passed (ExecuteBatchError), or the server
        # stopped. grpc cancels the task for the first two a moment later anyway; end the
        # handler the same way now instead of reporting an application failure.
        raise asyncio.CancelledError(f"call ended while writing: {exc!r}") from exc


class CountingRequests:
    """The request stream, counting each message. A plain async iterator rather than an async
    generator, so nothing is left for the event loop to finalise after the call."""

    def __init__(self, requests: Any, tick: Callable[[], None]) -> None:
        self._requests = requests
        self._iterator: Any = None
        self._tick = tick

    def __aiter__(self) -> CountingRequests:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = aiter(self._requests)
        message = await anext(self._iterator)
        self._tick()
        return message
