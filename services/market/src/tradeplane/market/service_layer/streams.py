"""Stream use cases: validate a subscription request and open it on the right hub."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.hub import StreamHub, Subscription
from tradeplane.market.domain.intervals import Interval
from tradeplane.market.domain.order_book import BookChange
from tradeplane.market.domain.ticks import Tick
from tradeplane.market.service_layer.feed_runner import candle_stream_key
from tradeplane.market.service_layer.queries import MarketQueries
from tradeplane.runtime.errors import InvalidArgument


class MarketStreams:
    def __init__(
        self,
        queries: MarketQueries,
        tick_hub: StreamHub[Tick],
        candle_hub: StreamHub[Candle],
        book_hub: StreamHub[BookChange] | None = None,
    ) -> None:
        self._queries = queries
        self.tick_hub = tick_hub
        self.candle_hub = candle_hub
        # One message per change of a venue (level2) book, by product; None without level2.
        self.book_hub = book_hub

    def _check_products(self, product_ids: Sequence[str]) -> None:
        if not product_ids:
            raise InvalidArgument("product_ids", "at least one product is required")
        for i, product_id in enumerate(product_ids):
            self._queries.product(product_id, f"product_ids[{i}]")

    def _check_cursors(self, product_ids: Sequence[str], since_seq: Mapping[str, int]) -> None:
        for product_id in since_seq:
            if product_id not in product_ids:
                raise InvalidArgument(
                    f"since_seq[{product_id}]", "cursor for a product not in product_ids"
                )

    def subscribe_ticks(
        self, product_ids: Sequence[str], since_seq: Mapping[str, int]
    ) -> Subscription[Tick]:
        self._check_products(product_ids)
        self._check_cursors(product_ids, since_seq)
        return self.tick_hub.subscribe(product_ids, since_seq)

    def subscribe_candles(
        self,
        product_ids: Sequence[str],
        interval: Interval | None,
        since_seq: Mapping[str, int],
    ) -> Subscription[Candle]:
        self._check_products(product_ids)
        if interval is None:
            raise InvalidArgument("interval", "is required")
        self._check_cursors(product_ids, since_seq)
        keys = [candle_stream_key(p, interval) for p in product_ids]
        cursors = {candle_stream_key(p, interval): s for p, s in since_seq.items()}
        return self.candle_hub.subscribe(keys, cursors)
