"""GatewayServer: uvicorn (programmatic) serving the app, /metrics on its own port, graceful
shutdown: on SIGTERM /healthz turns 503, every WebSocket gets `closing` + close 1001 (browsers
reconnect elsewhere and resume), then uvicorn stops accepting and drains in-flight requests for
at most SHUTDOWN_GRACE_SECONDS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Generator

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from tradeplane.gateway.app import Gateway, create_app
from tradeplane.gateway.settings import GatewaySettings
from tradeplane.runtime.logging import configure_logging
from tradeplane.runtime.metrics import MetricsHttpServer, serve_metrics
from tradeplane.runtime.tracing import configure_tracing
from trading.gateway.v1 import gateway_pb2

log = logging.getLogger("tradeplane.gateway")


def _ws_protocol(write_buffer: int) -> type[WebSocketsSansIOProtocol]:
    """uvicorn's sans-I/O WebSocket protocol with a smaller write buffer: `send` waits once
    `write_buffer` bytes are pending (asyncio's default is 64 KiB per socket), so a stalled
    browser holds at most that in user space before its bounded frame queue takes over."""

    class Protocol(WebSocketsSansIOProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if write_buffer and isinstance(transport, asyncio.WriteTransport):
                transport.set_write_buffer_limits(high=write_buffer)

    return Protocol


class _UvicornServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # GatewayServer.run handles SIGTERM/SIGINT (close sockets with 1001 first)


def _listen(host: str, port: int, send_buffer: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer:
        # Inherited by accepted sockets (Linux): bounds what a stalled browser can hold.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class GatewayServer:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.gateway = Gateway(settings)
        self.app = create_app(self.gateway)
        self.http_port = 0
        self.metrics_port = 0
        self._server: _UvicornServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._metrics: MetricsHttpServer | None = None
        self._stopped = False

    async def start(self) -> None:
        settings = self.settings
        configure_logging(settings.service_name, settings.log_level)
        configure_tracing(settings.service_name)
        if settings.auth_mode == "disabled":
            log.warning("AUTH_MODE=disabled: every request is accepted without a token")
        if settings.metrics_port >= 0:
            self._metrics = serve_metrics(settings.grpc_host, settings.metrics_port)
            self.metrics_port = self._metrics.port
        sock = _listen(settings.grpc_host, settings.http_port, settings.gateway_socket_send_buffer)
        self.http_port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="on",
            ws=_ws_protocol(settings.gateway_socket_send_buffer),
            http="httptools",
            timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
            server_header=False,
            # No permessage-deflate: it would compress every shared frame again per client.
            ws_per_message_deflate=False,
        )
        self._server = _UvicornServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="uvicorn")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises the start-up error
                raise RuntimeError("the HTTP server stopped during start-up")
            await asyncio.sleep(0.01)
        log.info(
            "listening",
            extra={"http_port": self.http_port, "metrics_port": self.metrics_port or None},
        )

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        log.info("shutting down", extra={"grace_seconds": self.settings.shutdown_grace_seconds})
        self.gateway.draining = True
        await self.gateway.close_connections(
            gateway_pb2.CLOSE_CODE_GOING_AWAY, "gateway shutting down; reconnect and resume"
        )
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await self._task
            except Exception:
                log.exception("HTTP server failed while stopping")
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        log.info("stopped")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_requested.set)
        try:
            await self.start()
            assert self._task is not None
            await asyncio.wait(
                [asyncio.ensure_future(stop_requested.wait()), self._task],
                return_when=asyncio.FIRST_COMPLETED,
            )
            if stop_requested.is_set():
                log.info("signal received")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()


async def serve(settings: GatewaySettings) -> None:
    await GatewayServer(settings).run()
