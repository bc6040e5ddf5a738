"""The backtest context's cheap reads: indicator tuples and `position`, kept current by the
engine, equal the general reads at every bar, in `on_start`, `on_bar` and `on_fill`."""

from __future__ import annotations

import gc
import math
from typing import Any

import pytest

from tradeplane.backtest.domain import BacktestSettings, FillRule, run_event
from tradeplane.strategies import (
    Bar,
    Fill,
    IndicatorSpec,
    Strategy,
    StrategyContext,
    buy_with_cash,
    close_position,
    indicator_keys,
)

SPECS = (
    IndicatorSpec("fast", "sma", {"period": 3}),
    IndicatorSpec("bb", "bollinger", {"period": 5}),
    IndicatorSpec("slow", "ema", {"period": 8}),
)
KEYS = ("fast", "bb.upper", "bb.middle", "bb.lower", "slow")


def _same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


class Checker(Strategy):
    """Trades often; records whether the cheap reads agree with the general ones."""

    name = "checker"
    display_name = "Checker"

    def __init__(self) -> None:
        super().__init__({})
        self.checks: list[tuple[str, int, bool, float]] = []  # (hook, bar, agree, position)

    def indicators(self) -> tuple[IndicatorSpec, ...]:
        return SPECS

    def _check(self, hook: str, ctx: StrategyContext) -> None:
        keys = ctx.indicator_keys
        now = tuple(ctx.indicator(k) for k in keys)
        before = tuple(ctx.indicator(k, 1) for k in keys)
        agree = (
            keys == KEYS
            and _same(ctx.indicator_values, now)
            and _same(ctx.previous_indicator_values, before)
        )
        self.checks.append((hook, ctx.bar_index, agree, ctx.position))

    def on_start(self, ctx: StrategyContext) -> None:
        self._check("start", ctx)

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        self._check("bar", ctx)
        fast, _upper, middle, _lower, _slow = ctx.indicator_values
        if ctx.position == 0 and fast > middle:
            buy_with_cash(ctx, 0.5)
        elif ctx.position > 0 and fast < middle:
            close_position(ctx)

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        self._check("fill", ctx)


def test_indicator_keys_follow_the_declaration_and_output_order() -> None:
    assert indicator_keys(SPECS) == KEYS


@pytest.mark.parametrize("fill_rule", [FillRule.NEXT_OPEN, FillRule.CLOSE])
def test_cheap_reads_equal_the_general_reads_everywhere(walk: Any, fill_rule: FillRule) -> None:
    strategy = Checker()
    result = run_event(strategy, walk(400, 31), BacktestSettings(1000.0, fill_rule=fill_rule))
    hooks = {hook for hook, *_ in strategy.checks}
    assert hooks == {"start", "bar", "fill"} and len(result.fills) > 10
    assert all(agree for _, _, agree, _ in strategy.checks)
    position = result.position.tolist()
    for hook, bar, _, seen in strategy.checks:
        if hook == "bar" and fill_rule is FillRule.NEXT_OPEN:
            # On bar t (next-open fills) the position is that after bar t's fills.
            assert seen == position[bar]
        elif hook == "fill":
            # A fill reports with reads as of the bar before (or at the close: that bar).
            fill_bar = bar + 1 if fill_rule is FillRule.NEXT_OPEN else bar
            assert seen == position[fill_bar]


def test_the_collector_is_back_on_after_a_run_even_a_failed_one(walk: Any) -> None:
    class Failing(Checker):
        def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
            if ctx.bar_index == 50:
                raise RuntimeError("strategy bug")
            super().on_bar(ctx, bar)

    assert gc.isenabled()
    run_event(Checker(), walk(100, 32), BacktestSettings(1000.0))
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="strategy bug"):
        run_event(Failing(), walk(100, 32), BacktestSettings(1000.0))
    assert gc.isenabled()
