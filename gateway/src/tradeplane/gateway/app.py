"""The Starlette application: WebSockets, JSON API, health, OpenAPI and the web UI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from tradeplane.gateway import metrics
from tradeplane.gateway.api import api_routes, json_response, openapi_document
from tradeplane.gateway.auth import Authenticator, Caller, token_from
from tradeplane.gateway.connection import Connection
from tradeplane.gateway.hub import Hub
from tradeplane.gateway.settings import GatewaySettings
from tradeplane.gateway.tracing import TracingMiddleware
from tradeplane.gateway.upstreams import Upstreams
from tradeplane.runtime.errors import DomainError
from trading.gateway.v1 import gateway_pb2

log = logging.getLogger("tradeplane.gateway")
access_log = logging.getLogger("tradeplane.gateway.access")

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tradeplane</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>tradeplane gateway</h1>
<p>The web UI is not built on this machine (no <code>gateway/web/dist</code>, and
<code>TRADEPLANE_WEB_DIR</code> is not set). The gateway itself is running:</p>
<ul>
<li><a href="/api/openapi.json">JSON API</a> (<a href="/api/market/products">products</a>)</li>
<li>WebSockets: <code>/ws/market</code>, <code>/ws/live</code></li>
<li><a href="/healthz">health</a></li>
</ul></body></html>
"""


class Gateway:
    """Everything the routes share; built without I/O (channels connect lazily)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.upstreams = Upstreams(settings)
        self.authenticator = Authenticator(settings)
        self.hub = Hub(
            self.upstreams,
            replay_size=settings.gateway_replay_size,
            frame_max_items=settings.gateway_frame_max_items,
            snapshot_candles=settings.gateway_snapshot_candles,
            retry_max_seconds=settings.gateway_upstream_retry_max_seconds,
            batch_seconds=settings.gateway_batch_seconds,
            service_token=(
                settings.gateway_service_token.get_secret_value()
                if settings.gateway_service_token
                else None
            ),
        )
        self.connections: set[Connection] = set()
        self._per_subject: dict[str, int] = {}
        self.ready = False
        self.draining = False
        self.all_closed = asyncio.Event()  # set whenever the last connection ends

    def admit(self, conn: Connection, caller: Caller) -> bool:
        """Count the connection against its caller's limit (authenticated callers only: with
        AUTH_MODE=disabled everyone is the same anonymous caller)."""
        if caller.principal.anonymous or conn.subject is not None:
            return True
        subject = caller.principal.subject
        if self._per_subject.get(subject, 0) >= self.settings.gateway_max_connections_per_caller:
            return False
        self._per_subject[subject] = self._per_subject.get(subject, 0) + 1
        conn.subject = subject
        return True

    def connection_ended(self, conn: Connection) -> None:
        if conn.subject is not None:
            left = self._per_subject.get(conn.subject, 1) - 1
            if left > 0:
                self._per_subject[conn.subject] = left
            else:
                self._per_subject.pop(conn.subject, None)
        self.connections.discard(conn)
        if not self.connections:
            self.all_closed.set()

    async def close_connections(self, code: int, reason: str) -> None:
        """Tell every browser to go away (1001 on shutdown) and wait for the sockets to close."""
        for conn in list(self.connections):
            conn.close(code, reason)
        if self.connections:
            self.all_closed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.shutdown_grace_seconds):
                    await self.all_closed.wait()

    async def aclose(self) -> None:
        await self.hub.close()
        await self.upstreams.close()


async def _ws_endpoint(ws: WebSocket, gw: Gateway, endpoint: str) -> None:
    origin = ws.headers.get("origin")
    if not gw.authenticator.origin_allowed(origin, ws.headers.get("host")):
        log.info("websocket origin refused", extra={"origin": origin, "endpoint": endpoint})
        await ws.send_denial_response(
            json_response(
                orjson.dumps(
                    {
                        "code": "PERMISSION_DENIED",
                        "message": "origin not allowed",
                        "httpStatus": 403,
                    }
                ),
                403,
            )
        )
        return
    if gw.draining:
        await ws.close(gateway_pb2.CLOSE_CODE_GOING_AWAY)
        return
    token = token_from(ws.headers, ws.query_params)
    caller: Caller | None = None
    failure = ""
    if token is not None or gw.authenticator.disabled:
        try:
            caller = gw.authenticator.authenticate(token)
        except DomainError as exc:
            failure = str(exc)
    await ws.accept()
    conn = Connection(ws, endpoint, gw, caller)
    if failure:
        conn.close(gateway_pb2.CLOSE_CODE_UNAUTHENTICATED, failure)
    elif caller is not None and not gw.admit(conn, caller):
        conn.close(gateway_pb2.CLOSE_CODE_TOO_MANY_REQUESTS, "too many connections for this caller")
    gw.connections.add(conn)
    try:
        await conn.run()
    finally:
        gw.connection_ended(conn)


class AccessLogMiddleware:
    """One JSON log line per HTTP request (inside TracingMiddleware's span: it has the ids)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        path = scope["path"]
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - began
            route = _route_template(scope)
            metrics.HTTP_REQUESTS.labels(route, scope["method"], str(status)).inc()
            metrics.HTTP_REQUEST_SECONDS.labels(route, scope["method"]).observe(elapsed)
            if not path.startswith("/healthz"):
                access_log.info(
                    "http request",
                    extra={
                        "method": scope["method"],
                        "path": path,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                    },
                )


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "/api/*" if scope["path"].startswith("/api/") else "static"


def create_app(gw: Gateway) -> Starlette:
    async def healthz(request: Request) -> Response:
        if gw.ready and not gw.draining:
            return json_response(b'{"status":"ok"}')
        return json_response(
            b'{"status":"starting"}' if not gw.ready else b'{"status":"draining"}', 503
        )

    async def openapi(request: Request) -> Response:
        return json_response(orjson.dumps(openapi_document()))

    async def ws_market(ws: WebSocket) -> None:
        await _ws_endpoint(ws, gw, "market")

    async def ws_live(ws: WebSocket) -> None:
        await _ws_endpoint(ws, gw, "live")

    async def placeholder(request: Request) -> Response:
        return HTMLResponse(PLACEHOLDER)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/openapi.json", openapi, methods=["GET"]),
        *api_routes(gw.upstreams, gw.authenticator),
        WebSocketRoute("/ws/market", ws_market),
        WebSocketRoute("/ws/live", ws_live),
    ]
    web_dir = gw.settings.web_dir
    if web_dir is not None and web_dir.is_dir():
        routes.append(Mount("/", app=StaticFiles(directory=web_dir, html=True), name="web"))
    else:
        routes.append(Route("/", placeholder, methods=["GET"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw.ready = True
        log.info("gateway ready", extra={"web_dir": str(web_dir) if web_dir else None})
        try:
            yield
        finally:
            gw.ready = False
            await gw.aclose()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(TracingMiddleware)  # outermost: added last
    return app
