"""A seeded random-walk market: live ticks and vectorised 1-minute history.

Prices follow geometric Brownian motion with each product's annual volatility. Trade sizes are
lognormal around the product's mean size; the aggressor side leans with the price move; the
book's best bid/ask sit half a spread either side of the mid. The same seed gives the same
sequence of ticks, and the same (seed, window) gives the same history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from tradeplane.market.domain.products import CATALOG, Product, SimulationProfile
from tradeplane.market.domain.ticks import Side, Tick

SECONDS_PER_YEAR = 365.25 * 24 * 3600
HISTORY_SUBSTEPS = 12  # price samples per simulated minute (for high/low)
SIZE_SIGMA = 1.0  # lognormal shape of trade sizes

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def decimals_of(increment: Decimal) -> int:
    exponent = increment.normalize().as_tuple().exponent
    return max(0, -int(exponent))


def format_fixed(values: FloatArray, decimals: int) -> list[str]:
    """Floats to decimal strings with a fixed number of places (vectorised rounding)."""
    rounded = np.round(values, decimals)
    fmt = f"{{:.{decimals}f}}"
    return [fmt.format(v) for v in rounded.tolist()]


@dataclass(frozen=True, slots=True)
class MinuteHistory:
    """1-minute OHLCV columns for one product; prices already rounded to the price increment."""

    product_id: str
    start: IntArray  # epoch seconds of each minute
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    trade_count: IntArray

    def __len__(self) -> int:
        return len(self.start)


@dataclass(slots=True)
class _ProductState:
    product: Product
    profile: SimulationProfile
    rng: np.random.Generator
    price: float
    trade_counter: int
    price_decimals: int
    size_decimals: int


class SimulatedMarket:
    """Pure and deterministic: the caller supplies the clock (`now`) and the tick counts."""

    def __init__(self, products: list[Product], *, seed: int, tick_rate: float) -> None:
        if tick_rate <= 0:
            raise ValueError("tick_rate must be positive")
        self.seed = seed
        self.tick_rate = tick_rate
        self.products = products
        self._index = {p.product_id: i for i, p in enumerate(products)}
        self._states: dict[str, _ProductState] = {}
        for i, product in enumerate(products):
            profile = CATALOG[product.product_id][1]
            self._states[product.product_id] = _ProductState(
                product=product,
                profile=profile,
                rng=np.random.default_rng([seed, i, 1]),
                price=profile.start_price,
                trade_counter=0,
                price_decimals=decimals_of(product.quote_increment),
                size_decimals=decimals_of(product.base_increment),
            )

    def last_price(self, product_id: str) -> float:
        return self._states[product_id].price

    def resume_from(self, product_id: str, price: float, trade_counter: int) -> None:
        """Continue the walk from a stored price (e.g. the last backfilled close)."""
        state = self._states[product_id]
        state.price = price
        state.trade_counter = trade_counter

    def half_spread(self, product_id: str, price: float | None = None) -> float:
        state = self._states[product_id]
        mid = state.price if price is None else price
        increment = float(state.product.quote_increment)
        return max(mid * state.profile.spread_bps / 2e4, increment)

    def next_ticks(self, product_id: str, count: int, now: datetime) -> list[Tick]:
        """The next `count` ticks of a product (one time step of 1/tick_rate each), stamped
        `now`. Vectorised over the count so bursts stay cheap."""
        if count <= 0:
            return []
        state = self._states[product_id]
        profile = state.profile
        dt = 1.0 / (self.tick_rate * SECONDS_PER_YEAR)
        sigma = profile.annual_volatility
        shocks = state.rng.standard_normal(count)
        log_returns = -0.5 * sigma * sigma * dt + sigma * math.sqrt(dt) * shocks
        mids = state.price * np.exp(np.cumsum(log_returns))
        # The taker leans with the move: up-moves are mostly buys.
        buy = state.rng.random(count) < 1.0 / (1.0 + np.exp(-3.0 * shocks))
        mu = math.log(profile.mean_trade_size) - 0.5 * SIZE_SIGMA**2
        sizes = state.rng.lognormal(mu, SIZE_SIGMA, count)
        half = np.maximum(mids * profile.spread_bps / 2e4, float(state.product.quote_increment))
        bids, asks = mids - half, mids + half
        prices = np.where(buy, asks, bids)
        pd, sd = state.price_decimals, state.size_decimals
        min_size = float(state.product.min_size)
        sizes = np.maximum(sizes, min_size)
        price_s = format_fixed(prices, pd)
        size_s = format_fixed(sizes, sd)
        bid_s = format_fixed(bids, pd)
        ask_s = format_fixed(asks, pd)
        ticks = [
            Tick(
                product_id=product_id,
                trade_id=str(state.trade_counter + i + 1),
                time=now,
                price=Decimal(price_s[i]),
                size=Decimal(size_s[i]),
                side=Side.BUY if buy[i] else Side.SELL,
                best_bid=Decimal(bid_s[i]),
                best_ask=Decimal(ask_s[i]),
            )
            for i in range(count)
        ]
        state.price = float(mids[-1])
        state.trade_counter += count
        return ticks

    def minute_history(
        self, product_id: str, start_minute: int, minutes: int, start_price: float | None = None
    ) -> MinuteHistory:
        """`minutes` one-minute candles from `start_minute` (epoch seconds, minute aligned),
        generated at once with numpy. Seeded by (seed, product, start_minute) so the same
        window gives the same candles."""
        if start_minute % 60:
            raise ValueError("start_minute must be aligned to a minute")
        state = self._states[product_id]
        profile = state.profile
        price0 = profile.start_price if start_price is None else start_price
        rng = np.random.default_rng([self.seed, self._index[product_id], 2, start_minute])
        k = HISTORY_SUBSTEPS
        dt = 60.0 / k / SECONDS_PER_YEAR
        sigma = profile.annual_volatility
        steps = rng.standard_normal((minutes, k))
        log_returns = -0.5 * sigma * sigma * dt + sigma * math.sqrt(dt) * steps
        path = price0 * np.exp(np.cumsum(log_returns.ravel())).reshape(minutes, k)
        close = path[:, -1]
        open_ = np.empty(minutes)
        if minutes:
            open_[0] = price0
            open_[1:] = close[:-1]
        high = np.maximum(open_, path.max(axis=1))
        low = np.minimum(open_, path.min(axis=1))
        trade_count = np.maximum(rng.poisson(self.tick_rate * 60.0, minutes), 1).astype(np.int64)
        # Sum of n lognormal sizes ~ n * mean, with a little noise.
        volume = trade_count * profile.mean_trade_size * rng.lognormal(-0.02, 0.2, minutes)
        pd = state.price_decimals
        return MinuteHistory(
            product_id=product_id,
            start=start_minute + 60 * np.arange(minutes, dtype=np.int64),
            open=np.round(open_, pd),
            high=np.round(high, pd),
            low=np.round(low, pd),
            close=np.round(close, pd),
            volume=np.round(volume, state.size_decimals),
            trade_count=trade_count,
        )
