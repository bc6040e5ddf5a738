"""Grid trading and dollar-cost averaging."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from tradeplane.strategies.api import (
    Bar,
    Fill,
    OrderRequest,
    OrderType,
    Side,
    Strategy,
    StrategyContext,
    close_position,
)
from tradeplane.strategies.builtin.common import period
from tradeplane.strategies.indicators import IndicatorSpec
from tradeplane.strategies.params import Parameter, ParamType
from tradeplane.strategies.registry import register


@register
class Grid(Strategy):
    """Buys dips and sells rebounds on a fixed ladder of limit orders around a start price.

    On the first bar it anchors at the close and rests `levels` limit buys, each
    `spacing_pct` percent below the one above it, each for `level_cash` of quote currency.
    When a buy fills, a limit sell for the same size rests one step (`spacing_pct`) above
    its price; when that sell fills, the buy at the original level is placed again. So it
    harvests one step of profit per round trip in a ranging market, and holds the filled
    levels (an unrealised loss) when the price trends down through the ladder. Long only;
    a level is skipped when cash is short.
    """

    name = "grid"
    display_name = "Grid"
    parameters = (
        Parameter("levels", ParamType.INT, 5, "Buy levels below the anchor.", 1, 100, 1),
        Parameter(
            "spacing_pct",
            ParamType.FLOAT,
            1.0,
            "Distance between levels in percent.",
            0.01,
            50.0,
            0.1,
        ),
        Parameter(
            "level_cash",
            ParamType.DECIMAL,
            Decimal("100"),
            "Quote currency spent per level.",
            Decimal("0.01"),
        ),
    )

    def __init__(self, params: Mapping[str, object] | None = None) -> None:
        super().__init__(params)
        self._anchored = False
        self._buy_levels: dict[str, float] = {}  # open buy order id -> its level price

    def indicators(self) -> tuple[IndicatorSpec, ...]:
        return ()

    def _step(self) -> float:
        return 1.0 + float(self.params["spacing_pct"]) / 100.0

    def _place_buy(self, ctx: StrategyContext, price: float) -> None:
        cash = float(self.params["level_cash"])
        if ctx.cash < cash:
            return
        request = OrderRequest(
            Side.BUY, OrderType.LIMIT, size=cash / price, limit_price=price, reason="grid buy"
        )
        self._buy_levels[ctx.submit(request)] = price

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        if self._anchored:
            return
        self._anchored = True
        price = bar.close
        for _ in range(int(self.params["levels"])):
            price /= self._step()
            self._place_buy(ctx, price)

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        level = self._buy_levels.pop(fill.order_id, None)
        if level is not None:
            ctx.submit(
                OrderRequest(
                    Side.SELL,
                    OrderType.LIMIT,
                    size=fill.size,
                    limit_price=level * self._step(),
                    reason="grid take profit",
                )
            )
        elif fill.side is Side.SELL:
            self._place_buy(ctx, fill.price / self._step())


@register
class DollarCostAverage(Strategy):
    """Dollar-cost averaging: buys a fixed amount of quote currency at regular intervals.

    Every `every_bars` bars (from the first) it buys `quote_amount` worth at market, fees
    included, while cash lasts; the average entry price smooths out volatility. With
    `take_profit_pct` > 0 it sells the whole position once the close is that many percent
    above the average entry price, then keeps accumulating. Long only.
    """

    name = "dca"
    display_name = "Dollar-cost averaging"
    parameters = (
        period("every_bars", 1440, "Bars between purchases (1440 = daily on 1-minute bars)."),
        Parameter(
            "quote_amount",
            ParamType.DECIMAL,
            Decimal("100"),
            "Quote currency spent per purchase, fees included.",
            Decimal("0.01"),
        ),
        Parameter(
            "take_profit_pct",
            ParamType.FLOAT,
            0.0,
            "Sell all this many percent above the average entry; 0 = never sell.",
            0.0,
            1000.0,
            1.0,
        ),
    )

    def indicators(self) -> tuple[IndicatorSpec, ...]:
        return ()

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        take_profit = float(self.params["take_profit_pct"])
        position = ctx.position
        if (
            take_profit > 0
            and position > 0
            and bar.close >= ctx.average_entry_price * (1 + take_profit / 100)
        ):
            close_position(ctx, f"take profit {take_profit:g}%")
            return
        amount = float(self.params["quote_amount"])
        if ctx.bar_index % int(self.params["every_bars"]) == 0 and ctx.cash >= amount:
            ctx.submit(OrderRequest(Side.BUY, quote_size=amount, reason="scheduled purchase"))
