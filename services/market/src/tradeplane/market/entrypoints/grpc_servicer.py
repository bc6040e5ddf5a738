"""MarketService over gRPC: maps requests to use cases and results back to protos."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from tradeplane.market.domain.hub import Batch, FellBehind, Sequenced, Subscription
from tradeplane.market.domain.order_book import diff_levels
from tradeplane.market.domain.ticks import Tick
from tradeplane.market.entrypoints import mapping
from tradeplane.market.service_layer.queries import MarketQueries
from tradeplane.market.service_layer.streams import MarketStreams
from tradeplane.runtime.errors import ResourceExhausted
from trading.market.v1 import market_pb2 as pb
from trading.market.v1 import market_pb2_grpc

T = TypeVar("T")

TICK_PROTO_MEMO = 50_000  # recent ticks kept mapped to protos (oldest dropped first)
RESYNC_AFTER = 50  # queued ticks after which StreamOrderBook sends a snapshot, not deltas


class MarketServicer(market_pb2_grpc.MarketServiceServicer):
    def __init__(
        self,
        queries: MarketQueries,
        streams: MarketStreams,
        shutdown_event: asyncio.Event,
        *,
        batch_max: int = 1000,
    ) -> None:
        self._queries = queries
        self._streams = streams
        self._shutdown = shutdown_event
        self._batch_max = batch_max
        self._tick_protos: OrderedDict[tuple[str, int], pb.Tick] = OrderedDict()

    async def ListProducts(
        self, request: pb.ListProductsRequest, context: Any
    ) -> pb.ListProductsResponse:
        views, token = await self._queries.list_products(request.page_size, request.page_token)
        return pb.ListProductsResponse(
            products=[mapping.product_to_proto(v) for v in views], next_page_token=token
        )

    async def GetCandles(
        self, request: pb.GetCandlesRequest, context: Any
    ) -> pb.GetCandlesResponse:
        page = await self._queries.get_candles(mapping.candle_query_from_proto(request))
        return mapping.candle_page_to_proto(page)

    async def GetOrderBook(
        self, request: pb.GetOrderBookRequest, context: Any
    ) -> pb.GetOrderBookResponse:
        book = self._queries.order_book(request.product_id, request.depth)
        return pb.GetOrderBookResponse(book=mapping.order_book_to_proto(book))

    async def StreamTicks(
        self, request: pb.StreamTicksRequest, context: Any
    ) -> AsyncIterator[pb.StreamTicksResponse]:
        subscription = self._streams.subscribe_ticks(
            list(request.product_ids), dict(request.since_seq)
        )
        async for batch in self._batches(subscription):
            yield pb.StreamTicksResponse(
                ticks=[self._tick_proto(m) for m in batch.items], reset_product_ids=batch.resets
            )

    def _tick_proto(self, message: Sequenced[Tick]) -> pb.Tick:
        """Each tick is mapped once, however many subscribers receive it."""
        key = (message.key, message.seq)
        proto = self._tick_protos.get(key)
        if proto is None:
            proto = self._tick_protos[key] = mapping.tick_to_proto(message)
            if len(self._tick_protos) > TICK_PROTO_MEMO:
                self._tick_protos.popitem(last=False)
        return proto

    async def StreamCandles(
        self, request: pb.StreamCandlesRequest, context: Any
    ) -> AsyncIterator[pb.StreamCandlesResponse]:
        subscription = self._streams.subscribe_candles(
            list(request.product_ids),
            mapping.interval_from_proto(request.interval),
            dict(request.since_seq),
        )
        async for batch in self._batches(subscription):
            yield mapping.candles_response(batch.items, batch.resets)

    async def StreamOrderBook(
        self, request: pb.StreamOrderBookRequest, context: Any
    ) -> AsyncIterator[pb.StreamOrderBookResponse]:
        """A snapshot, then one delta per tick (each tick moves the simulated book). When
        more ticks are queued than RESYNC_AFTER, a fresh snapshot replaces the deltas."""
        product = self._queries.product(request.product_id)
        depth = self._queries.book_depth(request.depth)
        subscription = self._streams.subscribe_ticks([product.product_id], {})
        book = None
        last = self._streams.tick_hub.last(product.product_id)
        if last is not None:
            book = self._queries.book_at(product, last, depth)
            yield pb.StreamOrderBookResponse(snapshot=mapping.order_book_to_proto(book))
        async for batch in self._batches(subscription):
            if not batch.items:
                continue
            if book is None or len(batch.items) > RESYNC_AFTER:
                book = self._queries.book_at(product, batch.items[-1], depth)
                yield pb.StreamOrderBookResponse(snapshot=mapping.order_book_to_proto(book))
                continue
            for message in batch.items:
                new = self._queries.book_at(product, message, depth)
                yield mapping.book_delta_to_proto(
                    product.product_id,
                    new.seq,
                    new.time,
                    diff_levels(book.bids, new.bids),
                    diff_levels(book.asks, new.asks),
                )
                book = new

    async def _batches(self, subscription: Subscription[T]) -> AsyncIterator[Batch[T]]:
        """Batches until shutdown (the hubs close every subscription then) or the client
        leaves; a subscriber that fell behind gets RESOURCE_EXHAUSTED."""
        try:
            while not self._shutdown.is_set():
                try:
                    batch = await subscription.next_batch(self._batch_max)
                except FellBehind as exc:
                    raise ResourceExhausted(f"{exc}; resubscribe with since_seq") from None
                if batch is None:
                    return
                yield batch
        finally:
            subscription.close()
