"""The look-ahead check flags a strategy whose signals peek at the next bar, and passes the
built-in ones."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tradeplane.backtest.domain import BacktestSettings, BarSeries
from tradeplane.backtest.domain.look_ahead import cut_points, look_ahead_check
from tradeplane.strategies import (
    Bar,
    BoolArray,
    FloatArray,
    IndicatorSpec,
    ParamValue,
    Strategy,
    StrategyContext,
    create_strategy,
)


def _bars(n: int = 400) -> BarSeries:
    rng = np.random.default_rng(4)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    return BarSeries.from_arrays(np.arange(n) * 60, close, close * 1.002, close * 0.998, close)


class Peeker(Strategy):
    """Buys when the NEXT close is higher: only possible by looking ahead."""

    name = "peeker"
    display_name = "Peeker"

    def indicators(self) -> tuple[IndicatorSpec, ...]:
        return ()

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        raise AssertionError("runs vectorised")

    def signals(
        self, arrays: Mapping[str, FloatArray], params: Mapping[str, ParamValue]
    ) -> tuple[BoolArray, BoolArray]:
        close = arrays["close"]
        up = np.zeros(len(close), dtype=np.bool_)
        up[:-1] = close[1:] > close[:-1]
        return up, ~up


def test_peeking_signals_are_reported() -> None:
    checked, violations = look_ahead_check(Peeker, _bars(), BacktestSettings(1000.0), 20)
    assert checked == 20
    assert violations
    assert all(v.with_future != v.without_future for v in violations)
    assert {v.bar for v in violations} <= set(cut_points(400, 20))


def test_builtin_strategies_pass() -> None:
    for name, params in [
        ("sma_crossover", {"fast_period": 5, "slow_period": 20}),
        ("rsi_mean_reversion", {"stop_loss_pct": 2.0}),
        ("grid", {"spacing_pct": 0.2}),
    ]:
        checked, violations = look_ahead_check(
            lambda n=name, p=params: create_strategy(n, p), _bars(), BacktestSettings(1000.0), 15
        )
        assert checked == 15 and violations == [], name
