"""The event-driven engine: one strategy, bar by bar, with no look-ahead.

For each bar t, in this order:

1. orders working at the start of bar t are matched against its open/high/low (see
   `broker`); the strategy's `on_fill` runs for each fill while the context still reads as
   of bar t-1's close (it learns its fill price, never bar t's close);
2. `on_bar(ctx, bar t)` runs with the context at bar t's close: indicator and price reads of
   bars <= t only. With FillRule.CLOSE its market orders fill at once at bar t's close
   (then `on_fill`); otherwise they work from bar t+1 and fill at its open;
3. cash and position after the bar are what the equity curve records.

Indicators are computed once, vectorised, before the loop; the loop itself only indexes
plain lists. The input columns are private read-only copies, so nothing the strategy (or
anyone else) does to the caller's arrays during the run can leak future data in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import islice

from tradeplane.backtest.domain.bars import BarSeries, FloatArray
from tradeplane.backtest.domain.broker import Broker
from tradeplane.backtest.domain.portfolio import FillRecord
from tradeplane.backtest.domain.results import BacktestResult
from tradeplane.backtest.domain.settings import BacktestSettings, FillRule
from tradeplane.strategies import (
    Bar,
    Fill,
    OrderRequest,
    OrderType,
    Strategy,
    WorkingOrder,
    compute_all,
)

NAN = math.nan
ProgressCallback = Callable[[int, int], None]
# Bars between progress callbacks: rare enough to cost nothing in the loop.
PROGRESS_EVERY = 65_536


def _padded(values: FloatArray) -> list[float]:
    # A trailing NaN makes index -1 (before the first bar) read NaN instead of the last bar.
    padded: list[float] = values.tolist()
    padded.append(NAN)
    return padded


def _strategy_fill(record: FillRecord) -> Fill:
    return Fill(
        record.order_id,
        record.side,
        record.price,
        record.size,
        record.fee,
        record.bar_index,
        record.time,
    )


class BacktestContext:
    """The backtest's `StrategyContext`.

    `_i` is the bar whose close the strategy reads as "now". While the fills of bar t are
    reported (`_reporting`), reads are as of bar t-1 but new orders are stamped bar t.
    """

    __slots__ = (
        "_broker",
        "_close_now",
        "_columns",
        "_fills",
        "_i",
        "_indicators",
        "_portfolio",
        "_reporting",
        "_times",
    )

    def __init__(
        self,
        broker: Broker,
        times: list[int],
        columns: Mapping[str, list[float]],
        indicators: Mapping[str, list[float]],
    ) -> None:
        self._broker = broker
        self._portfolio = broker.portfolio
        self._times = times
        self._columns = columns
        self._indicators = indicators
        self._i = -1
        self._reporting = False
        self._close_now = False  # market orders fill at once at the current close
        self._fills: list[FillRecord] = []  # close fills waiting for on_fill

    @property
    def bar_index(self) -> int:
        return self._i

    @property
    def time(self) -> int:
        return self._times[self._i] if self._i >= 0 else 0

    @property
    def position(self) -> float:
        return self._portfolio.quantity

    @property
    def average_entry_price(self) -> float:
        return self._portfolio.average_price

    @property
    def cash(self) -> float:
        return self._portfolio.cash

    @property
    def equity(self) -> float:
        portfolio = self._portfolio
        if self._i < 0 or not portfolio.quantity:
            return portfolio.cash
        return portfolio.cash + portfolio.quantity * self._columns["close"][self._i]

    @property
    def open_orders(self) -> Sequence[WorkingOrder]:
        return [WorkingOrder(o.order_id, o.request, o.submit_bar) for o in self._broker.working]

    def indicator(self, key: str, ago: int = 0) -> float:
        try:
            values = self._indicators[key]
        except KeyError:
            raise KeyError(f"indicator {key!r} was not declared by the strategy") from None
        if not ago:
            return values[self._i]  # index -1 is the NaN pad
        if ago < 0:
            raise ValueError("ago must be >= 0: bars after the current one are not available")
        j = self._i - ago
        return values[j] if j >= 0 else NAN

    def price(self, field: str = "close", ago: int = 0) -> float:
        try:
            values = self._columns[field]
        except KeyError:
            raise KeyError(f"no price field {field!r}") from None
        if ago < 0:
            raise ValueError("ago must be >= 0: bars after the current one are not available")
        j = self._i - ago
        return values[j] if j >= 0 else NAN

    def _stamp(self) -> int:
        return self._i + 1 if self._reporting else self._i

    def submit(self, request: OrderRequest) -> str:
        stamp = self._stamp()
        time = self._times[stamp] if stamp >= 0 else 0
        order = self._broker.submit(request, stamp, time)
        if self._close_now and request.type is OrderType.MARKET:
            fill = self._broker.fill_market(order, self._columns["close"][stamp], stamp, time)
            if fill is not None:
                self._fills.append(fill)
        return order.order_id

    def cancel(self, order_id: str) -> bool:
        stamp = self._stamp()
        return self._broker.cancel(order_id, stamp, self._times[stamp] if stamp >= 0 else 0)


def run_event(
    strategy: Strategy,
    bars: BarSeries,
    settings: BacktestSettings,
    *,
    indicators: Mapping[str, FloatArray] | None = None,
    progress: ProgressCallback | None = None,
) -> BacktestResult:
    """Runs `strategy` bar by bar over `bars`. `progress(done, total)` is called every
    PROGRESS_EVERY bars and at the end; an exception it raises (e.g. a cancellation) stops
    the run."""
    if indicators is None:
        indicators = compute_all(strategy.indicators(), bars.columns())
    broker = Broker(settings)
    n = len(bars)
    times: list[int] = bars.time.tolist()
    columns = {name: _padded(values) for name, values in bars.columns().items()}
    # A plain dict: CPython's fast path for indexing applies to exact dicts only.
    declared = {k: _padded(v) for k, v in indicators.items()}
    ctx = BacktestContext(broker, times, columns, declared)
    o, h, lo, c, v = (columns[k] for k in ("open", "high", "low", "close", "volume"))
    close_rule = settings.fill_rule is FillRule.CLOSE
    on_bar, on_fill = strategy.on_bar, strategy.on_fill
    working, pending = broker.working, ctx._fills

    strategy.on_start(ctx)  # its orders are stamped bar -1 and work from bar 0
    ctx._close_now = close_rule
    # The Bar tuples, built in C (the price lists carry one NaN pad more than `times`).
    bars_iter = map(partial(tuple.__new__, Bar), zip(times, o, h, lo, c, v, strict=False))
    for start in range(0, n, PROGRESS_EVERY):
        stop = min(n, start + PROGRESS_EVERY)
        for i, bar in enumerate(islice(bars_iter, stop - start), start):
            if working:
                ctx._i, ctx._reporting, ctx._close_now = i - 1, True, False
                for fill in broker.match_bar(i, bar[0], bar[1], bar[2], bar[3]):
                    on_fill(ctx, _strategy_fill(fill))
                ctx._reporting, ctx._close_now = False, close_rule
            ctx._i = i
            on_bar(ctx, bar)
            while pending:
                on_fill(ctx, _strategy_fill(pending.pop(0)))
        if progress is not None:
            progress(stop, n)
    return BacktestResult(settings, bars, indicators, broker, vectorised=False)
