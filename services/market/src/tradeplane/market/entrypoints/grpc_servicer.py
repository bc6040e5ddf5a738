"""MarketService over gRPC: maps requests to use cases and results back to protos."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import grpc

from tradeplane.market.domain.hub import Batch, FellBehind, Sequenced, Subscription
from tradeplane.market.domain.order_book import OrderBook, diff_levels
from tradeplane.market.domain.ticks import Tick
from tradeplane.market.entrypoints import mapping
from tradeplane.market.service_layer.queries import MarketQueries
from tradeplane.market.service_layer.streams import MarketStreams
from tradeplane.runtime.errors import ResourceExhausted
from trading.market.v1 import market_pb2 as pb
from trading.market.v1 import market_pb2_grpc

T = TypeVar("T")

TICK_PROTO_MEMO = 50_000  # recent ticks kept encoded (oldest dropped first)
RESYNC_AFTER = 50  # queued ticks after which StreamOrderBook sends a snapshot, not deltas


class MarketServicer(market_pb2_grpc.MarketServiceServicer):
    def __init__(
        self,
        queries: MarketQueries,
        streams: MarketStreams,
        shutdown_event: asyncio.Event,
        *,
        batch_max: int = 1000,
        flush_seconds: float = 0.0,
    ) -> None:
        self._queries = queries
        self._streams = streams
        self._shutdown = shutdown_event
        self._batch_max = batch_max
        self._flush_seconds = flush_seconds
        self._tick_fields: OrderedDict[tuple[str, int], bytes] = OrderedDict()

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

    async def StreamTicks(  # type: ignore[override]  # pre-encoded: see add_to_server
        self, request: pb.StreamTicksRequest, context: Any
    ) -> AsyncIterator[bytes]:
        """Yields each StreamTicksResponse already encoded (see `add_to_server`): the encoded
        `ticks` entry of every tick is made once and joined per message for every subscriber.
        After each message the stream waits `flush_seconds`, so at high rates what arrives
        meanwhile goes out as one batch (at most 1/flush_seconds messages per stream) while
        at low rates ticks still go out one by one as they come."""
        subscription = self._streams.subscribe_ticks(
            list(request.product_ids), dict(request.since_seq)
        )
        async for batch in self._batches(subscription):
            parts = [self._tick_field(m) for m in batch.items]
            parts += [_field(2, product_id.encode()) for product_id in batch.resets]
            yield b"".join(parts)
            # No pause for a stream already half behind: it drains first.
            if self._flush_seconds > 0 and subscription.queued < subscription.limit // 2:
                await asyncio.sleep(self._flush_seconds)

    def _tick_field(self, message: Sequenced[Tick]) -> bytes:
        """Field 1 (`ticks`) of StreamTicksResponse for one tick, encoded once however many
        subscribers receive it."""
        key = (message.key, message.seq)
        encoded = self._tick_fields.get(key)
        if encoded is None:
            encoded = _field(1, mapping.tick_to_proto(message).SerializeToString())
            self._tick_fields[key] = encoded
            if len(self._tick_fields) > TICK_PROTO_MEMO:
                self._tick_fields.popitem(last=False)
        return encoded

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
        if self._streams.book_hub is not None:
            async for update in self._live_book(product.product_id, depth):
                yield update
            return
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

    async def _live_book(
        self, product_id: str, depth: int
    ) -> AsyncIterator[pb.StreamOrderBookResponse]:
        """The venue's level2 book: a snapshot, then deltas. Each delta brings the client's
        top `depth` levels to the book as of its seq; changes queued while this stream was
        writing are coalesced into one delta (so seqs may skip). A fresh snapshot follows a
        venue resync (level2 resubscribed after a gap) or a full queue, never an error."""
        hub = self._streams.book_hub
        assert hub is not None
        sent: OrderBook | None = None
        replaced = False
        while not self._shutdown.is_set():
            subscription = hub.subscribe([product_id])
            try:
                while not self._shutdown.is_set():
                    book = self._queries.live_book(product_id)
                    if book is not None and (sent is None or replaced or book.seq != sent.seq):
                        view = book.view(depth)
                        if sent is None or replaced:
                            yield pb.StreamOrderBookResponse(
                                snapshot=mapping.order_book_to_proto(view)
                            )
                        else:
                            bids, asks = (
                                diff_levels(sent.bids, view.bids),
                                diff_levels(sent.asks, view.asks),
                            )
                            if bids or asks:
                                yield mapping.book_delta_to_proto(
                                    product_id, view.seq, view.time, bids, asks
                                )
                        sent, replaced = view, False
                    try:
                        batch = await subscription.next_batch(self._batch_max)
                    except FellBehind:
                        replaced = True  # resync: a snapshot, then deltas again
                        break
                    if batch is None:
                        return
                    replaced = replaced or any(m.item.snapshot for m in batch.items)
            finally:
                subscription.close()

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


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field: a message's fields concatenate, so a message is
    the join of its encoded fields (repeated ones once per element)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _serialize_ticks(message: bytes | pb.StreamTicksResponse) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


class _PreEncodedTicks:
    """A stand-in for the server while the generated code registers MarketService: it swaps
    StreamTicks' response serializer for one that sends pre-encoded bytes as they are."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # registered below, with the swapped handler

    def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
        handlers = dict(handlers)
        handlers["StreamTicks"] = handlers["StreamTicks"]._replace(
            response_serializer=_serialize_ticks
        )
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(name, handlers),)
        )
        self._server.add_registered_method_handlers(name, handlers)


def add_to_server(servicer: MarketServicer, server: grpc.aio.Server) -> None:
    """Register MarketService (the generated registration, StreamTicks sending bytes)."""
    market_pb2_grpc.add_MarketServiceServicer_to_server(servicer, _PreEncodedTicks(server))
