"""The one server interceptor: every call goes through these stages, outermost first:

    call tracking -> tracing -> logging -> metrics -> auth -> errors -> validation -> handler

(call tracking: GrpcService.stop() waits for the handlers still running; tracing: a server
span continuing the caller's traceparent; logging: one line per call; metrics: the
grpc-ecosystem counters; auth: the bearer token and the method's scope; errors: domain errors
to status codes; validation: out-of-range Timestamp/Duration fields are INVALID_ARGUMENT.)

One interceptor rather than one per stage: grpc.aio runs every interceptor's
`intercept_service` and every wrapper coroutine it adds on each call, and that fixed cost was
most of a unary call's CPU. What depends only on the method (its labels, metric children, the
wrapped handler itself) is built on its first call and reused.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
import grpc.aio
from opentelemetry import trace

from tradeplane.runtime.auth import PUBLIC_SERVICES, TokenVerifier
from tradeplane.runtime.interceptors._base import (
    CountingContext,
    CountingRequests,
    RpcInfo,
    maybe_await,
    status_code_of,
    write_responses,
)
from tradeplane.runtime.interceptors.auth import Authenticator
from tradeplane.runtime.interceptors.errors import abort_for
from tradeplane.runtime.interceptors.logging import log_rpc
from tradeplane.runtime.interceptors.metrics import MethodMetrics
from tradeplane.runtime.interceptors.tracing import ServerSpans
from tradeplane.runtime.interceptors.validation import problem_in

Metadata = Iterable[tuple[str, str | bytes]] | None


class _Method:
    """What is the same for every call of one method."""

    __slots__ = ("info", "metrics", "public")

    def __init__(self, info: RpcInfo) -> None:
        self.info = info
        self.public = info.service in PUBLIC_SERVICES
        self.metrics = MethodMetrics(info)


class _Call:
    """One call's bookkeeping: `begin` before auth, `end` in the call's `finally`."""

    __slots__ = ("method", "peer", "span", "started", "task", "token")
    task: asyncio.Task[Any] | None
    span: trace.Span
    token: object
    started: float
    peer: str

    def __init__(self, method: _Method) -> None:
        self.method = method


class RpcInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """`verifier=None` means AUTH_MODE=disabled. `tasks` holds the task of every call in
    flight (grpc's server.stop() cancels the calls still open but does not wait for their
    handlers)."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self._auth = Authenticator(verifier)
        self._spans = ServerSpans()
        # method path -> (the handler grpc resolved, our wrapper of it)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED itself
        path = handler_call_details.method
        cached = self._wrapped.get(path)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, _Method(RpcInfo.of(path, handler)))
        self._wrapped[path] = (handler, wrapped)
        return wrapped

    # -- the stages around a call ------------------------------------------------------------

    def _begin(
        self, method: _Method, context: grpc.aio.ServicerContext, metadata: Metadata
    ) -> _Call:
        call = _Call(method)
        call.task = asyncio.current_task()
        if call.task is not None:  # grpc always runs a call in a task
            self.tasks.add(call.task)
        try:
            call.span, call.token = self._spans.start(method.info, metadata)
        except BaseException:
            self._untrack(call)
            raise
        try:
            call.started = time.perf_counter()
            call.peer = context.peer()
            method.metrics.started()
        except BaseException:
            try:
                ServerSpans.end(call.span, call.token, grpc.StatusCode.UNKNOWN)
            finally:
                self._untrack(call)
            raise
        return call

    def _end(
        self, call: _Call, context: grpc.aio.ServicerContext, failure: BaseException | None
    ) -> None:
        method = call.method
        try:
            code = status_code_of(context, failure)
            try:
                try:
                    method.metrics.handled(code, time.perf_counter() - call.started)
                finally:
                    log_rpc(method.info, method.public, code, call.started, call.peer)
            finally:
                ServerSpans.end(call.span, call.token, code)
        finally:
            self._untrack(call)

    def _untrack(self, call: _Call) -> None:
        if call.task is not None:
            self.tasks.discard(call.task)

    async def _authenticate(
        self, method: _Method, metadata: Metadata, context: grpc.aio.ServicerContext
    ) -> None:
        if not method.public:
            await self._auth.authenticate(method.info, metadata, context)

    # -- the four kinds of handler -----------------------------------------------------------

    def _wrap(self, handler: grpc.RpcMethodHandler, method: _Method) -> grpc.RpcMethodHandler:
        serializers = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        info, counts = method.info, method.metrics
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                metadata = context.invocation_metadata()
                call = self._begin(method, context, metadata)
                failure: BaseException | None = None
                try:
                    counts.received()
                    if not method.public:
                        await self._auth.authenticate(info, metadata, context)
                    try:
                        problem = problem_in(request)
                        if problem is not None:
                            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
                        response = inner_uu(request, context)
                        if inspect.isawaitable(response):
                            response = await response
                    except grpc.aio.AbortError:
                        raise  # the handler (or validation) chose its status itself
                    except Exception as exc:
                        await abort_for(exc, info, context)
                    counts.sent()
                    return response
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    self._end(call, context, failure)

            return grpc.unary_unary_rpc_method_handler(unary_unary, **serializers)

        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> None:
                inner_context = CountingContext(context, counts.received, counts.sent)
                metadata = context.invocation_metadata()
                call = self._begin(method, context, metadata)
                failure: BaseException | None = None
                try:
                    counts.received()
                    await self._authenticate(method, metadata, inner_context)
                    try:
                        problem = problem_in(request)
                        if problem is not None:
                            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
                        await write_responses(inner_us(request, inner_context), inner_context)
                    except grpc.aio.AbortError:
                        raise
                    except Exception as exc:
                        await abort_for(exc, info, inner_context)
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    self._end(call, context, failure)

            return grpc.unary_stream_rpc_method_handler(unary_stream, **serializers)

        if handler.stream_unary is not None:
            inner_su = handler.stream_unary

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                inner_context = CountingContext(context, counts.received, counts.sent)
                metadata = context.invocation_metadata()
                call = self._begin(method, context, metadata)
                failure: BaseException | None = None
                try:
                    await self._authenticate(method, metadata, inner_context)
                    try:
                        response = await maybe_await(
                            inner_su(CountingRequests(requests, counts.received), inner_context)
                        )
                    except grpc.aio.AbortError:
                        raise
                    except Exception as exc:
                        await abort_for(exc, info, inner_context)
                    counts.sent()
                    return response
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    self._end(call, context, failure)

            return grpc.stream_unary_rpc_method_handler(stream_unary, **serializers)

        inner_ss = handler.stream_stream

        async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> None:
            inner_context = CountingContext(context, counts.received, counts.sent)
            metadata = context.invocation_metadata()
            call = self._begin(method, context, metadata)
            failure: BaseException | None = None
            try:
                await self._authenticate(method, metadata, inner_context)
                try:
                    await write_responses(
                        inner_ss(CountingRequests(requests, counts.received), inner_context),
                        inner_context,
                    )
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await abort_for(exc, info, inner_context)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                self._end(call, context, failure)

        return grpc.stream_stream_rpc_method_handler(stream_stream, **serializers)
