"""Composition root: the API process (`serve`, with an in-process worker in the embedded
default) and the worker process (`worker`: health + metrics, no BacktestService)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from tradeplane.backtest.adapters.market_client import MarketCandleSource
from tradeplane.backtest.adapters.repository import SqlBacktestRepository
from tradeplane.backtest.entrypoints import client_cli
from tradeplane.backtest.entrypoints.grpc_servicer import BacktestServicer
from tradeplane.backtest.entrypoints.settings import BacktestServiceSettings
from tradeplane.backtest.migrations import MIGRATIONS_DIR
from tradeplane.backtest.service_layer import metrics
from tradeplane.backtest.service_layer.results import BacktestResults
from tradeplane.backtest.service_layer.runs import BacktestRuns
from tradeplane.backtest.service_layer.sweeps import BacktestSweeps
from tradeplane.backtest.service_layer.worker import Worker
from tradeplane.runtime.cache import Cache, create_cache
from tradeplane.runtime.cli import service_main
from tradeplane.runtime.config import load_settings
from tradeplane.runtime.db import create_engine, run_migrations
from tradeplane.runtime.server import GrpcService, run_service
from trading.backtest.v1 import backtest_pb2, backtest_pb2_grpc

log = logging.getLogger(__name__)


@dataclass
class BacktestApp:
    """The composed process; tests reach into it (e.g. `app.worker`)."""

    settings: BacktestServiceSettings
    server: GrpcService
    engine: AsyncEngine
    cache: Cache
    candles: MarketCandleSource
    repo: SqlBacktestRepository
    worker: Worker | None
    runs: BacktestRuns | None = None
    results: BacktestResults | None = None
    sweeps: BacktestSweeps | None = None


def _worker(
    settings: BacktestServiceSettings, repo: SqlBacktestRepository, candles: MarketCandleSource
) -> Worker:
    return Worker(
        repo,
        candles,
        concurrency=settings.backtest_worker_concurrency,
        poll_seconds=settings.backtest_poll_seconds,
        progress_seconds=settings.backtest_progress_seconds,
        stale_seconds=settings.backtest_stale_seconds,
        snapshot_every=settings.backtest_snapshot_every,
        market_retries=settings.backtest_market_retries,
    )


def _compose(settings: BacktestServiceSettings, *, api: bool, worker: bool) -> BacktestApp:
    server = GrpcService(settings)
    engine = create_engine(settings.database_url, settings)
    cache = create_cache(settings, name="candles")
    token = settings.backtest_market_token
    candles = MarketCandleSource(
        settings.market_addr,
        cache,
        ttl_seconds=settings.backtest_candle_cache_seconds,
        token=token.get_secret_value() if token is not None else None,
    )
    repo = SqlBacktestRepository(engine)
    app = BacktestApp(
        settings,
        server,
        engine,
        cache,
        candles,
        repo,
        _worker(settings, repo, candles) if worker else None,
    )
    app.runs = BacktestRuns(
        repo,
        candles,
        max_bars=settings.backtest_max_bars,
        on_queued=app.worker.notify if app.worker is not None else None,
    )
    app.sweeps = BacktestSweeps(repo, app.runs, max_runs=settings.backtest_max_sweep_runs)
    if app.worker is not None:
        app.worker.after_run = app.sweeps.continue_search
    if api:
        app.results = BacktestResults(repo, app.runs, settings.backtest_playback_cache_runs)
        servicer = BacktestServicer(app.runs, app.results, app.sweeps, server.shutdown_event)
        server.add_service(
            backtest_pb2.DESCRIPTOR.services_by_name["BacktestService"],
            lambda s: backtest_pb2_grpc.add_BacktestServiceServicer_to_server(servicer, s),
        )

    tasks: list[asyncio.Task[None]] = []

    async def queue_metrics() -> None:
        """backtest_queue_depth and the oldest job's wait, every 5 s (API process only)."""
        while True:
            try:
                depth, oldest = await repo.queue_stats()
                metrics.QUEUE_DEPTH.set(depth)
                metrics.QUEUE_OLDEST_AGE.set(oldest)
            except Exception:
                log.exception("queue metrics failed; retrying later")
            await asyncio.sleep(5.0)

    async def startup() -> None:
        await asyncio.to_thread(run_migrations, settings.database_url, MIGRATIONS_DIR)
        if app.worker is not None:
            app.worker.start()
        if api:
            tasks.append(asyncio.create_task(queue_metrics()))

    async def shutdown() -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if app.worker is not None:
            await app.worker.stop()
        await candles.close()
        await cache.close()
        await engine.dispose()

    server.on_startup(startup)
    server.on_shutdown(shutdown)
    return app


def build(settings: BacktestServiceSettings) -> BacktestApp:
    """The API process; it also works the queue when BACKTEST_EMBEDDED_WORKER is true."""
    return _compose(settings, api=True, worker=settings.backtest_embedded_worker)


def build_worker(settings: BacktestServiceSettings) -> BacktestApp:
    """A worker process: claims queued runs; serves only health, reflection and metrics."""
    return _compose(settings, api=False, worker=True)


async def serve(settings: BacktestServiceSettings) -> None:
    await build(settings).server.run()


async def serve_worker(settings: BacktestServiceSettings) -> None:
    await build_worker(settings).server.run()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m tradeplane.backtest [serve|migrate|worker|run|watch]`. The shared CLI knows
    serve and migrate; `worker` and the client commands are dispatched here first."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print("python -m tradeplane.backtest worker: run a queue worker only (health + metrics)")
        print("python -m tradeplane.backtest [--addr A] run|watch ...: client (see run -h)")
    rest = (
        args[2:]
        if args[:1] == ["--addr"]
        else args[1:]
        if args[:1] and args[0].startswith("--addr=")
        else args
    )
    if rest[:1] and rest[0] in client_cli.COMMANDS:
        client_cli.main(args)
        return
    if args[:1] == ["worker"]:
        settings = load_settings(BacktestServiceSettings)
        run_service(lambda: serve_worker(settings))
        return
    service_main(
        settings_cls=BacktestServiceSettings, serve=serve, migrations_dir=MIGRATIONS_DIR, argv=args
    )
