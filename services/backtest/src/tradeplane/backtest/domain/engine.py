"""The event-driven engine: one strategy, bar by bar, with no look-ahead.

For each bar t, in this order:

1. orders working at the start of bar t are matched against its open/high/low (see
   `broker`); the strategy's `on_fill` runs for each fill while the context still reads as
   of bar t-1's close (it learns its fill price, never bar t's close);
2. `on_bar(ctx, bar t)` runs with the context at bar t's close: indicator and price reads of
   bars <= t only. With FillRule.CLOSE its market orders fill at once at bar t's close
   (then `on_fill`); otherwise they work from bar t+1 and fill at its open;
3. cash and position after the bar are what the equity curve records.

Speed (about 1 us a bar for the SMA crossover, orders included): indicators are computed
once, vectorised, before the loop; the loop zips read-only memoryviews of the columns and
indicators, so each bar's `Bar` and indicator tuple (`ctx.indicator_values`) are built in C;
`ctx.position` is a plain attribute refreshed after fills; order matching is skipped while
nothing is working; the automatic garbage collector is paused (see `run_event`). The input
columns are private read-only copies, so nothing the strategy (or anyone else) does to the
caller's arrays during the run can leak future data in.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

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
    indicator_keys,
)

NAN = math.nan
_MARKET = OrderType.MARKET  # an enum member through its class costs ~70 ns on 3.11
ProgressCallback = Callable[[int, int], None]
# Bars between progress callbacks: rare enough to cost nothing in the loop.
PROGRESS_EVERY = 65_536


def _view(values: npt.NDArray[Any], dtype: type = np.float64) -> Sequence[Any]:
    """A read-only memoryview of `values` yielding Python floats (ints for int64): zipping
    such views builds each bar in C at about half the cost of `tolist()` plus list
    iteration, and holds no per-value objects (32 MB a column of a million as a list).
    Input that is writable (or a view of something that may be) is copied first, so nobody
    can change it under the run; a BarSeries' columns are private read-only copies already."""
    flags = values.flags
    if values.dtype != dtype or flags.writeable or not flags.owndata or not flags.c_contiguous:
        values = np.array(values, dtype=dtype, order="C")
        values.setflags(write=False)
    return values.data


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
    `position`, `indicator_values` and `previous_indicator_values` are plain attributes the
    engine keeps current (reading them costs no call).
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
        "indicator_keys",
        "indicator_values",
        "position",
        "previous_indicator_values",
    )

    def __init__(
        self,
        broker: Broker,
        times: Sequence[int],
        columns: Mapping[str, Sequence[float]],
        indicators: Mapping[str, Sequence[float]],
        keys: tuple[str, ...] | None = None,
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
        self.indicator_keys: tuple[str, ...] = tuple(indicators) if keys is None else keys
        nothing = (NAN,) * len(self.indicator_keys)
        self.indicator_values: tuple[float, ...] = nothing
        self.previous_indicator_values: tuple[float, ...] = nothing
        self.position: float = self._portfolio.quantity

    @property
    def bar_index(self) -> int:
        return self._i

    @property
    def time(self) -> int:
        return self._times[self._i] if self._i >= 0 else 0

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
            i = self._i
            return values[i] if i >= 0 else NAN  # i is -1 in on_start
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
        if self._close_now and request.type is _MARKET:
            fill = self._broker.fill_market(order, self._columns["close"][stamp], stamp, time)
            if fill is not None:
                self.position = self._portfolio.quantity
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
    specs = strategy.indicators()
    if indicators is None:
        indicators = compute_all(specs, bars.columns())
    # Declaration order (that of `indicator_values`), then anything else the caller passed.
    keys = tuple(dict.fromkeys((*indicator_keys(specs), *indicators)))
    broker = Broker(settings)
    portfolio = broker.portfolio
    n = len(bars)
    times: Sequence[int] = _view(bars.time, np.int64)
    columns = {name: _view(values) for name, values in bars.columns().items()}
    # A plain dict: CPython's fast path for indexing applies to exact dicts only.
    declared = {k: _view(indicators[k]) for k in keys}
    ctx = BacktestContext(broker, times, columns, declared, keys)
    o, h, lo, c, v = (columns[k] for k in ("open", "high", "low", "close", "volume"))
    close_rule = settings.fill_rule is FillRule.CLOSE
    on_bar = strategy.on_bar
    on_fill = strategy.on_fill
    # The base on_fill does nothing: then fills need no `Fill` tuple and no call.
    hears_fills = getattr(on_fill, "__func__", None) is not Strategy.on_fill
    match_bar = broker.match_bar
    working, pending = broker.working, ctx._fills

    strategy.on_start(ctx)  # its orders are stamped bar -1 and work from bar 0
    ctx._close_now = close_rule
    # Each bar's Bar and indicator tuple, built in C.
    bars_iter = map(partial(tuple.__new__, Bar), zip(times, o, h, lo, c, v, strict=True))
    values_iter = zip(*declared.values(), strict=True) if keys else repeat(())
    previous = ctx.indicator_values
    # The run's orders, fills and trades are tens of thousands of long-lived objects: with
    # the automatic collector on, each growth step triggers a full collection over the whole
    # heap (a third of a million-bar run's time). So it is off during the loop, and each
    # chunk's young objects are collected at its end (cyclic garbage a strategy makes is
    # still freed; nothing the engine makes is cyclic). Another thread's run may turn it
    # back on early: that only costs time.
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    try:
        for start in range(0, n, PROGRESS_EVERY):
            stop = min(n, start + PROGRESS_EVERY)
            # The range comes first: the zip stops without taking a bar of the next chunk.
            for i, bar, now in zip(range(start, stop), bars_iter, values_iter, strict=False):
                if working:
                    ctx._i, ctx._reporting, ctx._close_now = i - 1, True, False
                    fills = match_bar(i, bar[0], bar[1], bar[2], bar[3])
                    if fills:
                        ctx.position = portfolio.quantity
                        if hears_fills:
                            for fill in fills:
                                on_fill(ctx, _strategy_fill(fill))
                    ctx._reporting, ctx._close_now = False, close_rule
                ctx._i = i
                ctx.previous_indicator_values = previous
                ctx.indicator_values = previous = now
                on_bar(ctx, bar)
                if pending:
                    if hears_fills:
                        while pending:
                            on_fill(ctx, _strategy_fill(pending.pop(0)))
                    else:
                        pending.clear()
            if collecting:
                gc.collect(1)
            if progress is not None:
                progress(stop, n)
    finally:
        if collecting:
            gc.enable()
    return BacktestResult(settings, bars, indicators, broker, vectorised=False)
