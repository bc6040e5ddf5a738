"""A strategy cannot see the future: not through the context, not through the caller's data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tradeplane.backtest.domain import BacktestSettings, BarSeries, run_event
from tradeplane.strategies import (
    Bar,
    IndicatorSpec,
    Strategy,
    StrategyContext,
    buy_with_cash,
    close_position,
)


class Recorder(Strategy):
    """Records everything it can read at each bar and trades on it."""

    name = "recorder"
    display_name = "Recorder"

    def __init__(self) -> None:
        super().__init__({})
        self.seen: list[tuple[float, ...]] = []

    def indicators(self) -> tuple[IndicatorSpec, ...]:
        return (
            IndicatorSpec("ema", "ema", {"period": 5}),
            IndicatorSpec("rsi", "rsi", {"period": 3}),
            IndicatorSpec("bb", "bollinger", {"period": 4}),
        )

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        reads = [*bar, ctx.position, ctx.cash, ctx.equity]
        for key in ("ema", "rsi", "bb.upper", "bb.lower"):
            reads += [ctx.indicator(key, ago) for ago in range(3)]
        reads += [ctx.price(field, 1) for field in ("open", "high", "low", "close")]
        reads += [*ctx.indicator_values, *ctx.previous_indicator_values]
        self.seen.append(tuple(reads))
        if ctx.position == 0 and ctx.indicator("rsi") < 40:
            buy_with_cash(ctx, 0.9)
        elif ctx.position > 0 and ctx.indicator("rsi") > 60:
            close_position(ctx)


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


def test_changing_future_bars_changes_nothing_before_them(walk: Any) -> None:
    bars = walk(600, 21)
    cut = 400
    rng = np.random.default_rng(0)
    factor = np.ones(len(bars))
    factor[cut + 1 :] = rng.uniform(0.5, 1.5, len(bars) - cut - 1)
    other = BarSeries.from_arrays(
        bars.time,
        bars.open * factor,
        bars.high * factor,
        bars.low * factor,
        bars.close * factor,
        bars.volume,
    )
    settings = BacktestSettings(1000.0, commission_bps=5.0)
    first, second = Recorder(), Recorder()
    a = run_event(first, bars, settings)
    b = run_event(second, other, settings)
    assert all(
        _same(x, y) for x, y in zip(first.seen[: cut + 1], second.seen[: cut + 1], strict=True)
    )
    assert not all(_same(x, y) for x, y in zip(first.seen, second.seen, strict=True))
    assert [f for f in a.fills if f.bar_index <= cut] == [f for f in b.fills if f.bar_index <= cut]
    np.testing.assert_array_equal(a.equity[: cut + 1], b.equity[: cut + 1])


def test_mutating_the_callers_arrays_during_a_run_changes_nothing(walk: Any) -> None:
    source = walk(500, 22)
    columns = {k: np.array(v) for k, v in source.columns().items()}
    bars = BarSeries.from_arrays(source.time, **columns)

    class Vandal(Recorder):
        def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
            if ctx.bar_index == 10:  # rewrite "the future" in the caller's arrays
                for values in columns.values():
                    values[11:] *= 3.0
                with pytest.raises(ValueError):
                    bars.close[11] = 1.0  # and the run's own columns are read-only
            super().on_bar(ctx, bar)

    clean, vandal = Recorder(), Vandal()
    a = run_event(clean, source, BacktestSettings(1000.0))
    b = run_event(vandal, bars, BacktestSettings(1000.0))
    assert all(_same(x, y) for x, y in zip(clean.seen, vandal.seen, strict=True))
    assert a.fills == b.fills


def test_reading_a_future_bar_through_the_context_is_refused(walk: Any) -> None:
    class Peeker(Recorder):
        def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
            ctx.indicator("ema", -1)

    with pytest.raises(ValueError, match="not available"):
        run_event(Peeker(), walk(50, 23), BacktestSettings(1000.0))

    class PricePeeker(Recorder):
        def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
            ctx.price("close", -1)

    with pytest.raises(ValueError, match="not available"):
        run_event(PricePeeker(), walk(50, 23), BacktestSettings(1000.0))


def test_reads_before_the_first_bar_are_nan_not_the_last_bar(walk: Any) -> None:
    class Early(Recorder):
        def on_start(self, ctx: StrategyContext) -> None:
            self.start_reads = (
                ctx.indicator("ema"),
                ctx.price("close"),
                ctx.indicator("rsi", 5),
                *ctx.indicator_values,
                *ctx.previous_indicator_values,
            )

    strategy = Early()
    run_event(strategy, walk(50, 24), BacktestSettings(1000.0))
    assert len(strategy.start_reads) == 3 + 2 * 5  # ema, rsi, bb.upper/middle/lower
    assert all(math.isnan(x) for x in strategy.start_reads)
    assert all(math.isnan(x) for x in strategy.seen[0][-5:])  # previous values at bar 0
    assert math.isnan(strategy.seen[0][-11])  # previous close at bar 0
