"""Exit-only BRACKET orders on the paper venue: one order that sells (or buys) at the
take-profit limit unless a trade crosses the stop trigger first; then it is a limit order at
the stop-loss limit price (a market exit when there is none)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal as D

from tradeplane.execution.adapters.venues.paper.config import PaperConfig
from tradeplane.execution.adapters.venues.paper.matching import PaperOrder, idle_on, match
from tradeplane.execution.adapters.venues.paper.venue import PaperVenue
from tradeplane.execution.domain.orders import BracketSpec, Order, OrderSpec
from tradeplane.execution.domain.values import (
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
    Venue,
)
from tradeplane.execution.service_layer.ports import MarketTick

from .test_paper_book import FakeMarket, Reports, drain
from .test_paper_matching import CFG, RULES, T0, tick


def exit_only(
    side: Side = Side.SELL,
    size: str = "2",
    tp: str = "110",
    trigger: str = "95",
    sl: str | None = "94",
    expire: timedelta | None = None,
) -> PaperOrder:
    """A paper exit-only bracket as the venue files it (selling closes a long)."""
    return PaperOrder(
        order_id="b",
        venue_order_id="paper-b",
        product_id="BTC-USD",
        side=side,
        type=OrderType.BRACKET,
        time_in_force=TimeInForce.GTC if expire is None else TimeInForce.GTD,
        remaining=D(size),
        quote_remaining=None,
        limit_price=D(tp),
        stop_price=D(trigger),
        stop_direction=StopDirection.DOWN if side is Side.SELL else StopDirection.UP,
        post_only=False,
        expire_time=None if expire is None else T0 + expire,
        stop_limit_price=None if sl is None else D(sl),
    )


def fills(order: PaperOrder, t: MarketTick) -> tuple[list[tuple[D, D, Liquidity]], object]:
    r = match(order, t, CFG, RULES)
    return [(e.price, e.size, e.liquidity) for e in r.executions], r.done


def test_take_profit_rests_then_fills_as_maker_at_its_price_partly_then_fully() -> None:
    b = exit_only()
    assert fills(b, tick("100")) == ([], None)  # arrives between the prices: rests
    assert idle_on(b, tick("105")) and idle_on(b, tick("96"))
    assert fills(b, tick("110.5", size="0.5")) == ([(D("110"), D("0.5"), Liquidity.MAKER)], None)
    assert b.remaining == D("1.5") and not b.triggered
    assert fills(b, tick("111", size="5")) == (
        [(D("110"), D("1.5"), Liquidity.MAKER)],
        OrderStatus.FILLED,
    )


def test_take_profit_marketable_on_arrival_takes_the_bid() -> None:
    b = exit_only()
    assert fills(b, tick("112", size="5", bid="111", ask="113")) == (
        [(D("111"), D("2"), Liquidity.TAKER)],
        OrderStatus.FILLED,
    )


def test_stop_trigger_turns_it_into_a_limit_at_the_stop_loss_price_taker_first() -> None:
    b = exit_only(sl="94")
    fills(b, tick("100"))
    triggered = tick("95", size="1", bid="94.5", ask="95.5")
    assert not idle_on(b, triggered)
    assert fills(b, triggered) == ([(D("94.5"), D("1"), Liquidity.TAKER)], None)
    assert b.triggered and b.limit_price == D("94") and b.remaining == D("1")
    # The take-profit is gone: the rest rests as a sell limit at 94, not 110.
    assert fills(b, tick("94.5", size="1")) == (
        [(D("94"), D("1"), Liquidity.MAKER)],
        OrderStatus.FILLED,
    )


def test_a_stop_loss_limit_not_marketable_on_trigger_rests() -> None:
    b = exit_only(sl="94")
    fills(b, tick("100"))
    assert fills(b, tick("95", bid="93", ask="95.5")) == ([], None)  # the bid is below 94
    assert b.triggered and idle_on(b, tick("93.99"))
    assert not idle_on(b, tick("94"))


def test_stop_without_a_limit_is_a_market_exit_that_cancels_what_the_top_cannot_fill() -> None:
    b = exit_only(sl=None)
    fills(b, tick("100"))
    r = match(b, tick("94", size="1.5", bid="93.5", ask="94.5"), CFG, RULES)
    assert [(e.price, e.size, e.liquidity) for e in r.executions] == [
        (D("93.5"), D("1.5"), Liquidity.TAKER)
    ]
    assert r.done is OrderStatus.CANCELED and r.reason.startswith("MARKET: remainder cancelled")


def test_a_partly_filled_take_profit_leaves_the_rest_to_the_stop() -> None:
    b = exit_only(size="2", sl=None)
    fills(b, tick("100"))
    fills(b, tick("110", size="0.5"))
    assert fills(b, tick("90", size="5", bid="89.5", ask="90.5")) == (
        [(D("89.5"), D("1.5"), Liquidity.TAKER)],
        OrderStatus.FILLED,
    )


def test_buying_bracket_closes_a_short_stopping_on_the_way_up() -> None:
    b = exit_only(Side.BUY, size="1", tp="90", trigger="105", sl="106")
    assert fills(b, tick("100")) == ([], None)
    assert idle_on(b, tick("104")) and idle_on(b, tick("91"))
    assert fills(b, tick("105", size="3", bid="104.5", ask="105.5")) == (
        [(D("105.5"), D("1"), Liquidity.TAKER)],
        OrderStatus.FILLED,
    )
    tp = exit_only(Side.BUY, size="1", tp="90", trigger="105", sl="106")
    fills(tp, tick("100"))
    assert fills(tp, tick("89.5")) == ([(D("90"), D("1"), Liquidity.MAKER)], OrderStatus.FILLED)


def test_gtd_bracket_expires_before_anything_else() -> None:
    live = exit_only(expire=timedelta(seconds=1))
    assert fills(live, tick("100")) == ([], None)
    gone = exit_only(expire=-timedelta(seconds=1))
    assert not idle_on(gone, tick("100"))
    assert fills(gone, tick("90")) == ([], OrderStatus.EXPIRED)  # even through the stop


def test_the_venue_accepts_an_exit_only_bracket_as_one_order() -> None:
    async def scenario() -> list[tuple[object, ...]]:
        market = FakeMarket()
        venue = PaperVenue(market, PaperConfig())
        reports = Reports([])
        venue.bind(reports)
        await venue.start()
        spec = OrderSpec(
            "acct",
            "c1",
            "BTC-USD",
            Side.SELL,
            OrderType.BRACKET,
            TimeInForce.GTC,
            Venue.PAPER,
            base_size=D("1"),
            bracket=BracketSpec(D("110"), D("95"), None, exit_only=True),
        )
        try:
            assert await venue.submit(Order.new("b1", spec, T0)) == "paper-b1"
            assert venue.working_count == 1
            for price in ("100", "96", "94"):
                p = D(price)
                market.push(MarketTick("BTC-USD", 0, T0, p, D("5"), p - 1, p + 1))
                await drain(venue)
        finally:
            await venue.stop()
        assert venue.working_count == 0
        return reports.log

    assert asyncio.run(scenario()) == [("fill", "b1", "paper-b1-1", D("93"), D("1"))]
