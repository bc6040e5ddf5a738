"""Bars and a scripted strategy for the backtest domain tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from tradeplane.backtest.domain import BarSeries
from tradeplane.strategies import Bar, Fill, IndicatorSpec, OrderRequest, Strategy, StrategyContext

T0 = 1_700_000_000  # first bar time; bars are one minute apart


def bars_from_rows(rows: Sequence[tuple[float, float, float, float]]) -> BarSeries:
    """Bars from (open, high, low, close) rows."""
    o, h, lo, c = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    return BarSeries.from_arrays(T0 + 60 * np.arange(len(rows)), o, h, lo, c, np.ones(len(rows)))


def random_bars(n: int, seed: int) -> BarSeries:
    """A seeded random walk with consistent OHLC."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.001, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    return BarSeries.from_arrays(
        T0 + 60 * np.arange(n), open_, high, low, close, rng.uniform(1, 5, n)
    )


class Scripted(Strategy):
    """Submits planned orders at planned bars; cancels planned order ids; records fills."""

    name = "scripted"
    display_name = "Scripted (tests)"

    def __init__(
        self,
        plan: dict[int, list[OrderRequest]] | None = None,
        cancels: dict[int, list[str]] | None = None,
        on_fill_hook: Callable[[StrategyContext, Fill], None] | None = None,
    ) -> None:
        super().__init__({})
        self.plan = plan or {}
        self.cancels = cancels or {}
        self.hook = on_fill_hook
        self.fills: list[Fill] = []
        self.order_ids: list[str] = []

    def indicators(self) -> tuple[IndicatorSpec, ...]:
        return ()

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        for order_id in self.cancels.get(ctx.bar_index, []):
            ctx.cancel(order_id)
        for request in self.plan.get(ctx.bar_index, []):
            self.order_ids.append(ctx.submit(request))

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        self.fills.append(fill)
        if self.hook is not None:
            self.hook(ctx, fill)


@pytest.fixture
def rows_bars() -> Callable[[Sequence[tuple[float, float, float, float]]], BarSeries]:
    return bars_from_rows


@pytest.fixture
def walk() -> Callable[[int, int], BarSeries]:
    return random_bars


@pytest.fixture
def scripted() -> type[Scripted]:
    return Scripted
