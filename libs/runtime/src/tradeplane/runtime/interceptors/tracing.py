"""Server span per RPC, parented by the W3C trace context the caller sent in its metadata.

Written here rather than taken from opentelemetry-instrumentation-grpc: that package is still
0.x beta, its aio interceptor neither takes part in our shared status-code resolution nor
composes with our other wrapping interceptors, and the job is a dozen lines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import grpc.aio
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tradeplane.runtime.interceptors._base import (
    SERVER_ERROR_CODES,
    RpcInfo,
    WrappingInterceptor,
    status_code_of,
)
from tradeplane.runtime.tracing import TRACER_NAME, extract_context


class TracingInterceptor(WrappingInterceptor):
    def __init__(self) -> None:
        # A proxy tracer: follows the global provider even when it is set later.
        self._tracer = trace.get_tracer(TRACER_NAME)

    @asynccontextmanager
    async def around(self, info: RpcInfo, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        parent = extract_context(context.invocation_metadata())
        with self._tracer.start_as_current_span(
            f"{info.service}/{info.method}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": info.service,
                "rpc.method": info.method,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            failure: BaseException | None = None
            try:
                yield
            except BaseException as exc:
                failure = exc
                raise
            finally:
                code = status_code_of(context, failure)
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if code in SERVER_ERROR_CODES:
                    span.set_status(Status(StatusCode.ERROR, code.name))
