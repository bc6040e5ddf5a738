"""Composition root: builds the market service from MarketSettings (no I/O until start)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from tradeplane.market.adapters.candle_repository import SqlCandleRepository
from tradeplane.market.adapters.replay_feed import ReplayFeed
from tradeplane.market.adapters.simulated_feed import SimulatedFeed
from tradeplane.market.adapters.venues.coinbase.config import CoinbaseConfig
from tradeplane.market.adapters.venues.coinbase.http import CoinbaseRestClient
from tradeplane.market.adapters.venues.coinbase.refill import GapRefiller
from tradeplane.market.adapters.venues.coinbase.websocket import CoinbaseFeed
from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.hub import StreamHub
from tradeplane.market.domain.order_book import BookChange, LiveBook
from tradeplane.market.domain.products import catalog_products
from tradeplane.market.domain.simulation import SimulatedMarket
from tradeplane.market.domain.ticks import Tick
from tradeplane.market.entrypoints.grpc_servicer import MarketServicer, add_to_server
from tradeplane.market.entrypoints.settings import MarketSettings
from tradeplane.market.migrations import MIGRATIONS_DIR
from tradeplane.market.service_layer import metrics
from tradeplane.market.service_layer.backfill import backfill
from tradeplane.market.service_layer.feed_runner import FeedRunner
from tradeplane.market.service_layer.ports import TickFeed
from tradeplane.market.service_layer.queries import MarketQueries
from tradeplane.market.service_layer.streams import MarketStreams
from tradeplane.runtime.cache import Cache, create_cache
from tradeplane.runtime.cli import service_main
from tradeplane.runtime.db import create_engine, run_migrations
from tradeplane.runtime.server import GrpcService
from trading.market.v1 import market_pb2

log = logging.getLogger(__name__)


@dataclass
class MarketApp:
    """The composed service; tests reach into it (e.g. `app.runner`, `app.tick_hub`)."""

    settings: MarketSettings
    server: GrpcService
    engine: AsyncEngine
    cache: Cache
    feed: TickFeed
    tick_hub: StreamHub[Tick]
    candle_hub: StreamHub[Candle]
    runner: FeedRunner
    queries: MarketQueries
    streams: MarketStreams
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)


def build(settings: MarketSettings) -> MarketApp:
    products = catalog_products(settings.product_ids)
    server = GrpcService(settings)
    engine = create_engine(settings.database_url, settings)
    repo = SqlCandleRepository(engine)
    cache = create_cache(settings, name="indicators")
    simulated: SimulatedFeed | None = None
    rest: CoinbaseRestClient | None = None
    feed: TickFeed
    if settings.market_feed == "coinbase":
        feed, rest = _coinbase_feed(settings, repo)
    elif settings.market_feed == "replay":
        feed = ReplayFeed(
            settings.replay_paths,
            settings.product_ids,
            speed=settings.market_replay_speed,
            fmt=settings.market_replay_format,
            data=settings.market_replay_data,
            bar_seconds=settings.market_replay_bar_seconds,
        )
    else:
        market = SimulatedMarket(
            products, seed=settings.market_seed, tick_rate=settings.market_tick_rate
        )
        feed = simulated = SimulatedFeed(market)
    tick_hub: StreamHub[Tick] = StreamHub(
        "ticks",
        replay_size=settings.market_tick_replay_size,
        queue_size=settings.market_tick_queue_size,
        on_drop=lambda reason: metrics.SUBSCRIBERS_DROPPED.labels("ticks", reason).inc(),
    )
    candle_hub: StreamHub[Candle] = StreamHub(
        "candles",
        replay_size=settings.market_candle_replay_size,
        queue_size=settings.market_candle_queue_size,
        on_drop=lambda reason: metrics.SUBSCRIBERS_DROPPED.labels("candles", reason).inc(),
    )
    book_hub: StreamHub[BookChange] | None = None
    live_books = None
    if isinstance(feed, CoinbaseFeed) and "level2" in settings.coinbase_channels:
        hub = book_hub = StreamHub(
            "books",
            replay_size=1,
            queue_size=settings.market_book_queue_size,
            on_drop=lambda reason: metrics.SUBSCRIBERS_DROPPED.labels("books", reason).inc(),
        )
        live_books = feed.books

        def publish_book(book: LiveBook, replaced: bool) -> None:
            change = BookChange(book.product_id, replaced, book.time or feed.now())
            book.seq = hub.publish(book.product_id, change).seq

        feed.on_book = publish_book
        metrics.STREAM_SUBSCRIBERS.labels("books").set_function(lambda: hub.subscriber_count)
    metrics.STREAM_SUBSCRIBERS.labels("ticks").set_function(lambda: tick_hub.subscriber_count)
    metrics.STREAM_SUBSCRIBERS.labels("candles").set_function(lambda: candle_hub.subscriber_count)
    runner = FeedRunner(
        feed,
        products,
        tick_hub,
        candle_hub,
        repo,
        flush_seconds=settings.market_candle_flush_seconds,
    )
    queries = MarketQueries(products, repo, cache, last_tick=tick_hub.last, live_books=live_books)
    streams = MarketStreams(queries, tick_hub, candle_hub, book_hub)
    servicer = MarketServicer(
        queries,
        streams,
        server.shutdown_event,
        batch_max=settings.market_stream_batch_max,
        flush_seconds=settings.market_stream_flush_seconds,
    )
    server.add_service(
        market_pb2.DESCRIPTOR.services_by_name["MarketService"],
        lambda s: add_to_server(servicer, s),
    )
    app = MarketApp(
        settings, server, engine, cache, feed, tick_hub, candle_hub, runner, queries, streams
    )

    async def close_streams_on_shutdown() -> None:
        await server.shutdown_event.wait()
        tick_hub.close_all()
        candle_hub.close_all()
        if book_hub is not None:
            book_hub.close_all()

    async def startup() -> None:
        began = time.perf_counter()
        await asyncio.to_thread(run_migrations, settings.database_url, MIGRATIONS_DIR)
        if simulated is not None:  # a recording brings its own history
            await backfill(
                simulated, repo, products, days=settings.market_backfill_days, now=int(time.time())
            )
        await runner.start()
        app._tasks.append(asyncio.create_task(close_streams_on_shutdown()))
        log.info("market ready", extra={"seconds": round(time.perf_counter() - began, 3)})

    async def shutdown() -> None:
        for task in app._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.stop()
        if rest is not None:
            await rest.aclose()
        await cache.close()
        await engine.dispose()

    server.on_startup(startup)
    server.on_shutdown(shutdown)
    return app


def _coinbase_feed(
    settings: MarketSettings, repo: SqlCandleRepository
) -> tuple[CoinbaseFeed, CoinbaseRestClient]:
    config = CoinbaseConfig(
        product_ids=settings.product_ids,
        ws_url=settings.market_coinbase_ws_url,
        rest_url=settings.market_coinbase_rest_url,
        channels=settings.coinbase_channels,
        api_key=settings.coinbase_api_key,
        api_secret=settings.coinbase_api_secret,
        heartbeat_timeout_seconds=settings.market_coinbase_heartbeat_timeout_seconds,
        backoff_min_seconds=settings.market_coinbase_backoff_min_seconds,
        backoff_max_seconds=settings.market_coinbase_backoff_max_seconds,
        refill_delay_seconds=settings.market_coinbase_refill_delay_seconds,
        restart_refill_max_days=settings.market_backfill_days,
    )
    rest = CoinbaseRestClient(
        config.rest_url,
        timeout_seconds=config.rest_timeout_seconds,
        api_key=config.api_key,
        api_secret=config.api_secret,
        ca_file=config.ca_file,
    )
    refiller = GapRefiller(
        rest,
        repo,
        config.product_ids,
        delay_seconds=config.refill_delay_seconds,
        quiet_seconds=config.refill_quiet_seconds,
    )
    return CoinbaseFeed(config, refiller), rest


async def serve(settings: MarketSettings) -> None:
    await build(settings).server.run()


def main() -> None:
    """`python -m tradeplane.market [serve|migrate]`."""
    service_main(settings_cls=MarketSettings, serve=serve, migrations_dir=MIGRATIONS_DIR)
