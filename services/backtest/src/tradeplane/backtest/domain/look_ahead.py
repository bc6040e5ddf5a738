"""Look-ahead check: does any decision change when the future is removed?

The strategy runs once over all bars and once over the bars up to each sampled cut point k;
every order it submitted at a bar <= k must be the same in both (same bar, side, type, amount
and prices). A difference means the decision at that bar used data from after it: a signal
array shifted the wrong way, an indicator centred on the bar, data loaded from elsewhere.
Runs go through `run_backtest`, so the vectorised signals are checked too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tradeplane.backtest.domain.bars import BarSeries
from tradeplane.backtest.domain.broker import Order
from tradeplane.backtest.domain.engine import run_event
from tradeplane.backtest.domain.settings import BacktestSettings
from tradeplane.backtest.domain.vectorised import run_vectorised
from tradeplane.strategies import Strategy, compute_all

OrderKey = tuple[int, str, str, float | None, float | None, float | None, float | None]


@dataclass(frozen=True, slots=True)
class Violation:
    """A bar whose decision changed: what the run did with and without the future."""

    bar: int
    time: int
    with_future: str
    without_future: str


def _key(order: Order) -> OrderKey:
    r = order.request

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 9)

    return (
        order.submit_bar,
        r.side.value,
        r.type.value,
        rounded(r.size),
        rounded(r.quote_size),
        rounded(r.limit_price),
        rounded(r.stop_price),
    )


def _describe(orders: Sequence[OrderKey]) -> str:
    if not orders:
        return "nothing"
    parts = []
    for _, side, kind, size, quote, limit, stop in orders:
        amount = f"{size:g}" if size is not None else f"{quote:g} quote"
        text = f"{side.upper()} {amount}"
        if kind != "market":
            text += f" {kind}"
        if limit is not None:
            text += f" limit {limit:g}"
        if stop is not None:
            text += f" stop {stop:g}"
        parts.append(text)
    return "; ".join(parts)


def _orders(strategy: Strategy, bars: BarSeries, settings: BacktestSettings) -> list[OrderKey]:
    indicators = compute_all(strategy.indicators(), bars.columns())
    result = run_vectorised(strategy, bars, settings, indicators=indicators)
    if result is None:
        result = run_event(strategy, bars, settings, indicators=indicators)
    return [_key(o) for o in result.orders]


def cut_points(bar_count: int, samples: int) -> list[int]:
    """`samples` cut bars spread evenly over the run (the last bar excluded: cutting there
    removes nothing)."""
    if bar_count < 2 or samples < 1:
        return []
    points = np.linspace(0, bar_count - 2, min(samples, bar_count - 1)).round().astype(int)
    return sorted({int(p) for p in points})


def look_ahead_check(
    make_strategy: Callable[[], Strategy],
    bars: BarSeries,
    settings: BacktestSettings,
    samples: int,
) -> tuple[int, list[Violation]]:
    """(cut points checked, violations by bar). `make_strategy` builds a fresh instance."""
    full = _orders(make_strategy(), bars, settings)
    violations: dict[int, Violation] = {}
    cuts = cut_points(len(bars), samples)
    for cut in cuts:
        truncated = _orders(make_strategy(), bars.head(cut + 1), settings)
        seen = [o for o in full if o[0] <= cut]
        by_bar: dict[int, tuple[list[OrderKey], list[OrderKey]]] = {}
        for order in seen:
            by_bar.setdefault(order[0], ([], []))[0].append(order)
        for order in truncated:
            by_bar.setdefault(order[0], ([], []))[1].append(order)
        for bar, (with_future, without) in sorted(by_bar.items()):
            if with_future != without and bar not in violations:
                time = int(bars.time[bar]) if bar >= 0 else int(bars.time[0])
                violations[bar] = Violation(bar, time, _describe(with_future), _describe(without))
    return len(cuts), [violations[b] for b in sorted(violations)]
