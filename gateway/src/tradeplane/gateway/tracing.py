"""A SERVER span per HTTP request and per WebSocket connection, continuing the W3C trace
context (traceparent, tracestate) of the request headers. The span is current while the request
is handled, so the gateway's gRPC calls to the services (runtime.client channels) carry it on.

Written here rather than taken from opentelemetry-instrumentation-asgi: that adds a span per
ASGI message (one per WebSocket frame on a connection living for hours) and we need the
route template as the span name, which only exists after the router ran.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradeplane.runtime.tracing import extract_context

tracer = trace.get_tracer("tradeplane.gateway")


def _route(scope: Scope) -> str | None:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        method = scope["method"] if kind == "http" else "WS"
        status = 0
        close_code = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, close_code
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]  # a response, or a refused WebSocket handshake
            elif message["type"] == "websocket.accept":
                status = 101
            elif message["type"] == "websocket.close":
                close_code = message.get("code", 1000)
            await send(message)

        with tracer.start_as_current_span(
            f"{method} {scope['path']}",
            context=extract_context(headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": scope.get("method", "GET"),
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
            },
        ) as span:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                route = _route(scope)
                if route is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                if status:
                    span.set_attribute("http.response.status_code", status)
                if close_code:
                    span.set_attribute("websocket.close_code", close_code)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
