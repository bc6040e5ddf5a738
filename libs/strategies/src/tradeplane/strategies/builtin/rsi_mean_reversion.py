"""RSI mean reversion."""

from __future__ import annotations

from collections.abc import Mapping

from tradeplane.runtime.errors import InvalidArgument
from tradeplane.strategies.api import (
    Bar,
    BoolArray,
    Fill,
    OrderRequest,
    OrderType,
    Side,
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
class RsiMeanReversion(Strategy):
    """Buys oversold dips and sells the bounce, judged by the RSI of the close.

    Goes long with `size_fraction` of the cash when RSI(`rsi_period`) is below `oversold`
    and sells everything when it rises above `exit_level`. With `stop_loss_pct` > 0 a
    stop-market sell rests `stop_loss_pct` percent below the entry price from the entry fill
    on, and is cancelled when the RSI exit fires first. Long only. Without a stop loss it
    also runs vectorised.
    """

    name = "rsi_mean_reversion"
    display_name = "RSI mean reversion"
    parameters = (
        period("rsi_period", 14, "Bars in the RSI (Wilder smoothing)."),
        Parameter("oversold", ParamType.FLOAT, 30.0, "Enter below this RSI.", 0.0, 100.0, 1.0),
        Parameter("exit_level", ParamType.FLOAT, 50.0, "Exit above this RSI.", 0.0, 100.0, 1.0),
        Parameter(
            "stop_loss_pct",
            ParamType.FLOAT,
            0.0,
            "Stop-loss distance below the entry price in percent; 0 = no stop.",
            0.0,
            99.0,
            0.5,
        ),
        SIZE_FRACTION,
    )

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        super().__init__(params)
        self._stop_id: str | None = None

    def check_params(self, params: Mapping[str, ParamValue]) -> None:
        if float(params["oversold"]) >= float(params["exit_level"]):
            raise InvalidArgument(
                "params.oversold", f"must be below exit_level ({params['exit_level']})"
            )

    def indicators(self) -> tuple[IndicatorSpec, ...]:
        return (IndicatorSpec("rsi", "rsi", {"period": int(self.params["rsi_period"])}),)

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        (value,) = ctx.indicator_values
        position = ctx.position
        if position == 0 and value < float(self.params["oversold"]):
            buy_with_cash(ctx, self.entry_fraction(), f"RSI {value:.1f} oversold")
        elif position > 0 and value > float(self.params["exit_level"]):
            if self._stop_id is not None:
                ctx.cancel(self._stop_id)
                self._stop_id = None
            close_position(ctx, f"RSI {value:.1f} recovered")

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        pct = float(self.params["stop_loss_pct"])
        if fill.order_id == self._stop_id:
            self._stop_id = None
        elif fill.side is Side.BUY and pct > 0 and ctx.position > 0:
            stop = OrderRequest(
                Side.SELL,
                OrderType.STOP,
                size=ctx.position,
                stop_price=ctx.average_entry_price * (1 - pct / 100),
                reason="stop loss",
            )
            self._stop_id = ctx.submit(stop)

    def signals(
        self, arrays: Mapping[str, FloatArray], params: Mapping[str, ParamValue]
    ) -> tuple[BoolArray, BoolArray] | None:
        if float(params["stop_loss_pct"]) > 0:
            return None  # the stop depends on fills: bar by bar only
        value = arrays["rsi"]
        return value < float(params["oversold"]), value > float(params["exit_level"])
