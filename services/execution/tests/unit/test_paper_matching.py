"""The paper venue's matching rules, tick by tick (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from tradeplane.execution.adapters.venues.paper.config import PaperConfig
from tradeplane.execution.adapters.venues.paper.matching import PaperOrder, match
from tradeplane.execution.domain.products import ProductRules
from tradeplane.execution.domain.values import (
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
)
from tradeplane.execution.service_layer.ports import MarketTick

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = ProductRules.simple("BTC-USD")
CFG = PaperConfig(maker_fee_bps=D("10"), taker_fee_bps=D("20"), slippage_bps=D("0"))


def tick(price: str, size: str = "1", bid: str | None = None, ask: str | None = None) -> MarketTick:
    p = D(price)
    return MarketTick(
        "BTC-USD", 1, T0, p, D(size), D(bid) if bid else p - 1, D(ask) if ask else p + 1
    )


def order(
    otype: OrderType = OrderType.MARKET,
    side: Side = Side.BUY,
    size: str | None = "1",
    tif: TimeInForce = TimeInForce.IOC,
    limit: str | None = None,
    **kw: object,
) -> PaperOrder:
    return PaperOrder(
        order_id="o",
        venue_order_id="paper-o",
        product_id="BTC-USD",
        side=side,
        type=otype,
        time_in_force=tif,
        remaining=None if size is None else D(size),
        quote_remaining=kw.pop("quote", None),  # type: ignore[arg-type]
        limit_price=None if limit is None else D(limit),
        stop_price=kw.pop("stop", None),  # type: ignore[arg-type]
        stop_direction=kw.pop("direction", None),  # type: ignore[arg-type]
        post_only=bool(kw.pop("post_only", False)),
        expire_time=kw.pop("expire", None),  # type: ignore[arg-type]
    )


def test_market_buy_takes_the_ask_with_taker_fee() -> None:
    r = match(order(size="0.5"), tick("100", size="1"), CFG, RULES)
    assert [(e.price, e.size, e.fee, e.liquidity) for e in r.executions] == [
        (D("101"), D("0.5"), D("0.101"), Liquidity.TAKER)
    ]
    assert r.done is OrderStatus.FILLED


def test_slippage_moves_the_taker_price_against_the_order() -> None:
    cfg = PaperConfig(slippage_bps=D("100"))
    buy = match(order(size="0.1"), tick("100"), cfg, RULES)
    sell = match(order(side=Side.SELL, size="0.1"), tick("100"), cfg, RULES)
    assert buy.executions[0].price == D("102.01")  # ask 101 * 1.01
    assert sell.executions[0].price == D("98.01")  # bid 99 * 0.99


def test_market_order_beyond_top_of_book_fills_partly_and_cancels_the_rest() -> None:
    o = order(size="3")
    r = match(o, tick("100", size="1.25"), CFG, RULES)
    assert [e.size for e in r.executions] == [D("1.25")]
    assert r.done is OrderStatus.CANCELED and "remainder" in r.reason
    assert o.remaining == D("1.75")


def test_quote_sized_market_order_buys_quote_over_price() -> None:
    r = match(order(size=None, quote=D("202")), tick("100", size="5"), CFG, RULES)
    assert r.executions[0].size == D("2") and r.done is OrderStatus.FILLED


def test_gtc_limit_crossing_on_arrival_takes_top_then_rests_and_fills_as_maker() -> None:
    o = order(OrderType.LIMIT, size="3", tif=TimeInForce.GTC, limit="102")
    first = match(o, tick("100", size="1"), CFG, RULES)
    assert [(e.price, e.size, e.liquidity) for e in first.executions] == [
        (D("101"), D("1"), Liquidity.TAKER)
    ]
    assert first.done is None and o.remaining == D("2")  # rests: partially filled
    assert match(o, tick("103", size="5"), CFG, RULES).executions == []  # above the limit
    second = match(o, tick("102", size="5"), CFG, RULES)
    assert [(e.price, e.size, e.fee, e.liquidity) for e in second.executions] == [
        (D("102"), D("2"), D("0.204"), Liquidity.MAKER)
    ]
    assert second.done is OrderStatus.FILLED


def test_resting_sell_limit_fills_when_a_trade_prints_at_or_above_it() -> None:
    o = order(OrderType.LIMIT, side=Side.SELL, size="1", tif=TimeInForce.GTC, limit="110")
    assert match(o, tick("100"), CFG, RULES).executions == []  # arrives, not marketable
    assert match(o, tick("109.99"), CFG, RULES).executions == []
    r = match(o, tick("110.5", size="0.4"), CFG, RULES)
    assert [(e.price, e.size) for e in r.executions] == [(D("110"), D("0.4"))]
    assert r.done is None and o.remaining == D("0.6")


def test_ioc_limit_fills_what_it_can_and_cancels_the_rest() -> None:
    r = match(order(OrderType.LIMIT, size="2", limit="105"), tick("100", size="0.5"), CFG, RULES)
    assert [e.size for e in r.executions] == [D("0.5")] and r.done is OrderStatus.CANCELED
    r = match(order(OrderType.LIMIT, size="2", limit="90"), tick("100"), CFG, RULES)
    assert r.executions == [] and r.done is OrderStatus.CANCELED


def test_fok_fills_completely_or_not_at_all() -> None:
    kill = match(
        order(OrderType.LIMIT, size="2", tif=TimeInForce.FOK, limit="105"),
        tick("100", size="1"),
        CFG,
        RULES,
    )
    assert kill.executions == [] and kill.done is OrderStatus.CANCELED and "FOK" in kill.reason
    fill = match(
        order(OrderType.LIMIT, size="1", tif=TimeInForce.FOK, limit="105"),
        tick("100", size="1"),
        CFG,
        RULES,
    )
    assert [e.size for e in fill.executions] == [D("1")] and fill.done is OrderStatus.FILLED


def test_post_only_that_would_cross_is_rejected() -> None:
    o = order(OrderType.LIMIT, size="1", tif=TimeInForce.GTC, limit="105", post_only=True)
    r = match(o, tick("100"), CFG, RULES)
    assert r.executions == [] and r.done is OrderStatus.REJECTED


def test_gtd_order_expires() -> None:
    o = order(OrderType.LIMIT, size="1", tif=TimeInForce.GTD, limit="50", expire=T0 - timedelta(1))
    assert match(o, tick("100"), CFG, RULES).done is OrderStatus.EXPIRED


def test_stop_limit_waits_for_the_stop_then_acts_as_a_limit() -> None:
    o = order(
        OrderType.STOP_LIMIT,
        side=Side.SELL,
        size="1",
        tif=TimeInForce.GTC,
        limit="94",
        stop=D("95"),
        direction=StopDirection.DOWN,
    )
    assert match(o, tick("100"), CFG, RULES).executions == []
    r = match(o, tick("95", bid="94.5", ask="95.5"), CFG, RULES)  # triggered: sells at the bid
    assert [(e.price, e.liquidity) for e in r.executions] == [(D("94.5"), Liquidity.TAKER)]
