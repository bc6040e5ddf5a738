"""GrpcService: the grpc.aio server every service runs on.

It wires health checking, reflection, the interceptors, the /metrics endpoint, logging and
tracing, and graceful shutdown. Lifecycle:

    start():  /metrics up -> bind gRPC (health NOT_SERVING) -> startup hooks -> SERVING
    stop():   NOT_SERVING at once -> shutdown_event set (stream handlers return, status OK)
              -> server.stop(grace) drains in-flight calls -> shutdown hooks
    run():    start(); wait for SIGTERM/SIGINT; stop()
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from tradeplane.runtime.auth import TokenVerifier
from tradeplane.runtime.config import ServiceSettings
from tradeplane.runtime.interceptors import RpcInterceptor
from tradeplane.runtime.logging import configure_logging
from tradeplane.runtime.metrics import MetricsHttpServer, serve_metrics
from tradeplane.runtime.tracing import configure_tracing

log = logging.getLogger("tradeplane.runtime.server")

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _WatchEnded(Exception):
    pass


class _EndWatchAfterNotServing:
    """Context proxy for Health/Watch: once shutdown has started and NOT_SERVING has been sent,
    end the stream (status OK) so watchers do not hold the drain open for the whole grace."""

    def __init__(self, context: Any, health: _DrainingHealthServicer) -> None:
        self._context = context
        self._health = health

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def write(self, message: health_pb2.HealthCheckResponse) -> None:
        await self._context.write(message)
        if self._health.draining and message.status == _NOT_SERVING:
            raise _WatchEnded


class _DrainingHealthServicer(HealthServicer):  # type: ignore[misc]
    """grpcio-health-checking's aio servicer whose Watch streams end after shutdown began."""

    @property
    def draining(self) -> bool:
        return bool(self._gracefully_shutting_down)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        try:
            await super().Watch(request, _EndWatchAfterNotServing(context, self))
        except _WatchEnded:
            return


class GrpcService:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.shutdown_event = asyncio.Event()
        self.grpc_port: int = 0
        self.metrics_port: int = 0
        self._services: list[tuple[ServiceDescriptor, Callable[[grpc.aio.Server], None]]] = []
        self._startup: list[Callable[[], Awaitable[None]]] = []
        self._shutdown: list[Callable[[], Awaitable[None]]] = []
        self._health = _DrainingHealthServicer()
        self._server: grpc.aio.Server | None = None
        self._metrics: MetricsHttpServer | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._stopped = False
        self._calls: RpcInterceptor | None = None

    # -- composition -------------------------------------------------------------------------

    def add_service(
        self, service: ServiceDescriptor, register: Callable[[grpc.aio.Server], None]
    ) -> None:
        """`register` adds the servicer to the server, e.g. a generated
        ``add_<Name>Servicer_to_server(servicer, s)``; `service` names it for health/reflection."""
        self._services.append((service, register))

    def on_startup(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run `fn` (in registration order) after binding and before reporting SERVING."""
        self._startup.append(fn)

    def on_shutdown(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run `fn` (in registration order) after the server stopped."""
        self._shutdown.append(fn)

    # -- health ------------------------------------------------------------------------------

    def _health_names(self) -> list[str]:
        return ["", *(descriptor.full_name for descriptor, _ in self._services)]

    async def _set_health(self, serving: bool) -> None:
        status = _SERVING if serving else _NOT_SERVING
        for name in self._health_names():
            await self._health.set(name, status)

    def _apply_soon(self, change: Coroutine[Any, Any, None]) -> None:
        # Applied on the next event-loop turn; kept referenced until done.
        task = asyncio.get_running_loop().create_task(change)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def set_serving(self, serving: bool) -> None:
        """Report every registered service and "" as SERVING or NOT_SERVING (applied on the
        next event-loop turn; must be called from the loop thread)."""
        self._apply_soon(self._set_health(serving))

    def set_health(self, name: str, serving: bool) -> None:
        """Report one extra health name (e.g. a part of the service that can be down while
        the rest serves); ignored once shutdown began (everything is NOT_SERVING then)."""
        if not self._health.draining:
            self._apply_soon(self._health.set(name, _SERVING if serving else _NOT_SERVING))

    # -- lifecycle ---------------------------------------------------------------------------

    def _interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        if self.settings.auth_mode == "disabled":
            verifier = None
            log.warning(
                "AUTH_MODE=disabled: every call is accepted without a token, with all scopes"
            )
        else:
            verifier = TokenVerifier(self.settings)
        self._calls = RpcInterceptor(verifier)
        return [self._calls]

    async def start(self) -> None:
        settings = self.settings
        configure_logging(settings.service_name, settings.log_level)
        configure_tracing(settings.service_name)

        if settings.metrics_port >= 0:
            self._metrics = serve_metrics(settings.grpc_host, settings.metrics_port)
            self.metrics_port = self._metrics.port

        server = grpc.aio.server(
            interceptors=self._interceptors(),
            options=[("grpc.so_reuseport", 0)],  # a second process on the same port must fail
        )
        self._server = server
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        for _, register in self._services:
            register(server)
        reflection.enable_server_reflection(
            [
                *(descriptor.full_name for descriptor, _ in self._services),
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        await self._set_health(False)
        address = f"{_host(settings.grpc_host)}:{settings.grpc_port}"
        self.grpc_port = server.add_insecure_port(address)
        await server.start()
        log.info(
            "listening",
            extra={"grpc_port": self.grpc_port, "metrics_port": self.metrics_port or None},
        )
        for hook in self._startup:
            await hook()
        await self._set_health(True)
        log.info("serving", extra={"services": self._health_names()[1:]})

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace_seconds
        log.info("shutting down", extra={"grace_seconds": grace})
        await self._health.enter_graceful_shutdown()  # NOT_SERVING, and stays so
        self.shutdown_event.set()
        try:
            if self._server is not None:
                await self._server.stop(grace)
                await self._wait_for_handlers(grace)
        finally:
            for hook in self._shutdown:
                try:
                    await hook()
                except Exception:
                    log.exception("shutdown hook failed")
            if self._metrics is not None:
                self._metrics.close()
                self._metrics = None
        log.info("stopped")

    async def _wait_for_handlers(self, grace: float) -> None:
        """server.stop() cancelled the calls still open; let their handlers finish unwinding
        before the shutdown hooks close what they use."""
        calls = self._calls.tasks if self._calls is not None else ()
        pending = {task for task in calls if task is not asyncio.current_task()}
        if not pending:
            return
        _, still_running = await asyncio.wait(pending, timeout=max(grace, 1.0))
        if still_running:
            log.warning("handlers still running at shutdown", extra={"calls": len(still_running)})

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully and return."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_requested.set)
        try:
            await self.start()
            await stop_requested.wait()
            log.info("signal received")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def run_service(main: Callable[[], Awaitable[None]]) -> None:
    """Run `main()` to completion on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(_as_coroutine(main))
        return
    uvloop.run(_as_coroutine(main))


async def _as_coroutine(main: Callable[[], Awaitable[None]]) -> None:
    await main()
