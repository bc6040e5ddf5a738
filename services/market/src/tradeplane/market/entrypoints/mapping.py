"""Proto <-> domain mapping for MarketService (no logic beyond conversion)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from google.protobuf.timestamp_pb2 import Timestamp

from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.hub import Sequenced
from tradeplane.market.domain.intervals import Interval, epoch_seconds
from tradeplane.market.domain.order_book import OrderBook, PriceLevel
from tradeplane.market.domain.ticks import Side, Tick
from tradeplane.market.service_layer.queries import (
    CandlePage,
    CandleQuery,
    IndicatorRequest,
    ProductView,
)
from trading.common.v1 import common_pb2
from trading.market.v1 import market_pb2 as pb

INTERVAL_FROM_PROTO: dict[pb.CandleInterval.ValueType, Interval] = {
    pb.CANDLE_INTERVAL_ONE_MINUTE: Interval.ONE_MINUTE,
    pb.CANDLE_INTERVAL_FIVE_MINUTES: Interval.FIVE_MINUTES,
    pb.CANDLE_INTERVAL_FIFTEEN_MINUTES: Interval.FIFTEEN_MINUTES,
    pb.CANDLE_INTERVAL_ONE_HOUR: Interval.ONE_HOUR,
    pb.CANDLE_INTERVAL_SIX_HOURS: Interval.SIX_HOURS,
    pb.CANDLE_INTERVAL_ONE_DAY: Interval.ONE_DAY,
}
INTERVAL_TO_PROTO = {v: k for k, v in INTERVAL_FROM_PROTO.items()}
SIDE_TO_PROTO = {Side.BUY: common_pb2.SIDE_BUY, Side.SELL: common_pb2.SIDE_SELL}


def dec(value: Decimal) -> str:
    """Plain decimal notation (never "1E-8")."""
    return format(value, "f")


def timestamp(moment: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(moment)
    return ts


def epoch_ceil(ts: Timestamp) -> int:
    """Whole epoch seconds, rounded up: candle starts are whole seconds, so `start >= t` and
    `start < t` select the same candles with t rounded up."""
    return ts.seconds + (1 if ts.nanos > 0 else 0)


def interval_from_proto(value: pb.CandleInterval.ValueType) -> Interval | None:
    return INTERVAL_FROM_PROTO.get(value)


def product_to_proto(view: ProductView) -> pb.Product:
    p = view.product
    return pb.Product(
        product_id=p.product_id,
        base_currency=p.base_currency,
        quote_currency=p.quote_currency,
        base_increment=dec(p.base_increment),
        quote_increment=dec(p.quote_increment),
        min_size=dec(p.min_size),
        status=pb.PRODUCT_STATUS_ONLINE if p.online else pb.PRODUCT_STATUS_OFFLINE,
        last_price="" if view.last_price is None else dec(view.last_price),
    )


def candle_query_from_proto(request: pb.GetCandlesRequest) -> CandleQuery:
    return CandleQuery(
        product_id=request.product_id,
        interval=interval_from_proto(request.interval),
        start=epoch_ceil(request.start) if request.HasField("start") else None,
        end=epoch_ceil(request.end) if request.HasField("end") else None,
        indicators=[IndicatorRequest(s.name, dict(s.params)) for s in request.indicators],
        page_size=request.page_size,
        page_token=request.page_token,
    )


def candle_to_proto(candle: Candle, seq: int = 0) -> pb.Candle:
    return pb.Candle(
        product_id=candle.product_id,
        interval=INTERVAL_TO_PROTO[candle.interval],
        start=Timestamp(seconds=epoch_seconds(candle.start)),  # whole seconds: cheaper
        open=dec(candle.open),
        high=dec(candle.high),
        low=dec(candle.low),
        close=dec(candle.close),
        volume=dec(candle.volume),
        trade_count=candle.trade_count,
        closed=candle.closed,
        seq=seq,
    )


def candle_page_to_proto(page: CandlePage) -> pb.GetCandlesResponse:
    return pb.GetCandlesResponse(
        candles=[candle_to_proto(c) for c in page.candles],
        indicators=[
            pb.IndicatorSeries(
                spec=pb.IndicatorSpec(name=s.name, params=dict(s.params)),
                output=s.output,
                values=s.values.tolist(),
            )
            for s in page.indicators
        ],
        next_page_token=page.next_page_token,
    )


def tick_to_proto(message: Sequenced[Tick]) -> pb.Tick:
    tick = message.item
    return pb.Tick(
        product_id=tick.product_id,
        seq=message.seq,
        time=timestamp(tick.time),
        price=dec(tick.price),
        size=dec(tick.size),
        side=SIDE_TO_PROTO[tick.side],
        best_bid=dec(tick.best_bid),
        best_ask=dec(tick.best_ask),
        trade_id=tick.trade_id,
    )


def candles_response(
    messages: Iterable[Sequenced[Candle]], reset_keys: list[str]
) -> pb.StreamCandlesResponse:
    return pb.StreamCandlesResponse(
        candles=[candle_to_proto(m.item, m.seq) for m in messages],
        # hub keys are "<product>/<interval>"; the client knows products
        reset_product_ids=[k.split("/", 1)[0] for k in reset_keys],
    )


def order_book_to_proto(book: OrderBook) -> pb.OrderBook:
    return pb.OrderBook(
        product_id=book.product_id,
        seq=book.seq,
        time=timestamp(book.time),
        bids=[pb.PriceLevel(price=dec(level.price), size=dec(level.size)) for level in book.bids],
        asks=[pb.PriceLevel(price=dec(level.price), size=dec(level.size)) for level in book.asks],
    )


def levels_to_proto(levels: Iterable[PriceLevel]) -> list[pb.PriceLevel]:
    return [pb.PriceLevel(price=dec(level.price), size=dec(level.size)) for level in levels]


def book_delta_to_proto(
    product_id: str, seq: int, moment: datetime, bids: list[PriceLevel], asks: list[PriceLevel]
) -> pb.StreamOrderBookResponse:
    return pb.StreamOrderBookResponse(
        delta=pb.OrderBookDelta(
            product_id=product_id,
            seq=seq,
            time=timestamp(moment),
            bids=levels_to_proto(bids),
            asks=levels_to_proto(asks),
        )
    )
