"""Bollinger band breakout."""

from __future__ import annotations

from collections.abc import Mapping

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
from tradeplane.strategies.params import Parameter, ParamType, ParamValue
from tradeplane.strategies.registry import register


@register
class BollingerBreakout(Strategy):
    """Rides volatility breakouts out of the Bollinger bands.

    The bands are the `period`-bar SMA of the close (middle) plus and minus `stddev`
    population standard deviations. Goes long with `size_fraction` of the cash when a bar
    closes above the upper band, and sells everything when a bar closes below the middle
    band (the move has faded back to its mean). Long only. Also runs vectorised.
    """

    name = "bollinger_breakout"
    display_name = "Bollinger breakout"
    parameters = (
        period("period", 20, "Bars in the moving average and deviation.", minimum=2),
        Parameter(
            "stddev", ParamType.FLOAT, 2.0, "Band width in standard deviations.", 0.1, 10.0, 0.1
        ),
        SIZE_FRACTION,
    )

    def indicators(self) -> tuple[IndicatorSpec, ...]:
        params = {"period": int(self.params["period"]), "stddev": float(self.params["stddev"])}
        return (IndicatorSpec("bb", "bollinger", params),)

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        upper, middle, _lower = ctx.indicator_values  # bb.upper, bb.middle, bb.lower
        position = ctx.position
        if position == 0 and bar.close > upper:
            buy_with_cash(ctx, self.entry_fraction(), "close above upper band")
        elif position > 0 and bar.close < middle:
            close_position(ctx, "close back below the middle band")

    def signals(
        self, arrays: Mapping[str, FloatArray], params: Mapping[str, ParamValue]
    ) -> tuple[BoolArray, BoolArray]:
        close = arrays["close"]
        return close > arrays["bb.upper"], close < arrays["bb.middle"]
