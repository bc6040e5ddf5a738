"""Composition root: builds the execution service from ExecutionSettings (no I/O until start).

Start-up: migrations -> default account -> market data client (background; health is
SERVING only while market data flows, orders get UNAVAILABLE meanwhile) -> venue -> recovery
of working orders (acknowledged ones handed back to the venue, unacknowledged intents sent
again, idempotently).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from tradeplane.execution.adapters.market_data import GrpcMarketData
from tradeplane.execution.adapters.sql_store import SqlStore
from tradeplane.execution.adapters.venues.paper.config import PaperConfig
from tradeplane.execution.adapters.venues.paper.venue import PaperVenue
from tradeplane.execution.entrypoints.grpc_servicer import ExecutionServicer
from tradeplane.execution.entrypoints.mapping import encode_event
from tradeplane.execution.entrypoints.settings import ExecutionSettings
from tradeplane.execution.migrations import MIGRATIONS_DIR
from tradeplane.execution.service_layer import metrics
from tradeplane.execution.service_layer.commands import (
    AccountDefaults,
    ExecutionCommands,
    utcnow,
)
from tradeplane.execution.service_layer.event_signal import EventSignal
from tradeplane.execution.service_layer.event_stream import EventStream
from tradeplane.execution.service_layer.queries import ExecutionQueries
from tradeplane.runtime.cli import service_main
from tradeplane.runtime.db import create_engine, run_migrations
from tradeplane.runtime.server import GrpcService
from trading.execution.v1 import execution_pb2, execution_pb2_grpc

log = logging.getLogger(__name__)


@dataclass
class ExecutionApp:
    """The composed service; tests reach into it (e.g. ``app.venue``, ``app.market``)."""

    settings: ExecutionSettings
    server: GrpcService
    engine: AsyncEngine
    store: SqlStore
    market: GrpcMarketData
    venue: PaperVenue
    commands: ExecutionCommands
    queries: ExecutionQueries
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)


def build(settings: ExecutionSettings) -> ExecutionApp:
    server = GrpcService(settings)
    engine = create_engine(settings.database_url, settings)
    signal = EventSignal()
    store = SqlStore(engine, encode_event, signal)
    token = settings.execution_market_token
    market = GrpcMarketData(
        settings.market_addr, token=token.get_secret_value() if token is not None else None
    )
    venue = PaperVenue(
        market,
        PaperConfig(
            maker_fee_bps=settings.execution_paper_maker_fee_bps,
            taker_fee_bps=settings.execution_paper_taker_fee_bps,
            slippage_bps=settings.execution_paper_slippage_bps,
        ),
    )
    defaults = AccountDefaults(
        default_account_id=settings.execution_default_account,
        valuation_currency=settings.execution_valuation_currency,
        starting_cash=settings.execution_paper_starting_cash,
    )
    commands = ExecutionCommands(store, venue, market, defaults, rates=market.rates)
    venue.bind(commands)
    queries = ExecutionQueries(
        store, market, settings.execution_default_account, rates=market.rates
    )
    stream = EventStream(store, signal, poll_seconds=settings.execution_event_poll_seconds)
    servicer = ExecutionServicer(commands, queries, stream, server.shutdown_event)
    server.add_service(
        execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"],
        lambda s: execution_pb2_grpc.add_ExecutionServiceServicer_to_server(servicer, s),
    )
    app = ExecutionApp(settings, server, engine, store, market, venue, commands, queries)

    metrics.MARKET_DATA_UP.set_function(lambda: float(market.ready))

    async def health_follows_market() -> None:
        """SERVING only while market data flows (checked each second)."""
        reported = True
        while True:
            await asyncio.sleep(1.0)
            if market.ready != reported and not server.shutdown_event.is_set():
                reported = market.ready
                server.set_serving(reported)
                log.warning("market data %s", "connected" if reported else "lost")

    async def prune_outbox() -> None:
        """Retention of the event outbox: once at start, then hourly."""
        days = settings.execution_event_retention_days
        while days > 0:
            try:
                deleted = await store.prune_events(utcnow() - timedelta(days=days))
                if deleted:
                    log.info("outbox pruned", extra={"events": deleted, "days": days})
            except Exception:
                log.exception("outbox pruning failed; retrying later")
            await asyncio.sleep(3600)

    async def startup() -> None:
        await asyncio.to_thread(run_migrations, settings.database_url, MIGRATIONS_DIR)
        await store.start()  # the outbox sequencer (Postgres)
        await commands.ensure_default_account()
        await market.start()
        await venue.start()
        if not await market.wait_ready(settings.execution_market_wait_seconds):
            log.warning("market data not available yet; retrying in the background")
        resumed, resent = await commands.recover()
        log.info("execution ready", extra={"resumed_orders": resumed, "resent_orders": resent})
        app._tasks.append(asyncio.create_task(health_follows_market()))
        app._tasks.append(asyncio.create_task(prune_outbox()))

    async def shutdown() -> None:
        for task in app._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await venue.stop()
        await market.stop()
        await store.stop()
        await engine.dispose()

    server.on_startup(startup)
    server.on_shutdown(shutdown)
    return app


async def serve(settings: ExecutionSettings) -> None:
    await build(settings).server.run()


def main() -> None:
    """`python -m tradeplane.execution [serve|migrate]`."""
    service_main(settings_cls=ExecutionSettings, serve=serve, migrations_dir=MIGRATIONS_DIR)
