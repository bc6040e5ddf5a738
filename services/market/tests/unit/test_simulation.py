"""The simulated market: determinism, sane prices, history candles."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from tradeplane.market.domain.candles import Candle
from tradeplane.market.domain.history import history_candles, merge_candles
from tradeplane.market.domain.intervals import ALL_INTERVALS, Interval, epoch_seconds
from tradeplane.market.domain.products import catalog_products
from tradeplane.market.domain.simulation import SimulatedMarket
from tradeplane.market.domain.ticks import Side

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PRODUCTS = catalog_products(["BTC-USD", "ETH-USD", "DOGE-USD"])


def market(seed: int = 42) -> SimulatedMarket:
    return SimulatedMarket(PRODUCTS, seed=seed, tick_rate=5)


def test_same_seed_same_ticks_other_seed_other_ticks() -> None:
    a, b, c = market(), market(), market(seed=7)
    ticks_a = a.next_ticks("BTC-USD", 50, NOW)
    assert ticks_a == b.next_ticks("BTC-USD", 50, NOW)
    assert ticks_a != c.next_ticks("BTC-USD", 50, NOW)


def test_ticks_respect_increments_spread_and_side() -> None:
    m = market()
    for product in PRODUCTS:
        for tick in m.next_ticks(product.product_id, 200, NOW):
            assert tick.best_bid < tick.best_ask
            assert tick.price == (tick.best_ask if tick.side is Side.BUY else tick.best_bid)
            assert tick.price % product.quote_increment == 0
            assert tick.size % product.base_increment == 0
            assert tick.size >= product.min_size
    ids = [t.trade_id for t in m.next_ticks("BTC-USD", 3, NOW)]
    assert ids == ["201", "202", "203"]


def test_volatility_is_realistic() -> None:
    m = SimulatedMarket(PRODUCTS, seed=1, tick_rate=1)
    prices = np.array([float(t.price) for t in m.next_ticks("BTC-USD", 86_400, NOW)])
    daily_move = abs(prices[-1] / prices[0] - 1)
    assert daily_move < 0.15  # 55% annual vol: a day moves ~3%, never 15%


def test_history_is_deterministic_per_window_and_consistent() -> None:
    start = epoch_seconds(NOW) - 2 * 86400
    h1 = market().minute_history("ETH-USD", start, 2880)
    h2 = market().minute_history("ETH-USD", start, 2880)
    assert np.array_equal(h1.close, h2.close)
    assert len(h1) == 2880 and h1.start[0] == start and np.all(np.diff(h1.start) == 60)
    assert np.all(h1.high >= np.maximum(h1.open, h1.close))
    assert np.all(h1.low <= np.minimum(h1.open, h1.close))
    assert np.array_equal(h1.open[1:], h1.close[:-1])  # continuous path
    assert np.all(h1.trade_count >= 1) and np.all(h1.volume > 0)


def test_history_candles_cover_every_interval_and_mark_the_open_bucket() -> None:
    end = epoch_seconds(NOW) + 3600 + 120  # 01:02: the day, 6h, 1h buckets are still open
    start = end - 86400 - 3600
    product = PRODUCTS[0]
    history = market().minute_history(product.product_id, start, (end - start) // 60)
    candles = history_candles(history, product, ALL_INTERVALS, end)
    by_interval = {i: [c for c in candles if c.interval is i] for i in ALL_INTERVALS}
    assert len(by_interval[Interval.ONE_MINUTE]) == len(history)
    assert all(c.closed for c in by_interval[Interval.ONE_MINUTE])
    hours = by_interval[Interval.ONE_HOUR]
    assert hours[-1].closed is False and all(c.closed for c in hours[:-1])
    assert sum(c.trade_count for c in hours) == int(history.trade_count.sum())
    days = by_interval[Interval.ONE_DAY]
    assert [c.closed for c in days] == [True, False]
    assert days[-1].start == NOW
    assert days[-1].close == Decimal(f"{history.close[-1]:.2f}")


def test_merge_candles_joins_two_parts_of_a_bucket() -> None:
    def part(o: str, h: str, lo: str, c: str, v: str, n: int, closed: bool) -> Candle:
        return Candle("BTC-USD", Interval.ONE_HOUR, NOW, *map(Decimal, (o, h, lo, c, v)), n, closed)

    earlier = part("100", "110", "95", "105", "2", 10, False)
    later = part("106", "108", "90", "101", "3", 7, True)
    merged = merge_candles(earlier, later)
    assert merged == part("100", "110", "90", "101", "5", 17, True)
