"""Pure matching rules of the paper venue: what an order gets from one tick.

Model (documented in docs/api/execution.md):
- the top of book is the tick's best bid/ask, and the liquidity there is the tick's trade
  size: an order larger than that fills the top-of-book size now and (if it keeps working)
  the rest on later ticks - a partial fill;
- a taker fill (market order, or a limit order marketable on arrival) trades at the best
  ask (buy) / bid (sell) moved by ``slippage_bps`` against the order, never beyond its limit,
  and pays the taker fee;
- a resting limit order fills at its limit price, as maker, when a trade prints at or
  through it (buy: price <= limit; sell: price >= limit);
- IOC cancels what did not fill at once; FOK fills completely at once or is cancelled with
  nothing filled; post-only orders that would cross are rejected; GTD orders expire;
- stop-limit orders wait until a trade crosses the stop, then act as a limit order;
- an exit-only bracket is one order: a limit at the take-profit price that, once a trade
  crosses its stop trigger (selling: price <= trigger; buying: price >= trigger), becomes a
  limit at the stop-loss limit price (a market exit when there is none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from tradeplane.execution.adapters.venues.paper.config import PaperConfig
from tradeplane.execution.domain.decimals import ZERO
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

BPS = Decimal(10_000)
FEE_QUANTUM = Decimal("1e-8")


@dataclass
class PaperOrder:
    """A working order in the paper book (mutable: the venue owns it)."""

    order_id: str
    venue_order_id: str
    product_id: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    remaining: Decimal | None  # base size left; None for quote-sized market orders
    quote_remaining: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    stop_direction: StopDirection | None
    post_only: bool
    expire_time: datetime | None
    # Exit-only BRACKET: ``limit_price`` is the take-profit until the stop triggers, then this
    # (None: a market exit).
    stop_limit_price: Decimal | None = None
    fill_count: int = 0
    evaluated: bool = False  # has met a tick yet (its first evaluation is as a taker)
    triggered: bool = False  # stop-limit or exit-only bracket: the stop was crossed

    def next_trade_id(self) -> str:
        self.fill_count += 1
        return f"{self.venue_order_id}-{self.fill_count}"


# Order types that wait for a stop trigger (a paper BRACKET is always an exit-only one: a
# bracket with an entry works its entry as a LIMIT order).
_STOP_TYPES = (OrderType.STOP_LIMIT, OrderType.BRACKET)


@dataclass(frozen=True, slots=True)
class Execution:
    price: Decimal
    size: Decimal
    fee: Decimal
    liquidity: Liquidity


@dataclass(slots=True)
class MatchResult:
    executions: list[Execution] = field(default_factory=list)
    done: OrderStatus | None = None  # set when the order stops working
    reason: str = ""


def _fee(price: Decimal, size: Decimal, bps: Decimal) -> Decimal:
    return (price * size * bps / BPS).quantize(FEE_QUANTUM)


def _taker_price(
    order: PaperOrder, tick: MarketTick, cfg: PaperConfig, rules: ProductRules
) -> Decimal:
    slip = cfg.slippage_bps / BPS
    if order.side is Side.BUY:
        price = (tick.best_ask * (1 + slip)).quantize(rules.quote_increment, ROUND_CEILING)
        if order.limit_price is not None:
            price = min(price, order.limit_price)
    else:
        price = (tick.best_bid * (1 - slip)).quantize(rules.quote_increment, ROUND_FLOOR)
        if order.limit_price is not None:
            price = max(price, order.limit_price)
    return price


def _marketable(order: PaperOrder, tick: MarketTick) -> bool:
    if order.limit_price is None:
        return True
    if order.side is Side.BUY:
        return tick.best_ask <= order.limit_price
    return tick.best_bid >= order.limit_price


def _stop_crossed(order: PaperOrder, tick: MarketTick) -> bool:
    assert order.stop_price is not None
    if order.stop_direction is StopDirection.DOWN:
        return tick.price <= order.stop_price
    return tick.price >= order.stop_price


def idle_on(order: PaperOrder, tick: MarketTick) -> bool:
    """True when ``tick`` certainly changes nothing for ``order``: a resting limit the trade
    does not reach, or a stop it does not cross, before any expiry. The common case for a
    deep book, decided without calling ``match``."""
    if order.expire_time is not None and tick.time >= order.expire_time:
        return False
    if order.type in _STOP_TYPES and not order.triggered:
        if _stop_crossed(order, tick):
            return False
        if order.type is OrderType.STOP_LIMIT:
            return True
        # An untriggered exit-only bracket also works its take-profit limit (below).
    if not order.evaluated or order.limit_price is None:
        return False
    if order.side is Side.BUY:
        return tick.price > order.limit_price
    return tick.price < order.limit_price


@dataclass(frozen=True, slots=True)
class Wakes:
    """The thresholds at which a tick can change an order, for the book to index:
    ``idle_on(order, tick)`` is False exactly when one of them holds for the tick
    (``holds``). Kept next to ``idle_on``; the two must agree."""

    always: bool = False  # every tick (arriving, market, IOC/FOK, triggered without a limit)
    price_at_most: Decimal | None = None  # tick.price <= this: buy limit, stop DOWN
    price_at_least: Decimal | None = None  # tick.price >= this: sell limit, stop UP
    time_at_least: datetime | None = None  # tick.time >= this: expiry

    def holds(self, tick: MarketTick) -> bool:
        return (
            self.always
            or (self.price_at_most is not None and tick.price <= self.price_at_most)
            or (self.price_at_least is not None and tick.price >= self.price_at_least)
            or (self.time_at_least is not None and tick.time >= self.time_at_least)
        )


def wakes(order: PaperOrder) -> Wakes:
    """When a tick can change ``order`` in its current state (see ``idle_on``)."""
    at_most: Decimal | None = None
    at_least: Decimal | None = None
    always = False
    stop_only = False
    if order.type in _STOP_TYPES and not order.triggered:
        assert order.stop_price is not None
        if order.stop_direction is StopDirection.DOWN:
            at_most = order.stop_price
        else:
            at_least = order.stop_price
        stop_only = order.type is OrderType.STOP_LIMIT
    if not stop_only:
        limit = order.limit_price
        if not order.evaluated or limit is None:
            always = True
        # A stop and a limit on the same side of the price: either one wakes the order.
        elif order.side is Side.BUY:
            at_most = limit if at_most is None else max(at_most, limit)
        else:
            at_least = limit if at_least is None else min(at_least, limit)
    return Wakes(always, at_most, at_least, order.expire_time)


def match(
    order: PaperOrder, tick: MarketTick, cfg: PaperConfig, rules: ProductRules
) -> MatchResult:
    """What ``order`` gets from ``tick``; mutates its remaining size and flags."""
    result = MatchResult()
    if order.expire_time is not None and tick.time >= order.expire_time:
        result.done, result.reason = OrderStatus.EXPIRED, "time in force expired"
        return result
    if order.type in _STOP_TYPES and not order.triggered:
        if _stop_crossed(order, tick):
            order.triggered = True
            order.evaluated = False  # once triggered it arrives as a limit order
            if order.type is OrderType.BRACKET:
                # The take-profit is withdrawn: the stop-loss works what is left.
                order.limit_price = order.stop_limit_price
        elif order.type is OrderType.STOP_LIMIT:
            return result
        # else: an exit-only bracket's take-profit works like any limit order meanwhile

    arriving = not order.evaluated
    order.evaluated = True
    available = tick.size
    if arriving:
        return _arrive(order, tick, cfg, rules, available)
    # Resting limit: fills at its limit, as maker, when a trade prints at or through it.
    assert order.limit_price is not None and order.remaining is not None
    crossed = (
        tick.price <= order.limit_price
        if order.side is Side.BUY
        else tick.price >= order.limit_price
    )
    if not crossed:
        return result
    size = min(order.remaining, available).quantize(rules.base_increment, ROUND_DOWN)
    if size <= 0:
        return result
    price = order.limit_price
    result.executions.append(
        Execution(price, size, _fee(price, size, cfg.maker_fee_bps), Liquidity.MAKER)
    )
    order.remaining -= size
    if order.remaining == 0:
        result.done = OrderStatus.FILLED
    return result


def _arrive(
    order: PaperOrder, tick: MarketTick, cfg: PaperConfig, rules: ProductRules, available: Decimal
) -> MatchResult:
    result = MatchResult()
    tif = order.time_in_force
    # A triggered stop without a limit price (a bracket's market stop-loss) is a market order.
    immediate = (
        order.type is OrderType.MARKET
        or order.limit_price is None
        or tif in (TimeInForce.IOC, TimeInForce.FOK)
    )
    if not _marketable(order, tick):
        if immediate:
            result.done = OrderStatus.CANCELED
            result.reason = f"{tif.value}: not marketable at the top of book"
        return result  # rests
    if order.post_only:
        result.done, result.reason = OrderStatus.REJECTED, "post-only order would cross the book"
        return result
    price = _taker_price(order, tick, cfg, rules)
    if order.remaining is None:  # quote-sized market order
        assert order.quote_remaining is not None
        wanted = (order.quote_remaining / price).quantize(rules.base_increment, ROUND_DOWN)
    else:
        wanted = order.remaining
    if tif is TimeInForce.FOK and wanted > available:
        result.done = OrderStatus.CANCELED
        result.reason = f"FOK: size {wanted} exceeds the {available} available at the top of book"
        return result
    size = min(wanted, available).quantize(rules.base_increment, ROUND_DOWN)
    if size > 0:
        result.executions.append(
            Execution(price, size, _fee(price, size, cfg.taker_fee_bps), Liquidity.TAKER)
        )
    complete = size == wanted and size > 0
    if order.remaining is not None:
        order.remaining -= size
    else:
        assert order.quote_remaining is not None
        order.quote_remaining -= price * size
    if complete:
        result.done = OrderStatus.FILLED
    elif immediate:
        result.done = OrderStatus.CANCELED
        result.reason = (
            f"{tif.value if order.limit_price is not None else 'MARKET'}: "
            f"remainder cancelled ({available} available at the top of book)"
        )
    return result


__all__ = ["ZERO", "Execution", "MatchResult", "PaperOrder", "Wakes", "idle_on", "match", "wakes"]
