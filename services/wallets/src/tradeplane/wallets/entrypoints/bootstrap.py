"""Composition root: builds the wallets service from WalletsSettings (no I/O until start)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from tradeplane.runtime.cache import Cache, create_cache
from tradeplane.runtime.cli import service_main
from tradeplane.runtime.db import create_engine, run_migrations
from tradeplane.runtime.errors import AlreadyExists
from tradeplane.runtime.server import GrpcService
from tradeplane.wallets.adapters.chain import (
    EvmToken,
    EvmVenueBalances,
    JsonRpcClient,
    SolanaVenueBalances,
)
from tradeplane.wallets.adapters.coinbase_accounts import (
    CoinbaseAccountsClient,
    CoinbaseVenueBalances,
    Signer,
)
from tradeplane.wallets.adapters.execution_events import ExecutionFillSource
from tradeplane.wallets.adapters.ledger_repository import SqlLedgerStore
from tradeplane.wallets.adapters.paper_venue import PaperVenueBalances
from tradeplane.wallets.adapters.reconciliation_repository import SqlReconciliationStore
from tradeplane.wallets.adapters.venue_cache import VenueCache
from tradeplane.wallets.domain.currencies import default_catalog
from tradeplane.wallets.domain.wallets import Venue, Wallet, WalletKind
from tradeplane.wallets.entrypoints.grpc_servicer import WalletsServicer
from tradeplane.wallets.entrypoints.settings import WalletsSettings
from tradeplane.wallets.migrations import MIGRATIONS_DIR
from tradeplane.wallets.service_layer import metrics
from tradeplane.wallets.service_layer.fill_consumer import FillConsumer, FillSource
from tradeplane.wallets.service_layer.ledger import (
    Clock,
    WalletsLedger,
    initial_deposit_request,
    utc_now,
)
from tradeplane.wallets.service_layer.ports import VenueBalances
from tradeplane.wallets.service_layer.reconciliation import Reconciler
from trading.wallets.v1 import wallets_pb2, wallets_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_COINBASE_REST_URL = "https://api.coinbase.com"


@dataclass
class WalletsApp:
    """The composed service; tests reach into it (e.g. `app.consumer`, `app.engine`)."""

    settings: WalletsSettings
    server: GrpcService
    engine: AsyncEngine
    ledger: WalletsLedger
    reconciler: Reconciler
    consumer: FillConsumer | None
    venue_cache: Cache | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start_consumer(self) -> None:
        if self.consumer is not None:
            self.tasks.append(asyncio.create_task(self.consumer.run(), name="fill-consumer"))

    async def stop_tasks(self) -> None:
        """Cancel the background tasks and wait until they have ended. (asyncio.wait, not
        `await task` under suppress(CancelledError): that would also swallow a cancellation
        of the caller itself.)"""
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                log.error(
                    "background task failed",
                    exc_info=task.exception(),
                    extra={"task": task.get_name()},
                )


def coinbase_signer(settings: WalletsSettings) -> Signer | None:
    key, secret = settings.coinbase_api_key, settings.coinbase_api_secret
    if key is None or secret is None:
        return None
    from tradeplane.coinbase.jwt import rest_jwt

    return lambda method, url: rest_jwt(key, secret, method, url)


def external_venues(settings: WalletsSettings, cache: Cache) -> list[VenueBalances]:
    """Coinbase when a key or URL is configured; each chain when its node is set."""
    stale_ttl = settings.wallets_venue_stale_ttl_seconds
    venues: list[VenueBalances] = []
    if settings.coinbase_api_key is not None or settings.wallets_coinbase_rest_url:
        client = CoinbaseAccountsClient(
            settings.wallets_coinbase_rest_url or DEFAULT_COINBASE_REST_URL,
            signer=coinbase_signer(settings),
            page_limit=settings.wallets_coinbase_page_limit,
            timeout_seconds=settings.wallets_coinbase_timeout_seconds,
        )
        venues.append(
            CoinbaseVenueBalances(
                client,
                VenueCache(cache, "coinbase", stale_ttl_seconds=stale_ttl),
                ttl_seconds=settings.wallets_coinbase_accounts_ttl_seconds,
            )
        )
    chain_ttl = settings.wallets_chain_ttl_seconds
    if settings.wallets_solana_rpc_url:
        venues.append(
            SolanaVenueBalances(
                JsonRpcClient(settings.wallets_solana_rpc_url),
                VenueCache(cache, "solana", stale_ttl_seconds=stale_ttl),
                ttl_seconds=chain_ttl,
                tokens=settings.solana_tokens,
            )
        )
    if settings.wallets_evm_rpc_url:
        venues.append(
            EvmVenueBalances(
                JsonRpcClient(settings.wallets_evm_rpc_url),
                VenueCache(cache, "evm", stale_ttl_seconds=stale_ttl),
                ttl_seconds=chain_ttl,
                tokens=[EvmToken(*t) for t in settings.evm_tokens],
                native_currency=settings.wallets_evm_native_currency.upper(),
            )
        )
    return venues


def build(
    settings: WalletsSettings,
    *,
    venues: Sequence[VenueBalances] | None = None,
    fill_source: FillSource | None = None,
    clock: Clock = utc_now,
) -> WalletsApp:
    """`venues` and `fill_source` replace the configured ones (tests)."""
    server = GrpcService(settings)
    engine = create_engine(settings.database_url, settings)
    store = SqlLedgerStore(engine)
    catalog = default_catalog()
    ledger = WalletsLedger(store, catalog, clock=clock)
    tolerances = {**catalog.tolerances(), **settings.tolerance_overrides}
    venue_cache: Cache | None = None
    if venues is None:
        venue_cache = create_cache(settings, name="venues")
        venues = [PaperVenueBalances(ledger, clock), *external_venues(settings, venue_cache)]
    reconciler = Reconciler(
        ledger,
        SqlReconciliationStore(engine),
        venues,
        tolerances=tolerances,
        default_tolerance=settings.wallets_reconcile_default_tolerance,
        clock=clock,
        poll_seconds=settings.wallets_stream_poll_seconds,
        max_concurrent=settings.wallets_reconcile_concurrency,
    )
    if fill_source is None and settings.execution_addr:
        token = settings.wallets_execution_token
        fill_source = ExecutionFillSource(
            settings.execution_addr, token=token.get_secret_value() if token else None
        )
    consumer = None
    if fill_source is not None:
        consumer = FillConsumer(
            ledger,
            fill_source,
            backoff_initial=settings.wallets_fill_backoff_initial_seconds,
            backoff_max=settings.wallets_fill_backoff_max_seconds,
        )
    metrics.FILL_CONSUMER_CONNECTED.set(0)
    servicer = WalletsServicer(ledger, reconciler, server.shutdown_event, clock)
    server.add_service(
        wallets_pb2.DESCRIPTOR.services_by_name["WalletsService"],
        lambda s: wallets_pb2_grpc.add_WalletsServiceServicer_to_server(servicer, s),
    )
    app = WalletsApp(settings, server, engine, ledger, reconciler, consumer, venue_cache)

    async def startup() -> None:
        await asyncio.to_thread(run_migrations, settings.database_url, MIGRATIONS_DIR)
        if settings.wallets_default_wallet:
            await provision_default_wallet(ledger, settings, clock)
        if consumer is None:
            log.info("EXECUTION_ADDR not set: fills are not consumed")
        app.start_consumer()
        if settings.wallets_reconcile_interval_seconds > 0:
            app.tasks.append(
                asyncio.create_task(
                    reconciler.run_schedule(settings.wallets_reconcile_interval_seconds),
                    name="reconcile-schedule",
                )
            )

    async def shutdown() -> None:
        # The runtime has already waited for the handlers of cancelled calls to return, so
        # none reads from the engine after it is disposed.
        await app.stop_tasks()
        for venue in venues:
            close = getattr(venue, "aclose", None)
            if close is not None:
                await close()
        if venue_cache is not None:
            await venue_cache.close()
        await engine.dispose()

    server.on_startup(startup)
    server.on_shutdown(shutdown)
    return app


async def provision_default_wallet(
    ledger: WalletsLedger, settings: WalletsSettings, clock: Clock
) -> None:
    """The default paper wallet and its initial deposits; a restart changes nothing."""
    wallet = Wallet(
        wallet_id=settings.wallets_default_wallet_id,
        display_name=settings.wallets_default_wallet_name,
        kind=WalletKind.VENUE_ACCOUNT,
        venue=Venue.PAPER,
        account_id=settings.wallets_default_account_id,
        create_time=clock(),
    )
    try:
        wallet = await ledger.ensure_wallet(wallet)
    except AlreadyExists:
        log.warning(
            "another wallet already holds the default paper account; not creating it",
            extra={"account_id": settings.wallets_default_account_id},
        )
        return
    for currency, amount in settings.initial_deposits.items():
        try:
            await ledger.record_transfer(
                initial_deposit_request(wallet.wallet_id, currency, amount)
            )
        except AlreadyExists:
            log.warning(
                "initial deposit already made with another amount; keeping the original",
                extra={"wallet_id": wallet.wallet_id, "currency": currency},
            )


async def serve(settings: WalletsSettings) -> None:
    await build(settings).server.run()


def main() -> None:
    """`python -m tradeplane.wallets [serve|migrate]`."""
    service_main(settings_cls=WalletsSettings, serve=serve, migrations_dir=MIGRATIONS_DIR)
