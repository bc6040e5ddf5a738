"""Moving-average crossover (SMA and EMA)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.strategies.api import (
    Bar,
    BoolArray,
    Strategy,
    StrategyContext,
    buy_with_cash,
    close_position,
)
from tradeplane.strategies.builtin.common import SIZE_FRACTION, period
from tradeplane.strategies.indicators import FloatArray, IndicatorSpec
from tradeplane.strategies.params import ParamValue
from tradeplane.strategies.registry import register


class _Crossover(Strategy):
    average: ClassVar[str]
    parameters = (
        period("fast_period", 10, "Bars in the fast moving average."),
        period("slow_period", 30, "Bars in the slow moving average.", minimum=2),
        SIZE_FRACTION,
    )

    def check_params(self, params: Mapping[str, ParamValue]) -> None:
        if int(params["fast_period"]) >= int(params["slow_period"]):
            raise InvalidArgument(
                "params.fast_period",
                f"must be less than slow_period ({params['slow_period']})",
            )

    def indicators(self) -> tuple[IndicatorSpec, ...]:
        return (
            IndicatorSpec("fast", self.average, {"period": int(self.params["fast_period"])}),
            IndicatorSpec("slow", self.average, {"period": int(self.params["slow_period"])}),
        )

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        # The tuple reads are the hot path of a million-bar backtest (see api).
        fast, slow = ctx.indicator_values
        if fast > slow:
            if ctx.position == 0.0:
                was_fast, was_slow = ctx.previous_indicator_values
                if was_fast <= was_slow:
                    buy_with_cash(ctx, self.entry_fraction(), "fast crossed above slow")
        elif fast < slow and ctx.position > 0.0:
            was_fast, was_slow = ctx.previous_indicator_values
            if was_fast >= was_slow:
                close_position(ctx, "fast crossed below slow")

    def signals(
        self, arrays: Mapping[str, FloatArray], params: Mapping[str, ParamValue]
    ) -> tuple[BoolArray, BoolArray]:
        fast, slow = arrays["fast"], arrays["slow"]
        entries = np.zeros(len(fast), dtype=np.bool_)
        exits = np.zeros(len(fast), dtype=np.bool_)
        entries[1:] = (fast[1:] > slow[1:]) & (fast[:-1] <= slow[:-1])
        exits[1:] = (fast[1:] < slow[1:]) & (fast[:-1] >= slow[:-1])
        return entries, exits


@register
class SmaCrossover(_Crossover):
    """Trend following with two simple moving averages of the close.

    Goes long with `size_fraction` of the cash when the fast SMA crosses above the slow SMA
    (fast > slow on this bar, fast <= slow on the previous one) and sells the whole position
    when it crosses back below. Long only; flat between signals. Works in trending markets,
    loses to whipsaws in ranges. Also runs vectorised.
    """

    name = "sma_crossover"
    display_name = "SMA crossover"
    average = "sma"


@register
class EmaCrossover(_Crossover):
    """Trend following with two exponential moving averages of the close.

    The same rules as the SMA crossover with EMAs (alpha = 2 / (period + 1)), which react
    faster to new prices: earlier entries and exits, more whipsaws. Also runs vectorised.
    """

    name = "ema_crossover"
    display_name = "EMA crossover"
    average = "ema"
