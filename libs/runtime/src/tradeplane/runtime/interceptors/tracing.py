"""Server span per RPC, parented by the W3C trace context the caller sent in its metadata.

Written here rather than taken from opentelemetry-instrumentation-grpc: that package is still
0.x beta, its aio interceptor does not take part in our shared status-code resolution, and
the job is a dozen lines.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tradeplane.runtime.interceptors._base import SERVER_ERROR_CODES, RpcInfo
from tradeplane.runtime.tracing import TRACER_NAME, extract_context


class ServerSpans:
    def __init__(self) -> None:
        # A proxy tracer: follows the global provider even when it is set later.
        self._tracer = trace.get_tracer(TRACER_NAME)

    def start(
        self, info: RpcInfo, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> tuple[trace.Span, object]:
        """Start the call's span and make it current (what `start_as_current_span` does,
        without its two generator context managers); returns it and the context token."""
        span = self._tracer.start_span(
            f"{info.service}/{info.method}",
            context=extract_context(metadata),
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": info.service,
                "rpc.method": info.method,
            },
            record_exception=False,
            set_status_on_exception=False,
        )
        return span, otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def end(span: trace.Span, token: object, code: grpc.StatusCode) -> None:
        try:
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code in SERVER_ERROR_CODES:
                span.set_status(Status(StatusCode.ERROR, code.name))
        finally:
            otel_context.detach(token)  # type: ignore[arg-type]
            span.end()
