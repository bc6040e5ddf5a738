"""The paper venue's handling of a bracket's stop-loss leg without a limit price: once the
stop is crossed it exits like a market order (never rests without a price)."""

from __future__ import annotations

from decimal import Decimal as D

from tradeplane.execution.adapters.venues.paper.matching import PaperOrder, match
from tradeplane.execution.domain.values import (
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    StopDirection,
    TimeInForce,
)

from .test_paper_matching import CFG, RULES, order, tick


def stop_loss(size: str = "2") -> PaperOrder:
    return order(
        OrderType.STOP_LIMIT,
        Side.SELL,
        size=size,
        tif=TimeInForce.GTC,
        stop=D("90"),
        direction=StopDirection.DOWN,
    )


def test_market_stop_loss_waits_for_its_trigger() -> None:
    leg = stop_loss()
    r = match(leg, tick("95"), CFG, RULES)
    assert r.executions == [] and r.done is None


def test_market_stop_loss_sells_at_the_bid_once_triggered_and_cancels_the_rest() -> None:
    leg = stop_loss(size="2")
    r = match(leg, tick("89", size="1.5", bid="88.5", ask="89.5"), CFG, RULES)
    assert [(e.price, e.size, e.liquidity) for e in r.executions] == [
        (D("88.5"), D("1.5"), Liquidity.TAKER)
    ]
    assert r.done is OrderStatus.CANCELED
    assert r.reason.startswith("MARKET: remainder cancelled")


def test_market_stop_loss_fills_completely_when_the_book_is_deep_enough() -> None:
    leg = stop_loss(size="1")
    r = match(leg, tick("89", size="3", bid="88.5", ask="89.5"), CFG, RULES)
    assert r.done is OrderStatus.FILLED
    assert sum(e.size for e in r.executions) == D("1")


def test_idle_on_never_skips_a_tick_that_would_change_the_order() -> None:
    """The venue skips ticks ``idle_on`` calls idle; ``match`` must agree they do nothing."""
    from copy import deepcopy
    from datetime import timedelta

    from tradeplane.execution.adapters.venues.paper.matching import idle_on

    from .test_paper_matching import T0

    orders = []
    for side in (Side.BUY, Side.SELL):
        resting = order(OrderType.LIMIT, side, tif=TimeInForce.GTC, limit="100")
        resting.evaluated = True
        orders.append(resting)
        expiring = deepcopy(resting)
        expiring.expire_time = T0 - timedelta(seconds=1)
        orders.append(expiring)
        direction = StopDirection.DOWN if side is Side.SELL else StopDirection.UP
        orders.append(
            order(
                OrderType.STOP_LIMIT,
                side,
                tif=TimeInForce.GTC,
                limit="100",
                stop=D("100"),
                direction=direction,
            )
        )
        orders.append(order(OrderType.LIMIT, side, tif=TimeInForce.GTC, limit="100"))  # new
    for o in orders:
        for price in ("98", "99", "100", "101", "102"):
            t = tick(price)
            if idle_on(o, t):
                r = match(deepcopy(o), t, CFG, RULES)
                assert r.executions == [] and r.done is None, (o, price)
    # ...and it does skip the common case.
    assert idle_on(orders[0], tick("101"))
